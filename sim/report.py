"""``report.html``: one self-contained page of charts (matplotlib PNGs inlined as base64)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

__all__ = ["write_report"]

OUTCOME_COLOURS = {
    "ok": "#2a9d8f",
    "rejected_as_expected": "#8ab17d",
    "refused_valid": "#e9c46a",
    "accepted_invalid": "#d62828",
    "server_error": "#f4a261",
    "transport_error": "#6c757d",
}


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _throughput_chart(summary: dict[str, Any]) -> str | None:
    import matplotlib.pyplot as plt

    timeline = summary["timeline"]
    if not timeline:
        return None
    start = timeline[0]["t"]
    seconds = [row["t"] - start for row in timeline]
    figure, axes = plt.subplots(figsize=(9, 3.5))
    bottom = [0] * len(timeline)
    for outcome, colour in OUTCOME_COLOURS.items():
        counts = [row.get(outcome, 0) for row in timeline]
        if any(counts):
            axes.bar(seconds, counts, bottom=bottom, color=colour, label=outcome, width=1.0)
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    axes.set_xlabel("seconds since first request")
    axes.set_ylabel("requests per second")
    axes.set_title("Throughput over time, by outcome")
    axes.legend(loc="upper left", fontsize=8)
    axes.grid(axis="y", alpha=0.3)
    png = _png(figure)
    plt.close(figure)
    return png


def _latency_chart(summary: dict[str, Any]) -> str | None:
    import matplotlib.pyplot as plt

    bars: list[tuple[str, dict[str, float]]] = []
    for row in summary["requests"]:
        for outcome, latency in row["latency_by_outcome_us"].items():
            if latency.get("count"):
                bars.append((f"{row['scenario']} {row['endpoint']}\n{outcome}", latency))
    if not bars:
        return None
    marks = (("p50", "#264653"), ("p90", "#2a9d8f"), ("p99", "#e9c46a"), ("p99_9", "#e76f51"))
    figure, axes = plt.subplots(figsize=(9, 0.45 * len(bars) + 1.2))
    positions = range(len(bars))
    for mark, colour in reversed(marks):
        axes.barh(
            positions,
            [b[1][mark] for b in bars],
            color=colour,
            label=mark.replace("_", "."),
            height=0.7,
        )
    axes.set_yticks(list(positions), [b[0] for b in bars], fontsize=7)
    axes.set_xscale("log")
    axes.set_xlabel("latency, µs (log scale)")
    axes.set_title("Latency percentiles per endpoint and outcome (client-side, exact)")
    axes.legend(loc="lower right", fontsize=8)
    axes.invert_yaxis()
    axes.grid(axis="x", alpha=0.3, which="both")
    png = _png(figure)
    plt.close(figure)
    return png


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    charts = [c for c in (_throughput_chart(summary), _latency_chart(summary)) if c]
    run, totals = summary["run"], summary["totals"]
    verdict = (
        "PASS"
        if summary["verdict"]["passed"]
        else "FAIL: " + "; ".join(summary["verdict"]["failures"])
    )
    rows = [
        [
            r["scenario"],
            r["endpoint"],
            r["alg"],
            r["count"],
            r["rps"],
            *(r["latency_us"].get(p, "-") for p in ("p50", "p90", "p99", "p99_9", "max")),
        ]
        for r in summary["requests"]
    ]
    server = summary["server"]
    verify_rows = [[alg, v["count"], v["mean_us"]] for alg, v in server.get("verify", {}).items()]
    generator_rows = [
        [
            p["role"],
            p["pid"],
            p["cpu_percent_mean"],
            p["cpu_percent_max"],
            p["peak_rss_bytes"] // 2**20,
        ]
        for p in summary["generator"].get("processes", [])
    ]
    telemetry = summary["telemetry"]
    parts = [
        "<!doctype html><meta charset='utf-8'><title>fleetbench run</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}th{background:#f4f4f4}img{max-width:100%}</style>",
        "<h1>fleetbench run</h1>",
        f"<p><b>{html.escape(verdict)}</b> — {totals['requests']} requests from "
        f"{totals['devices']} devices in {run['elapsed_s']} s ({totals['rps']} req/s); target "
        f"{html.escape(str(run['target']['url']))}, token alg "
        f"{html.escape(str(run['target']['token_alg']))}"
        + (" — <b>interrupted</b>" if run["interrupted"] else "")
        + "</p>",
        *(f"<img alt='chart' src='data:image/png;base64,{c}'>" for c in charts),
        "<h2>Requests (latency in µs)</h2>",
        _table(
            ["scenario", "endpoint", "alg", "count", "rps", "p50", "p90", "p99", "p99.9", "max"],
            rows,
        ),
        "<h2>Outcomes</h2>",
        _table(list(summary["outcomes"]), [list(summary["outcomes"].values())]),
        "<h2>Server-side verify time</h2>",
        _table(["alg", "verifications", "mean µs"], verify_rows)
        if verify_rows
        else "<p>not available</p>",
        "<h2>Telemetry</h2>",
        _table(list(telemetry), [list(telemetry.values())]),
        "<h2>Load generator</h2>",
        _table(["role", "pid", "CPU % mean", "CPU % max", "peak RSS MiB"], generator_rows),
        "<p>Also in this folder: summary.json, Locust's locust.html and locust_*.csv.</p>",
    ]
    path.write_text("\n".join(parts))
