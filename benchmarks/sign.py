"""``python -m benchmarks.sign``: what one verification costs, next to its ceiling and the naive
way.

The figures and how they are measured are described in ``target/costs.py``; this command measures
the chosen algorithms, prints them as a table (or JSON) and checks them against the goals.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from target.costs import micro_benchmark
from target.jose.algorithms import ALG_NAMES, algorithm_list

__all__ = ["GOALS", "main"]

# (figure, baseline, largest allowed ratio) as the issue states them.
GOALS = (
    ("ES256", "verify_us", "ES256", "raw_verify_us", 1.5),
    ("HS256", "verify_us", "HS256", "naive_verify_us", 0.7),
    ("ES256", "cached_verify_us", "ES256", "raw_verify_us", 0.1),
)


def _print_table(results: dict[str, dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="µs per call (best of 5), measured in one run")
    for column in (
        "alg",
        "verify",
        "raw verify",
        "naive jwt.decode",
        "cached verify",
        "sign",
        "bytes",
    ):
        table.add_column(column, justify="right")
    for alg, r in results.items():
        table.add_row(
            alg,
            *(
                f"{r[k]:.1f}"
                for k in (
                    "verify_us",
                    "raw_verify_us",
                    "naive_verify_us",
                    "cached_verify_us",
                    "sign_us",
                )
            ),
            str(r["token_bytes"]),
        )
    console = Console()
    console.print(table)
    for alg, figure, base_alg, base, limit in GOALS:
        if alg in results and base_alg in results:
            ratio = results[alg][figure] / results[base_alg][base]
            verdict = "meets" if ratio <= limit else "MISSES"
            console.print(
                f"{alg} {figure} = {ratio:.2f} x {base_alg} {base} ({verdict} goal <= {limit}x)"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sign", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--algs", default=",".join(ALG_NAMES), help="comma-separated algorithms")
    parser.add_argument("--budget", type=float, default=0.5, help="seconds per figure / 5")
    parser.add_argument("--json", action="store_true", help="print JSON to stdout")
    args = parser.parse_args(argv)
    try:
        algs = algorithm_list(args.algs)
    except ValueError as e:
        sys.exit(f"benchmarks.sign: error: {e}")
    results = {alg: micro_benchmark(alg, args.budget) for alg in algs}
    if args.json:
        print(json.dumps({"algorithms": results}, indent=2))
    else:
        _print_table(results)


if __name__ == "__main__":
    main()
