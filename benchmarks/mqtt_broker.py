"""``python -m benchmarks.mqtt_broker``: the embedded target's MQTT broker holding N connections.

One embedded target with MQTT (pinned to the first core when there are two or more), N devices
registered with secrets and given access tokens by the token endpoint, then N MQTT 3.1.1
connections opened from this process (``--concurrency`` CONNECTs in flight at once), each
CONNECT carrying its own device's token, and held for ``--hold`` seconds. Prints the connect rate
and CONNECT→CONNACK p50/p99 seen from here, the broker's own verify time per CONNECT (mean, and
p99 as its histogram bucket's upper bound) and the target's resident memory per connection held.
Issue 28's goal is 10,000 connections; the default is a few thousand. The client side needs
no threads: plain asyncio streams, with amqtt's own packet codec for CONNECT and CONNACK.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from collections.abc import Iterator
from typing import Any, NoReturn

import requests
from amqtt.adapters import StreamReaderAdapter
from amqtt.errors import NoDataError
from amqtt.mqtt.connack import ConnackPacket
from amqtt.mqtt.connect import ConnectPacket, ConnectPayload, ConnectVariableHeader
from amqtt.mqtt.suback import SubackPacket
from amqtt.mqtt.subscribe import SubscribePacket
from prometheus_client.parser import text_string_to_metric_families

from sim.errors import SimError
from sim.exits import ExitCode
from sim.processes import split_cores
from sim.run.embedded import EmbeddedTarget
from target.jose.vocabulary import client_credentials_form

__all__ = ["connect_packet", "main", "measure"]

REGISTER_BATCH = 10_000  # the admin API's most per request
TIMEOUT_S = 30.0


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise SimError("no VmRSS for the target process")


def _cpu_s(pid: int) -> float:
    """The process's CPU time so far (user + system): steadier than wall time on a busy machine."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _batches(items: list[dict[str, str]], size: int) -> Iterator[list[dict[str, str]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _tokens(target: EmbeddedTarget, count: int) -> list[tuple[str, str]]:
    """``count`` registered devices and an access token each, from the token endpoint."""
    devices = [
        {"id": f"mqtt-bench-{i:06d}", "secret": secrets.token_urlsafe(24)} for i in range(count)
    ]
    with requests.Session() as http:
        admin = {"Authorization": f"Bearer {target.admin_key}"}
        for batch in _batches(devices, REGISTER_BATCH):
            answer = http.post(
                f"{target.url}/admin/devices", json={"devices": batch}, headers=admin, timeout=60
            )
            if answer.status_code != 201:
                raise SimError(f"registration answered {answer.status_code}")
        tokens = []
        for device in devices:
            answer = http.post(
                f"{target.url}/auth/token",
                data=client_credentials_form(device["id"], device["secret"]),
                timeout=TIMEOUT_S,
            )
            if answer.status_code != 200:
                raise SimError(f"the token endpoint answered {answer.status_code}")
            tokens.append((device["id"], answer.json()["access_token"]))
    return tokens


def connect_packet(device_id: str, token: str, keepalive_s: int) -> bytes:
    """An MQTT 3.1.1 CONNECT (clean session) for ``device_id`` with its token, as bytes."""
    header = ConnectVariableHeader()
    header.keep_alive = keepalive_s
    header.clean_session_flag = True
    header.username_flag = header.password_flag = True
    payload = ConnectPayload(client_id=device_id, username=device_id, password=token)
    return bytes(ConnectPacket(variable_header=header, payload=payload).to_bytes())


class _Held:
    """The open connections and what their CONNECTs were answered."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.connack_s: list[float] = []
        self.refused: dict[str, int] = {}


async def _subscribe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, topic: str
) -> None:
    writer.write(bytes(SubscribePacket.build([(topic, 1)], 1).to_bytes()))
    suback = await asyncio.wait_for(
        SubackPacket.from_stream(StreamReaderAdapter(reader)), TIMEOUT_S
    )
    if suback.payload.return_codes != [1]:
        raise ValueError("subscription refused")


async def _connect_one(
    port: int, device_id: str, token: str, keepalive_s: int, held: _Held, *, subscribe: bool
) -> None:
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(connect_packet(device_id, token, keepalive_s))
        connack = await asyncio.wait_for(
            ConnackPacket.from_stream(StreamReaderAdapter(reader)), TIMEOUT_S
        )
        if subscribe and connack.return_code == 0:
            await _subscribe(reader, writer, f"devices/{device_id}/commands")
    except (OSError, TimeoutError, ValueError, NoDataError) as e:  # NoDataError: closed on us
        held.refused[type(e).__name__] = held.refused.get(type(e).__name__, 0) + 1
        return
    if connack.return_code != 0:
        held.refused[f"connack {connack.return_code}"] = (
            held.refused.get(f"connack {connack.return_code}", 0) + 1
        )
        writer.close()
        return
    held.connack_s.append(time.perf_counter() - started)
    held.writers.append(writer)


async def _open_all(
    port: int,
    tokens: list[tuple[str, str]],
    concurrency: int,
    keepalive_s: int,
    *,
    subscribe: bool = False,
) -> tuple[_Held, float]:
    held = _Held()
    slots = asyncio.Semaphore(concurrency)

    async def one(device_id: str, token: str) -> None:
        async with slots:
            await _connect_one(port, device_id, token, keepalive_s, held, subscribe=subscribe)

    started = time.perf_counter()
    await asyncio.gather(*(one(d, t) for d, t in tokens))
    return held, time.perf_counter() - started


def _verify_histogram(target: EmbeddedTarget) -> tuple[float, float, list[tuple[float, float]]]:
    """``fleetbench_mqtt_verify_seconds`` summed over ``alg``: count, sum, cumulative buckets."""
    text = requests.get(f"{target.url}/metrics", timeout=TIMEOUT_S).text
    count = total = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "fleetbench_mqtt_verify_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_count"):
                count += sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
            elif sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return count, total, sorted(buckets.items())


def _connected_gauge(target: EmbeddedTarget) -> float:
    text = requests.get(f"{target.url}/metrics", timeout=TIMEOUT_S).text
    for line in text.splitlines():
        if line.startswith("fleetbench_mqtt_connections "):
            return float(line.split()[1])
    return 0.0


def _p99_bound_us(
    before: list[tuple[float, float]], after: list[tuple[float, float]], count: float
) -> float | None:
    """The upper bound of the bucket holding the 99th percentile of the new observations."""
    old = dict(before)
    for bound, cumulative in after:
        if cumulative - old.get(bound, 0.0) >= 0.99 * count:
            return None if bound == float("inf") else bound * 1e6
    return None


def _wave(held: _Held, elapsed_s: float, cpu_s: float) -> dict[str, Any]:
    """One wave of CONNECTs as the client saw it, and the target's CPU time for it."""
    times = held.connack_s
    return {
        "target_cpu_ms_per_connect": round(cpu_s / len(times) * 1e3, 3) if times else None,
        "connected": len(times),
        "refused": held.refused,
        "connect_s": round(elapsed_s, 3),
        "connects_per_s": round(len(times) / elapsed_s, 1) if elapsed_s else None,
        "connack_p50_ms": round(_percentile(times, 0.5) * 1e3, 2) if times else None,
        "connack_p99_ms": round(_percentile(times, 0.99) * 1e3, 2) if times else None,
    }


def measure(
    connections: int,
    *,
    alg: str = "ES256",
    concurrency: int = 200,
    hold_s: float = 5.0,
    subscribe: bool = False,
    reconnect: bool = False,
) -> dict[str, Any]:
    """Open ``connections`` MQTT connections to a fresh embedded target, hold them, measure."""
    target_cpus, _ = split_cores(pin=True)
    target = EmbeddedTarget(
        alg, cpus=target_cpus, mqtt=True, mqtt_max_connections=connections + 100
    ).start()
    try:
        tokens = _tokens(target, connections)
        pid = target.pid
        if pid is None:
            raise SimError("the target is not running")
        rss_before = _rss_bytes(pid)
        count_before, sum_before, buckets_before = _verify_histogram(target)

        async def run() -> dict[str, Any]:
            port = target.mqtt_port
            cpu_before = _cpu_s(pid)
            held, elapsed_s = await _open_all(port, tokens, concurrency, 600, subscribe=subscribe)
            cpu_s = _cpu_s(pid) - cpu_before
            await asyncio.sleep(hold_s)
            # Measured while every connection is still open.
            figures = {
                "held": len(held.writers),
                "gauge": await asyncio.to_thread(_connected_gauge, target),
                "rss_held": _rss_bytes(pid),
                "verify": await asyncio.to_thread(_verify_histogram, target),
                "held_data": held,
                "cpu_s": cpu_s,
                "elapsed_s": elapsed_s,
            }
            for writer in held.writers:
                writer.close()
            if reconnect:  # the whole fleet again, at once: an expiry storm's reconnects
                await asyncio.sleep(1.0)
                cpu_before = _cpu_s(pid)
                again, again_s = await _open_all(
                    port, tokens, concurrency, 600, subscribe=subscribe
                )
                figures["reconnect"] = _wave(again, again_s, _cpu_s(pid) - cpu_before)
                for writer in again.writers:
                    writer.close()
            return figures

        measured = asyncio.run(run())
    finally:
        target.stop()
    held: _Held = measured["held_data"]
    count_after, sum_after, buckets_after = measured["verify"]
    verified = count_after - count_before
    held_count = measured["held"]
    return {
        "alg": alg,
        "asked": connections,
        "held": held_count,
        "broker_counted_open": int(measured["gauge"]),
        "subscribed": subscribe,
        **_wave(held, measured["elapsed_s"], measured["cpu_s"]),
        "reconnect": measured.get("reconnect"),
        "verified": int(verified),
        "verify_mean_us": round((sum_after - sum_before) / verified * 1e6, 1) if verified else None,
        "verify_p99_at_most_us": _p99_bound_us(buckets_before, buckets_after, verified),
        "target_rss_before_mib": round(rss_before / 2**20, 1),
        "target_rss_held_mib": round(measured["rss_held"] / 2**20, 1),
        "target_rss_per_connection_kib": (
            round((measured["rss_held"] - rss_before) / held_count / 1024, 1)
            if held_count
            else None
        ),
    }


def _print(row: dict[str, Any]) -> None:
    print(
        f"mqtt broker ({row['alg']} tokens): {row['held']:,} of {row['asked']:,} connections held"
        f" (broker counts {row['broker_counted_open']:,} open)"
        + (f"; refused: {row['refused']}" if row["refused"] else "")
    )
    print(
        f"  connect: {row['connect_s']:.1f} s = {row['connects_per_s']:,.0f} connects/s;"
        f" CONNECT->CONNACK p50 {row['connack_p50_ms']} ms, p99 {row['connack_p99_ms']} ms;"
        f" target CPU {row['target_cpu_ms_per_connect']} ms a CONNECT"
    )
    again = row["reconnect"]
    if again is not None:
        print(
            f"  reconnect, all at once: {again['connected']:,} in {again['connect_s']:.1f} s ="
            f" {again['connects_per_s']:,.0f} connects/s; p50 {again['connack_p50_ms']} ms,"
            f" p99 {again['connack_p99_ms']} ms; target CPU {again['target_cpu_ms_per_connect']} ms"
            + (f"; refused: {again['refused']}" if again["refused"] else "")
        )
    print(
        f"  broker verify per CONNECT: mean {row['verify_mean_us']} us,"
        f" p99 <= {row['verify_p99_at_most_us']} us (histogram bucket), {row['verified']:,} checks"
    )
    print(
        f"  target RSS: {row['target_rss_before_mib']} MiB before,"
        f" {row['target_rss_held_mib']} MiB holding them ="
        f" {row['target_rss_per_connection_kib']} KiB per connection"
    )


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one readable line, not a usage dump
        self.exit(2, f"mqtt_broker: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m benchmarks.mqtt_broker", description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=3000, help="to hold (default 3000)")
    parser.add_argument("--alg", default="ES256", help="the target's token algorithm (ES256)")
    parser.add_argument(
        "--concurrency", type=int, default=200, help="CONNECTs in flight at once (200)"
    )
    parser.add_argument("--hold", type=float, default=5.0, help="seconds to hold them (5)")
    parser.add_argument(
        "--subscribe", action="store_true", help="each subscribes to devices/{id}/commands"
    )
    parser.add_argument(
        "--reconnect", action="store_true", help="then close all and connect them again at once"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.connections < 1 or args.concurrency < 1 or args.hold < 0:
        parser.error("--connections and --concurrency at least 1, --hold at least 0")
    try:
        row = measure(
            args.connections, alg=args.alg, concurrency=args.concurrency, hold_s=args.hold,
            subscribe=args.subscribe, reconnect=args.reconnect,
        )  # fmt: skip
    except (SimError, OSError, requests.RequestException) as e:
        print(f"mqtt_broker: error: {e}", file=sys.stderr)
        return ExitCode.ERROR
    if args.json:
        print(json.dumps(row, indent=2))
    else:
        _print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
