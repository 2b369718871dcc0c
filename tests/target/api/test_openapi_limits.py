"""The OpenAPI document states the limits the handlers enforce, from the same constants.

Regression: ``target/api/openapi.py`` retyped the id pattern, secret lengths, batch size and reading
bounds of ``registry.py`` and ``devices.py``, so a changed limit left the document wrong.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from sim.run.embedded import EmbeddedTarget
from target.api.openapi import openapi_schema
from target.store.registry import REGISTRATION_MEMBERS
from tests.target.conftest import SharedTarget
from tests.target.helpers import (
    TIMEOUT_S,
    bearer,
    client_token,
    new_device,
    register,
    unique_id,
)

SOURCE = Path(__file__).resolve().parents[3] / "target" / "api" / "openapi.py"
SCHEMAS = openapi_schema()["components"]["schemas"]
NEW_DEVICE = SCHEMAS["NewDevice"]["properties"]
READING = SCHEMAS["Reading"]["properties"]


@pytest.fixture(scope="module")
def target(shared_target: SharedTarget) -> EmbeddedTarget:
    return shared_target("ES256")


def test_no_limit_is_retyped_in_the_document() -> None:
    retyped = re.findall(r"\b(?:24|512|10_?000|64)\b|2\s*\*\*\s*63|\{1,128\}", SOURCE.read_text())
    assert retyped == []


def test_every_registration_member_is_documented() -> None:
    assert list(NEW_DEVICE) == list(REGISTRATION_MEMBERS)


def _secret(length: int) -> str:
    return secrets.token_urlsafe(length)[:length]


def _id(length: int) -> str:
    return (unique_id() + "x" * length)[:length]


def test_documented_id_and_secret_bounds_are_enforced(target: EmbeddedTarget) -> None:
    pattern = NEW_DEVICE["id"]["pattern"]
    longest = int(re.search(r"\{1,(\d+)\}", pattern).group(1))  # type: ignore[union-attr]
    low, high = NEW_DEVICE["secret"]["minLength"], NEW_DEVICE["secret"]["maxLength"]
    for entry in (
        {"id": _id(longest), "secret": _secret(high)},
        {"id": unique_id(), "secret": _secret(low)},
    ):
        assert re.fullmatch(pattern, entry["id"])
        assert register(target, [entry]).status_code == 201, entry["id"]
    for entry in (
        {"id": _id(longest + 1), "secret": _secret(high)},
        {"id": unique_id(), "secret": _secret(high + 1)},
        {"id": unique_id(), "secret": _secret(low - 1)},
    ):
        response = register(target, [entry])
        assert response.status_code == 422 and response.json()["index"] == 0


def test_documented_batch_size_is_enforced(target: EmbeddedTarget) -> None:
    body = openapi_schema()["paths"]["/admin/devices"]["post"]["requestBody"]
    items = body["content"]["application/json"]["schema"]["properties"]["devices"]
    too_many = [{"id": f"batch-{i}"} for i in range(items["maxItems"] + 1)]
    response = register(target, too_many)
    assert response.status_code == 400
    assert str(items["maxItems"]) in response.json()["error_description"]


def _reading(target: EmbeddedTarget, device_id: str, token: str, **body: Any) -> int:
    return requests.post(
        f"{target.url}/devices/{device_id}/telemetry",
        json={"ts": time.time(), **body},
        headers=bearer(token),
        timeout=TIMEOUT_S,
    ).status_code


def test_documented_reading_bounds_are_enforced(target: EmbeddedTarget) -> None:
    device = new_device(target)
    token = client_token(target, device)
    top, most = READING["seq"]["maximum"], READING["values"]["maxProperties"]
    values = {f"v{i}": i for i in range(most)}
    assert _reading(target, device.id, token, seq=top, values=values) == 202
    assert _reading(target, device.id, token, seq=top + 1) == 422
    assert _reading(target, device.id, token, seq=1, values={**values, "one_more": 1}) == 422
