"""The fleet for Locust: ``locust -f locustfile.py --host http://127.0.0.1:8000``.

One user per device of the fleet file in ``FLEETBENCH_FLEET`` (see the README for the other
``FLEETBENCH_*`` variables); ``fleetbench run`` drives this same file headless.
"""

from __future__ import annotations

import sys

from sim.errors import SimError
from sim.users import FleetDevice, configure

__all__ = ["FleetDevice"]

try:
    configure()
except SimError as e:
    sys.exit(f"fleetbench: {e}")
