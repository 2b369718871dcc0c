"""Storage raises domain errors, and target/api/responses.py alone turns them into HTTP answers."""

from __future__ import annotations

import inspect
import secrets
from pathlib import Path

import pytest

import target.errors
from target.api.responses import STORAGE_ANSWERS
from target.errors import (
    DuplicateDeviceError,
    InvalidDeviceError,
    InvalidRegistrationError,
    KeyPinnedError,
    RequestError,
    StorageError,
)
from target.jose.algorithms import ALGORITHMS
from target.store import keys, registry
from target.store.db import connect
from target.store.keys import KeyStore
from target.store.registry import DeviceRegistry, parse_devices


def _entry(device_id: str) -> dict[str, str]:
    return {"id": device_id, "secret": secrets.token_urlsafe(32)}


def test_a_bad_body_is_an_invalid_registration() -> None:
    with pytest.raises(InvalidRegistrationError, match="devices"):
        parse_devices({"devices": "not a list"})
    with pytest.raises(InvalidRegistrationError, match="devices per request"):
        parse_devices({"devices": []})


def test_a_bad_entry_names_its_index() -> None:
    with pytest.raises(InvalidDeviceError) as caught:
        parse_devices({"devices": [_entry("good"), {"id": "bad id!", "secret": "x"}]})
    assert caught.value.index == 1
    assert caught.value.description.startswith("devices[1]: id must be")
    assert caught.value.details() == {"index": 1}


def test_duplicates_carry_index_and_id(tmp_path: Path) -> None:
    conn = connect(str(tmp_path / "registry.db"))
    devices = DeviceRegistry(conn)
    devices.register(parse_devices({"devices": [_entry("existing")]}))
    with pytest.raises(DuplicateDeviceError) as repeated:
        devices.register(parse_devices({"devices": [_entry("a"), _entry("b"), _entry("a")]}))
    assert (repeated.value.index, repeated.value.device_id, repeated.value.first_index) == (
        2,
        "a",
        0,
    )
    assert repeated.value.description == "devices[2]: id repeats devices[0]"
    with pytest.raises(DuplicateDeviceError) as existing:
        devices.register(parse_devices({"devices": [_entry("c"), _entry("existing")]}))
    assert existing.value.details() == {"index": 1, "id": "existing"}
    assert existing.value.description == "devices[1]: id already registered"
    assert not devices.is_active("a") and not devices.is_active("c")  # nothing half-written


def test_a_pinned_key_refuses_rotation(tmp_path: Path) -> None:
    spec = ALGORITHMS["ES256"]
    pinned = spec.make_key(spec.generate())
    store = KeyStore(connect(str(tmp_path / "keys.db")), "ES256", grace_s=0, pinned=pinned)
    with pytest.raises(KeyPinnedError, match="pinned by --signing-key"):
        store.rotate()
    assert store.current is pinned


@pytest.mark.parametrize("module", [registry, keys])
def test_storage_knows_no_http(module: object) -> None:
    source = inspect.getsource(module)  # type: ignore[arg-type]
    assert "RequestError" not in source
    assert "starlette" not in source
    assert "status_code" not in source


def test_every_storage_error_has_one_answer_and_a_docstring() -> None:
    kinds: list[type[StorageError]] = [
        cls
        for _, cls in inspect.getmembers(target.errors, inspect.isclass)
        if issubclass(cls, StorageError) and cls is not StorageError
    ]
    assert set(kinds) == set(STORAGE_ANSWERS)
    every: list[type[StorageError]] = [StorageError, *kinds]
    for kind in every:
        assert kind.__doc__ and "\n" not in kind.__doc__.strip()
        assert RequestError not in kind.__mro__
