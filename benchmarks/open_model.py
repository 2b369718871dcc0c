"""``python -m benchmarks.open_model``: the open model at rates the embedded target holds and
cannot hold, corrected latency beside the service time (uncorrected) one.

Runs ``fleetbench run --rate R`` against the embedded target (its own core; Locust on the other)
at each rate and prints, per rate: asked and sent req/s, the shortfall, p50 and p99 corrected
(from each request's intended send time) and service time (from the actual send), the send lag,
both sides' CPU and the limit the run names. Below the target's capacity the two latencies agree;
above it the corrected one grows with the queue the fleet is held in, while the service time
stays near what one request costs: the difference is what a closed-loop benchmark hides
(coordinated omission). A figure is only as quiet as the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from sim.fleet.model import CREDENTIAL_KINDS, CredentialKind
from sim.run.config import RunConfig
from sim.run.runner import run_benchmark
from sim.shape.scenarios import ENDPOINTS, Endpoint

__all__ = ["main", "measure"]


def measure(
    rate_rps: float,
    *,
    devices: int,
    duration_s: float,
    alg: CredentialKind,
    token_alg: str,
    endpoint: Endpoint,
) -> dict[str, Any]:
    """One open-model run at ``rate_rps``; the figures that compare the two latencies."""
    results = Path(tempfile.mkdtemp(prefix=f"fleetbench-open-{rate_rps:g}-"))
    summary = run_benchmark(
        RunConfig(
            devices=devices,
            alg=alg,
            token_alg=token_alg,
            endpoint=endpoint,
            rate_rps=rate_rps,
            duration_s=duration_s,
            results=results,
        )
    )
    account, load = summary["open_model"], summary["load"]
    corrected, service = account["corrected_latency_us"], account["service_latency_us"]
    return {
        "rate_rps": rate_rps,
        "sent_rps": account["sent_rps"],
        "shortfall": account["shortfall"],
        "corrected_p50_us": corrected.get("p50"),
        "corrected_p99_us": corrected.get("p99"),
        "service_p50_us": service.get("p50"),
        "service_p99_us": service.get("p99"),
        "send_lag_p99_us": account["send_lag_us"].get("p99"),
        "generator_lag_p99_us": account["generator_lag_us"].get("p99"),
        "target_cpu_percent": load["target_cpu_percent"],
        "generator_cpu_percent": load["generator_cpu_percent"],
        "limit": account["limit"],
        "results": str(results),
    }


def _rates(text: str) -> list[float]:
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a list of rates: {text!r}") from e
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("rates must be above 0")
    return rates


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value / 1000:,.1f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.open_model", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--rates",
        type=_rates,
        default=[200.0, 3000.0],
        help="fleet-wide req/s, comma-separated (default 200,3000)",
    )
    parser.add_argument("--devices", type=int, default=200, help="fleet size (default 200)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per run")
    parser.add_argument("--alg", choices=CREDENTIAL_KINDS, default="secret")
    parser.add_argument("--token-alg", default="ES256", help="the embedded target's algorithm")
    parser.add_argument("--endpoint", choices=ENDPOINTS, default="data")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.devices < 1 or args.duration < 1:
        parser.error("--devices and --duration must be at least 1")
    rows = [
        measure(
            rate,
            devices=args.devices,
            duration_s=float(int(args.duration)),
            alg=args.alg,
            token_alg=args.token_alg,
            endpoint=args.endpoint,
        )
        for rate in args.rates
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'asked':>7} {'sent':>7} {'short':>6} | {'corrected ms':>17} | {'service ms':>15} | "
        f"{'lag p99':>8} {'gen lag':>8} | {'target':>6} {'gen':>4} | limit"
    )
    print(
        f"{'req/s':>7} {'req/s':>7} {'%':>6} | {'p50':>8} {'p99':>8} | {'p50':>7} {'p99':>7} | "
        f"{'ms':>8} {'p99 ms':>8} | {'CPU %':>6} {'%':>4} |"
    )
    for row in rows:
        print(
            f"{row['rate_rps']:>7,.0f} {row['sent_rps']:>7,.0f} {row['shortfall'] * 100:>6.1f} | "
            f"{_ms(row['corrected_p50_us']):>8} {_ms(row['corrected_p99_us']):>8} | "
            f"{_ms(row['service_p50_us']):>7} {_ms(row['service_p99_us']):>7} | "
            f"{_ms(row['send_lag_p99_us']):>8} {_ms(row['generator_lag_p99_us']):>8} | "
            f"{_percent(row['target_cpu_percent']):>6} {_percent(row['generator_cpu_percent']):>4} "
            f"| {row['limit'] or '-'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
