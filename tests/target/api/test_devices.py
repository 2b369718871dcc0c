"""Resource endpoints a device calls with its access token: scope and device binding (403s)."""

from __future__ import annotations

import pytest
import requests

from tests.target.conftest import SharedTarget
from tests.target.helpers import (
    ALGS,
    TIMEOUT_S,
    bearer,
    challenge_params,
    client_token,
    get,
    new_device,
    send_reading,
)


def _assert_insufficient_scope(response: requests.Response, scope: str | None) -> None:
    assert response.status_code == 403, response.text
    params = challenge_params(response)
    assert params["realm"] == "fleetbench"
    assert params["error"] == "insufficient_scope"
    if scope is not None:
        assert params["scope"] == scope
    assert response.json()["error"] == "insufficient_scope"


@pytest.mark.parametrize("alg", ALGS)
def test_a_device_sends_telemetry_and_reads_its_config(
    shared_target: SharedTarget, alg: str
) -> None:
    target = shared_target(alg)
    device = new_device(target)
    token = client_token(target, device)
    response = send_reading(target, device.id, token, seq=7)
    assert response.status_code == 202
    assert response.json() == {"seq": 7}
    config = get(target, f"/devices/{device.id}/config", token)
    assert config.status_code == 200
    assert config.json()["device_id"] == device.id
    data = get(target, "/api/data", token)
    assert data.json() == {"device_id": device.id, "data": "ok"}


def test_another_devices_path_is_403_insufficient_scope(shared_target: SharedTarget) -> None:
    target = shared_target("ES256")
    device, other = new_device(target), new_device(target)
    token = client_token(target, device)
    _assert_insufficient_scope(send_reading(target, other.id, token, seq=1), "telemetry:write")
    _assert_insufficient_scope(get(target, f"/devices/{other.id}/config", token), "config:read")
    # Even a device id that does not exist is a 403 for this token, not a 404 that leaks existence.
    _assert_insufficient_scope(get(target, "/devices/no-such-device/config", token), "config:read")


def test_a_telemetry_only_device_is_refused_its_config(shared_target: SharedTarget) -> None:
    target = shared_target("ES256")
    device = new_device(target, scope="telemetry:write")
    token = client_token(target, device)
    assert send_reading(target, device.id, token, seq=1).status_code == 202
    _assert_insufficient_scope(get(target, f"/devices/{device.id}/config", token), "config:read")
    assert get(target, "/api/data", token).status_code == 200  # any valid token will do here


def test_a_config_only_device_may_not_send_telemetry(shared_target: SharedTarget) -> None:
    target = shared_target("EdDSA")
    device = new_device(target, scope="config:read")
    token = client_token(target, device)
    assert get(target, f"/devices/{device.id}/config", token).status_code == 200
    _assert_insufficient_scope(send_reading(target, device.id, token, seq=1), "telemetry:write")


def test_reading_values_may_be_any_short_scalars(shared_target: SharedTarget) -> None:
    target = shared_target("HS256")
    device = new_device(target)
    token = client_token(target, device)
    values = {"temp_c": 21.5, "count": 3, "ok": True, "mode": "eco", "missing": None}
    for body in (
        {"seq": 1, "ts": 1.5, "values": values},
        {"seq": 2, "ts": 0},
        {"seq": 0, "ts": -1},
    ):
        response = requests.post(
            f"{target.url}/devices/{device.id}/telemetry",
            json=body,
            headers=bearer(token),
            timeout=TIMEOUT_S,
        )
        assert response.status_code == 202, (body, response.text)


INVALID_READINGS: list[tuple[str, object]] = [
    ("array", [1, 2]),
    ("seq-missing", {"ts": 1}),
    ("seq-string", {"seq": "1", "ts": 1}),
    ("seq-bool", {"seq": True, "ts": 1}),
    ("seq-float", {"seq": 1.5, "ts": 1}),
    ("seq-negative", {"seq": -1, "ts": 1}),
    ("seq-too-big", {"seq": 2**63, "ts": 1}),
    ("ts-missing", {"seq": 1}),
    ("ts-string", {"seq": 1, "ts": "now"}),
    ("ts-bool", {"seq": 1, "ts": False}),
    ("values-array", {"seq": 1, "ts": 1, "values": [1]}),
    ("values-nested", {"seq": 1, "ts": 1, "values": {"nested": {"a": 1}}}),
    ("values-list", {"seq": 1, "ts": 1, "values": {"list": [1]}}),
    ("values-too-many", {"seq": 1, "ts": 1, "values": {f"v{i}": i for i in range(65)}}),
    ("value-name-too-long", {"seq": 1, "ts": 1, "values": {"n" * 65: 1}}),
    ("value-string-too-long", {"seq": 1, "ts": 1, "values": {"s": "x" * 257}}),
]


@pytest.mark.parametrize(
    "body", [v for _, v in INVALID_READINGS], ids=[i for i, _ in INVALID_READINGS]
)
def test_an_invalid_reading_is_422(shared_target: SharedTarget, body: object) -> None:
    target = shared_target("HS256")
    device = new_device(target)
    token = client_token(target, device)
    response = requests.post(
        f"{target.url}/devices/{device.id}/telemetry",
        json=body,
        headers=bearer(token),
        timeout=TIMEOUT_S,
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_reading"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_timestamp_is_422(shared_target: SharedTarget, literal: str) -> None:
    """Python's JSON parser accepts these non-standard literals; the reading check must not."""
    target = shared_target("HS256")
    device = new_device(target)
    token = client_token(target, device)
    response = requests.post(
        f"{target.url}/devices/{device.id}/telemetry",
        data=f'{{"seq": 1, "ts": {literal}}}',
        headers={**bearer(token), "Content-Type": "application/json"},
        timeout=TIMEOUT_S,
    )
    assert response.status_code == 422
