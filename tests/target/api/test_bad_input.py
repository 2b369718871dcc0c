"""Bad client input: each gets the right 4xx with a reason and changes nothing; garbage sent to
every route never gets a 5xx, and the server keeps answering."""

from __future__ import annotations

import json
import random
import socket
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from sim.run.embedded import EmbeddedTarget
from target.api.openapi import openapi_schema
from tests.target.helpers import (
    JWT_BEARER,
    TIMEOUT_S,
    Device,
    admin_headers,
    assert_refused,
    bearer,
    client_token,
    device_assertion,
    forge,
    new_device,
    request_token,
    server_key,
)

ADMIN_CAP = 8 * 1024 * 1024
READING_CAP = 16 * 1024
FORM_CAP = 16 * 1024
SEED = 20261127
STRONG_SECRET = "kq3V9x-Lm2Pz7RtB_wY4nE8cJ0hG"  # random-looking, so only the case's fault counts


@dataclass
class Fleet:
    """A target of this module's own (so its database holds only what these tests did)."""

    target: EmbeddedTarget
    device: Device
    token: str
    other: Device


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with EmbeddedTarget("ES256") as target:
        device = new_device(target, key_alg="ES256")
        other = new_device(target)
        yield Fleet(target, device, client_token(target, device), other)


def _snapshot(target: EmbeddedTarget) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, after this worker's pending telemetry is written."""
    requests.get(f"{target.url}/admin/stats", headers=admin_headers(target), timeout=TIMEOUT_S)
    with sqlite3.connect(target.db) as conn:
        tables = [
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        snapshot = {t: sorted(conn.execute(f"SELECT * FROM {t}")) for t in tables}
    conn.close()
    return snapshot


def _chunks(size: int, chunk: bytes = b" " * 65536) -> Iterator[bytes]:
    """A body sent with chunked transfer encoding, so no Content-Length warns the server."""
    sent = 0
    while sent < size:
        yield chunk[: size - sent]
        sent += len(chunk)


@dataclass(frozen=True)
class Bad:
    """One bad request and the answer it must get."""

    name: str
    method: str
    path: str  # "{device}" and "{other}" stand for the fleet's device ids
    status: int
    error: str
    auth: str = "admin"  # admin, device, none, or a literal Authorization value
    body: Any = None  # bytes, a dict for JSON, or a generator for a chunked body
    content_type: str | None = "application/json"
    form: dict[str, str] | None = None


def _oversized_devices() -> bytes:
    entry = {"id": "big", "secret": "s" * 500}  # refused for its size before any check
    body = json.dumps({"devices": [entry] * (ADMIN_CAP // 520 + 10)}).encode()
    assert len(body) > ADMIN_CAP
    return body


def _nested(depth: int) -> bytes:
    return b'{"devices": ' + b"[" * depth + b"]" * depth + b"}"


BAD_REQUESTS = [
    # Admin registration: JSON only, 8 MiB at most, well-formed.
    Bad("admin-not-json", "POST", "/admin/devices", 400, "invalid_json", body=b'{"devices": ['),
    Bad("admin-not-utf8", "POST", "/admin/devices", 400, "invalid_json", body=b'{"\xff": 1}'),
    Bad("admin-empty-body", "POST", "/admin/devices", 400, "invalid_json", body=b""),
    Bad("admin-deeply-nested", "POST", "/admin/devices", 400, "invalid_json",
        body=_nested(100_000)),
    Bad("admin-huge-integer", "POST", "/admin/devices", 400, "invalid_json",
        body=b'{"devices": ' + b"1" * 5000 + b"}"),
    Bad("admin-text-plain", "POST", "/admin/devices", 415, "unsupported_media_type",
        body=b'{"devices": []}', content_type="text/plain"),
    Bad("admin-no-content-type", "POST", "/admin/devices", 415, "unsupported_media_type",
        body=b'{"devices": []}', content_type=None),
    Bad("admin-form", "POST", "/admin/devices", 415, "unsupported_media_type",
        body=b"devices=x", content_type="application/x-www-form-urlencoded"),
    Bad("admin-over-8-MiB", "POST", "/admin/devices", 413, "payload_too_large",
        body=_oversized_devices()),
    Bad("admin-over-8-MiB-chunked", "POST", "/admin/devices", 413, "payload_too_large",
        body=lambda: _chunks(ADMIN_CAP + 1)),
    Bad("admin-duplicate-registration", "POST", "/admin/devices", 409, "conflict",
        body={"devices": [{"id": "{device}", "secret": STRONG_SECRET}]}),
    Bad("admin-wrong-key", "POST", "/admin/devices", 401, "unauthorized",
        auth="Bearer not-the-admin-key-0123456789",
        body={"devices": [{"id": "by-wrong-key", "secret": STRONG_SECRET}]}),
    Bad("admin-no-key", "POST", "/admin/devices", 401, "unauthorized", auth="none",
        body={"devices": [{"id": "by-no-key", "secret": STRONG_SECRET}]}),
    Bad("admin-device-token", "POST", "/admin/keys/rotate", 401, "unauthorized", auth="device"),
    Bad("unknown-device-get", "GET", "/admin/devices/no-such-device", 404, "not_found"),
    Bad("unknown-device-revoke", "POST", "/admin/devices/no-such-device/revoke", 404, "not_found"),
    Bad("unknown-device-delete", "DELETE", "/admin/devices/no-such-device", 404, "not_found"),
    # Telemetry: JSON only, 16 KiB at most.
    Bad("reading-not-json", "POST", "/devices/{device}/telemetry", 400, "invalid_json",
        auth="device", body=b"seq=1"),
    Bad("reading-text-plain", "POST", "/devices/{device}/telemetry", 415,
        "unsupported_media_type", auth="device", body=b'{"seq": 1, "ts": 1}',
        content_type="text/plain"),
    Bad("reading-over-16-KiB", "POST", "/devices/{device}/telemetry", 413, "payload_too_large",
        auth="device", body={"seq": 1, "ts": 1, "values": {"s": "x" * READING_CAP}}),
    Bad("reading-over-16-KiB-chunked", "POST", "/devices/{device}/telemetry", 413,
        "payload_too_large", auth="device", body=lambda: _chunks(READING_CAP + 1)),
    Bad("reading-for-another-device", "POST", "/devices/{other}/telemetry", 403,
        "insufficient_scope", auth="device", body={"seq": 1, "ts": 1}),
    # The token endpoint: RFC 6749 errors, form bodies of 16 KiB at most.
    Bad("token-json-body", "POST", "/auth/token", 400, "invalid_request", auth="none",
        body={"grant_type": "client_credentials"}),
    Bad("token-over-16-KiB", "POST", "/auth/token", 413, "invalid_request", auth="none",
        body=b"grant_type=client_credentials&pad=" + b"x" * FORM_CAP,
        content_type="application/x-www-form-urlencoded"),
    Bad("token-over-16-KiB-chunked", "POST", "/auth/token", 413, "invalid_request", auth="none",
        body=lambda: _chunks(FORM_CAP + 1, b"a" * 4096),
        content_type="application/x-www-form-urlencoded"),
    Bad("token-repeated-parameter", "POST", "/auth/token", 400, "invalid_request", auth="none",
        body=b"grant_type=client_credentials&grant_type=client_credentials",
        content_type="application/x-www-form-urlencoded"),
    Bad("token-not-utf8", "POST", "/auth/token", 400, "invalid_request", auth="none",
        body=b"grant_type=\xff\xfe", content_type="application/x-www-form-urlencoded"),
    Bad("token-not-a-form", "POST", "/auth/token", 400, "invalid_request", auth="none",
        body=b"grant_type", content_type="application/x-www-form-urlencoded"),
    Bad("token-grant-missing", "POST", "/auth/token", 400, "invalid_request", auth="none",
        form={"client_id": "{device}"}),
    Bad("token-grant-unknown", "POST", "/auth/token", 400, "unsupported_grant_type", auth="none",
        form={"grant_type": "refresh_token", "refresh_token": "x"}),
    Bad("token-assertion-missing", "POST", "/auth/token", 400, "invalid_request", auth="none",
        form={"grant_type": JWT_BEARER}),
    Bad("token-assertion-garbage", "POST", "/auth/token", 400, "invalid_grant", auth="none",
        form={"grant_type": JWT_BEARER, "assertion": "e30.e30.e30"}),
    Bad("token-wrong-secret", "POST", "/auth/token", 401, "invalid_client", auth="none",
        form={"grant_type": "client_credentials", "client_id": "{device}",
              "client_secret": "not-the-secret-0123456789"}),
]  # fmt: skip


def _send(fleet: Fleet, bad: Bad) -> requests.Response:
    def fill(text: str) -> str:
        return text.replace("{device}", fleet.device.id).replace("{other}", fleet.other.id)

    headers: dict[str, str] = {}
    if bad.auth == "admin":
        headers.update(admin_headers(fleet.target))
    elif bad.auth == "device":
        headers.update(bearer(fleet.token))
    elif bad.auth != "none":
        headers["Authorization"] = bad.auth
    if bad.form is not None:
        form = {name: fill(value) for name, value in bad.form.items()}
        return requests.post(
            f"{fleet.target.url}{bad.path}", data=form, headers=headers, timeout=TIMEOUT_S
        )
    body = bad.body
    if isinstance(body, dict):
        body = fill(json.dumps(body)).encode()
    elif callable(body):
        body = body()
    if bad.content_type is not None:
        headers["Content-Type"] = bad.content_type
    return requests.request(
        bad.method,
        f"{fleet.target.url}{fill(bad.path)}",
        data=body,
        headers=headers,
        timeout=TIMEOUT_S,
    )


@pytest.mark.parametrize("bad", BAD_REQUESTS, ids=[bad.name for bad in BAD_REQUESTS])
def test_bad_request_gets_its_4xx_with_a_reason_and_changes_nothing(fleet: Fleet, bad: Bad) -> None:
    before = _snapshot(fleet.target)
    response = _send(fleet, bad)
    assert response.status_code == bad.status, response.text[:300]
    body = response.json()
    assert body["error"] == bad.error
    assert isinstance(body["error_description"], str) and body["error_description"]
    if bad.path == "/auth/token":
        assert response.headers["Cache-Control"] == "no-store"
    assert _snapshot(fleet.target) == before
    assert requests.get(f"{fleet.target.url}/healthz", timeout=TIMEOUT_S).status_code == 200


def test_the_fleets_own_requests_do_change_the_database(fleet: Fleet) -> None:
    """The snapshot comparison above can see a change: a good reading is one."""
    before = _snapshot(fleet.target)
    response = requests.post(
        f"{fleet.target.url}/devices/{fleet.device.id}/telemetry",
        json={"seq": 1, "ts": time.time()},
        headers=bearer(fleet.token),
        timeout=TIMEOUT_S,
    )
    assert response.status_code == 202
    assert _snapshot(fleet.target) != before


# ---- garbage to every route ---------------------------------------------------------------------

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD")
CONTENT_TYPES = (
    None,
    "application/json",
    "application/x-www-form-urlencoded",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/json; charset=utf-16",
    "\u00e9/\u00e9",
)


def _paths(device_id: str) -> list[str]:
    """Every documented path, with real, unknown and hostile device ids in it."""
    ids = [device_id, "no-such-device", "%00", "%ff%fe", "..%2f..%2fetc%2fpasswd", "a" * 3000]
    paths: list[str] = []
    for path in openapi_schema()["paths"]:
        if "{device_id}" in path:
            paths.extend(path.replace("{device_id}", i) for i in ids)
        else:
            paths.append(path)
    return paths


def _garbage_headers(rng: random.Random, fleet: Fleet) -> dict[str, str]:
    token = fleet.token
    choice = rng.randrange(8)
    if choice == 0:
        return {"Authorization": "Bearer " + token[: rng.randrange(len(token))]}
    if choice == 1:
        return {"Authorization": "Bearer " + fleet.target.admin_key[: rng.randrange(43)]}
    if choice == 2:
        return {"Authorization": "Bearer " + "A" * 60_000}
    if choice == 3:
        return {"X-Padding": "p" * 60_000}
    if choice == 4:
        cut = rng.randrange(len(token))
        return {"Authorization": f"Bearer {token[:cut]}{chr(rng.randrange(33, 127))}{token[cut:]}"}
    if choice == 5:
        return {"Authorization": "Basic " + "".join(chr(rng.randrange(33, 256)) for _ in range(40))}
    if choice == 6:
        return {"Authorization": "".join(chr(rng.randrange(32, 256)) for _ in range(80))}
    return {}


def test_garbage_to_every_route_never_gets_a_5xx(fleet: Fleet) -> None:
    rng = random.Random(SEED)
    failures = []
    sent = 0
    paths = _paths(fleet.device.id)
    for path in paths:
        for method in METHODS:
            for _ in range(2):
                headers = _garbage_headers(rng, fleet)
                content_type = rng.choice(CONTENT_TYPES)
                if content_type is not None:
                    headers["Content-Type"] = content_type
                body = rng.randbytes(rng.choice((0, 1, 17, 1024, 20_000)))
                encoded = {k: v.encode("latin-1") for k, v in headers.items()}
                response = requests.request(
                    method,
                    f"{fleet.target.url}{path}",
                    data=body,
                    headers=encoded,
                    timeout=TIMEOUT_S,
                )
                sent += 1
                if response.status_code >= 500:
                    failures.append((method, path[:60], response.status_code, response.text[:200]))
    assert sent == len(paths) * len(METHODS) * 2
    assert not failures, failures
    assert requests.get(f"{fleet.target.url}/healthz", timeout=TIMEOUT_S).status_code == 200
    # And it still serves a device properly.
    assert requests.get(
        f"{fleet.target.url}/api/data", headers=bearer(fleet.token), timeout=TIMEOUT_S
    ).json() == {"device_id": fleet.device.id, "data": "ok"}


def test_random_form_bodies_to_the_token_endpoint_never_get_a_5xx(fleet: Fleet) -> None:
    rng = random.Random(SEED + 1)
    words = [
        "grant_type",
        "client_credentials",
        JWT_BEARER,
        "assertion",
        "client_id",
        "client_secret",
        "scope",
        fleet.device.id,
        fleet.token,
        "=",
        "&",
        "%",
        "%zz",
        "+",
    ]
    for _ in range(300):
        body = "".join(rng.choice(words) for _ in range(rng.randrange(1, 12)))
        response = requests.post(
            f"{fleet.target.url}/auth/token",
            data=body.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=TIMEOUT_S,
        )
        assert response.status_code < 500, (body, response.text)
        assert response.status_code == 200 or response.json()["error"]


def test_non_http_bytes_on_the_socket_do_not_stop_the_server(fleet: Fleet) -> None:
    rng = random.Random(SEED + 2)
    host, port = "127.0.0.1", fleet.target.port
    for payload in (
        rng.randbytes(4096),
        b"GET / HTTP/9.9\r\n\r\n",
        b"\x16\x03\x01\x02\x00" * 50,
        b"POST /auth/token HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    ):
        with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            try:
                answer = sock.recv(4096)
            except OSError:
                answer = b""
        assert not answer.startswith(b"HTTP/1.1 5"), answer[:100]
    assert requests.get(f"{fleet.target.url}/healthz", timeout=TIMEOUT_S).status_code == 200


LONE_SURROGATE = "\ud800"  # json.dumps writes it as the escape "\ud800", as an attacker would


def test_a_lone_surrogate_anywhere_in_client_json_is_a_4xx(fleet: Fleet) -> None:
    """Issue 10 item 4: a JSON string holding a lone surrogate reached sqlite3, which raised
    UnicodeEncodeError: a 500 with a traceback in the log."""
    target, device = fleet.target, fleet.device
    cases: list[dict[str, Any]] = [
        {"iss": LONE_SURROGATE, "sub": LONE_SURROGATE},
        {"jti": LONE_SURROGATE},
        {"jti": "a" + LONE_SURROGATE + "b"},
    ]
    for claims in cases:
        response = request_token(
            target, {"grant_type": JWT_BEARER, "assertion": device_assertion(device, **claims)}
        )
        assert response.status_code == 400, (claims, response.text)
        assert response.json()["error"] == "invalid_grant"
    registration = requests.post(
        f"{target.url}/admin/devices",
        json={"devices": [{"id": "surrogate-1", "secret": LONE_SURROGATE * 32}]},
        headers=admin_headers(target),
        timeout=TIMEOUT_S,
    )
    assert registration.status_code == 400, registration.text
    reading = requests.post(
        f"{target.url}/devices/{device.id}/telemetry",
        json={"seq": 1, "ts": time.time(), "values": {"note": LONE_SURROGATE}},
        headers=bearer(fleet.token),
        timeout=TIMEOUT_S,
    )
    assert reading.status_code == 400, reading.text
    forged = forge(server_key(target), LONE_SURROGATE, reg=1)
    assert_refused(
        requests.get(f"{target.url}/api/data", headers=bearer(forged), timeout=TIMEOUT_S),
        "malformed",
    )
    assert requests.get(f"{target.url}/healthz", timeout=TIMEOUT_S).status_code == 200
