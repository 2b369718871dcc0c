"""``python -m benchmarks.load``: how close the harness gets to wrk, and what auth costs the target.

All in one session, on one embedded target pinned to core 0 with the load generator on core 1:

1. HS256 ``/api/data``: wrk's requests per second next to ``fleetbench run``'s, the same number of
   connections (one per device) for the same time. Goal: the harness reaches >= 90 % of wrk.
2. The target's authenticated ``/api/data`` next to its unauthenticated ``/healthz`` under the same
   wrk load: goals >= 60 % for HS256 and >= 35 % for ES256 (verify cache off).

wrk comes from Debian's ``wrk`` package. The harness run also reports the generator's CPU, so a
shortfall can be told apart: a saturated generator, or a target that is the bottleneck for both.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import subprocess
import sys
from typing import Any

from benchmarks.held import run_data, served_rps
from sim.errors import SimError
from sim.exits import ExitCode
from sim.processes import split_cores
from sim.run.embedded import EmbeddedTarget

__all__ = ["main", "wrk_rps"]

DEVICE = "loadbench-device-1"
# Each ratio (figure over figure) and its goal.
RATIOS = {
    "harness_vs_wrk": ("HS256_data_harness_rps", "HS256_data_wrk_rps"),
    "HS256_data_vs_healthz": ("HS256_data_wrk_rps", "HS256_healthz_wrk_rps"),
    "ES256_data_vs_healthz": ("ES256_data_wrk_rps", "ES256_healthz_wrk_rps"),
}
GOALS = {"harness_vs_wrk": 0.90, "HS256_data_vs_healthz": 0.60, "ES256_data_vs_healthz": 0.35}
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")


def wrk_rps(
    url: str, *, connections: int, duration_s: int, cpus: set[int] | None, token: str | None = None
) -> float:
    """wrk's requests per second against ``url``; every answer must be 2xx."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", url]
    if token:
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    if cpus:
        command = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *command]
    out = subprocess.run(
        command, capture_output=True, text=True, timeout=duration_s + 30, check=True
    ).stdout
    non_2xx = _NON_2XX.search(out)
    if non_2xx:
        raise RuntimeError(f"wrk saw {non_2xx.group(1)} non-2xx answers from {url}")
    match = _RPS.search(out)
    if not match:
        raise RuntimeError(f"no Requests/sec in wrk's output for {url}")
    return float(match.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections = devices")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print(
            "loadbench: error: wrk not found; install it with: apt-get install wrk", file=sys.stderr
        )
        return ExitCode.ERROR
    try:
        figures = _measure(args.connections, args.duration)
    except SimError as e:
        print(f"loadbench: error: {e}", file=sys.stderr)
        return ExitCode.ERROR
    print_figures(figures, as_json=args.json)
    return 0


def _measure(connections: int, duration_s: int) -> dict[str, Any]:
    target_cpus, load_cpus = split_cores(True)
    figures: dict[str, Any] = {"connections": connections, "duration_s": duration_s}
    with EmbeddedTarget("HS256", cpus=target_cpus) as target:
        token = target.device_token(DEVICE, secrets.token_urlsafe(32))
        figures["HS256_healthz_wrk_rps"] = wrk_rps(
            f"{target.url}/healthz", connections=connections, duration_s=duration_s,
            cpus=load_cpus,
        )  # fmt: skip
        figures["HS256_data_wrk_rps"] = wrk_rps(
            f"{target.url}/api/data", connections=connections, duration_s=duration_s,
            cpus=load_cpus, token=token,
        )  # fmt: skip
        summary, results = run_data(
            target, "HS256", load_cpus, connections, float(duration_s), rate_rps=None
        )
        figures["HS256_data_harness_rps"] = served_rps(summary)
        figures["harness_generator_cpu_percent"] = max(
            (p["cpu_percent_mean"] for p in summary["generator"]["processes"]), default=0.0
        )
        figures["harness_generator_saturated"] = summary["generator"]["saturated"]
        figures["harness_results"] = str(results)
    with EmbeddedTarget("ES256", cpus=target_cpus) as target:
        token = target.device_token(DEVICE, secrets.token_urlsafe(32))
        figures["ES256_healthz_wrk_rps"] = wrk_rps(
            f"{target.url}/healthz",
            connections=connections,
            duration_s=duration_s,
            cpus=load_cpus,
        )
        figures["ES256_data_wrk_rps"] = wrk_rps(
            f"{target.url}/api/data",
            connections=connections,
            duration_s=duration_s,
            cpus=load_cpus,
            token=token,
        )
    figures["ratios"] = {
        name: round(figures[over] / figures[under], 3) for name, (over, under) in RATIOS.items()
    }
    return figures


def print_figures(figures: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(figures, indent=2))
        return
    print(f"HS256 /healthz  wrk      {figures['HS256_healthz_wrk_rps']:9.0f} req/s")
    print(f"HS256 /api/data wrk      {figures['HS256_data_wrk_rps']:9.0f} req/s")
    print(
        f"HS256 /api/data harness  {figures['HS256_data_harness_rps']:9.0f} req/s"
        f"  (generator {figures['harness_generator_cpu_percent']:.0f}% of a core"
        f"{', SATURATED' if figures['harness_generator_saturated'] else ''})"
    )
    print(f"ES256 /healthz  wrk      {figures['ES256_healthz_wrk_rps']:9.0f} req/s")
    print(f"ES256 /api/data wrk      {figures['ES256_data_wrk_rps']:9.0f} req/s")
    for name, value in figures["ratios"].items():
        goal = GOALS[name]
        verdict = "meets" if value >= goal else "MISSES"
        print(f"{name:24s} {value:6.2f}  ({verdict} goal >= {goal:.2f})")


if __name__ == "__main__":
    sys.exit(main())
