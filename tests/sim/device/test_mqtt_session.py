"""One device's MQTT session (paho driven by hand) against the embedded target's real broker."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator

import pytest

from sim.device.mqtt_session import MqttSession
from sim.profiles.mqtt_settings import MqttSettings
from sim.run.embedded import EmbeddedTarget

pytestmark = pytest.mark.slow  # each test talks to a real broker in a child process

TOKEN_TTL_S = 2
LEEWAY_S = 1


@pytest.fixture(scope="module")
def target() -> Iterator[EmbeddedTarget]:
    with EmbeddedTarget("HS256", mqtt=True, token_ttl=TOKEN_TTL_S, leeway=LEEWAY_S) as started:
        yield started


def _device(target: EmbeddedTarget) -> tuple[MqttSession, str, str]:
    device_id = f"dev-{secrets.token_hex(4)}"
    token = target.device_token(device_id, secrets.token_urlsafe(24))
    session = MqttSession(MqttSettings(port=target.mqtt_port), {"device_id": device_id, "n": 0})
    return session, device_id, token


def _reading(seq: int) -> bytes:
    return json.dumps({"seq": seq, "ts": time.time(), "values": {"temp_c": 20.0}}).encode()


def test_a_session_past_descriptor_1024_connects_and_publishes(target: EmbeddedTarget) -> None:
    """A fleet holds thousands of sockets: a session whose descriptor is above select()'s 1024
    still waits for its CONNACK and PUBACK (it raised ValueError in the device's on_start)."""
    spare: list[int] = []
    try:
        while not spare or spare[-1] < 1100:
            spare.append(os.dup(0))
        session, device_id, token = _device(target)
        assert session.connect(token, 10) == 0
        assert session.client.socket().fileno() > 1024  # type: ignore[union-attr]
        mid = session.publish(f"devices/{device_id}/telemetry", _reading(1), 10)
        assert session.acknowledged(mid)
        session.close()
        assert not session.lost()  # the device's own close is no loss
    finally:
        for fd in spare:
            os.close(fd)


def test_the_broker_closes_at_expiry_and_the_session_says_why(target: EmbeddedTarget) -> None:
    session, _, token = _device(target)
    exp = time.time() + TOKEN_TTL_S
    assert session.connect(token, 10) == 0
    # Wait on the socket as a device does between readings, past exp + leeway.
    session.pump(lambda: not session.connected, TOKEN_TTL_S + LEEWAY_S + 5)
    assert not session.alive()
    assert session.lost()
    assert session.close_cause(exp, time.time(), 2.0) == "expiry_close"
    session.forget_loss()
    assert not session.lost()


def test_an_expired_token_is_refused_with_its_connack_code(target: EmbeddedTarget) -> None:
    session, _, token = _device(target)
    time.sleep(TOKEN_TTL_S + LEEWAY_S + 0.5)
    code = session.connect(token, 10)
    assert code == 4  # bad user name or password (MQTT 3.1.1), as the broker sent it
    assert session.settings.status(code) == 401
    assert not session.connected and not session.lost()


def test_a_reading_cut_off_by_a_close_is_sent_again_after_the_reconnect(
    target: EmbeddedTarget,
) -> None:
    """paho keeps a QoS 1 reading that had no PUBACK and sends it again after the next CONNACK
    (the account counts it once: a duplicate on the target at most, never a loss)."""
    session, device_id, token = _device(target)
    assert session.connect(token, 10) == 0
    session.client._sock_close()  # the network drops under the device, before it publishes
    session.connected = False
    mid = session.publish(f"devices/{device_id}/telemetry", _reading(1), 10)
    assert not session.acknowledged(mid)  # no session: paho holds it
    assert session.connect(token, 10) == 0  # the same client: the reading goes again
    session.pump(lambda: session.acknowledged(mid), 10)
    assert session.acknowledged(mid)
    session.close()
