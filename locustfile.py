"""The fleet for Locust: ``locust -f locustfile.py --host http://127.0.0.1:8000``.

A thin entry: the device user and its configuration live in the package
(:mod:`sim.locustfiles.devices`), which is what ``fleetbench run`` hands Locust, installed or not.
"""

from __future__ import annotations

from sim.locustfiles.devices import FleetDevice

__all__ = ["FleetDevice"]
