"""``python -m sim.capacitybench``: ``fleetbench capacity`` on the embedded target beside wrk's own
maximum on the same endpoint, in the same session.

Per algorithm: the capacity search (open model, corrected latency against the objective) on the
embedded target's ``/api/data`` (the target on one core, Locust on the others), then wrk (one
thread, 32 connections, closed loop: as fast as answered) against a fresh embedded target's
``/api/data`` with a valid token, pinned the same way. Prints both, and the share of wrk's figure
the search found. wrk's maximum has no latency objective (it queues as deep as 32 connections
let it), so the search finding a good share of it is the check that the generator is not the
limit; when the search says the generator was the limit, its figure is a floor. A figure is only
as quiet as the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from sim.capacity import (
    CapacityConfig,
    capacity_lines,
    parse_slo,
    run_capacity,
    write_capacity_outputs,
)
from sim.compare import parse_algs
from sim.embedded import EmbeddedTarget
from sim.errors import SimError
from sim.processes import split_cores
from target.wrkbench import WrkBenchError, run_wrk

__all__ = ["main", "wrk_max_rps"]


def wrk_max_rps(alg: str, duration_s: float) -> float:
    """wrk's requests per second on a fresh embedded target's ``/api/data`` (one warm-up)."""
    server_cpus, wrk_cpus = split_cores(True)
    with EmbeddedTarget(alg, cpus=server_cpus) as target:
        token = target.device_token("capacitybench-device", secrets.token_urlsafe(32))
        url = f"{target.url}/api/data"
        run_wrk(url, 1, token=token, cpus=wrk_cpus)
        return run_wrk(url, duration_s, token=token, cpus=wrk_cpus)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sim.capacitybench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--algs", default="HS256,ES256", help="comma-separated algorithms")
    parser.add_argument("--slo", default="p99=50ms", help="the objective (default p99=50ms)")
    parser.add_argument("--devices", type=int, default=50, help="fleet size of each step")
    parser.add_argument("--step-duration", type=int, default=10, help="seconds per step")
    parser.add_argument("--start-rate", type=float, default=200.0, help="first rate, req/s")
    parser.add_argument("--workers", type=int, default=1, help="Locust worker processes")
    parser.add_argument("--wrk-duration", type=float, default=10.0, help="seconds of wrk")
    parser.add_argument("--results", type=Path, help="folder of the capacity steps")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.devices < 1 or args.step_duration < 1 or args.workers < 1:
        parser.error("--devices, --step-duration and --workers must be at least 1")
    try:
        algs = parse_algs(args.algs)
        config = CapacityConfig(
            algs=algs,
            objective=parse_slo(args.slo),
            devices=args.devices,
            step_duration_s=float(args.step_duration),
            start_rate_rps=args.start_rate,
            workers=args.workers,
            results=args.results or Path(tempfile.mkdtemp(prefix="fleetbench-capacitybench-")),
        )
        result = run_capacity(config)
        write_capacity_outputs(result, config.results)
        wrk = {alg: wrk_max_rps(alg, args.wrk_duration) for alg in algs}
    except (SimError, WrkBenchError) as e:
        print(f"sim.capacitybench: error: {e}", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    for alg in algs:
        entry = result["algorithms"][alg]
        found = entry["max_rate"]
        rows.append(
            {
                "alg": alg,
                "capacity_rps": found,
                "p99_us_at_max": entry["p99_us_at_max"],
                "knee_rps": entry["knee_rps"],
                "generator_limited": entry["generator_limited"],
                "steps": len(entry["steps"]),
                "wrk_rps": wrk[alg],
                "share_of_wrk": (found / wrk[alg]) if found is not None and wrk[alg] else None,
            }
        )
    if args.json:
        print(json.dumps({"slo": args.slo, "rows": rows}, indent=2))
        return 0
    print(
        f"{'alg':6} {'capacity req/s':>14} {'p99 ms':>7} {'knee':>7} {'wrk req/s':>10}"
        f" {'share':>6} {'steps':>5}  generator"
    )
    for row in rows:
        share = row["share_of_wrk"]
        p99 = row["p99_us_at_max"]
        print(
            f"{row['alg']:6} {row['capacity_rps'] or 0:>14,.0f}"
            f" {'-' if p99 is None else f'{p99 / 1000:.1f}':>7}"
            f" {row['knee_rps'] or 0:>7,.0f} {row['wrk_rps']:>10,.0f}"
            f" {'-' if share is None else f'{share * 100:.0f} %':>6} {row['steps']:>5}"
            f"  {'the limit (a floor)' if row['generator_limited'] else 'not the limit'}"
        )
    for line in capacity_lines(result):
        print(line)
    print(f"(objective {args.slo}; capacity steps in {config.results})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
