"""The smoke's JUnit XML: CI shows each threshold of each run as a test case."""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
from pathlib import Path

from sim.smoke.result import SmokeResult, measured_text
from sim.untrusted import shown

__all__ = ["write_junit"]


def _x(text: object) -> str:
    """Text XML 1.0 can hold: a name from the API may carry control characters (``\x01``)."""
    return shown(text, newlines=True)


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
            name=_x(f"fleetbench smoke {alg}"),
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
            ET.SubElement(properties, "property", name=name, value=_x(value))
        for check in run_checks:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=_x(f"fleetbench.smoke.{alg}"),
                name=_x(check.threshold.title),
                time="0",
            )
            where = check.threshold.selector.describe() if check.threshold.selector else "whole run"
            detail = [f"{m.where}: {m.value:g}" for m in check.measured]
            if check.passed:
                worst = check.worst
                ET.SubElement(case, "system-out").text = _x(
                    f"{where}; worst {measured_text(check)} at {worst.where if worst else '-'}; "
                    f"{len(check.measured)} measured"
                )
                continue
            breaches = check.breaches()
            message = breaches[0] + (
                f" (and {len(breaches) - 1} more)" if len(breaches) > 1 else ""
            )
            failure = ET.SubElement(case, "failure", message=_x(message), type="ThresholdBreached")
            line = f" (line {check.threshold.line})" if check.threshold.line else ""
            failure.text = _x(
                "\n".join(
                    [*breaches, f"selects {where}; from {result.thresholds.source}{line}", *detail]
                )
            )
    tree = ET.ElementTree(root)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
