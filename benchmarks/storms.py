"""``python -m benchmarks.storms``: a storm's time to recover on the embedded target, without
and with ``--backoff`` (:mod:`sim.account.storms`)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sim.account.storms import STORMS, Storm, check_storm, parse_run_scenario
from sim.artefacts.summary_file import ExpiryStorm, ReconnectStorm, Storms
from sim.errors import ConfigError, SimError
from sim.run.config import RunConfig
from sim.run.runner import run_benchmark

__all__ = ["compare_backoff", "main"]


def compare_backoff(
    storm: Storm,
    devices: int,
    token_ttl: int,
    duration_s: int,
    interval_s: float,
    token_alg: str,
    folder: Path,
) -> dict[str, Storms]:
    """The same storm on the embedded target twice: without, then with ``--backoff``."""
    results: dict[str, Storms] = {}
    for label, backoff in (("without backoff", False), ("with backoff", True)):
        scenarios, _ = parse_run_scenario(storm)
        summary = run_benchmark(
            RunConfig(
                devices=devices,
                token_alg=token_alg,
                token_ttl=token_ttl if storm == "expiry-storm" else None,
                leeway=0 if storm == "expiry-storm" else None,
                scenarios=scenarios,
                storm=storm,
                backoff=backoff,
                interval_s=interval_s,
                duration_s=duration_s,
                results=folder / label.replace(" ", "-"),
            )
        )
        storms = summary.get("storms")
        if not storms:
            raise SimError(f"the {label} run has no storms section")
        results[label] = storms
    return results


def _figures_line(label: str, storms: Storms) -> str:
    storm: ExpiryStorm | ReconnectStorm
    if "reconnect" in storms:
        storm = storms["reconnect"]
        what = (
            f"outage {storm['outage_s']} s; acknowledged lost {storm['acknowledged_lost']}; "
            "re-authentication"
        )
    else:
        storm = storms["expiry"]
        what = f"expiry window {storm['expiry_window_s']} s; burst"
    burst = storm["burst"]
    latency = burst["latency_us"]
    recover = storm["time_to_recover_s"]
    recovered = f"{recover:.2f} s" if recover is not None else "not all recovered"
    p99 = f"{latency['p99'] / 1000:.1f} ms" if latency["count"] else "-"
    return (
        f"  {label:16} time to recover {recovered:>8}; "
        f"{storm['devices_recovered']}/{storm['devices']} devices; {what} {burst['requests']} "
        f"token requests, peak {burst['peak_rps']}/s, p99 {p99}, {burst['refusals']} refused"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.storms",
        description="a storm's time to recover on the embedded target, without and with --backoff",
    )
    parser.add_argument("--storm", choices=STORMS, default="expiry-storm")
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--token-ttl", type=int, default=5, help="expiry-storm token lifetime, s")
    parser.add_argument("--duration", type=int, default=15, help="each run's length, s")
    parser.add_argument("--interval", type=float, default=0.5, help="s between readings")
    parser.add_argument("--token-alg", default="ES256")
    parser.add_argument("--results", type=Path, help="folder for both runs' results")
    args = parser.parse_args(argv)
    if args.devices < 1 or args.token_ttl < 1 or args.interval <= 0:
        print("python -m benchmarks.storms: --devices, --token-ttl and --interval must be positive",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        check_storm(args.storm, "on-expiry", args.duration, args.token_ttl, 0, embedded=True)
    except ConfigError as e:
        print(f"python -m benchmarks.storms: {e}", file=sys.stderr)
        return 2
    folder = args.results or Path(tempfile.mkdtemp(prefix="fleetbench-storms-"))
    results = compare_backoff(
        args.storm,
        args.devices,
        args.token_ttl,
        args.duration,
        args.interval,
        args.token_alg,
        folder,
    )
    lifetime = f"tokens of {args.token_ttl} s, " if args.storm == "expiry-storm" else ""
    print(
        f"{args.storm}: {args.devices} {args.token_alg} devices, {lifetime}"
        f"a reading every {args.interval:g} s, {args.duration} s runs (results in {folder})"
    )
    for label, storms in results.items():
        print(_figures_line(label, storms))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
