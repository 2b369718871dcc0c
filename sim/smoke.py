"""``fleetbench smoke``: the CI profile, short mixed runs per algorithm judged by thresholds.

Each algorithm gets a fresh embedded target (or the one ``--target``) and one
:func:`sim.runner.run_benchmark` run with all four scenarios and a short token lifetime, so
issuance, verification, expiry and rejection all happen. The results folder holds, per run, the
usual ``<alg>/summary.json``, ``report.html`` and Locust files; at the top, ``summary.json``
(schema ``fleetbench.smoke/1``: the verdict, every check, and each run's summary under ``runs``),
``junit.xml`` (one test case per threshold per run), ``report.html`` (the checks and each run's
charts, linking each run's report) and ``summary.md`` (the same in Markdown, also appended to
``$GITHUB_STEP_SUMMARY`` when that is set, so it shows on the CI job's page).
"""

from __future__ import annotations

import datetime
import json
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.errors import ConfigError
from sim.report import write_smoke_report
from sim.runner import RunConfig, RunProgress, run_benchmark
from sim.scenarios import MIXED, Scenario
from sim.thresholds import Check, Thresholds, evaluate, load_thresholds, run_alg, unit
from target.algorithms import ALG_NAMES

__all__ = [
    "SMOKE_SCHEMA",
    "SmokeConfig",
    "SmokeResult",
    "add_smoke_parser",
    "run_smoke",
    "smoke_command",
    "smoke_markdown",
    "write_smoke_outputs",
]

SMOKE_SCHEMA = "fleetbench.smoke/1"
DEFAULT_ALGS = ("HS256", "ES256")
EXIT_BREACHED = 1
EXIT_INTERRUPTED = 130


@dataclass
class SmokeConfig:
    """The CI profile. About ``duration_s`` + 6 s of wall time per algorithm on two cores."""

    target: str | None = None
    admin_key: str | None = field(default=None, repr=False)
    algs: tuple[str, ...] = DEFAULT_ALGS  # embedded target only: one run per algorithm
    devices: int = 200
    duration_s: float = 8.0
    interval_s: float = 0.5
    token_ttl: int = 4  # embedded target only: short, so the expiry scenario sees expiries
    scenarios: dict[Scenario, int] = field(default_factory=lambda: dict(MIXED))
    results: Path | None = None
    pin: bool = True
    log: Callable[[str], None] = field(default=lambda message: None, repr=False)
    progress: RunProgress | None = field(default=None, repr=False)
    profile: str = "fleetbench"  # the target profile (sim/profiles), for --target

    def check(self) -> None:
        if not self.algs:
            raise ConfigError("--algs is empty")
        for alg in self.algs:
            if alg not in ALG_NAMES:
                raise ConfigError(f"unknown algorithm {alg!r}; choose from {', '.join(ALG_NAMES)}")
        if len(set(self.algs)) != len(self.algs):
            raise ConfigError("--algs names an algorithm twice")

    def _log_as(self, name: str) -> Callable[[str], None]:
        return lambda message: self.log(f"{name}: {message}")

    def runs(self, folder: Path) -> list[tuple[str, RunConfig]]:
        """(folder name, run) per run: one per algorithm, or the one ``--target``."""
        common: dict[str, Any] = {
            "devices": self.devices,
            "scenarios": self.scenarios,
            "interval_s": self.interval_s,
            "duration_s": self.duration_s,
            "pin": self.pin,
            "progress": self.progress,
            "profile": self.profile,
        }
        if self.target is not None:
            config = RunConfig(
                target=self.target,
                admin_key=self.admin_key,
                results=folder / "target",
                log=self._log_as("target"),
                **common,
            )
            return [("target", config)]
        return [
            (
                alg,
                RunConfig(
                    token_alg=alg,
                    token_ttl=self.token_ttl,
                    results=folder / alg,
                    log=self._log_as(alg),
                    **common,
                ),
            )
            for alg in self.algs
        ]


@dataclass
class SmokeResult:
    folder: Path
    thresholds: Thresholds
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # by the run's token alg
    checks: dict[str, list[Check]] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def all_checks(self) -> list[Check]:
        return [c for checks in self.checks.values() for c in checks]

    @property
    def passed(self) -> bool:
        return bool(self.runs) and all(c.passed for c in self.all_checks)

    @property
    def interrupted(self) -> bool:
        return any(s["run"]["interrupted"] for s in self.runs.values())


def run_smoke(config: SmokeConfig, thresholds: Thresholds) -> SmokeResult:
    """Run the profile, evaluate the thresholds, write the outputs; stop early if interrupted."""
    config.check()
    started = time.monotonic()
    if config.results is not None:
        folder = config.results
    else:
        folder = Path("results") / datetime.datetime.now().strftime("smoke-%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    result = SmokeResult(folder, thresholds)
    for _, run in config.runs(folder):
        summary = run_benchmark(run)
        alg = run_alg(summary)
        result.runs[alg] = summary
        result.checks[alg] = evaluate(thresholds, summary)
        if summary["run"]["interrupted"]:
            break
    result.elapsed_s = round(time.monotonic() - started, 2)
    write_smoke_outputs(result)
    return result


# -- outputs ------------------------------------------------------------------------------------


def _measured(check: Check) -> str:
    worst = check.worst
    if worst is None:
        return "-"
    value = worst.value
    shown = (
        f"{value:.4g}"
        if check.threshold.metric in ("error_ratio", "max_shortfall")
        else f"{value:.0f}"
    )
    if check.threshold.metric == "min_rps":
        shown = f"{value:.1f}"
    return f"{shown}{unit(check.threshold.metric)}"


def smoke_record(result: SmokeResult) -> dict[str, Any]:
    """The top-level ``summary.json``: verdict, checks, and each run's summary."""
    return {
        "schema": SMOKE_SCHEMA,
        "passed": result.passed,
        "interrupted": result.interrupted,
        "elapsed_s": result.elapsed_s,
        "thresholds": {
            "source": result.thresholds.source,
            "count": len(result.thresholds.thresholds),
        },
        "checks": [c.record() for c in result.all_checks],
        "failures": [
            f"{c.alg} {line}" for c in result.all_checks if not c.passed for line in c.breaches()
        ],
        "runs": result.runs,
    }


def write_junit(result: SmokeResult, path: Path) -> None:
    """JUnit XML: a suite per run, a test case per threshold, a ``<failure>`` per breached one."""
    checks = result.all_checks
    failed = sum(not c.passed for c in checks)
    root = ET.Element(
        "testsuites",
        name="fleetbench smoke",
        tests=str(len(checks)),
        failures=str(failed),
        errors="0",
        time=f"{result.elapsed_s:.3f}",
    )
    for alg, run_checks in result.checks.items():
        run = result.runs[alg]["run"]
        started = run.get("started_at")
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"fleetbench smoke {alg}",
            tests=str(len(run_checks)),
            failures=str(sum(not c.passed for c in run_checks)),
            errors="0",
            skipped="0",
            time=f"{run['elapsed_s']:.3f}",
            timestamp=datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(
                timespec="seconds"
            )
            if started
            else "",
        )
        properties = ET.SubElement(suite, "properties")
        for name, value in (
            ("thresholds", result.thresholds.source),
            ("target", str(run["target"]["url"])),
            ("results", str(run.get("results", ""))),
        ):
            ET.SubElement(properties, "property", name=name, value=value)
        for check in run_checks:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"fleetbench.smoke.{alg}",
                name=check.threshold.title,
                time="0",
            )
            where = check.threshold.selector.describe() if check.threshold.selector else "whole run"
            detail = [f"{m.where}: {m.value:g}" for m in check.measured]
            if check.passed:
                worst = check.worst
                ET.SubElement(case, "system-out").text = (
                    f"{where}; worst {_measured(check)} at {worst.where if worst else '-'}; "
                    f"{len(check.measured)} measured"
                )
                continue
            breaches = check.breaches()
            message = breaches[0] + (
                f" (and {len(breaches) - 1} more)" if len(breaches) > 1 else ""
            )
            failure = ET.SubElement(case, "failure", message=message, type="ThresholdBreached")
            line = f" (line {check.threshold.line})" if check.threshold.line else ""
            failure.text = "\n".join(
                [*breaches, f"selects {where}; from {result.thresholds.source}{line}", *detail]
            )
    tree = ET.ElementTree(root)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)


WORST_ROWS = 5


def smoke_markdown(result: SmokeResult) -> str:
    """The job summary: verdict, every threshold with its measured value, each run, worst rows."""
    checks = result.all_checks
    failed = [c for c in checks if not c.passed]
    verdict = "PASS" if result.passed else "FAIL"
    lines = [
        f"## fleetbench smoke: {verdict}",
        "",
        (
            f"{len(checks)} thresholds met in {len(result.runs)} runs"
            if result.passed
            else f"{len(failed)} of {len(checks)} thresholds breached"
        )
        + f", {result.elapsed_s:.0f} s; thresholds from `{result.thresholds.source}`."
        + (" **Interrupted before the end.**" if result.interrupted else ""),
        "",
    ]
    breaches = [f"- **{c.alg}** {line}" for c in failed for line in c.breaches()]
    if breaches:
        lines += ["### Breaches", "", *breaches, ""]
    lines += [
        "| run | threshold | measured (worst) | at | result |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for check in checks:
        worst = check.worst
        lines.append(
            f"| {check.alg} | {check.threshold.title} | {_measured(check)} | "
            f"{worst.where if worst else check.note} | {'PASS' if check.passed else '**FAIL**'} |"
        )
    lines += [
        "",
        "| run | requests measured | setup | req/s | ok | refused valid | 5xx | transport "
        "| generator |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    rows = []
    for alg, summary in result.runs.items():
        phases = summary["phases"]
        outcomes = phases["measured"]["outcomes"]
        generator = "**saturated**" if summary["generator"].get("saturated") else "not saturated"
        lines.append(
            f"| {alg} | {phases['measured']['requests']:,} | {phases['setup']['requests']:,} | "
            f"{phases['measured']['rps']:,.1f} | {outcomes.get('ok', 0):,} | "
            f"{outcomes.get('refused_valid', 0):,} | {outcomes.get('server_error', 0):,} | "
            f"{outcomes.get('transport_error', 0):,} | {generator} |"
        )
        rows += [
            (alg, row)
            for row in summary["requests"]
            if row["latency_us"].get("count") and row["scenario"] != "setup"
        ]
    worst_rows = sorted(rows, key=lambda pair: pair[1]["latency_us"]["p99"], reverse=True)
    worst_rows = worst_rows[:WORST_ROWS]
    lines += [
        "",
        f"Worst {len(worst_rows)} rows of the measured runs by p99 latency (µs):",
        "",
        "| run | scenario | endpoint | requests | p50 | p99 | max |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for alg, row in worst_rows:
        latency = row["latency_us"]
        lines.append(
            f"| {alg} | {row['scenario']} | {row['endpoint']} | {row['count']:,} | "
            f"{latency['p50']:,} | {latency['p99']:,} | {latency['max']:,} |"
        )
    lines += ["", f"Results: `{result.folder}` (report.html, summary.json, junit.xml)", ""]
    return "\n".join(lines)


def write_smoke_outputs(result: SmokeResult) -> None:
    folder = result.folder
    (folder / "summary.json").write_text(json.dumps(smoke_record(result), indent=2) + "\n")
    write_junit(result, folder / "junit.xml")
    write_smoke_report(smoke_record(result), folder / "report.html")
    markdown = smoke_markdown(result)
    (folder / "summary.md").write_text(markdown)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:  # GitHub Actions shows this file on the job's page
        with open(step_summary, "a", encoding="utf-8") as out:
            out.write(markdown + "\n")


def print_smoke(result: SmokeResult, console: Any) -> None:
    from rich.table import Table

    table = Table(title="smoke thresholds", title_justify="left")
    for column in ("alg", "threshold", "rule"):
        table.add_column(column)
    table.add_column("measured (worst)", justify="right")
    table.add_column("at")
    table.add_column("result")
    for check in result.all_checks:
        worst = check.worst
        table.add_row(
            check.alg,
            check.threshold.name,
            check.threshold.rule,
            _measured(check),
            worst.where if worst else check.note,
            "[green]PASS[/green]" if check.passed else "[red]FAIL[/red]",
        )
    console.print(table)
    for alg, summary in result.runs.items():
        totals, outcomes = summary["totals"], summary["outcomes"]
        console.print(
            f"{alg}: {totals['requests']} requests from {totals['devices']} devices in "
            f"{summary['run']['elapsed_s']:.1f} s, {totals['rps']:.1f} req/s; "
            + ", ".join(f"{o} {n}" for o, n in outcomes.items() if n),
            highlight=False,
            markup=False,
        )
    for alg, checks in result.checks.items():
        for check in checks:
            for line in [] if check.passed else check.breaches():
                console.print(f"[red]BREACH[/red] {alg} {line}", highlight=False)
    checks = result.all_checks
    failed = sum(not c.passed for c in checks)
    if result.passed:
        console.print(
            f"[green]PASS[/green] {len(checks)} thresholds met in {len(result.runs)} runs, "
            f"{result.elapsed_s:.0f} s",
            highlight=False,
        )
    else:
        console.print(
            f"[red]FAIL[/red] {failed} of {len(checks)} thresholds breached", highlight=False
        )
    console.print(f"results: {result.folder}", highlight=False, markup=False, soft_wrap=True)


# -- command line -------------------------------------------------------------------------------


def add_smoke_parser(
    commands: Any, positive_int: Callable[[str], int], seconds: Callable[[str], float]
) -> None:
    p = commands.add_parser(
        "smoke", help="CI profile: short mixed runs per algorithm, judged by thresholds"
    )
    p.add_argument("--target", metavar="URL", help="a running target (default: start our own)")
    p.add_argument("--admin-key", help="the target's admin key (prefer FLEETBENCH_ADMIN_KEY)")
    p.add_argument(
        "--algs",
        help=f"embedded target's algorithms, one run each (default {','.join(DEFAULT_ALGS)})",
    )
    p.add_argument("--thresholds", type=Path, help="thresholds TOML (default: the shipped ones)")
    p.add_argument("--devices", type=positive_int, default=200, help="fleet size (default 200)")
    p.add_argument("--duration", type=seconds, default=8.0, help="run time per run (default 8 s)")
    p.add_argument("--results", type=Path, help="results folder (default results/smoke-<time>)")
    p.add_argument("--no-pin", action="store_true", help="do not pin target and Locust to cores")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument(
        "--profile", default="fleetbench", metavar="NAME|FILE", help="target profile (--target)"
    )


def smoke_command(args: Any, console: Any) -> int:
    """``fleetbench smoke``: 0 every threshold met, 1 one breached, (2 errors raise SimError)."""
    admin_key = args.admin_key or os.environ.get("FLEETBENCH_ADMIN_KEY")
    if args.target is not None:
        if args.algs is not None:
            raise ConfigError(
                "--algs picks the embedded target's algorithms; drop it with --target"
            )
        if not admin_key and args.profile == "fleetbench":  # other profiles: RunConfig.check
            raise ConfigError("--target needs --admin-key (or FLEETBENCH_ADMIN_KEY)")
    thresholds = load_thresholds(args.thresholds)  # a bad file fails before anything starts

    def log(message: str) -> None:
        if not args.quiet:
            console.print(f"[dim]fleetbench: {message}[/dim]", highlight=False)

    algs = DEFAULT_ALGS
    if args.algs is not None:
        algs = tuple(a.strip() for a in args.algs.split(",") if a.strip())
    config = SmokeConfig(
        target=args.target,
        admin_key=admin_key,
        algs=algs,
        devices=args.devices,
        duration_s=args.duration,
        results=args.results,
        pin=not args.no_pin,
        log=log,
        profile=args.profile,
    )
    from sim.progress import ConsoleProgress

    with ConsoleProgress(console) as progress:
        config.progress = None if args.quiet else progress
        result = run_smoke(config, thresholds)
    print_smoke(result, console)
    if result.interrupted:
        return EXIT_INTERRUPTED
    return 0 if result.passed else EXIT_BREACHED
