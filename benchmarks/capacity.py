"""``python -m benchmarks.capacity``: ``fleetbench capacity`` on the embedded target beside wrk's
own maximum on the same endpoint, in the same session.

Per algorithm, on the embedded target's ``/api/data`` (the target on one core, the load on the
others):

1. the capacity search at the objective (``--slo``, default p99=50ms on corrected latency);
2. the same search at a throughput objective (``--throughput-slo``, default p99=1s: loose enough
   that only a queue growing without bound breaks it), which is what compares with wrk;
3. wrk (one thread, 32 connections, closed loop: as fast as answered) on a fresh target, with
   its own p99;
4. the independent open-model client (:mod:`sim.run.openprobe`: asyncio, no Locust) at the highest
   rate that met the objective, beside the one the capacity search itself runs at the lowest rate
   that broke it (the knee): if it sees the same tail, the tail is the target's; if it meets the
   objective at the knee, the search's break was the generator's and its figure a floor.

It prints each search's highest rate, the rate the target actually served there, and that served
rate as a share of wrk's maximum (the issue's check: at least 80 % when the generator is not the
limit). wrk's maximum has no latency objective: it keeps 32 requests in flight and lets the queue
form there, so a tail objective can break well below it. A figure is only as quiet as the
machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.wrk import WrkBenchError, run_wrk, wrk_figures
from sim.artefacts.capacity_file import CapacityAlgorithm, CapacityFile, CapacityStep, SecondOpinion
from sim.errors import SimError
from sim.processes import split_cores
from sim.run.embedded import EmbeddedTarget
from sim.sweep.capacity import (
    EMBEDDED_PATH,
    CapacityConfig,
    capacity_lines,
    parse_slo,
    run_capacity,
    second_opinion,
    write_capacity_outputs,
)
from sim.sweep.compare import parse_algs

__all__ = ["main", "wrk_max_rps"]

GOAL_SHARE = 0.8


def wrk_max_rps(alg: str, duration_s: float) -> tuple[float, float | None]:
    """wrk's requests per second on a fresh embedded target's ``/api/data`` (one warm-up), and
    its p99 in ms."""
    server_cpus, wrk_cpus = split_cores(True)
    with EmbeddedTarget(alg, cpus=server_cpus) as target:
        token = target.device_token("capacitybench-device", secrets.token_urlsafe(32))
        url = f"{target.url}{EMBEDDED_PATH}"
        run_wrk(url, 1, token=token, cpus=wrk_cpus)
        return wrk_figures(url, duration_s, token=token, cpus=wrk_cpus)


def _served(entry: CapacityAlgorithm) -> float | None:
    """The rate the target served (sent and answered) at the highest rate that met."""
    if entry["max_rate"] is None:
        return None
    step = _step_at(entry, entry["max_rate"])
    return step["sent_rps"] if step is not None and step["met"] else None


def _step_at(entry: CapacityAlgorithm, rate: float) -> CapacityStep | None:
    return next((s for s in entry["steps"] if s["rate_rps"] == rate), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.capacity", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--algs", default="HS256,ES256", help="comma-separated algorithms")
    parser.add_argument("--slo", default="p99=50ms", help="the objective (default p99=50ms)")
    parser.add_argument(
        "--throughput-slo", default="p99=1s", help="the loose objective compared with wrk"
    )
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
    results = args.results or Path(tempfile.mkdtemp(prefix="fleetbench-capacitybench-"))
    slos = {"objective": args.slo, "throughput": args.throughput_slo}
    searches: dict[str, CapacityFile] = {}
    at_max: dict[str, SecondOpinion] = {}
    try:
        algs = parse_algs(args.algs)
        configs = {
            name: CapacityConfig(
                algs=algs,
                objective=parse_slo(slo),
                devices=args.devices,
                step_duration_s=float(args.step_duration),
                start_rate_rps=args.start_rate,
                workers=args.workers,
                results=results / name,
                second_opinion=name == "objective",  # at the knee: whose break it was
            )
            for name, slo in slos.items()
        }
        for name, config in configs.items():
            searches[name] = run_capacity(config)
            write_capacity_outputs(searches[name], config.results)
        wrk = {alg: wrk_max_rps(alg, args.wrk_duration) for alg in algs}
        for alg in algs:  # and at the highest rate that met the objective
            found = searches["objective"]["algorithms"][alg]["max_rate"]
            if found is not None:
                at_max[alg] = second_opinion(configs["objective"], alg, found)
    except (SimError, WrkBenchError) as e:
        print(f"benchmarks.capacity: error: {e}", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    for alg in algs:
        row: dict[str, Any] = {"alg": alg, "wrk_rps": wrk[alg][0], "wrk_p99_ms": wrk[alg][1]}
        for name, search in searches.items():
            entry = search["algorithms"][alg]
            served = _served(entry)
            row[name] = {
                "slo": slos[name],
                "max_rate": entry["max_rate"],
                "served_rps": served,
                "p99_us_at_max": entry["p99_us_at_max"],
                "knee_rps": entry["knee_rps"],
                "generator_limited": entry["generator_limited"],
                "second_opinion_at_knee": entry["second_opinion"],
                "steps": len(entry["steps"]),
                "share_of_wrk": served / wrk[alg][0] if served and wrk[alg][0] else None,
            }
        row["second_opinion_at_max"] = at_max.get(alg)
        rows.append(row)
    if args.json:
        print(json.dumps({"rows": rows, "results": str(results)}, indent=2))
        return 0
    print(
        f"{'alg':6} {'search':11} {'objective':>10} {'max req/s':>10} {'served':>8} {'p99 ms':>7}"
        f" {'knee':>7} {'wrk req/s':>10} {'wrk p99':>8} {'share':>6}  generator"
    )
    for row in rows:
        for name in searches:
            found = row[name]
            share, p99 = found["share_of_wrk"], found["p99_us_at_max"]
            wrk_p99 = row["wrk_p99_ms"]
            print(
                f"{row['alg']:6} {name:11} {found['slo']:>10} {found['max_rate'] or 0:>10,.0f}"
                f" {found['served_rps'] or 0:>8,.0f}"
                f" {'-' if p99 is None else f'{p99 / 1000:.1f}':>7}"
                f" {found['knee_rps'] or 0:>7,.0f} {row['wrk_rps']:>10,.0f}"
                f" {'-' if wrk_p99 is None else f'{wrk_p99:.1f}':>8}"
                f" {'-' if share is None else f'{share * 100:.0f} %':>6}"
                f"  {'the limit (a floor)' if found['generator_limited'] else 'not the limit'}"
            )
    for row in rows:
        found = row["throughput"]
        if found["generator_limited"]:
            print(f"{row['alg']}: the generator was the limit of the throughput search: no verdict")
        elif found["share_of_wrk"] is not None:
            share = found["share_of_wrk"]
            verdict = "meets" if share >= GOAL_SHARE else "MISSES"
            print(
                f"{row['alg']}: the throughput search's served rate = {share * 100:.0f} % of wrk's"
                f" maximum ({verdict} goal >= {GOAL_SHARE * 100:.0f} %)"
            )
        opinion = row["second_opinion_at_max"]
        if opinion is not None:
            step = _step_at(searches["objective"]["algorithms"][row["alg"]], opinion["rate_rps"])
            locust = step["corrected_p99_us"] if step else None
            print(
                f"{row['alg']}: at the highest rate that met {args.slo},"
                f" {opinion['rate_rps']:,.0f} req/s, the asyncio client saw corrected p99"
                f" {opinion['corrected_p99_us'] / 1000:.1f} ms (service p99"
                f" {opinion['service_p99_us'] / 1000:.1f} ms) where the search saw"
                f" {'-' if locust is None else f'{locust / 1000:.1f} ms'}"
            )
    for line in capacity_lines(searches["objective"]):
        print(line)
    print(f"(capacity steps in {results})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
