"""``python -m benchmarks.held``: how much of one generator core's closed-loop maximum the open
model holds, per algorithm, in one run against the same embedded target.

Per algorithm, one embedded target pinned to the first core and Locust on the others (as
``fleetbench run`` pins): first the closed loop (``--interval 0``: each device sends again as
soon as it is answered) gives the most requests per second this generator drives at that target;
then the open model (``--rate``) steps down from that rate by ``--step`` of it until a rate is
*held*: the fleet sent at most 1 % short of what was asked (``MAX_SHORTFALL`` of
``sim.account.offered``) and the generator's own scheduling lag p99 was at most 2 ms. The ratio
of the held rate to the closed loop's maximum is the figure (goal >= 0.8): below it the open
model pays for its schedule with the generator's CPU, not the target's. A figure is only as
quiet as the machine it ran on; the ratio, measured in one run, is the steadier one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Protocol

import psutil

from sim.account.offered import MAX_SHORTFALL
from sim.artefacts.summary_file import Summary
from sim.errors import SimError
from sim.exits import ExitCode
from sim.processes import split_cores
from sim.run.config import RunConfig
from sim.run.embedded import EmbeddedTarget
from sim.run.runner import run_benchmark
from sim.sweep.compare import check_token_algs

__all__ = [
    "HELD_LAG_P99_US",
    "RATIO_GOAL",
    "Service",
    "figures",
    "main",
    "measure_alg",
    "run_data",
    "served_rps",
]

HELD_LAG_P99_US = 2_000  # the generator's own scheduling lag p99 a held rate stays within
RATIO_GOAL = 0.8


class Service(Protocol):
    """A running service the bench drives: the embedded target, or a test's."""

    @property
    def url(self) -> str: ...

    @property
    def admin_key(self) -> str | None: ...


def run_data(
    target: Service, alg: str, cpus: set[int] | None, devices: int, duration_s: float,
    *, rate_rps: float | None,
) -> tuple[Summary, Path]:  # fmt: skip
    """One run of secret devices on ``target``'s ``/api/data`` with Locust on ``cpus``: the
    closed loop (``rate_rps`` None: each device sends as soon as it is answered) or the open
    model at ``rate_rps``; its summary and results folder."""
    results = Path(tempfile.mkdtemp(prefix=f"fleetbench-{alg}-"))
    summary = run_benchmark(
        RunConfig(
            target=target.url,
            admin_key=target.admin_key,
            devices=devices,
            alg="secret",
            token_alg=alg,
            endpoint="data",
            interval_s=0.0 if rate_rps is None else 1.0,
            rate_rps=rate_rps,
            duration_s=duration_s,
            results=results,
            generator_cpus=cpus,
        )
    )
    # A figure for tokens of another algorithm would stand for one the target never verified.
    check_token_algs(summary, alg, target.url, SimError)
    return summary, results


def served_rps(summary: Summary) -> float:
    """Verification requests answered ``ok`` per second: an error answer (a 503 at once, a
    refusal) costs the target no verification and is not a request it served."""
    rows = [r for r in summary["requests"] if r["scenario"] == "verification"]
    return sum(r["rps"] * r["outcomes"].get("ok", 0) / r["count"] for r in rows if r["count"])


def _per_request_us(cpu_percent: float | None, rate: float) -> float | None:
    """A process's CPU time per request served: steadier than any rate on a busy machine."""
    return round(cpu_percent * 10_000 / rate, 1) if cpu_percent and rate else None


def figures(summary: Summary, results: Path, rate_rps: float | None) -> dict[str, Any]:
    """One run's figures: what was served ``ok``, what each side spent per request, and (open
    model) the account against ``rate_rps``."""
    served = served_rps(summary)
    load = summary["load"]
    verify = summary["server"].get("verify", {}) if summary["server"]["available"] else {}
    found: dict[str, Any] = {
        "served_rps": round(served, 1),
        "answered_rps": round(
            sum(r["rps"] for r in summary["requests"] if r["scenario"] == "verification"), 1
        ),
        "cpu_us_per_request": _per_request_us(load["generator_cpu_percent"], served),
        "generator_cpu_percent": load["generator_cpu_percent"],
        # Time the generator was ready to run and waited for a core (others' work on a shared
        # machine shows here, and in the lag).
        "generator_cpu_wait_percent": load["generator_cpu_wait_percent"],
        # The target's own word: a rate its verification cost cannot explain shows here.
        "verifications": sum(v["count"] for v in verify.values()),
        "verify_mean_us": max((v["mean_us"] for v in verify.values()), default=None),
        "results": str(results),
    }
    account = summary.get("open_model")
    if account is not None:
        lag = account["generator_lag_us"]
        found |= {
            "rate_rps": rate_rps,
            "sent_rps": account["sent_rps"],
            "shortfall": account["shortfall"],
            "generator_lag_p99_us": lag.get("p99"),
            "generator_lag_p99_9_us": lag.get("p99_9"),
            "corrected_p99_us": account["corrected_latency_us"].get("p99"),
            "service_p99_us": account["service_latency_us"].get("p99"),
        }
        found["held"] = (
            account["shortfall"] <= MAX_SHORTFALL and (lag.get("p99") or 0) <= HELD_LAG_P99_US
        )
    return found


def _run(
    target: Service, alg: str, cpus: set[int] | None, devices: int, duration_s: float,
    *, rate_rps: float | None,
) -> dict[str, Any]:  # fmt: skip
    process = psutil.Process(target.pid) if isinstance(target, EmbeddedTarget) else None
    before = _cpu_s(process)
    summary, results = run_data(target, alg, cpus, devices, duration_s, rate_rps=rate_rps)
    found = figures(summary, results, rate_rps)
    ok = sum(
        r["outcomes"].get("ok", 0) for r in summary["requests"] if r["scenario"] == "verification"
    )
    # The target's CPU time over the whole run (its fleet's registration and logins too, a few
    # hundred calls) per verification answered ok: what one served request costs it.
    spent_s = _cpu_s(process) - before
    found["target_us_per_request"] = round(spent_s * 1e6 / ok, 1) if process and ok else None
    return found


def _cpu_s(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return float(times.user + times.system)


def measure_alg(
    alg: str, *, devices: int, duration_s: float, step: float, lowest: float
) -> dict[str, Any]:
    """One algorithm's closed-loop maximum, its open-model steps down to the first held rate
    (or ``lowest`` of the maximum), and their ratio."""
    target_cpus, load_cpus = split_cores(True)
    with EmbeddedTarget(alg, cpus=target_cpus) as target:
        closed = _run(target, alg, load_cpus, devices, duration_s, rate_rps=None)
        maximum = closed["served_rps"]
        steps: list[dict[str, Any]] = []
        share = 1.0
        while share >= lowest - 1e-9 and maximum > 0:
            steps.append(
                _run(target, alg, load_cpus, devices, duration_s, rate_rps=round(maximum * share))
            )
            if steps[-1]["held"]:
                break
            share -= step
    held = max((s["rate_rps"] for s in steps if s["held"]), default=None)
    return {
        "alg": alg,
        "closed": closed,
        "closed_max_rps": maximum,
        "steps": steps,
        "held_rps": held,
        "ratio": None if held is None or not maximum else round(held / maximum, 3),
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value / 1000:.2f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _target_line(run: dict[str, Any]) -> str:
    """The target's side of a run: its core, its CPU per request served, its verifications
    (one per request served ``ok``: no cache answers for it), and any answers not ``ok``."""
    not_ok = run["answered_rps"] - run["served_rps"]
    return (
        f"target CPU {_percent(run['target_us_per_request'])} us a request served;"
        f" {run['verifications']:,} verifications, mean {_percent(run['verify_mean_us'])} us"
        + (f"; {not_ok:,.0f} answers/s not ok (not counted as served)" if not_ok >= 0.5 else "")
    )


def _print(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        closed = row["closed"]
        print(
            f"{row['alg']}: closed loop {row['closed_max_rps']:,.0f} req/s "
            f"(generator {_percent(closed['generator_cpu_percent'])} % of a core, "
            f"{_percent(closed['cpu_us_per_request'])} us a request; "
            f"waited for a core {_percent(closed['generator_cpu_wait_percent'])} %)"
        )
        print(f"  {_target_line(closed)}")
        print(
            f"  {'asked/s':>8} {'sent/s':>8} {'short %':>7} {'lag p99':>8} {'p99.9':>7} "
            f"{'corr p99':>9} {'cpu %':>6} {'us/req':>6} {'wait %':>6}  held   "
            "(generator lag, corrected p99: ms)"
        )
        for s in row["steps"]:
            print(
                f"  {s['rate_rps']:>8,.0f} {s['sent_rps']:>8,.0f} {s['shortfall'] * 100:>7.1f} "
                f"{_ms(s['generator_lag_p99_us']):>8} {_ms(s['generator_lag_p99_9_us']):>7} "
                f"{_ms(s['corrected_p99_us']):>9} {_percent(s['generator_cpu_percent']):>6} "
                f"{_percent(s['cpu_us_per_request']):>6} "
                f"{_percent(s['generator_cpu_wait_percent']):>6}  {'yes' if s['held'] else 'no'}"
            )
        ratio = row["ratio"]
        if ratio is None:
            print("  open model held none of the rates tried")
        else:
            verdict = "meets" if ratio >= RATIO_GOAL else "MISSES"
            print(
                f"  open model held {row['held_rps']:,.0f} req/s = {ratio:.2f} x the closed "
                f"loop ({verdict} goal >= {RATIO_GOAL})"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.held", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--algs", default="HS256,ES256", help="target algorithms, in order")
    parser.add_argument("--devices", type=int, default=100, help="fleet size (default 100)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (default 10)")
    parser.add_argument(
        "--step", type=float, default=0.1, help="share of the maximum per step down (0.1)"
    )
    parser.add_argument("--lowest", type=float, default=0.3, help="lowest share tried (0.3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.devices < 1 or args.duration < 1 or not 0 < args.step <= 1 or not 0 < args.lowest <= 1:
        parser.error("--devices, --duration at least 1; --step and --lowest in (0, 1]")
    try:
        rows = [
            measure_alg(
                alg.strip(), devices=args.devices, duration_s=float(args.duration),
                step=args.step, lowest=args.lowest,
            )
            for alg in args.algs.split(",") if alg.strip()
        ]  # fmt: skip
    except SimError as e:
        print(f"held: error: {e}", file=sys.stderr)
        return ExitCode.ERROR
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
