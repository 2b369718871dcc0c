"""Signing algorithms side by side, in process (micro) and end to end (``fleetbench compare``).

Runs are interleaved (A B A B ...) and repeated, so drift on a noisy machine does not favour one
algorithm; each figure is the median over the repeats, with its spread (min and max).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.errors import CompareError, Interrupted
from sim.machine import cpu_model, versions
from sim.scenarios import Endpoint
from target.algorithms import ALG_NAMES, ALGORITHMS
from target.costs import micro_benchmark

__all__ = [
    "MICRO_FIGURES",
    "CompareConfig",
    "CompareError",
    "EndToEndLoad",
    "capacity_lines",
    "parse_algs",
    "run_compare",
    "table_rows",
    "write_compare_outputs",
]

SCHEMA = "fleetbench.compare/1"
MICRO_FIGURES = ("sign_us", "verify_us", "raw_verify_us", "cached_verify_us", "token_bytes")
E2E_FIGURES = ("e2e_rps", "e2e_p50_us", "e2e_p99_us", "server_verify_us", "generator_cpu_percent")
CAPACITY_RATES_PER_S = (10_000, 100_000)


@dataclass(frozen=True)
class EndToEndLoad:
    """The verification load every algorithm's end-to-end round runs: a fresh embedded target
    signing with the algorithm, ``devices`` secret devices, one ``fleetbench run`` each round."""

    devices: int = 50
    duration_s: float = 8.0
    interval_s: float = 0.0
    endpoint: Endpoint = "data"
    pin: bool = True  # the target and Locust on cores of their own


@dataclass(frozen=True)
class CompareConfig:
    """The algorithms (the first is the baseline), the rounds, and the end-to-end load if any
    (None: in-process figures only), whose runs keep their results under ``results``."""

    algs: list[str]
    repeat: int = 3
    micro_budget_s: float = 0.25
    end_to_end: EndToEndLoad | None = None
    results: Path = Path("results")
    log: Callable[[str], None] = field(default=lambda message: None, repr=False)

    def parameters(self) -> dict[str, Any]:
        """What was measured how, for compare.json and its report."""
        found: dict[str, Any] = {"micro_budget_s": self.micro_budget_s}
        if self.end_to_end is not None:
            load = self.end_to_end
            found.update(
                devices=load.devices,
                duration_s=load.duration_s,
                interval_s=load.interval_s,
                endpoint=load.endpoint,
            )
        return found


def parse_algs(text: str) -> list[str]:
    """``HS256,ES256`` -> a checked list; unknown or unavailable names are a one-line error."""
    algs = [name.strip() for name in text.split(",") if name.strip()]
    if not algs:
        raise CompareError(f"--algs is empty; choose from {', '.join(ALG_NAMES)}")
    for name in algs:
        if name not in ALGORITHMS:
            raise CompareError(f"unknown algorithm {name!r}; choose from {', '.join(ALG_NAMES)}")
        try:
            ALGORITHMS[name].generate()
        except Exception as e:  # cryptography raises UnsupportedAlgorithm and others
            raise CompareError(
                f"{name} is not available with the installed cryptography ({type(e).__name__});"
                f" choose from {', '.join(ALG_NAMES)}"
            ) from e
    if len(set(algs)) != len(algs):
        raise CompareError("--algs names an algorithm twice")
    return algs


def _end_to_end(config: CompareConfig, load: EndToEndLoad) -> Callable[[str], dict[str, Any]]:
    """One ``fleetbench run`` per call: a fresh embedded target signing with ``alg``, the same
    verification load every time, each run's results in its own folder under ``config.results``."""
    from sim.runner import RunConfig, run_benchmark

    rounds: dict[str, int] = {}

    def run(alg: str) -> dict[str, Any]:
        rounds[alg] = rounds.get(alg, 0) + 1
        summary = run_benchmark(
            RunConfig(
                devices=load.devices,
                alg="secret",  # the device credential only matters for issuance
                token_alg=alg,
                scenarios={"verification": 1},
                endpoint=load.endpoint,
                interval_s=load.interval_s,
                duration_s=load.duration_s,
                results=config.results / f"e2e-{alg}-{rounds[alg]}",
                pin=load.pin,
                log=config.log,
            )
        )
        if summary["run"]["interrupted"]:
            raise Interrupted("interrupted")
        if not summary["verdict"]["passed"]:
            raise CompareError(
                f"the {alg} run failed its own verdict: {'; '.join(summary['verdict']['failures'])}"
            )
        rows = [r for r in summary["requests"] if r["scenario"] == "verification"]
        if not rows:
            raise CompareError(f"the {alg} run made no verification requests")
        row = max(rows, key=lambda r: r["count"])
        verify = summary["server"].get("verify", {}).get(alg, {})
        processes = summary["generator"].get("processes", [])
        return {
            "e2e_rps": row["rps"],
            "e2e_p50_us": row["latency_us"]["p50"],
            "e2e_p99_us": row["latency_us"]["p99"],
            "server_verify_us": verify.get("mean_us", 0.0),
            "generator_cpu_percent": max((p["cpu_percent_mean"] for p in processes), default=0.0),
            "generator_saturated": bool(summary["generator"].get("saturated")),
            "e2e_endpoint": row["endpoint"],
        }

    return run


def _summarise(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run_compare(config: CompareConfig) -> dict[str, Any]:
    """Measure every algorithm ``repeat`` times, interleaved; the compare.json document."""
    samples: dict[str, dict[str, list[float]]] = {alg: {} for alg in config.algs}
    saturated: dict[str, bool] = dict.fromkeys(config.algs, False)
    started = time.time()
    end_to_end = None if config.end_to_end is None else _end_to_end(config, config.end_to_end)
    for round_index in range(config.repeat):
        for alg in config.algs:
            config.log(f"round {round_index + 1}/{config.repeat}: {alg} micro")
            figures: dict[str, Any] = micro_benchmark(alg, config.micro_budget_s)
            if end_to_end is not None:
                config.log(f"round {round_index + 1}/{config.repeat}: {alg} end to end")
                figures.update(end_to_end(alg))
            saturated[alg] |= bool(figures.pop("generator_saturated", False))
            for name, value in figures.items():
                if isinstance(value, int | float):
                    samples[alg].setdefault(name, []).append(float(value))
    baseline = config.algs[0]
    medians = {
        alg: {name: statistics.median(values) for name, values in figures.items()}
        for alg, figures in samples.items()
    }
    algorithms: dict[str, Any] = {}
    for alg, figures in samples.items():
        entry: dict[str, Any] = dict(medians[alg])
        entry["token_bytes"] = int(entry["token_bytes"])
        if config.end_to_end is not None:
            entry["generator_saturated"] = saturated[alg]
        entry["spread"] = {name: _summarise(values) for name, values in figures.items()}
        entry["capacity_cores"] = {
            f"{rate}_verifies_per_s": rate * entry["verify_us"] / 1e6
            for rate in CAPACITY_RATES_PER_S
        }
        entry["ratio_to_baseline"] = {
            name: value / medians[baseline][name]
            for name, value in medians[alg].items()
            if medians[baseline].get(name)
        }
        algorithms[alg] = entry
    # The same machine and versions facts a run's summary.json carries, for the report's header.
    return {
        "schema": SCHEMA,
        "machine": {"model": cpu_model(), "count": os.cpu_count()},
        "versions": versions(),
        "parameters": config.parameters(),
        "baseline": baseline,
        "repeat": config.repeat,
        "interleaved": True,
        "end_to_end": config.end_to_end is not None,
        "started_at": started,
        "duration_s": time.time() - started,
        "algorithms": algorithms,
    }


def table_rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    """Rows for the side-by-side table: figure, then each algorithm's median and ratio."""
    algs = list(result["algorithms"])
    baseline = result["baseline"]
    names = list(MICRO_FIGURES) + (list(E2E_FIGURES) if result["end_to_end"] else [])
    rows = []
    for name in names:
        cells = [name]
        for alg in algs:
            entry = result["algorithms"][alg]
            if name not in entry:
                cells.append("-")
                continue
            value = entry[name]
            spread = entry["spread"].get(name)
            text = f"{value:,.1f}" if name != "token_bytes" else f"{int(value)}"
            if spread and result["repeat"] > 1 and name != "token_bytes":
                text += f" ({spread['min']:,.1f}-{spread['max']:,.1f})"
            ratio = entry["ratio_to_baseline"].get(name)
            if alg != baseline and ratio:
                text += f" {ratio:.2f}x"
            cells.append(text)
        rows.append(tuple(cells))
    return rows


def capacity_lines(result: dict[str, Any]) -> list[str]:
    baseline = result["baseline"]
    base = result["algorithms"][baseline]
    lines = []
    for alg, entry in result["algorithms"].items():
        cores = entry["capacity_cores"]
        line = (
            f"{alg}: verify {entry['verify_us']:.1f} µs -> "
            f"{cores['10000_verifies_per_s']:.2f} cores for 10,000 tokens/s, "
            f"{cores['100000_verifies_per_s']:.1f} cores for 100,000 tokens/s"
        )
        if alg != baseline:
            line += f"; verify costs {entry['verify_us'] / base['verify_us']:.1f}x {baseline}"
        lines.append(line)
    return lines


def write_compare_outputs(result: dict[str, Any], folder: Path) -> dict[str, Path]:
    """compare.json and report.html (charts with spread, the table, capacity) in ``folder``."""
    from sim.report import write_compare_report

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "compare.json", "html": folder / "report.html"}
    paths["json"].write_text(json.dumps(result, indent=2) + "\n")
    write_compare_report(result, paths["html"], table_rows(result), capacity_lines(result))
    return paths
