"""The summary table a person reads at the end of ``fleetbench run`` (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sim.account.mqtt import mqtt_line
from sim.account.revocation import revocation_line
from sim.account.storms import recovery_line
from sim.artefacts.summary_file import ClusterRefused, Percentiles, Summary
from sim.untrusted import shown

__all__ = ["print_summary", "refused_line"]


def refused_line(refused: list[ClusterRefused]) -> str:
    """The peers a master refused, in one line ('' when none)."""
    if not refused:
        return ""
    named = "; ".join(f"{r['id']} ({r['reason']})" for r in refused)
    return f"workers refused (given nothing): {named}"


def _add_row(table: Table, *cells: str) -> None:
    """Cells as plain text: names and algorithms came from the profile or the API, and rich
    would read ``HS256[/x]`` as markup (a MarkupError) or draw what escapes it holds."""
    table.add_row(*(Text(shown(cell)) for cell in cells))


def _rows_table(title: str) -> Table:
    """A borderless table of the summary's request rows, opening with scenario and endpoint."""
    table = Table(
        title=Text(shown(title)),
        title_justify="left",
        box=None,
        pad_edge=False,
        padding=(0, 1),
        header_style="bold",
    )
    table.add_column("scenario", no_wrap=True)
    table.add_column("endpoint", no_wrap=True)
    return table


def _us(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} ms" if value >= 10_000 else f"{value:.0f} µs"


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _tail(latency: Percentiles) -> list[str]:
    """p50, p99, p99.9 and max, as the table's columns show them."""
    return [
        _n(latency.get("p50")),
        _n(latency.get("p99")),
        _n(latency.get("p99_9")),
        _n(latency.get("max")),
    ]


# Short names so the table fits 80 columns; summary.json keeps the full ones.
_SHORT = {
    "token client_credentials": "token cc",
    "token jwt-bearer": "token jwt",
    "rejected_as_expected": "expected",
    "refused_valid": "refused",
    "accepted_invalid": "ACCEPTED",
    "server_error": "5xx",
    "transport_error": "no answer",
}


def _short(name: str) -> str:
    return _SHORT.get(name, name)


def _requests_table(summary: Summary) -> Table:
    """Fits 80 columns: no borders, short names, the token algorithm in the title when the
    run has one (a column only when it has several), outcome detail wrapped in the last column
    (the whole run's outcomes follow on their own line)."""
    rows = summary["requests"]
    algs = sorted({row["alg"] for row in rows})
    by_alg = len(algs) > 1
    what = "client-side latency in µs, exact"
    if "open_model" in summary:
        what = "service time (from the actual send) in µs"
    title = f"requests: {what}"
    if len(algs) == 1:
        title = f"requests, {algs[0]} tokens: {what}"
    table = _rows_table(title)
    if by_alg:
        table.add_column("alg", no_wrap=True)
    for column in ("count", "rps", "p50", "p99", "p99.9", "max"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("not ok", min_width=9)
    for row in rows:
        latency = row["latency_us"]
        others = ", ".join(f"{n} {_short(o)}" for o, n in row["outcomes"].items() if o != "ok")
        _add_row(
            table,
            row["scenario"],
            _short(row["endpoint"]),
            *([row["alg"]] if by_alg else []),
            str(row["count"]),
            f"{row['rps']:.1f}",
            *_tail(latency),
            others or "-",
        )
    for alg, mint in summary["mint_us"].items():
        _add_row(
            table,
            "client",
            f"mint {alg}",
            *([""] if by_alg else []),
            str(mint["count"]),
            "",
            *_tail(mint),
            "-",
        )
    return table


def _corrected_table(summary: Summary) -> Table:
    """The open model's corrected latency (from each paced request's intended send time) per
    row, beside the service time's p99, so the two read side by side."""
    table = _rows_table("open model: corrected latency (from the intended send time) in µs")
    for column in ("count", "p50", "p99", "p99.9", "max", "service p99"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in summary["requests"]:
        corrected = row.get("corrected_latency_us")
        if corrected is None:
            continue
        _add_row(
            table,
            row["scenario"],
            _short(row["endpoint"]),
            str(corrected["count"]),
            *_tail(corrected),
            _n(row["latency_us"].get("p99")),
        )
    return table


def _stage_lines(summary: Summary) -> list[str]:
    stages = summary.get("stages")
    if stages is None:
        return []
    unit = "devices reporting" if stages["kind"] == "devices" else "req/s asked"
    steps = ", ".join(f"{step['duration_s']:g} s to {step['end']:,.0f}" for step in stages["steps"])
    return [f"stages ({unit}, each ramping from the last): {steps}"]


def _open_lines(summary: Summary) -> list[str]:
    account = summary.get("open_model")
    if account is None:
        return []
    lag = account["send_lag_us"]
    generator = account["generator_lag_us"]
    lines = [
        account.get("line", ""),
        f"  sends late behind their intended time: p50 {_us(lag.get('p50'))}, "
        f"p99 {_us(lag.get('p99'))}; of which the generator's own delay: "
        f"p99 {_us(generator.get('p99'))}",
    ]
    lines += [f"  {note}" for note in account["notes"]]
    return lines


def _lines(summary: Summary) -> list[str]:
    lines = []
    totals, outcomes = summary["totals"], summary["outcomes"]
    lines.append(
        f"{totals['requests']} requests from {totals['devices']} devices in "
        f"{summary['run']['elapsed_s']:.1f} s: {totals['rps']:.1f} req/s"
    )
    lines.append("outcomes: " + ", ".join(f"{o} {n}" for o, n in outcomes.items()))
    shared = summary["run"]["cpu"].get("shares_machine")
    if shared:
        lines.append(f"warning: {shared}")
    server = summary["server"]
    if server.get("available"):
        verify = ", ".join(
            f"{alg} {v['mean_us']:.1f} µs mean over {v['count']}"
            for alg, v in server["verify"].items()
        )
        lines.append(f"server verify time: {verify or 'no verifications'}")
    else:
        lines.append(f"server view: {server.get('reason') or '/metrics not available'}")
    telemetry = summary["telemetry"]
    if telemetry.get("sent"):
        if telemetry.get("available"):
            lines.append(
                f"telemetry: sent {telemetry['sent']}, acknowledged {telemetry['acknowledged']}, "
                f"received {telemetry['received']}, lost {telemetry['lost']}, "
                f"duplicated {telemetry['duplicated']}"
            )
        else:
            lines.append(
                f"telemetry: sent {telemetry['sent']}, acknowledged {telemetry['acknowledged']} "
                "(the target's own count is unknown: no /admin/stats, or no answer from the"
                " profile's [stats] call)"
            )
    expiry = summary.get("expiry")
    if expiry:
        refresh = expiry["refresh_latency_us"]
        lines.append(
            f"expiry: {expiry['expirations']} expirations, {expiry['refreshes']} refreshes "
            f"(p50 {_us(refresh.get('p50'))}, p99 {_us(refresh.get('p99'))}); "
            f"{expiry['devices_expired']}/{expiry['devices']} devices saw expiry, "
            f"{expiry['devices_recovered']} refreshed and continued; "
            f"refused_valid {expiry['refused_valid']}"
        )
    mqtt = summary.get("mqtt")
    if mqtt:
        lines.append(mqtt_line(mqtt))
    storm = recovery_line(summary)
    if storm:
        lines.append(storm)
    revocation = summary.get("revocation")
    if revocation:
        lines.append(revocation_line(revocation))
    corpus = summary.get("corpus")
    if corpus:
        accepted = [case for case, counts in corpus.items() if counts.get("accepted_invalid")]
        lines.append(
            f"bad-token corpus: {len(corpus)} cases sent"
            + (f"; ACCEPTED: {', '.join(accepted)}" if accepted else ", every one refused")
        )
    generator = summary["generator"]
    cpu = ", ".join(
        f"{p['role']} {p['cpu_percent_mean']:.0f}%" + (" SATURATED" if p["saturated"] else "")
        for p in generator.get("processes", [])
    )
    lines.append(
        f"generator CPU (mean, % of one core): {cpu or '-'}; "
        f"peak RSS {generator.get('peak_rss_bytes', 0) / 2**20:.0f} MiB"
    )
    if generator.get("saturated"):
        lines.append(
            "WARNING: a load generator process was above "
            f"{generator['saturation_threshold_percent']:.0f}% of a core: figures are bounded by "
            "the generator, not the target (try --workers)"
        )
    cluster = summary.get("cluster")
    if cluster:
        shares = "; ".join(
            f"{w['host']} pid {w['pid']} {w['devices']} devices {w['requests_per_s']:.0f} req/s"
            + (" LOST" if w["lost"] else " late" if w["late"] else "")
            + (" LAGGING" if w.get("lagging") else "")
            for w in cluster["workers"]
        )
        lines.append(
            f"workers: {len(cluster['workers'])}, {cluster['dealt']} of "
            f"{cluster['fleet_devices']} devices dealt: {shares}"
        )
        refused = refused_line(cluster.get("refused", []))
        if refused:
            lines.append(refused)
    return lines


def _load_lines(summary: Summary) -> list[str]:
    """Offered against delivered, in one plain line, and why when the load was not delivered."""
    load = summary["load"]
    lines = [f"load: {load['line']}"]
    if load.get("overloaded") or load.get("saturated"):
        lines += [f"  {note}" for note in load.get("notes", [])]
    return lines


def print_summary(summary: Summary, console: Console | None = None) -> None:
    console = console or Console()
    console.print(_requests_table(summary))
    if "open_model" in summary:
        console.print(_corrected_table(summary))
    lines = _lines(summary) + _stage_lines(summary) + _load_lines(summary) + _open_lines(summary)
    for line in lines:
        console.print(shown(line), highlight=False, markup=False)
    verdict = summary["verdict"]
    if verdict["passed"] and verdict.get("overloaded"):
        console.print("[yellow]PASS (overloaded)[/yellow]: the load asked for was not delivered")
    elif verdict["passed"]:
        console.print("[green]PASS[/green]")
    else:
        for failure in verdict["failures"]:
            console.print(Text.assemble(("FAIL", "red"), " ", shown(failure)), highlight=False)
    results = summary["run"].get("results")
    if results:
        console.print(f"results: {results}", highlight=False, markup=False)
