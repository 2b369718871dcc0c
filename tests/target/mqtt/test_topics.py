"""Topics: telemetry stored before its PUBACK, counted as HTTP readings are; own topics only."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator

import pytest
import requests

from sim.run.embedded import EmbeddedTarget
from tests.target.helpers import Device as Registered
from tests.target.helpers import admin_headers, client_token, new_device, wait_until
from tests.target.mqtt.clients import ACCEPTED, Device, publish_packet, raw_session

pytestmark = pytest.mark.slow

SUBACK_FAILURE = 0x80


@pytest.fixture
def device(target: EmbeddedTarget) -> Iterator[Device]:
    registered = new_device(target)
    connected = Device(target, registered.id, client_token(target, registered))
    assert connected.connect() == ACCEPTED
    yield connected
    connected.close()


def _stats(target: EmbeddedTarget, device_id: str) -> dict[str, int]:
    body = requests.get(f"{target.url}/admin/stats", headers=admin_headers(target), timeout=10)
    found: dict[str, int] = body.json()["devices"].get(device_id, {})
    return found


def _answer_then_close(target: EmbeddedTarget, registered: Registered, data: bytes) -> bytes:
    """What the broker answers ``data`` sent right after a good CONNECT, up to its close."""
    with raw_session(target.mqtt_port, registered.id, client_token(target, registered)) as sock:
        sock.sendall(data)
        answered = b""
        while chunk := sock.recv(4096):
            answered += chunk
    return answered


def _metric(target: EmbeddedTarget, line_start: str) -> float:
    text = requests.get(f"{target.url}/metrics", timeout=10).text
    return sum(float(x.split()[-1]) for x in text.splitlines() if x.startswith(line_start))


def test_qos1_readings_are_acknowledged_and_counted_like_http_ones(
    target: EmbeddedTarget, device: Device
) -> None:
    sent = [device.publish_reading(seq) for seq in range(1, 6)]
    for info in sent:
        info.wait_for_publish(10)
        assert info.is_published()
    assert _stats(target, device.device_id) | {"last_seq": 0} == {
        "received": 5, "distinct": 5, "duplicates": 0, "gaps": 0, "last_seq": 0, "max_seq": 5,
    }  # fmt: skip


def test_a_reading_is_not_acknowledged_before_it_is_committed(
    target: EmbeddedTarget, device: Device
) -> None:
    """amqtt's own QoS 1 flow PUBACKs on receipt; ours only after ``TelemetryLog.add``."""
    with contextlib.closing(sqlite3.connect(target.db, timeout=10)) as lock:
        lock.execute("BEGIN EXCLUSIVE")  # no commit can happen while we hold it
        info = device.publish_reading(1)
        time.sleep(1.0)
        acknowledged_while_locked = info.is_published()
        lock.rollback()
    assert not acknowledged_while_locked
    info.wait_for_publish(10)
    assert info.is_published()
    assert _stats(target, device.device_id)["received"] == 1


def test_a_qos0_reading_is_stored(target: EmbeddedTarget, device: Device) -> None:
    device.publish_reading(7, qos=0)
    assert wait_until(lambda: _stats(target, device.device_id).get("received") == 1, 10)


def test_publishing_on_another_devices_topic_closes_the_connection(
    target: EmbeddedTarget, device: Device
) -> None:
    other = new_device(target)
    before = _metric(target, 'fleetbench_mqtt_acl_refusals_total{action="publish"}')
    device.publish_reading(1, device_id=other.id)
    assert device.disconnected.wait(10)
    assert _metric(target, 'fleetbench_mqtt_acl_refusals_total{action="publish"}') == before + 1
    assert _stats(target, other.id) == {}


@pytest.mark.parametrize("topic_filter", ["devices/{other}/#", "#", "devices/+/telemetry"])
def test_subscribing_beyond_its_own_topics_gets_0x80(
    target: EmbeddedTarget, device: Device, topic_filter: str
) -> None:
    other = new_device(target)
    before = _metric(target, 'fleetbench_mqtt_acl_refusals_total{action="subscribe"}')
    device.client.subscribe(topic_filter.format(other=other.id), qos=1)
    assert device.subscribed.wait(10)
    assert device.granted == [SUBACK_FAILURE]
    assert _metric(target, 'fleetbench_mqtt_acl_refusals_total{action="subscribe"}') == before + 1
    device.subscribed.clear()
    device.client.subscribe(f"devices/{device.device_id}/#", qos=1)
    assert device.subscribed.wait(10)
    assert device.granted == [1]
    assert device.connected.is_set()


@pytest.mark.parametrize(
    "payload", [b"not json", b'{"seq": -1, "ts": 0}', b'{"seq": 1, "ts": "now"}', b"\xff\xfe"]
)
def test_an_invalid_reading_closes_the_connection_and_is_counted(
    target: EmbeddedTarget, device: Device, payload: bytes
) -> None:
    before = _metric(target, 'fleetbench_mqtt_readings_total{result="invalid"}')
    device.client.publish(f"devices/{device.device_id}/telemetry", payload, qos=1)
    assert device.disconnected.wait(10)
    assert _metric(target, 'fleetbench_mqtt_readings_total{result="invalid"}') == before + 1
    assert _stats(target, device.device_id) == {}


def test_nothing_sent_after_a_refused_publish_is_taken(target: EmbeddedTarget) -> None:
    """A refusal closes the connection; readings already on the wire behind it are not stored
    (nor acknowledged) in the moment before the close takes effect."""
    registered, other = new_device(target), new_device(target)
    reading = json.dumps({"seq": 1, "ts": 0}).encode()
    burst = publish_packet(f"devices/{other.id}/telemetry", reading, 1) + b"".join(
        publish_packet(f"devices/{registered.id}/telemetry", reading, packet_id)
        for packet_id in range(2, 50)
    )
    assert _answer_then_close(target, registered, burst) == b""
    assert _stats(target, registered.id) == {}


def test_a_topic_that_is_not_utf8_closes_the_connection(target: EmbeddedTarget) -> None:
    """MQTT 3.1.1 §1.5.3: ill-formed UTF-8 closes the connection (amqtt hands such a topic on
    as the text ``b'...'``, which is no device's topic)."""
    registered = new_device(target)
    topic = f"devices/{registered.id}/".encode() + b"\xff\xfe"
    body = len(topic).to_bytes(2, "big") + topic + b"\x00\x01" + b'{"seq": 1, "ts": 0}'
    publish = bytes([0x32, len(body)]) + body  # QoS 1, one length byte (< 128)
    assert _answer_then_close(target, registered, publish) == b""
    assert _stats(target, registered.id) == {}
