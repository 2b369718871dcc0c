"""Open a report in headless Chromium: what the browser said, what it drew, and a ``report.png``.

``python -m sim.screenshot FOLDER...`` writes ``report.png`` beside every ``report.html`` under
the folders, so CI artefacts show each report without opening it. It drives Debian's
``chromium`` through Playwright's Python package (a dev dependency; no browser download: the
system browser is used), and is also what the report tests use to open a report.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.exits import ExitCode

__all__ = ["CHROMIUM_ARGS", "PageCheck", "chromium_path", "open_report"]

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# Each chart: its id, how many traces, how many points in all, and whether Plotly drew an SVG.
_CHART_STATE = """() => Array.from(document.querySelectorAll('div.chart')).map(el => ({
  id: el.id,
  traces: (el.data || []).length,
  points: (el.data || []).reduce((n, t) => n + ((t.y || t.x || []).length), 0),
  drawn: !!el.querySelector('svg.main-svg'),
  sums: (el.data || []).map(t => [t.name, (t.orientation === 'h' ? t.x : t.y || [])
    .reduce((a, b) => a + (typeof b === 'number' ? b : 0), 0)]),
}))"""
_FIGURES = """() => Array.from(document.querySelectorAll('[data-figure]')).map(el => ({
  figure: el.dataset.figure, value: el.dataset.value === undefined ? null : el.dataset.value,
  text: el.textContent.trim(),
}))"""


@dataclass
class PageCheck:
    """What one report looked like in the browser."""

    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    charts: list[dict[str, Any]] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)
    title: str = ""
    text: str = ""  # what a reader sees (innerText: collapsed <details> hidden)


def chromium_path() -> str | None:
    """The system Chromium, or None (then there is nothing to open a report with)."""
    found = os.environ.get("FLEETBENCH_CHROMIUM") or shutil.which("chromium")
    return found or shutil.which("chromium-browser")


def open_report(html: Path, png: Path | None = None, width: int = 1280) -> PageCheck:
    """Load ``html`` from its file:// URL, let the charts draw, and optionally save a screenshot."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise FileNotFoundError("no chromium on PATH")
    check = PageCheck()
    # launch() gives every browser a fresh temporary profile of its own (no --user-data-dir).
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on(
                "console",
                lambda message: (
                    check.console_errors.append(message.text) if message.type == "error" else None
                ),
            )
            page.on("pageerror", lambda error: check.console_errors.append(str(error)))
            page.on("request", lambda request: check.requests.append(request.url))
            page.goto(html.resolve().as_uri(), wait_until="load")
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('div.chart'))"
                ".every(el => el.querySelector('svg.main-svg'))",
                timeout=30_000,
            )
            check.charts = page.evaluate(_CHART_STATE)
            check.figures = page.evaluate(_FIGURES)
            check.title = page.title()
            check.text = page.evaluate("() => document.body.innerText")
            if png is not None:
                page.screenshot(path=str(png), full_page=True)
        finally:
            browser.close()
    return check


def main(argv: list[str] | None = None) -> int:
    folders = [Path(a) for a in (sys.argv[1:] if argv is None else argv)]
    if not folders:
        print("usage: python -m sim.screenshot FOLDER...", file=sys.stderr)
        return ExitCode.ERROR
    if chromium_path() is None:
        print("sim.screenshot: no chromium on PATH; no report.png written", file=sys.stderr)
        return 0
    for folder in folders:
        for html in sorted(folder.rglob("report.html")):
            check = open_report(html, html.with_name("report.png"))
            errors = f", {len(check.console_errors)} console errors" if check.console_errors else ""
            print(f"{html.with_name('report.png')}: {len(check.charts)} charts{errors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
