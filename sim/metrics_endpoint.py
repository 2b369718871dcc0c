"""The orchestrator's Prometheus endpoint for the length of one command.

Loopback unless told otherwise: the endpoint names the target's URL nowhere, but a run's shape
is still nobody else's business. After the command's runs the endpoint stays up until the
final numbers have been scraped once, or ``LINGER_S`` at most, so a scraper that polls every few
seconds still sees the totals ``summary.json`` holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, start_http_server

from sim.errors import ConfigError
from sim.live_metrics import LiveAccount, tracking, wait_for_final_scrape

__all__ = ["LINGER_S", "MetricsOptions", "exporting"]

LINGER_S = 5.0  # at most this long after the command for the final scrape


@dataclass(frozen=True)
class MetricsOptions:
    """Where a command's live metrics go: a scrape port, or nowhere."""

    port: int | None = None
    bind: str = "127.0.0.1"
    linger_s: float = LINGER_S

    @property
    def wanted(self) -> bool:
        return self.port is not None


@contextlib.contextmanager
def exporting(
    options: MetricsOptions, log: Callable[[str], None] = lambda message: None
) -> Iterator[LiveAccount | None]:
    """Serve the account of the runs made inside the block."""
    if not options.wanted:
        yield None
        return
    account = LiveAccount()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(account)
    server = None
    if options.port is not None:
        try:
            server, thread = start_http_server(options.port, addr=options.bind, registry=registry)
        except OSError as e:
            raise ConfigError(
                f"--metrics-port {options.port} on {options.bind}: {e.strerror or e}"
            ) from e
        log(f"metrics on http://{_host(options.bind)}:{server.server_port}/metrics")
    try:
        with tracking(account):
            yield account
    finally:
        if server is not None:
            if not wait_for_final_scrape(account, options.linger_s):
                log(f"no scrape of the final metrics within {options.linger_s:g} s")
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def _host(bind: str) -> str:
    return f"[{bind}]" if ":" in bind else bind
