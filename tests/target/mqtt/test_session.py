"""A session's life after CONNACK: keepalive, revocation, a flood that HTTP does not feel."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests
from amqtt.mqtt.subscribe import SubscribePacket

from sim.run.embedded import EmbeddedTarget
from tests.target.helpers import admin_headers, client_token, new_device
from tests.target.mqtt.clients import ACCEPTED, WAIT_S, Device, publish_packet, raw_session

pytestmark = pytest.mark.slow

FLOOD = 2000
PER_READING_DEVICES = 40


def _metric(target: EmbeddedTarget, line_start: str) -> float:
    text = requests.get(f"{target.url}/metrics", timeout=10).text
    return sum(float(x.split()[-1]) for x in text.splitlines() if x.startswith(line_start))


def _received(target: EmbeddedTarget, device_id: str) -> int:
    body = requests.get(f"{target.url}/admin/stats", headers=admin_headers(target), timeout=10)
    count: int = body.json()["devices"].get(device_id, {}).get("received", 0)
    return count


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes ``sock`` within the wait (reading whatever it sends first)."""
    while True:
        try:
            if not sock.recv(4096):
                return True
        except TimeoutError:
            return False


def test_a_client_silent_past_its_keepalive_is_closed(target: EmbeddedTarget) -> None:
    device = new_device(target)
    before = _metric(target, 'fleetbench_mqtt_sessions_closed_total{reason="keepalive"}')
    with raw_session(target.mqtt_port, device.id, client_token(target, device), 1) as sock:
        assert _closed_by_server(sock)  # after 1.5 s without a packet; WAIT_S is 10 s
    assert _metric(target, 'fleetbench_mqtt_sessions_closed_total{reason="keepalive"}') == (
        before + 1
    )


def test_a_device_revoked_while_connected_is_closed_at_its_next_reading(
    target: EmbeddedTarget,
) -> None:
    registered = new_device(target)
    device = Device(target, registered.id, client_token(target, registered))
    try:
        assert device.connect() == ACCEPTED
        first = device.publish_reading(1)
        first.wait_for_publish(10)
        revoked = requests.post(
            f"{target.url}/admin/devices/{registered.id}/revoke",
            headers=admin_headers(target),
            timeout=10,
        )
        assert revoked.status_code == 200
        device.publish_reading(2)
        assert device.disconnected.wait(10)
    finally:
        device.close()
    assert _received(target, registered.id) == 1


def test_a_quiet_device_revoked_while_connected_is_closed_within_a_second_or_so(
    target: EmbeddedTarget,
) -> None:
    registered = new_device(target)
    device = Device(target, registered.id, client_token(target, registered))
    before = _metric(target, 'fleetbench_mqtt_sessions_closed_total{reason="revoked"}')
    try:
        assert device.connect() == ACCEPTED
        revoked = requests.post(
            f"{target.url}/admin/devices/{registered.id}/revoke",
            headers=admin_headers(target),
            timeout=10,
        )
        assert revoked.status_code == 200
        assert device.disconnected.wait(WAIT_S)  # it sends nothing: the broker's sweep found it
    finally:
        device.close()
    assert _metric(target, 'fleetbench_mqtt_sessions_closed_total{reason="revoked"}') == before + 1


def test_a_flood_of_readings_is_all_acknowledged_while_http_keeps_answering(
    target: EmbeddedTarget,
) -> None:
    device = new_device(target)
    topic = f"devices/{device.id}/telemetry"
    flood = b"".join(
        publish_packet(topic, json.dumps({"seq": seq, "ts": 0}).encode(), seq % 65535 + 1)
        for seq in range(FLOOD)
    )
    healthz: list[int] = []
    with raw_session(target.mqtt_port, device.id, client_token(target, device)) as sock:
        sender = threading.Thread(target=sock.sendall, args=(flood,))
        sender.start()  # all at once, never waiting for a PUBACK
        deadline = time.monotonic() + 60
        acks = b""
        while len(acks) < 4 * FLOOD and time.monotonic() < deadline:
            healthz.append(requests.get(f"{target.url}/healthz", timeout=WAIT_S).status_code)
            sock.settimeout(0.05)
            try:
                while len(acks) < 4 * FLOOD:
                    chunk = sock.recv(65536)
                    assert chunk, "closed during the flood"
                    acks += chunk
            except TimeoutError:
                pass
        sender.join()
    assert len(acks) == 4 * FLOOD and set(acks[::4]) == {0x40}  # PUBACKs, one per reading
    assert healthz and set(healthz) == {200}
    assert _received(target, device.id) == FLOOD


def test_a_client_that_stops_reading_is_cut_off(target: EmbeddedTarget) -> None:
    """It echoes big messages to itself through its own subscription and reads none of them:
    the broker's writes back up, and after 1.5 keepalives it is cut off, not held."""
    device = new_device(target)
    topic = f"devices/{device.id}/echo"
    before = _metric(target, 'fleetbench_mqtt_sessions_closed_total{reason="not_reading"}')
    with raw_session(target.mqtt_port, device.id, client_token(target, device), 2) as sock:
        sock.sendall(bytes(SubscribePacket.build([(topic, 0)], 1).to_bytes()))
        echo = publish_packet(topic, b"x" * 30_000, 0, qos=0)
        sock.settimeout(0.5)
        cut_off = False
        deadline = time.monotonic() + 30
        while not cut_off and time.monotonic() < deadline:
            try:
                sock.sendall(echo)  # traffic from it: its keepalive is met
            except TimeoutError:
                continue  # the broker stopped reading us for now
            except OSError:
                cut_off = True
    assert cut_off
    assert _metric(target, 'fleetbench_mqtt_sessions_closed_total{reason="not_reading"}') == (
        before + 1
    )


def _connect_per_reading(
    port: int, device_id: str, token: str, deadline: float, cut_off: list[str]
) -> None:
    """CONNECT, one reading at QoS 1 and its PUBACK, DISCONNECT, at once again: a device that
    connects per reading, until ``deadline`` (and at most 500 times). A session the broker
    ended before its PUBACK is noted in ``cut_off``."""
    topic = f"devices/{device_id}/telemetry"
    for seq in range(1, 501):
        if time.monotonic() >= deadline:
            return
        try:
            with raw_session(port, device_id, token) as sock:
                reading = json.dumps({"seq": seq, "ts": 0}).encode()
                sock.sendall(publish_packet(topic, reading, 1))
                puback = b""
                while len(puback) < 4:
                    chunk = sock.recv(4 - len(puback))
                    assert chunk, "closed before PUBACK"
                    puback += chunk
                sock.sendall(b"\xe0\x00")  # DISCONNECT
        except (AssertionError, OSError) as e:
            cut_off.append(f"{device_id} reading {seq}: {e}")


def test_devices_that_connect_per_reading_keep_each_new_session(target: EmbeddedTarget) -> None:
    """amqtt's session monitor cleaned up, one by one and awaiting each, the clean sessions it
    had found disconnected: one whose device had connected again meanwhile (the same client
    id) lost its new session under it. On the code before the fix, 40 such devices for 4 s
    were cut off in each of 3 runs (a fleet run of them: 1 to 10 broker closes in 2 of 3)."""
    devices = [new_device(target) for _ in range(PER_READING_DEVICES)]
    tokens = [client_token(target, device) for device in devices]
    cut_off: list[str] = []
    deadline = time.monotonic() + 4.0
    threads = [
        threading.Thread(
            target=_connect_per_reading,
            args=(target.mqtt_port, device.id, token, deadline, cut_off),
        )
        for device, token in zip(devices, tokens, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not cut_off, cut_off[:5]
    assert sum(_received(target, device.id) for device in devices) > 2 * PER_READING_DEVICES
