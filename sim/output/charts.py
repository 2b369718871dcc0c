"""Plotly figures (plain JSON: ``data`` and ``layout``) for the HTML reports.

Each builder takes a result document (``summary.json``, ``compare.json``, ``attack.json``) and
returns :class:`Chart` entries; the templates draw them and print the same figures as tables.
Lengths are linear wherever a bar is drawn, so a bar twice as long is twice the figure; the log
axes are the latency-over-time lines and the HDR percentile axis, where a log scale is the point.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Literal, ParamSpec, TypedDict

from sim.artefacts.attack_file import AttackFile, AttackRun
from sim.artefacts.capacity_file import CapacityFile
from sim.artefacts.compare_file import CompareFile, figure_of
from sim.artefacts.summary_file import Summary, counts_of
from sim.untrusted import chart_text

__all__ = [
    "OUTCOME_COLOURS",
    "Chart",
    "attack_charts",
    "capacity_charts",
    "compare_charts",
    "family_counts",
    "percentile_label",
    "run_charts",
    "smoke_run_charts",
]

OUTCOME_COLOURS = {
    "ok": "#2a9d8f",
    "rejected_as_expected": "#8ab17d",
    "refused_valid": "#e9c46a",
    "accepted_invalid": "#d62828",
    "server_error": "#f4a261",
    "transport_error": "#6c757d",
}
SETUP_COLOUR = "#9aa5b1"
PERCENTILE_COLOURS: dict[Literal["p50", "p90", "p99", "max"], str] = {
    "p50": "#264653",
    "p90": "#2a9d8f",
    "p99": "#e9c46a",
    "max": "#e76f51",
}
EVENT_COLOURS = {"expirations": "#e76f51", "refreshes": "#2a9d8f", "recoveries": "#264653"}
VERDICT_COLOURS = {
    "refused": "#2a9d8f",
    "mismatch": "#e9c46a",
    "skipped": "#adb5bd",
    "accepted": "#d62828",
    "server_error": "#f4a261",
    "transport_error": "#6c757d",
    "fetched": "#9d0208",
    "weak_secret": "#6a040f",
    "finding": "#e76f51",
    "valid": "#52b788",  # over MQTT: a genuine credential served
    "refused_valid": "#e63946",
}
SERIES_COLOURS = ("#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#6a4c93", "#1982c4")
# HdrHistogram's plotter: x is 1/(1 - percentile), on a log axis labelled in percentiles.
HDR_TICKS = (1, 2, 10, 100, 1_000, 10_000, 100_000, 1_000_000)


# Trace keys whose strings Plotly draws as text: names, categories, labels. Plotly reads a subset
# of HTML in them (``<a href>`` becomes a link in the SVG), and endpoint names and algorithms may
# have come from a profile or the API, so every one is escaped (hovertemplates are ours).
_TEXT_KEYS = ("name", "x", "y", "text", "customdata")

P = ParamSpec("P")


def _escaped(build: Callable[P, list[Chart]]) -> Callable[P, list[Chart]]:
    """``build``'s charts with every drawn string made plain text (:func:`chart_text`)."""

    def plain(value: Any) -> Any:
        if isinstance(value, str):
            return chart_text(value)
        if isinstance(value, list):
            return [plain(item) for item in value]
        return value

    @functools.wraps(build)
    def escaped(*args: P.args, **kwargs: P.kwargs) -> list[Chart]:
        charts = build(*args, **kwargs)
        for chart in charts:
            for trace in chart["data"]:
                for key in _TEXT_KEYS:
                    if key in trace:
                        trace[key] = plain(trace[key])
        return charts

    return escaped


class Chart(TypedDict):
    """One figure: the element id, a title above it, and Plotly's ``data`` and ``layout``."""

    id: str
    title: str
    data: list[dict[str, Any]]
    layout: dict[str, Any]


def _layout(x_title: str, y_title: str, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "template": "plotly_white",
        "height": 340,
        "margin": {"l": 70, "r": 20, "t": 10, "b": 50},
        "xaxis": {"title": {"text": x_title}},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero"},
        # Above the plot, never over the data (the old PNGs' legend covered the setup row).
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        "hovermode": "x unified",
        "font": {"family": "system-ui, sans-serif", "size": 12},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(layout.get(key), dict):
            layout[key] = {**layout[key], **value}
        else:
            layout[key] = value
    return layout


def percentile_label(x: float) -> str:
    """``1/(1-p)`` back to a percentile label: 10 -> ``90%``, 1000 -> ``99.9%``."""
    percentile = 100.0 * (1.0 - 1.0 / x)
    return f"{percentile:.{max(0, round(math.log10(x)) - 2)}f}%"


def _log_ticks(values: list[float]) -> dict[str, Any]:
    """1, 2, 5 per decade over the data, labelled in full (Plotly's own log labels read ``2``)."""
    positive = [v for v in values if v > 0]
    if not positive:
        return {}
    low, high = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
    ticks = [m * 10**k for k in range(low, high + 1) for m in (1, 2, 5)]
    return {"tickvals": ticks, "ticktext": [f"{t:,}" for t in ticks]}


def _start(summary: Summary) -> float:
    seconds = [row["t"] for row in summary["timeline"]]
    started = summary["run"].get("started_at")
    return float(min(seconds)) if seconds else float(started or 0)


# -- run ----------------------------------------------------------------------------------------


def _throughput(summary: Summary, chart_id: str) -> Chart | None:
    timeline = summary["timeline"]
    if not timeline:
        return None
    start = _start(summary)
    setup = {row["t"]: counts_of(row) for row in summary.get("setup_timeline", [])}
    xs = [row["t"] - start for row in timeline]
    data: list[dict[str, Any]] = []
    for outcome, colour in OUTCOME_COLOURS.items():
        counts = [
            counts_of(row).get(outcome, 0) - setup.get(row["t"], {}).get(outcome, 0)
            for row in timeline
        ]
        if any(counts):
            data.append(
                {
                    "type": "bar",
                    "name": outcome,
                    "x": xs,
                    "y": counts,
                    "marker": {"color": colour},
                    "hovertemplate": "%{y:,} req/s",
                }
            )
    setup_counts = [sum(setup.get(row["t"], {}).values()) for row in timeline]
    if any(setup_counts):
        data.append(
            {
                "type": "bar",
                "name": "setup: first tokens",
                "x": xs,
                "y": setup_counts,
                "marker": {"color": SETUP_COLOUR, "pattern": {"shape": "/"}},
                "hovertemplate": "%{y:,} req/s",
            }
        )
    layout = _layout(
        "seconds since the first request",
        "requests per second",
        barmode="stack",
        bargap=0.05,
    )
    staged = _stage_marks(summary, start, data, layout)
    return {
        "id": chart_id,
        "title": "Requests per second, by outcome (setup apart)"
        + ("; the stages' asked load as a line, their steps marked" if staged else ""),
        "data": data,
        "layout": layout,
    }


def _stage_marks(
    summary: Summary, start: float, data: list[dict[str, Any]], layout: dict[str, Any]
) -> bool:
    """A staged run (``--stages``): the load the stages asked for, in req/s, as a line over the
    bars, and a dotted line at each step's start, labelled. False (nothing drawn) without."""
    stages = summary.get("stages")
    if not stages:
        return False
    per_request = 1.0
    if stages["kind"] == "devices":
        interval = float(summary["run"]["parameters"].get("interval_s") or 0.0)
        per_request = 1.0 / interval if interval > 0 else 0.0
    if per_request:
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "asked by the stages",
                "x": [point["t"] + 0.5 - start for point in stages["timeline"]],
                "y": [point["asked"] * per_request for point in stages["timeline"]],
                "line": {"color": "#333333", "dash": "dash", "width": 2},
                "hovertemplate": "%{y:,.0f} req/s asked",
            }
        )
    unit = "" if stages["kind"] == "devices" else " req/s"
    layout["shapes"] = [
        {
            "type": "line",
            "xref": "x",
            "yref": "paper",
            "x0": step["start_t"] - start,
            "x1": step["start_t"] - start,
            "y0": 0,
            "y1": 1,
            "line": {"color": "#888888", "dash": "dot", "width": 1},
        }
        for step in stages["steps"]
    ]
    layout["annotations"] = [
        {
            "xref": "x",
            "yref": "paper",
            "x": step["start_t"] - start,
            "y": 1.0,
            "xanchor": "left",
            "yanchor": "bottom",
            "showarrow": False,
            "text": f"stage {index + 1}: to {step['end']:,.0f}{unit}",
            "font": {"size": 10},
        }
        for index, step in enumerate(stages["steps"])
    ]
    return True


def _latency_over_time(summary: Summary) -> list[Chart]:
    start = _start(summary)
    charts: list[Chart] = []
    for index, series in enumerate(summary.get("latency_timeline", [])):
        if series["phase"] != "measured" or not series["points"]:
            continue
        xs = [p["t"] - start for p in series["points"]]
        ticks = _log_ticks([p[mark] for p in series["points"] for mark in PERCENTILE_COLOURS])
        data = [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": mark,
                "x": xs,
                "y": [p[mark] for p in series["points"]],
                "line": {"color": colour, "width": 2},
                "marker": {"size": 4},
                "hovertemplate": "%{y:,} µs",
            }
            for mark, colour in PERCENTILE_COLOURS.items()
        ]
        charts.append(
            {
                "id": f"latency-time-{index}",
                "title": f"{series['endpoint']}: latency over time",
                "data": data,
                "layout": _layout(
                    "seconds since the first request",
                    "latency, µs (log scale)",
                    yaxis={"type": "log", "rangemode": "normal", **ticks},
                    height=280,
                ),
            }
        )
    return charts


def _distribution(summary: Summary, chart_id: str) -> Chart | None:
    rows = summary.get("latency_distribution", [])
    if not rows:
        return None
    data = []
    widest = 10.0
    # The open model's corrected latency (from each intended send time), dashed beside the
    # service time of the same endpoint in its colour.
    colour_of = {row["endpoint"]: index for index, row in enumerate(rows)}
    corrected = [(colour_of.get(row["endpoint"], 0), row, True) for row in
                 summary.get("corrected_latency_distribution", [])]  # fmt: skip
    for index, row, is_corrected in [(i, r, False) for i, r in enumerate(rows)] + corrected:
        points = [p for p in row["points"] if p["percentile"] < 100.0]
        xs = [1.0 / (1.0 - p["percentile"] / 100.0) for p in points]
        ys = [p["latency_us"] for p in points]
        labels = [f"{p['percentile']:.4g}%" for p in points]
        # The maximum sits where HdrHistogram's plotter ends the line: one request in count.
        xs.append(float(max(row["count"], xs[-1] if xs else 1.0)))
        ys.append(row["points"][-1]["latency_us"])
        labels.append("max")
        widest = max(widest, xs[-1])
        setup = row["phase"] == "setup"
        name = row["endpoint"] + (" (setup)" if setup else "")
        if corrected:  # an open-model run: say which latency each line is
            name += " corrected" if is_corrected else " service time"
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": name,
                "x": xs,
                "y": ys,
                "customdata": labels,
                "line": {
                    "color": SETUP_COLOUR if setup else SERIES_COLOURS[index % len(SERIES_COLOURS)],
                    "dash": "dot" if setup else "dash" if is_corrected else "solid",
                    "width": 2,
                },
                "hovertemplate": "%{customdata}: %{y:,} µs",
            }
        )
    ticks = [t for t in HDR_TICKS if t <= widest * 1.5]
    layout = _layout(
        "percentile (log scale of 1/(1 - percentile), as HdrHistogram plots it)",
        "latency, µs",
        xaxis={
            "type": "log",
            "tickvals": ticks,
            "ticktext": [percentile_label(t) for t in ticks],
        },
        hovermode="closest",
    )
    return {
        "id": chart_id,
        "title": "Latency distribution per endpoint (HDR percentile plot, exact)"
        + ("; open model: corrected latency dashed" if corrected else ""),
        "data": data,
        "layout": layout,
    }


def _verify_beside_client(summary: Summary) -> Chart | None:
    verify = summary.get("server", {}).get("verify", {})
    if not verify:
        return None
    data: list[dict[str, Any]] = []
    for alg, figures in verify.items():
        names = ["target: verify (mean)"]
        values = [figures["mean_us"]]
        for row in summary["requests"]:
            if (
                row["alg"] != alg
                or row["endpoint"].startswith("token ")
                or row["scenario"] == "setup"
            ):
                continue
            latency = row["latency_us"]
            if latency.get("count"):
                where = f"client: {row['scenario']} {row['endpoint']}"
                names += [f"{where} (p50)", f"{where} (mean)"]
                values += [latency["p50"], latency["mean"]]
        data.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": alg,
                "y": names,
                "x": values,
                "text": [f"{v:,.0f} µs" for v in values],
                "textposition": "outside",
                "cliponaxis": False,
                "marker": {
                    "color": ["#e76f51"] + ["#2a9d8f", "#8ab17d"] * ((len(values) - 1) // 2)
                },
                "hovertemplate": "%{y}: %{x:,} µs<extra></extra>",
            }
        )
    bars = sum(len(trace["y"]) for trace in data)
    layout = _layout(
        "µs (linear: the bars' lengths compare)",
        "",
        height=max(200, 40 * bars + 90),
        margin={"l": 290, "r": 80},
        showlegend=False,
        hovermode="closest",
        yaxis={"autorange": "reversed"},
    )
    return {
        "id": "verify-vs-client",
        "title": "Server verify time beside client latency, resource endpoints",
        "data": data,
        "layout": layout,
    }


def _expiry(summary: Summary) -> Chart | None:
    events = summary.get("expiry_timeline", [])
    if not summary.get("expiry") or not events:
        return None
    start = _start(summary)
    # Every second of the run, so quiet seconds show as quiet rather than vanishing.
    by_second = {row["t"]: counts_of(row) for row in events}
    seconds = sorted({row["t"] for row in summary["timeline"]} | set(by_second))
    xs = [second - start for second in seconds]
    data = [
        {
            "type": "bar",
            "name": name,
            "x": xs,
            "y": [by_second.get(second, {}).get(name, 0) for second in seconds],
            "marker": {"color": colour},
            "hovertemplate": "%{y:,}",
        }
        for name, colour in EVENT_COLOURS.items()
    ]
    return {
        "id": "expiry",
        "title": "Expiry: expirations, refreshes and recoveries per second",
        "data": data,
        "layout": _layout("seconds since the first request", "per second", barmode="group"),
    }


@_escaped
def run_charts(summary: Summary) -> list[Chart]:
    """Every chart of a run's report, in reading order."""
    charts: list[Chart | None] = [
        _throughput(summary, "throughput"),
        _distribution(summary, "distribution"),
        *_latency_over_time(summary),
        _verify_beside_client(summary),
        _expiry(summary),
    ]
    return [chart for chart in charts if chart is not None]


@_escaped
def smoke_run_charts(alg: str, summary: Summary) -> list[Chart]:
    """The two charts the smoke report shows per run; its own report has the rest."""
    charts = [
        _throughput(summary, f"throughput-{alg}"),
        _distribution(summary, f"distribution-{alg}"),
    ]
    return [chart for chart in charts if chart is not None]


# -- compare ------------------------------------------------------------------------------------


def _spread_bars(
    result: CompareFile,
    figures: tuple[tuple[str, str], ...],
    y_title: str,
    chart_id: str,
    title: str,
) -> Chart:
    algs = list(result["algorithms"])
    data = []
    for index, (name, label) in enumerate(figures):
        entries = [result["algorithms"][alg] for alg in algs]
        medians = [figure_of(entry, name) for entry in entries]
        spreads = [
            entry["spread"].get(name, {"min": m, "max": m})
            for entry, m in zip(entries, medians, strict=True)
        ]
        data.append(
            {
                "type": "bar",
                "name": label,
                "x": algs,
                "y": medians,
                "marker": {"color": SERIES_COLOURS[index % len(SERIES_COLOURS)]},
                "error_y": {
                    "type": "data",
                    "symmetric": False,
                    "array": [s["max"] - m for s, m in zip(spreads, medians, strict=True)],
                    "arrayminus": [m - s["min"] for s, m in zip(spreads, medians, strict=True)],
                    "color": "#333",
                },
                "hovertemplate": "%{x}: %{y:,.1f}",
            }
        )
    return {
        "id": chart_id,
        "title": title,
        "data": data,
        "layout": _layout("", y_title, barmode="group", hovermode="closest"),
    }


@_escaped
def compare_charts(result: CompareFile) -> list[Chart]:
    repeat = result["repeat"]
    note = f"median of {repeat}, whiskers min to max"
    charts = [
        _spread_bars(
            result,
            (
                ("sign_us", "sign"),
                ("verify_us", "target verifier"),
                ("raw_verify_us", "raw cryptography"),
                ("cached_verify_us", "cached verify"),
            ),
            "µs per operation",
            "micro",
            f"Cost per token, in process ({note})",
        ),
        _spread_bars(
            result, (("token_bytes", "token size"),), "bytes", "token-bytes", "Token size"
        ),
    ]
    if result["end_to_end"] and result["parameters"].get("transport") == "mqtt":
        charts += [
            _spread_bars(
                result,
                (("mqtt_connect_per_s", "CONNECTs"), ("mqtt_publish_per_s", "PUBLISHes")),
                "per second",
                "e2e-rps",
                f"MQTT throughput, same load per algorithm ({note})",
            ),
            _spread_bars(
                result,
                (
                    ("mqtt_connect_p50_us", "CONNACK p50"),
                    ("mqtt_connect_p99_us", "CONNACK p99"),
                    ("mqtt_publish_p50_us", "PUBACK p50"),
                    ("mqtt_publish_p99_us", "PUBACK p99"),
                    ("server_verify_us", "broker verify"),
                ),
                "µs",
                "e2e-latency",
                f"MQTT latency and the broker's verify time ({note})",
            ),
        ]
    elif result["end_to_end"]:
        charts += [
            _spread_bars(
                result,
                (("e2e_rps", "requests per second"),),
                "requests per second",
                "e2e-rps",
                f"End to end throughput, same load per algorithm ({note})",
            ),
            _spread_bars(
                result,
                (
                    ("e2e_p50_us", "p50"),
                    ("e2e_p99_us", "p99"),
                    ("server_verify_us", "server verify"),
                ),
                "µs",
                "e2e-latency",
                f"End to end latency and the target's verify time ({note})",
            ),
        ]
    return charts


# -- capacity -----------------------------------------------------------------------------------


@_escaped
def capacity_charts(result: CapacityFile) -> list[Chart]:
    """Corrected latency (the objective's percentile) against offered rate, one line per
    algorithm over its steps in rate order; steps that broke the objective drawn hollow, the
    objective a dashed line. Both axes log: the doubling steps sit evenly, and the knee shows."""
    parameters = result["parameters"]
    name = parameters["percentile"].replace("_", ".")
    data: list[dict[str, Any]] = []
    rates: list[float] = []
    for index, (alg, entry) in enumerate(result["algorithms"].items()):
        steps = sorted(
            (s for s in entry["steps"] if s["objective_us"] is not None),
            key=lambda s: s["rate_rps"],
        )
        rates += [s["rate_rps"] for s in steps]
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": alg,
                "x": [s["rate_rps"] for s in steps],
                "y": [(s["objective_us"] or 0) / 1000 for s in steps],
                "line": {"color": colour},
                "marker": {
                    "color": [colour if s["met"] else "#fff" for s in steps],
                    "line": {"color": colour, "width": 2},
                    "size": 9,
                },
                "text": [s["verdict"] for s in steps],
                "hovertemplate": f"{alg}: %{{x:,.0f}} req/s, {name} %{{y:,.2f}} ms (%{{text}})"
                "<extra></extra>",
            }
        )
    if rates:
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"objective {parameters['slo']}",
                "x": [min(rates), max(rates)],
                "y": [parameters["limit_us"] / 1000] * 2,
                "line": {"color": "#d62828", "dash": "dash"},
                "hoverinfo": "skip",
            }
        )
    layout = _layout(
        "offered rate, requests per second",
        f"{name} corrected latency, ms",
        xaxis={"type": "log", **_log_ticks(rates)},
        yaxis={"type": "log", "rangemode": "normal"},
        hovermode="closest",
    )
    return [
        {
            "id": "capacity-latency",
            "title": f"{name} latency against offered rate (hollow: the objective broke)",
            "data": data,
            "layout": layout,
        }
    ]


# -- attack -------------------------------------------------------------------------------------


def family_counts(run: AttackRun) -> dict[str, dict[str, int]]:
    """One attack run's cases counted by family, then verdict (every verdict, zeros included)."""
    by_family: defaultdict[str, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(VERDICT_COLOURS, 0)
    )
    for case in run["cases"]:
        by_family[case["family"]][case["verdict"]] += 1
    return dict(sorted(by_family.items()))


@_escaped
def attack_charts(body: AttackFile) -> list[Chart]:
    charts: list[Chart] = []
    for index, run in enumerate(body["runs"]):
        by_family = family_counts(run)
        families = list(by_family)
        data = [
            {
                "type": "bar",
                "orientation": "h",
                "name": verdict,
                "y": families,
                "x": [by_family[f][verdict] for f in families],
                "marker": {"color": colour},
                "hovertemplate": "%{y}: %{x} " + verdict + "<extra></extra>",
            }
            for verdict, colour in VERDICT_COLOURS.items()
            if any(by_family[f][verdict] for f in families)
        ]
        charts.append(
            {
                "id": f"families-{index}",
                "title": f"{run['token_alg']}: verdict per case family",
                "data": data,
                "layout": _layout(
                    "cases",
                    "",
                    barmode="stack",
                    height=max(220, 26 * len(families) + 110),
                    margin={"l": 160},
                    hovermode="closest",
                    showlegend=True,
                    yaxis={"autorange": "reversed"},
                ),
            }
        )
    return charts
