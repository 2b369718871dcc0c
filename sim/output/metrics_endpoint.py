"""The orchestrator's Prometheus endpoint and OTLP push for the length of one command.

Loopback unless told otherwise: the endpoint names the target's URL nowhere, but a run's shape
is still nobody else's business. After the command's runs the endpoint stays up until the
final numbers have been scraped once, or ``LINGER_S`` at most, so a scraper that polls every few
seconds still sees the totals ``summary.json`` holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server

from sim.account.live_metrics import LiveAccount, tracking, wait_for_final_scrape
from sim.errors import ConfigError

if TYPE_CHECKING:
    from sim.output.otlp_push import OtlpPusher

__all__ = ["LINGER_S", "MetricsOptions", "exporting", "otlp_endpoint"]

LINGER_S = 5.0  # at most this long after the command for the final scrape


@dataclass(frozen=True)
class MetricsOptions:
    """Where a command's live metrics go: a scrape port, an OTLP/HTTP URL, both or neither."""

    port: int | None = None
    bind: str = "127.0.0.1"
    otlp_url: str | None = None
    otlp_interval_s: float = 5.0
    linger_s: float = LINGER_S

    @property
    def wanted(self) -> bool:
        return self.port is not None or self.otlp_url is not None


@contextlib.contextmanager
def exporting(
    options: MetricsOptions, log: Callable[[str], None] = lambda message: None
) -> Iterator[LiveAccount | None]:
    """Serve (and push) the account of the runs made inside the block."""
    if not options.wanted:
        yield None
        return
    account = LiveAccount()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(account)
    pusher = _pusher(account, options, log) if options.otlp_url is not None else None
    server = None
    if options.port is not None:
        try:
            server, thread = start_http_server(options.port, addr=options.bind, registry=registry)
        except OSError as e:
            raise ConfigError(
                f"--metrics-port {options.port} on {options.bind}: {e.strerror or e}"
            ) from e
        log(f"metrics on http://{_host(options.bind)}:{server.server_port}/metrics")
    if pusher is not None:
        pusher.start()
    try:
        with tracking(account):
            yield account
    finally:
        if pusher is not None and not pusher.stop():  # pushes the final numbers once more
            log(f"the final OTLP push to {options.otlp_url} was not received")
        if server is not None:
            if not wait_for_final_scrape(account, options.linger_s):
                log(f"no scrape of the final metrics within {options.linger_s:g} s")
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def otlp_endpoint(url: str) -> str:
    """``--otlp``: a collector's base URL gets the OTLP/HTTP metrics path."""
    if not url.startswith(("http://", "https://")):
        raise ConfigError("--otlp must be an http:// or https:// URL (OTLP/HTTP, e.g. :4318)")
    path = url.partition("://")[2].partition("/")[2]
    return url if path.strip("/") else f"{url.rstrip('/')}/v1/metrics"


def _pusher(
    account: LiveAccount, options: MetricsOptions, log: Callable[[str], None]
) -> OtlpPusher:
    assert options.otlp_url is not None
    url = otlp_endpoint(options.otlp_url)  # a wrong URL is one line, SDK or not
    try:
        from sim.output.otlp_push import OtlpPusher  # the SDK is an optional extra: only when asked
    except ImportError as e:
        raise ConfigError(
            "--otlp needs the OpenTelemetry SDK: pip install 'fleetbench[otlp]'"
        ) from e
    return OtlpPusher(account, url, options.otlp_interval_s, log)


def _host(bind: str) -> str:
    return f"[{bind}]" if ":" in bind else bind
