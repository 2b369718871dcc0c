"""A second opinion on open-model latency, without Locust: plain asyncio connections, each sending
on its own fixed schedule from a random phase (the wrk2 way), timed from the intended send.

``fleetbench capacity`` runs it on the embedded target at the knee (the lowest rate that broke the
objective), and ``python -m benchmarks.capacity`` at the highest rate that met it as well: if this
client, with none of Locust's machinery, sees the same tail at the same rate, the tail is the
target's; if it meets the objective there, the search's break was the generator's.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

from sim.account.measure import new_histogram

__all__ = ["ProbeResult", "probe", "read_response"]

REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ProbeResult:
    rate_rps: float
    connections: int
    sent: int
    ok: int
    other: int  # answered with another status than 200, or not answered at all
    corrected_p50_us: int
    corrected_p99_us: int
    service_p99_us: int
    at_percentile_us: int  # the corrected latency at the percentile asked for


async def read_response(reader: asyncio.StreamReader, timeout_s: float = REQUEST_TIMEOUT_S) -> int:
    """Read one HTTP/1.1 answer with a ``Content-Length`` body (our targets' kind) off a keep-alive
    connection; its status code. Only what a load loop needs: the status line and the length."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout_s)
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await asyncio.wait_for(reader.readexactly(length), timeout_s)
    return int(head[9:12])


async def _connection(
    port: int,
    request: bytes,
    first_s: float,
    period_s: float,
    measure_from: float,
    stop_at: float,
    tally: dict[str, int],
    histograms: tuple[HdrHistogram, HdrHistogram],
) -> None:
    corrected, service = histograms
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        intended = first_s
        while intended < stop_at:
            delay = intended - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sent = loop.time()
            writer.write(request)
            status = await read_response(reader)
            done = loop.time()
            if intended >= measure_from:
                tally["sent"] += 1
                if status == 200:
                    tally["ok"] += 1
                    corrected.record_value(max(1, int((done - intended) * 1e6)))
                    service.record_value(max(1, int((done - sent) * 1e6)))
                else:
                    tally["other"] += 1
            intended += period_s
    finally:
        writer.close()


async def _probe(
    port: int, path: str, token: str, rate_rps: float, connections: int, duration_s: float,
    warmup_s: float, percentile: float,
) -> ProbeResult:  # fmt: skip
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    period = connections / rate_rps
    start = loop.time() + 0.2
    measure_from = start + warmup_s
    stop_at = measure_from + duration_s
    tally = {"sent": 0, "ok": 0, "other": 0}
    corrected, service = new_histogram(), new_histogram()
    results = await asyncio.gather(
        *(
            _connection(
                port,
                request,
                start + random.random() * period,
                period,
                measure_from,
                stop_at,
                tally,
                (corrected, service),
            )
            for _ in range(connections)
        ),
        return_exceptions=True,
    )
    tally["other"] += sum(1 for r in results if isinstance(r, BaseException))
    return ProbeResult(
        rate_rps=rate_rps,
        connections=connections,
        sent=tally["sent"],
        ok=tally["ok"],
        other=tally["other"],
        corrected_p50_us=corrected.get_value_at_percentile(50),
        corrected_p99_us=corrected.get_value_at_percentile(99),
        service_p99_us=service.get_value_at_percentile(99),
        at_percentile_us=corrected.get_value_at_percentile(percentile),
    )


def probe(
    port: int,
    path: str,
    token: str,
    rate_rps: float,
    connections: int,
    duration_s: float,
    warmup_s: float = 1.0,
    percentile: float = 99.0,
) -> ProbeResult:
    """``rate_rps`` requests/s to ``http://127.0.0.1:<port><path>`` over ``connections``
    keep-alive connections for ``duration_s`` measured seconds (after ``warmup_s``), with the
    corrected latency at ``percentile`` as well as p50 and p99."""
    return asyncio.run(
        _probe(port, path, token, rate_rps, connections, duration_s, warmup_s, percentile)
    )
