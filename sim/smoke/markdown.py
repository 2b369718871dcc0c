"""The smoke's Markdown job summary (``summary.md``, and the CI job's page)."""

from __future__ import annotations

from sim.smoke.result import SmokeResult, measured_text
from sim.untrusted import markdown_cell

__all__ = ["smoke_markdown"]

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
    # Names that may have come from the API (an algorithm, an endpoint, where a worst value
    # sits) are escaped as cells; the thresholds file's own titles are the operator's.
    cell = markdown_cell
    breaches = [f"- **{cell(c.alg)}** {cell(line)}" for c in failed for line in c.breaches()]
    if breaches:
        lines += ["### Breaches", "", *breaches, ""]
    lines += [
        "| run | threshold | measured (worst) | at | result |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for check in checks:
        worst = check.worst
        lines.append(
            f"| {cell(check.alg)} | {check.threshold.title} | {measured_text(check)} | "
            f"{cell(worst.where if worst else check.note)} | "
            f"{'PASS' if check.passed else '**FAIL**'} |"
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
            f"| {cell(alg)} | {phases['measured']['requests']:,} | "
            f"{phases['setup']['requests']:,} | "
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
            f"| {cell(alg)} | {cell(row['scenario'])} | {cell(row['endpoint'])} | "
            f"{row['count']:,} | "
            f"{latency['p50']:,} | {latency['p99']:,} | {latency['max']:,} |"
        )
    lines += ["", f"Results: `{result.folder}` (report.html, summary.json, junit.xml)", ""]
    return "\n".join(lines)
