"""The broker closes a session when its token expires (exp + leeway), as Cloud IoT Core did."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
import requests

from sim.run.embedded import EmbeddedTarget
from tests.target.helpers import admin_headers, claims_of, client_token, new_device
from tests.target.mqtt.clients import ACCEPTED, BAD_CREDENTIALS, Device, connack_of

pytestmark = pytest.mark.slow

TOKEN_TTL_S = 2


@pytest.fixture(scope="module")
def short_lived() -> Iterator[EmbeddedTarget]:
    started = EmbeddedTarget("ES256", mqtt=True, token_ttl=TOKEN_TTL_S, leeway=0).start()
    yield started
    started.stop()


def test_a_session_is_closed_at_its_tokens_expiry_and_counted(short_lived: EmbeddedTarget) -> None:
    registered = new_device(short_lived)
    token = client_token(short_lived, registered)
    device = Device(short_lived, registered.id, token)
    try:
        assert device.connect() == ACCEPTED
        assert device.disconnected.wait(TOKEN_TTL_S + 10)
    finally:
        device.close()
    metrics = requests.get(f"{short_lived.url}/metrics", timeout=10).text
    assert 'fleetbench_mqtt_sessions_closed_total{reason="token_expired"} 1.0' in metrics
    # The expired token is refused now; a renewed one connects.
    assert connack_of(short_lived, registered.id, token) == BAD_CREDENTIALS
    renewed = client_token(short_lived, registered)
    assert claims_of(renewed)["exp"] > claims_of(token)["exp"]
    assert connack_of(short_lived, registered.id, renewed) == ACCEPTED


def test_a_reading_sent_past_expiry_is_refused_even_if_the_timer_is_late(
    short_lived: EmbeddedTarget,
) -> None:
    """The broker is frozen (SIGSTOP) across exp, so its timer is late, as in a reconnect storm;
    the reading and SUBSCRIBE waiting in its socket get no PUBACK, no SUBACK, no store."""
    registered = new_device(short_lived)
    token = client_token(short_lived, registered)
    exp = float(claims_of(token)["exp"])
    closed_before = _closed_for_expiry(short_lived)
    pid = short_lived.pid
    assert pid is not None
    device = Device(short_lived, registered.id, token)
    try:
        assert device.connect() == ACCEPTED
        device.publish_reading(1).wait_for_publish(10)
        time.sleep(max(0.0, exp - 0.5 - time.time()))
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(max(0.0, exp + 1.0 - time.time()))
            late = device.publish_reading(2)
            # Another own topic is held to the same rule as the telemetry one.
            other = device.client.publish(f"devices/{registered.id}/events", b"{}", qos=1)
            device.client.subscribe(f"devices/{registered.id}/commands", qos=1)
            time.sleep(0.3)  # in the broker's socket before it runs again
        finally:
            os.kill(pid, signal.SIGCONT)
        assert device.disconnected.wait(10)
        assert not late.is_published()
        assert not other.is_published()
        assert not device.subscribed.is_set()  # no SUBACK on the expired session
    finally:
        device.close()
    stats = requests.get(
        f"{short_lived.url}/admin/stats", headers=admin_headers(short_lived), timeout=10
    ).json()
    assert stats["devices"][registered.id]["received"] == 1
    # Closed once, for its token's expiry (by the PUBLISH's check or the timer, one rule).
    assert _closed_for_expiry(short_lived) == closed_before + 1


def _closed_for_expiry(target: EmbeddedTarget) -> float:
    metrics = requests.get(f"{target.url}/metrics", timeout=10).text
    name = 'fleetbench_mqtt_sessions_closed_total{reason="token_expired"} '
    return sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(name))
