"""``python -m benchmarks.scale``: how large a fleet one generator process drives, and its memory.

Runs ``fleetbench run`` (embedded target, one Locust process, target and generator on their own
cores) at growing fleet sizes at one interval (10 s by default, a device reporting every ten
seconds) and prints, per size: the load asked for and delivered, the requests unanswered at stop,
both sides' CPU, which side gave out, and the generator's peak memory, whole and per device. The
answer is the largest size at which the load was delivered and the generator was not saturated;
memory per device is the slope of the generator's peak memory between the smallest and the
largest size (Python and Locust's own footprint left out).

Each size runs until every device has started plus ``--intervals`` intervals, so each device
reports several times at its pace. A figure is only as quiet as the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from sim.fleet.model import CREDENTIAL_KINDS, CredentialKind
from sim.run.config import RunConfig
from sim.run.runner import run_benchmark

__all__ = ["main", "measure"]

SPAWN_RATE = 500.0  # devices started per second, as fleetbench run does by default


def measure(
    devices: int, *, interval_s: float, intervals: int, alg: CredentialKind, token_alg: str
) -> dict[str, Any]:
    """One run at ``devices``; the figures that tell whether one generator kept up."""
    duration_s = devices / SPAWN_RATE + intervals * interval_s
    results = Path(tempfile.mkdtemp(prefix=f"fleetbench-scale-{devices}-"))
    summary = run_benchmark(
        RunConfig(
            devices=devices,
            alg=alg,
            token_alg=token_alg,
            scenarios={"verification": 1},
            interval_s=interval_s,
            duration_s=duration_s,
            spawn_rate=SPAWN_RATE,
            results=results,
        )
    )
    load, generator = summary["load"], summary["generator"]
    return {
        "devices": devices,
        "interrupted": summary["run"]["interrupted"],
        "duration_s": round(duration_s, 1),
        "offered_rps": load["offered_rps"],
        "delivered_rps": load["delivered_rps"],
        "shortfall": load["shortfall"],
        "in_flight_at_stop": load["in_flight_at_stop"],
        "generator_cpu_percent": load["generator_cpu_percent"],
        "target_cpu_percent": load["target_cpu_percent"],
        "saturated": load["saturated"],
        "overloaded": load["overloaded"],
        "generator_peak_rss_bytes": generator["peak_rss_bytes"],
        "line": load["line"],
        "results": str(results),
    }


def _verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    kept_up = [r for r in rows if not r["overloaded"] and r["saturated"] is None]
    largest = max((r["devices"] for r in kept_up), default=None)
    first_limit = next((r for r in rows if r["overloaded"] or r["saturated"]), None)
    # Memory per device in the steady state: from the sizes that kept up (an overloaded
    # generator also holds the queued requests), or from all when fewer than two did.
    sized = kept_up if len(kept_up) >= 2 else rows
    per_device = None
    if len(sized) >= 2 and sized[-1]["devices"] > sized[0]["devices"]:
        grown = sized[-1]["generator_peak_rss_bytes"] - sized[0]["generator_peak_rss_bytes"]
        if grown > 0:  # sizes too close together drown in the process's own noise
            per_device = round(grown / (sized[-1]["devices"] - sized[0]["devices"]))
    return {
        "largest_fleet_kept_up": largest,
        "first_limit": None
        if first_limit is None
        else {"devices": first_limit["devices"], "saturated": first_limit["saturated"]},
        "generator_bytes_per_device": per_device,
        "memory_sizes": [sized[0]["devices"], sized[-1]["devices"]] if sized else [],
    }


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a list of fleet sizes: {text!r}") from e
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("fleet sizes must be whole numbers of at least 1")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--devices",
        type=_sizes,
        default=[1000, 5000, 10000, 20000, 30000],
        help="fleet sizes, comma-separated (default 1000,5000,10000,20000,30000)",
    )
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between reports")
    parser.add_argument(
        "--intervals", type=int, default=4, help="intervals to run after the last device starts"
    )
    parser.add_argument(
        "--alg", choices=CREDENTIAL_KINDS, default="ES256", help="device credential"
    )
    parser.add_argument("--token-alg", default="ES256", help="the embedded target's algorithm")
    parser.add_argument(
        "--keep-going", action="store_true", help="run every size even after one gave out"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.interval <= 0 or args.intervals < 1:
        parser.error("--interval must be positive and --intervals at least 1")
    rows = []
    for devices in args.devices:
        row = measure(
            devices,
            interval_s=args.interval,
            intervals=args.intervals,
            alg=args.alg,
            token_alg=args.token_alg,
        )
        if row["interrupted"]:
            print(f"{devices:7d} devices  interrupted: left out", file=sys.stderr)
            break
        rows.append(row)
        if not args.json:
            print(
                f"{devices:7d} devices  peak RSS {row['generator_peak_rss_bytes'] / 2**20:7.0f} MiB"
                f"  {row['line']}",
                flush=True,
            )
        if (row["overloaded"] or row["saturated"]) and not args.keep_going:
            break
    verdict = _verdict(rows)
    if args.json:
        print(json.dumps({"interval_s": args.interval, "runs": rows, **verdict}, indent=2))
        return 0
    largest = verdict["largest_fleet_kept_up"]
    print(
        f"largest fleet one generator process kept up with at a {args.interval:g} s interval: "
        + (f"{largest} devices" if largest else "none of the sizes tried")
    )
    limit = verdict["first_limit"]
    if limit:
        print(f"first limit: {limit['devices']} devices, the limit: {limit['saturated'] or '?'}")
    if verdict["generator_bytes_per_device"] is not None:
        print(
            f"generator memory per device: {verdict['generator_bytes_per_device'] / 1024:.0f} KiB "
            f"(peak RSS slope from {verdict['memory_sizes'][0]} to {verdict['memory_sizes'][1]} "
            "devices)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
