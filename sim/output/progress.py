"""What a command shows while it works: a bar for each long step (making 10,000 RS256 keys takes
minutes) and, during load, a live line of the run's figures so far.

On a terminal both redraw in place (rich); in a log (CI, a pipe) they are plain lines, a few
seconds apart, so a long step or a long run still shows that it is alive.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from types import TracebackType

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from sim.account.live import LiveFigures

__all__ = ["ConsoleProgress", "live_line"]

LOG_LINE_EVERY_S = 5.0  # in a log, at most one line per step or live figure this often


def _us(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.1f} ms" if value >= 1000 else f"{value:.0f} µs"


def live_line(figures: LiveFigures) -> str:
    """``12/20 s: 1903 requests, 95.2 req/s, p50 2.8 ms, p99 27.1 ms, not ok: -, ...``."""
    not_ok = ", ".join(f"{count} {outcome}" for outcome, count in figures.not_ok.items())
    return (
        f"{figures.elapsed_s:.0f}/{figures.duration_s:.0f} s: {figures.requests} requests, "
        f"{figures.rps:.1f} req/s, p50 {_us(figures.p50_us)}, p99 {_us(figures.p99_us)}, "
        + (
            f"p99 corrected {_us(figures.corrected_p99_us)}, "
            if figures.corrected_p99_us is not None
            else ""
        )
        + f"not ok: {not_ok or '-'}, generator CPU {figures.generator_cpu_percent:.0f}%"
    )


class _Progress(Progress):
    """Rich's bars, then the live line as its own text (wrapped, not cut to a bar's column)."""

    live_line = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        if self.live_line:
            yield Text(self.live_line)


class ConsoleProgress:
    """A :class:`sim.run.locust_child.RunProgress` on a rich console; use as a context manager."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: _Progress | None = None
        if console.is_terminal:
            self._progress = _Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
        self._last_line = 0.0

    def __enter__(self) -> ConsoleProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def bar(self, description: str, total: int) -> Callable[[int], None]:
        progress = self._progress
        if progress is not None:
            task = progress.add_task(description, total=total)
            return lambda n: progress.advance(task, n)
        started = last = time.monotonic()
        done = 0

        def advance(n: int) -> None:
            nonlocal done, last
            done += n
            now = time.monotonic()
            if done >= total or now - last >= LOG_LINE_EVERY_S:
                last = now
                self._print(f"{description}: {done}/{total} in {now - started:.0f} s")

        return advance

    def live(self, figures: LiveFigures) -> None:
        line = live_line(figures)
        if self._progress is None:
            now = time.monotonic()
            if now - self._last_line >= LOG_LINE_EVERY_S:
                self._last_line = now
                self._print(line)
            return
        self._progress.live_line = line
        self._progress.refresh()

    def _print(self, line: str) -> None:
        self.console.print(f"fleetbench: {line}", highlight=False, markup=False, soft_wrap=True)
