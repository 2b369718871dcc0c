"""The broker closes a session when its token expires (exp + leeway), as Cloud IoT Core did."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from sim.run.embedded import EmbeddedTarget
from tests.target.helpers import claims_of, client_token, new_device
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
