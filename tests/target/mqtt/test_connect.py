"""CONNECT: the password checked by the HTTP API's verifier, refusals as the right CONNACK."""

from __future__ import annotations

import os
import time

import paho.mqtt.client as mqtt
import pytest
import requests
from paho.mqtt.enums import CallbackAPIVersion

from sim.run.embedded import EmbeddedTarget
from tests.target.helpers import (
    AUDIENCE,
    admin_headers,
    client_token,
    device_assertion,
    forge,
    new_device,
    server_key,
    wait_until,
)
from tests.target.mqtt.clients import (
    ACCEPTED,
    BAD_CREDENTIALS,
    IDENTIFIER_REJECTED,
    NOT_AUTHORISED,
    Device,
    connack_of,
    raw_exchange,
)

pytestmark = pytest.mark.slow


def _metric(target: EmbeddedTarget, line_start: str) -> float:
    text = requests.get(f"{target.url}/metrics", timeout=10).text
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(line_start)]
    return sum(values)


def test_a_good_token_is_accepted_and_its_verify_time_recorded(target: EmbeddedTarget) -> None:
    device = new_device(target)
    before = _metric(target, 'fleetbench_mqtt_verify_seconds_count{alg="ES256"}')
    assert connack_of(target, device.id, client_token(target, device)) == ACCEPTED
    assert _metric(target, 'fleetbench_mqtt_verify_seconds_count{alg="ES256"}') == before + 1
    assert _metric(target, 'fleetbench_mqtt_connects_total{connack="0",result="accepted"}') >= 1


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", "expired"),
        ("bad_signature", "signature"),
        ("other_device", "username"),
        ("not_a_jwt", "malformed"),
    ],
)
def test_bad_credentials_get_connack_4(target: EmbeddedTarget, case: str, reason: str) -> None:
    device, other = new_device(target), new_device(target)
    token = client_token(target, device)
    now = int(time.time())
    password = {
        # Beyond the 10 s leeway.
        "expired": forge(server_key(target), device.id, iat=now - 120, nbf=now - 120, exp=now - 60),
        "bad_signature": token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB"),
        "other_device": client_token(target, other),
        "not_a_jwt": "hunter2",
    }[case]
    label = f'fleetbench_mqtt_connects_total{{connack="4",result="{reason}"}}'
    before = _metric(target, label)
    assert connack_of(target, device.id, password) == BAD_CREDENTIALS
    assert _metric(target, label) == before + 1


def test_a_client_id_other_than_the_device_id_is_rejected(target: EmbeddedTarget) -> None:
    device = new_device(target)
    token = client_token(target, device)
    assert connack_of(target, device.id, token, client_id="someone") == IDENTIFIER_REJECTED


def test_a_revoked_device_is_not_authorised(target: EmbeddedTarget) -> None:
    device = new_device(target)
    token = client_token(target, device)
    revoked = requests.post(
        f"{target.url}/admin/devices/{device.id}/revoke", headers=admin_headers(target), timeout=10
    )
    assert revoked.status_code == 200
    assert connack_of(target, device.id, token) == NOT_AUTHORISED


def test_a_token_without_telemetry_scope_is_not_authorised(target: EmbeddedTarget) -> None:
    device = new_device(target)
    token = client_token(target, device, scope="config:read")
    assert connack_of(target, device.id, token) == NOT_AUTHORISED
    assert _metric(target, 'fleetbench_mqtt_connects_total{connack="5",result="scope"}') >= 1


def test_a_device_signed_jwt_is_accepted_once(target: EmbeddedTarget) -> None:
    device = new_device(target, key_alg="ES256", secret=False)
    assertion = device_assertion(device, aud=AUDIENCE)
    assert connack_of(target, device.id, assertion) == ACCEPTED
    assert connack_of(target, device.id, assertion) == BAD_CREDENTIALS  # its jti is spent
    # One made for the token endpoint (aud = the issuer) is not a CONNECT password.
    assert connack_of(target, device.id, device_assertion(device)) == BAD_CREDENTIALS
    assert connack_of(target, device.id, device_assertion(device, aud=AUDIENCE)) == ACCEPTED


def test_an_mqtt_5_client_is_told_the_version_is_unsupported(target: EmbeddedTarget) -> None:
    device = new_device(target)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, device.id, protocol=mqtt.MQTTv5)
    client.username_pw_set(device.id, client_token(target, device))
    answers: list[str] = []
    client.on_connect = lambda c, u, flags, rc, props: answers.append(rc.getName())
    client.connect("127.0.0.1", target.mqtt_port)
    client.loop_start()
    try:
        assert wait_until(lambda: bool(answers), 10)
    finally:
        client.disconnect()
        client.loop_stop()
    assert answers == ["Unsupported protocol version"]


@pytest.mark.parametrize(
    "garbage",
    [
        os.urandom(64),  # not MQTT at all
        b"\x10\xff\xff\xff\x7f",  # a CONNECT announcing 256 MiB
        b"\x10\x0c\x00\x04MQTT\x04\xc2\x00\x3c\x00\x02\xff\xfe",  # bad UTF-8, then silence
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["random", "huge-connect", "bad-utf8", "http"],  # the same in every pytest-xdist worker
)
def test_garbage_closes_the_socket_and_http_still_answers(
    target: EmbeddedTarget, garbage: bytes
) -> None:
    answer = raw_exchange(target.mqtt_port, garbage)
    assert answer in (b"", b"\x20\x02\x00\x04", b"\x20\x02\x00\x01"), answer
    assert requests.get(f"{target.url}/healthz", timeout=10).status_code == 200
    # The MQTT side still serves too.
    device = new_device(target)
    assert connack_of(target, device.id, client_token(target, device)) == ACCEPTED


def test_a_forged_connect_for_a_connected_device_leaves_its_session_alone(
    target: EmbeddedTarget,
) -> None:
    """amqtt deletes (clean session) or takes over the session of a client id before it asks
    the auth plugins; our CONNECT check comes first, so a forged CONNECT cannot do either."""
    device = new_device(target)
    holder = Device(target, device.id, client_token(target, device))
    try:
        assert holder.connect() == ACCEPTED
        holder.client.subscribe(f"devices/{device.id}/commands", qos=1)
        assert holder.subscribed.wait(10) and holder.granted == [1]
        forged = client_token(target, device)[:-6] + "AAAAAA"
        assert connack_of(target, device.id, forged) == BAD_CREDENTIALS
        assert connack_of(target, device.id, forged, clean_session=False) == BAD_CREDENTIALS
        holder.client.publish(f"devices/{device.id}/commands", b"still here", qos=1)
        assert wait_until(lambda: bool(holder.messages), 10)
        assert holder.messages == [(f"devices/{device.id}/commands", b"still here")]
        assert holder.connected.is_set()
    finally:
        holder.close()


def test_a_device_jwt_may_live_no_longer_than_an_access_token(target: EmbeddedTarget) -> None:
    device = new_device(target, key_alg="ES256", secret=False)
    now = int(time.time())
    too_long = device_assertion(device, aud=AUDIENCE, iat=now, exp=now + 3600 + 60)
    assert connack_of(target, device.id, too_long) == BAD_CREDENTIALS


@pytest.mark.parametrize(
    ("own", "retain", "answer"),
    [(True, False, ACCEPTED), (False, False, NOT_AUTHORISED), (True, True, NOT_AUTHORISED)],
)
def test_a_will_outside_its_own_topics_or_retained_is_not_authorised(
    target: EmbeddedTarget, own: bool, retain: bool, answer: str
) -> None:
    device, other = new_device(target), new_device(target)
    client = Device(target, device.id, client_token(target, device))
    topic = f"devices/{device.id if own else other.id}/status"
    client.client.will_set(topic, b"gone", qos=1, retain=retain)
    try:
        assert client.connect() == answer
    finally:
        client.close()
