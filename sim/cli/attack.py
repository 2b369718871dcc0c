"""``fleetbench attack``: the bad-token corpus against a target, one verdict line per case."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from sim.attack import (
    DEFAULT_ALGS,
    AttackConfig,
    AttackReport,
    CaseResult,
    attack_json,
    run_attack,
    write_attack_outputs,
)
from sim.cli.options import (
    add_embedded_algs,
    add_profile_option,
    add_target_options,
    embedded_algs,
    port_number,
)
from sim.exits import verdict_exit
from sim.profiles import load_profile
from sim.profiles.mqtt_settings import TRANSPORTS
from sim.run.results import results_folder

__all__ = ["add_parser", "command", "findings_lines", "summary_line", "verdict_line"]

FINDINGS_SHOWN = 8  # names per severity line; attack.json and report.html list them all
_MARKS: dict[str, str] = {
    "refused": "ok  ",
    "mismatch": "WARN",
    "skipped": "skip",
    "finding": "NOTE",
    "valid": "ok  ",
}


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "attack", help="the bad-token corpus against a target, one verdict each"
    )
    p.set_defaults(handler=command)
    add_target_options(p)
    add_profile_option(p)
    add_embedded_algs(p, DEFAULT_ALGS, "")
    p.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="http",
        help="http: bearer tokens on the API; mqtt: tokens as CONNECT credentials, and topic ACLs",
    )
    p.add_argument(
        "--mqtt-host", metavar="HOST", help="the MQTT broker's host (default: --target's host)"
    )
    p.add_argument(
        "--mqtt-port",
        type=port_number,
        metavar="PORT",
        help="the MQTT broker's port (default: profile's)",
    )
    p.add_argument("--json", action="store_true", help="print attack.json to stdout")
    p.add_argument("--strict", action="store_true", help="a refusal with another answer fails too")
    p.add_argument("--results", type=Path, help="results folder (default results/attack-<time>)")
    p.add_argument("--quiet", action="store_true", help="no verdict lines, only the summary")


def verdict_line(result: CaseResult) -> str:
    mark = _MARKS.get(result.verdict, "FAIL")
    graded = f", {result.severity}" if result.severity else ""
    # Over MQTT a failure names the run's outcome too (accepted_invalid, refused_valid).
    outcome = f" = {result.outcome}" if result.outcome and result.verdict not in _MARKS else ""
    tag = f"  [{result.verdict}{graded}{outcome}]"
    line = (
        f"{mark} {result.name:<28} expected {result.expected:<28} got {result.got}"
        f"{tag if result.verdict not in _MARKS or graded else ''}"
    )
    return f"{line}\n     {result.impact}" if result.impact else line


def summary_line(report: AttackReport, strict: bool) -> str:
    counts = report.counts()
    refused = counts["refused"] + counts["mismatch"]
    passed = counts["skipped"] + counts["finding"] + counts["valid"]
    other = len(report.results) - refused - passed - counts["accepted"]
    skipped = f", {counts['skipped']} skipped" if counts["skipped"] else ""
    profile = "" if report.profile == "fleetbench" else f" (profile {report.profile})"
    findings = f", {counts['finding']} findings" if counts["finding"] else ""
    where = f"{report.broker} (tokens from {report.target})" if report.broker else report.target
    return (
        f"{'FAIL' if report.failures(strict) else 'PASS'} {report.token_alg} {where}"
        f"{profile}: "
        f"{len(report.results)} cases, {refused} refused ({counts['mismatch']} with another "
        f"answer than expected){skipped}, {counts['accepted']} accepted{findings}, {other} other "
        f"failures; key URL fetches {report.listener_requests}; still serving valid devices: "
        f"{'yes' if report.still_serving else 'NO'} ({report.elapsed_s:.1f} s)"
    )


def findings_lines(report: AttackReport) -> list[str]:
    """One line per severity, the worst first: how many graded acceptances, and which."""
    by_severity: dict[str, list[str]] = {}
    for result in report.findings():
        by_severity.setdefault(result.severity, []).append(f"{result.name} ({result.verdict})")
    lines = []
    for severity, names in by_severity.items():
        shown = ", ".join(names[:FINDINGS_SHOWN])
        more = f" and {len(names) - FINDINGS_SHOWN} more" if len(names) > FINDINGS_SHOWN else ""
        lines.append(f"  {severity} {len(names)}: {shown}{more}")
    return lines


def command(args: argparse.Namespace, console: Console) -> int:
    """0 every case refused, 1 any accepted (or another failure), 2 bad input (a SimError)."""
    algs = embedded_algs(args, DEFAULT_ALGS)
    text = not args.json

    def show(result: CaseResult) -> None:
        if text and (not args.quiet or result.verdict not in ("refused", "valid")):
            print(verdict_line(result), flush=True)

    def log(message: str) -> None:
        if text and not args.quiet:
            print(f"fleetbench: {message}", flush=True)

    profile = load_profile(args.profile, os.environ)
    config = AttackConfig(
        args.target, args.admin_key, algs, args.strict, on_result=show, log=log, profile=profile,
        transport=args.transport, mqtt_host=args.mqtt_host, mqtt_port=args.mqtt_port,
    )  # fmt: skip
    config.check()  # before a results folder is made
    reports = run_attack(config)
    body = attack_json(reports, args.strict)
    folder = results_folder(args.results, "attack")
    write_attack_outputs(body, folder)
    if args.json:
        json.dump(body, sys.stdout, indent=2)
        print()
    else:
        for report in reports:
            print(summary_line(report, args.strict))
            for line in findings_lines(report):
                print(line)
        print(f"fleetbench: attack.json and report.html in {folder}")
    return verdict_exit(body["passed"])
