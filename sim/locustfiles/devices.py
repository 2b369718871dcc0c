"""The fleet for Locust, as ``fleetbench run`` starts it: ``locust -f <this file>``.

One user per device of the fleet (``FLEETBENCH_CONFIG``, or ``FLEETBENCH_FLEET`` and the other
``FLEETBENCH_*`` variables in docs/cli/run.md). The repository's top-level ``locustfile.py`` imports
this module, for ``locust -f locustfile.py`` and the web UI.
"""

from __future__ import annotations

import sys

from sim.device.user import FleetDevice, configure
from sim.errors import SimError

__all__ = ["FleetDevice"]

try:
    configure()
except SimError as e:
    sys.exit(f"fleetbench: {e}")
