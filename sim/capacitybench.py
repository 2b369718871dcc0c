"""``python -m sim.capacitybench``: ``fleetbench capacity`` on the embedded target beside wrk's own
maximum on the same endpoint, in the same session.

Per algorithm, on the embedded target's ``/api/data`` (the target on one core, the load on the
others):

1. the capacity search at the objective (``--slo``, default p99=50ms on corrected latency);
2. the same search at a throughput objective (``--throughput-slo``, default p99=1s: loose enough
   that only a queue growing without bound breaks it), which is what compares with wrk;
3. wrk (one thread, 32 connections, closed loop: as fast as answered) on a fresh target, with
   its own p99;
4. an independent open-model client (:mod:`sim.openprobe`: asyncio, no Locust) at the highest
   rate that met the objective and at the lowest that broke it, with as many connections as the
   search had devices: if it sees the same tail, the tail is the target's, not the generator's.

It prints each search's highest rate, the rate the target actually served there, and that served
rate as a share of wrk's maximum (the issue's check: at least 80 % when the generator is not the
limit). wrk's maximum has no latency objective: it keeps 32 requests in flight and lets the queue
form there, so a tail objective can break well below it. A figure is only as quiet as the
machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sim.artefacts import CapacityAlgorithm, CapacityFile, CapacityStep
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
from sim.openprobe import ProbeResult, probe
from sim.processes import split_cores
from target.wrkbench import WrkBenchError, run_wrk, wrk_figures

__all__ = ["main", "wrk_max_rps"]

GOAL_SHARE = 0.8
PATH = "/api/data"


def wrk_max_rps(alg: str, duration_s: float) -> tuple[float, float | None]:
    """wrk's requests per second on a fresh embedded target's ``/api/data`` (one warm-up), and
    its p99 in ms."""
    server_cpus, wrk_cpus = split_cores(True)
    with EmbeddedTarget(alg, cpus=server_cpus) as target:
        token = target.device_token("capacitybench-device", secrets.token_urlsafe(32))
        url = f"{target.url}{PATH}"
        run_wrk(url, 1, token=token, cpus=wrk_cpus)
        return wrk_figures(url, duration_s, token=token, cpus=wrk_cpus)


def second_opinion(alg: str, rate_rps: float, connections: int, duration_s: float) -> ProbeResult:
    """The independent open-model client at ``rate_rps`` on a fresh embedded target."""
    server_cpus, client_cpus = split_cores(True)
    previous = os.sched_getaffinity(0) if client_cpus else None
    with EmbeddedTarget(alg, cpus=server_cpus) as target:
        token = target.device_token("capacitybench-probe", secrets.token_urlsafe(32))
        if client_cpus:
            os.sched_setaffinity(0, client_cpus)
        try:
            return probe(target.port, PATH, token, rate_rps, connections, duration_s)
        finally:
            if previous:
                os.sched_setaffinity(0, previous)


def _served(entry: CapacityAlgorithm) -> float | None:
    """The rate the target served (sent and answered) at the highest rate that met."""
    for step in entry["steps"]:
        if step["met"] and step["rate_rps"] == entry["max_rate"]:
            return step["sent_rps"]
    return None


def _step_at(entry: CapacityAlgorithm, rate: float) -> CapacityStep | None:
    return next((s for s in entry["steps"] if s["rate_rps"] == rate), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sim.capacitybench", description=__doc__.split("\n")[0]
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
    parser.add_argument(
        "--probe-duration",
        type=float,
        default=10.0,
        help="seconds of each second opinion (0: none)",
    )
    parser.add_argument("--results", type=Path, help="folder of the capacity steps")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.devices < 1 or args.step_duration < 1 or args.workers < 1:
        parser.error("--devices, --step-duration and --workers must be at least 1")
    if not 0 <= args.probe_duration <= 300:
        parser.error("--probe-duration must be 0-300 s")
    results = args.results or Path(tempfile.mkdtemp(prefix="fleetbench-capacitybench-"))
    searches: dict[str, CapacityFile] = {}
    slos = {"objective": args.slo, "throughput": args.throughput_slo}
    try:
        algs = parse_algs(args.algs)
        for name, slo in slos.items():
            config = CapacityConfig(
                algs=algs,
                objective=parse_slo(slo),
                devices=args.devices,
                step_duration_s=float(args.step_duration),
                start_rate_rps=args.start_rate,
                workers=args.workers,
                results=results / name,
            )
            searches[name] = run_capacity(config)
            write_capacity_outputs(searches[name], config.results)
        wrk = {alg: wrk_max_rps(alg, args.wrk_duration) for alg in algs}
        probes: dict[str, list[ProbeResult]] = {}
        for alg in algs:
            entry = searches["objective"]["algorithms"][alg]
            rates = [r for r in (entry["max_rate"], entry["knee_rps"]) if r is not None]
            if args.probe_duration and not entry["generator_limited"]:
                probes[alg] = [
                    second_opinion(alg, rate, args.devices, args.probe_duration) for rate in rates
                ]
    except (SimError, WrkBenchError) as e:
        print(f"sim.capacitybench: error: {e}", file=sys.stderr)
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
                "steps": len(entry["steps"]),
                "share_of_wrk": served / wrk[alg][0] if served and wrk[alg][0] else None,
            }
        opinions = []
        for p in probes.get(alg, []):
            step = _step_at(searches["objective"]["algorithms"][alg], p.rate_rps)
            locust = step["corrected_p99_us"] if step else None
            opinions.append({**asdict(p), "locust_corrected_p99_us": locust})
        row["second_opinion"] = opinions
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
        for opinion in row["second_opinion"]:
            locust = opinion["locust_corrected_p99_us"]
            print(
                f"{row['alg']}: at {opinion['rate_rps']:,.0f} req/s over {opinion['connections']}"
                f" connections, an asyncio client (no Locust) saw corrected p50"
                f" {opinion['corrected_p50_us'] / 1000:.1f} ms, p99"
                f" {opinion['corrected_p99_us'] / 1000:.1f} ms (service p99"
                f" {opinion['service_p99_us'] / 1000:.1f} ms; {opinion['ok']:,} ok,"
                f" {opinion['other']} other); the search's step there:"
                f" {'-' if locust is None else f'{locust / 1000:.1f} ms'}"
            )
    for line in capacity_lines(searches["objective"]):
        print(line)
    print(f"(capacity steps in {results})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
