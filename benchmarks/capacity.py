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

``--wrk2 PATH`` adds the constant-rate comparison (:mod:`benchmarks.wrk2`): per algorithm, one
running service on the first core; the capacity search against it (``--target``, its own fleet,
the profile's endpoint for the GET wrk2 sends, Locust on the other cores), then wrk2's highest
constant rate at the same objective against the same service (one bearer token of one registered
device, as many connections as the search has devices), and capacity's figure over wrk2's (goal:
ES256 >= 0.8; a floor says floor).
``--api drf-simplejwt`` makes that service the Django REST Framework + SimpleJWT app of
``tests/apis`` with Django's PBKDF2 password hashing (a costly login: ~0.3 s of CPU each) instead
of the embedded target, and runs only that comparison (goal: within 20 %); ``--wrk2-only`` runs
only the comparison on the embedded target too. Without ``--wrk2`` the comparison is not run, and
the output says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.service import APIS, ServiceError, running_service
from benchmarks.wrk import WrkBenchError, run_wrk, wrk_figures
from benchmarks.wrk2 import Wrk2Error, wrk2_search
from sim.artefacts.capacity_file import CapacityAlgorithm, CapacityFile, CapacityStep, SecondOpinion
from sim.errors import SimError
from sim.processes import split_cores
from sim.profiles import load_profile
from sim.run.embedded import EmbeddedTarget
from sim.sweep.capacity import (
    EMBEDDED_PATH,
    CapacityConfig,
    capacity_lines,
    parse_error_budget,
    parse_slo,
    run_capacity,
    second_opinion,
    write_capacity_outputs,
)
from sim.sweep.compare import AlgTarget, parse_algs

__all__ = ["compare_with_wrk2", "endpoint_of", "main", "wrk_max_rps"]

GOAL_SHARE = 0.8
# issue 26: on an API with costly logins, capacity's figure within 20 % of a constant-rate tool's.
COSTLY_LOGIN_BAND = (0.8, 1.2)
NO_WRK2 = (
    "wrk2: not compared (give --wrk2 PATH: wrk2 is built from source, github giltene/wrk2, and"
    " is in no package registry)"
)


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


def compare_with_wrk2(
    alg: str, *, api: str, wrk2: Path | None, config: CapacityConfig, log: Callable[[str], None]
) -> dict[str, Any]:
    """On one running service (``api``) signing with ``alg``: the capacity search against it,
    then (``wrk2`` given) wrk2's search at the same objective against the same service; both
    figures and capacity's over wrk2's."""
    server_cpus, load_cpus = split_cores(True)
    with running_service(api, alg, server_cpus) as service:
        search = dataclasses.replace(
            config, algs=[alg], targets={alg: AlgTarget(service.url, service.profile)},
            admin_key=service.admin_key, generator_cpus=load_cpus, second_opinion=False,
            endpoint=endpoint_of(service.profile, service.path),
            results=config.results / f"{api}-{alg}", log=log,
        )  # fmt: skip
        result = run_capacity(search)
        write_capacity_outputs(result, search.results)
        found = result["algorithms"][alg]
        reference = None
        if wrk2 is not None:
            reference = wrk2_search(
                wrk2, f"{service.url}{service.path}", service.header,
                connections=config.devices, duration_s=config.step_duration_s,
                objective=config.objective, error_budget=config.error_budget,
                start_rate_rps=config.start_rate_rps, raise_steps=config.raise_steps,
                narrow_steps=config.narrow_steps, cpus=load_cpus, log=log,
            )  # fmt: skip
    ratio = None
    if reference is not None and found["max_rate"] and reference["max_rate"]:
        ratio = round(found["max_rate"] / reference["max_rate"], 3)
    return {
        "alg": alg,
        "api": api,
        "slo": config.objective.text,
        "path": service.path,  # what both clients sent
        "capacity": _figure(found),
        "wrk2": None if reference is None else _figure(reference),
        "ratio": ratio,
        "results": str(search.results),
    }


def endpoint_of(profile: str, path: str) -> str:
    """The profile's endpoint that sends the GET wrk2 sends (``path``): without it the search
    drives the profile's default endpoint (ours: telemetry, a POST the target stores) while wrk2
    reads ``/api/data``, and the ratio compares two different requests."""
    endpoints = load_profile(profile, {}).endpoints
    found = next((e.name for e in endpoints if e.method == "GET" and e.path == path), None)
    if found is None:
        raise ServiceError(f"profile {profile} has no endpoint at {path}: nothing to compare")
    return found


def _figure(entry: CapacityAlgorithm) -> dict[str, Any]:
    return {
        "max_rate": entry["max_rate"],
        "objective_us_at_max": entry["objective_us_at_max"],
        "knee_rps": entry["knee_rps"],
        "floor": entry["floor"],
        "generator_limited": entry["generator_limited"],
        "steps": len(entry["steps"]),
    }


def _rate(figure: dict[str, Any] | None) -> str:
    if figure is None:
        return "-"
    if figure["max_rate"] is None:
        return "none"
    return f"{'>= ' if figure['floor'] else ''}{figure['max_rate']:,.0f}"


def _verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """The goals, each judged only where both figures are real (a floor says floor)."""
    lines = []
    for row in rows:
        ours, theirs, ratio = row["capacity"], row["wrk2"], row["ratio"]
        name = f"{row['alg']} on {row['api']}"
        if ours["generator_limited"]:  # first: a search the generator stopped measured it
            bound = (
                "no rate met the objective before it" if ratio is None else f"ratio >= {ratio:.2f}"
            )
            lines.append(
                f"{name}: capacity's figure is a floor set by the generator: {bound}, no verdict"
            )
            continue
        if ratio is None:
            lines.append(f"{name}: no ratio (a search found no rate that met {row['slo']})")
            continue
        if ours["floor"] or theirs["floor"]:
            lines.append(f"{name}: a search still met the objective at its last rate: no verdict")
            continue
        if row["api"] == "embedded":
            verdict = "meets" if ratio >= GOAL_SHARE else "MISSES"
            goal = f">= {GOAL_SHARE}" + ("" if row["alg"] == "ES256" else " (the ES256 goal)")
        else:
            low, high = COSTLY_LOGIN_BAND
            verdict = "meets" if low <= ratio <= high else "MISSES"
            goal = f"within 20 % ({low}-{high})"
        lines.append(f"{name}: capacity / wrk2 = {ratio:.2f} ({verdict} goal {goal})")
    real = {
        r["alg"]: r["capacity"]["max_rate"]
        for r in rows
        if r["api"] == "embedded" and r["capacity"]["max_rate"] and not r["capacity"]["floor"]
    }
    if "HS256" in real and "ES256" in real:
        above = real["HS256"] > real["ES256"]
        lines.append(
            f"HS256 {real['HS256']:,.0f} req/s {'above' if above else 'NOT above'} ES256"
            f" {real['ES256']:,.0f} req/s (both real figures)"
        )
    return lines


def _print_wrk2(rows: list[dict[str, Any]]) -> None:
    print(
        f"\nconstant-rate comparison (one running service, the same GET by both; capacity's"
        f" Locust, then wrk2, on the load cores):\n{'alg':6} {'api':14} {'objective':>10}"
        f" {'capacity':>10} {'wrk2':>10} {'capacity/wrk2':>14}"
    )
    for row in rows:
        ratio = row["ratio"]
        print(
            f"{row['alg']:6} {row['api']:14} {row['slo']:>10} {_rate(row['capacity']):>10}"
            f" {_rate(row['wrk2']):>10} {'-' if ratio is None else f'{ratio:.2f}':>14}"
        )
    if any(row["wrk2"] is None for row in rows):
        print(NO_WRK2)
    else:
        for line in _verdicts(rows):
            print(line)


def _embedded(
    args: argparse.Namespace, algs: list[str], results: Path
) -> tuple[list[dict[str, Any]], dict[str, CapacityFile]]:
    """The searches on fresh embedded targets beside wrk's maximum (the bench's first part)."""
    slos = {"objective": args.slo, "throughput": args.throughput_slo}
    searches: dict[str, CapacityFile] = {}
    at_max: dict[str, SecondOpinion] = {}
    configs = {
        name: CapacityConfig(
            algs=algs,
            objective=parse_slo(slo),
            devices=args.devices,
            step_duration_s=float(args.step_duration),
            start_rate_rps=args.start_rate,
            raise_steps=args.max_steps,
            narrow_steps=args.narrow_steps,
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
    return rows, searches


def _print_embedded(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    searches: dict[str, CapacityFile],
    results: Path,
) -> None:
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.capacity", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--algs", default="HS256,ES256", help="comma-separated algorithms")
    parser.add_argument("--slo", default="p99=50ms", help="the objective (default p99=50ms)")
    parser.add_argument(
        "--throughput-slo", default="p99=1s", help="the loose objective compared with wrk"
    )
    parser.add_argument("--error-budget", default="0.1%", help="as capacity's (default 0.1%%)")
    parser.add_argument("--devices", type=int, default=50, help="fleet size of each step")
    parser.add_argument("--step-duration", type=int, default=10, help="seconds per step")
    parser.add_argument("--start-rate", type=float, default=200.0, help="first rate, req/s")
    parser.add_argument("--max-steps", type=int, default=10, help="at most this many doublings")
    parser.add_argument("--narrow-steps", type=int, default=4, help="at most this many bisections")
    parser.add_argument("--workers", type=int, default=1, help="Locust worker processes")
    parser.add_argument("--wrk-duration", type=float, default=10.0, help="seconds of wrk")
    parser.add_argument(
        "--wrk2", type=Path, metavar="PATH", help="a wrk2 binary: the constant-rate comparison"
    )
    parser.add_argument(
        "--api", choices=APIS, default="embedded",
        help="the service of the wrk2 comparison (drf-simplejwt: only that comparison)",
    )  # fmt: skip
    parser.add_argument(
        "--wrk2-only", action="store_true", help="only the wrk2 comparison (not the wrk part)"
    )
    parser.add_argument("--results", type=Path, help="folder of the capacity steps")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if min(args.devices, args.step_duration, args.workers, args.max_steps) < 1:
        parser.error("--devices, --step-duration, --workers and --max-steps must be at least 1")
    if args.wrk2 is not None and not os.access(args.wrk2, os.X_OK):
        parser.error(f"--wrk2 {args.wrk2}: not an executable file")
    if args.wrk2_only and args.wrk2 is None:
        parser.error("--wrk2-only needs --wrk2 PATH")
    results = args.results or Path(tempfile.mkdtemp(prefix="fleetbench-capacitybench-"))
    log = (lambda line: None) if args.json else (lambda line: print(line, flush=True))
    rows: list[dict[str, Any]] = []
    searches: dict[str, CapacityFile] = {}
    compared: list[dict[str, Any]] = []
    try:
        algs = parse_algs(args.algs)
        reference = CapacityConfig(
            algs=algs, objective=parse_slo(args.slo),
            error_budget=parse_error_budget(args.error_budget), devices=args.devices,
            step_duration_s=float(args.step_duration), start_rate_rps=args.start_rate,
            raise_steps=args.max_steps, narrow_steps=args.narrow_steps, workers=args.workers,
            results=results / "wrk2",
        )  # fmt: skip
        if args.api == "embedded" and not args.wrk2_only:
            rows, searches = _embedded(args, algs, results)
        if args.wrk2 is not None or args.api != "embedded":
            compared = [
                compare_with_wrk2(alg, api=args.api, wrk2=args.wrk2, config=reference, log=log)
                for alg in algs
            ]
    except (SimError, WrkBenchError, Wrk2Error, ServiceError) as e:
        print(f"benchmarks.capacity: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        note = None if args.wrk2 else NO_WRK2
        document = {"rows": rows, "wrk2": compared, "wrk2_note": note, "results": str(results)}
        print(json.dumps(document, indent=2))
        return 0
    if rows:
        _print_embedded(args, rows, searches, results)
    if compared:
        _print_wrk2(compared)
    else:
        print(NO_WRK2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
