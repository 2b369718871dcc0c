"""The JOSE/OAuth vocabulary: each standard name written once, and both halves using it."""

from __future__ import annotations

import importlib.metadata
import math
import re
import secrets
from pathlib import Path

import pytest
import requests

import sim
from target import __version__
from target.api.openapi import openapi_schema
from target.errors import ClaimsError
from target.jose.algorithms import ALGORITHMS, ASSERTION_ALGORITHMS
from target.jose.vocabulary import (
    ALG_NAMES,
    CLIENT_CREDENTIALS,
    JWT_BEARER,
    client_credentials_form,
    generate_private_key,
    numeric_claim,
)
from tests.conftest import StartTarget

ROOT = Path(__file__).resolve().parents[3]
TIMEOUT_S = 10


def _occurrences(pattern: str) -> list[str]:
    found = []
    for path in sorted([*ROOT.glob("sim/**/*.py"), *ROOT.glob("target/**/*.py")]):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(pattern, line):
                found.append(f"{path.relative_to(ROOT)}:{number}")
    return found


@pytest.mark.parametrize(
    "pattern",
    [
        r"urn:ietf:params:oauth:grant-type:jwt-bearer",  # JWT_BEARER was typed three times
        r'"HS256", "HS384", "HS512"',  # the algorithm list: cli.py and attack.py retyped it
        r'"grant_type": "client_credentials",',  # the client-credentials form: four copies
        r'__version__ = "',  # the version: target, sim and pyproject.toml
        r"public_exponent=65537",  # key generation: target/, sim/fleet/model.py, sim/corpus
        r"def _number\(",  # NumericDate checks: assertions.py and verifier.py
        r'"ES256", "EdDSA", "RS256"[\])]',  # assertion algs: algorithms, metadata, openapi
        r'"jku", "x5u", "jwk"',  # forbidden JOSE headers: verifier.py and assertions.py
    ],
)
def test_each_fact_is_written_once(pattern: str) -> None:
    assert len(_occurrences(pattern)) <= 1, _occurrences(pattern)


def test_one_version_everywhere() -> None:
    assert sim.__version__ == __version__
    assert importlib.metadata.version("fleetbench") == __version__
    assert openapi_schema()["info"]["version"] == __version__


@pytest.mark.parametrize("alg", ALG_NAMES)
def test_generated_keys_fit_their_algorithm(alg: str) -> None:
    private = generate_private_key(alg)
    spec = ALGORITHMS[alg]
    key = spec.make_key(private)
    token = spec.pyjwt.sign(b"message", spec.pyjwt.prepare_key(private))
    assert key.verify(b"message", token)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, "exp is not a number"),
        ("1700000000", "exp is not a number"),
        (None, "exp is not a number"),
        (10**400, "exp is not a finite number"),
        (math.nan, "exp is not a finite number"),
        (math.inf, "exp is not a finite number"),
    ],
)
def test_numeric_claim_refuses_what_is_not_a_finite_number(value: object, reason: str) -> None:
    with pytest.raises(ClaimsError, match=reason):
        numeric_claim({"exp": value}, "exp", ClaimsError)


def test_numeric_claim_accepts_integers_and_floats() -> None:
    assert numeric_claim({"exp": 1700000000}, "exp", ClaimsError) == 1700000000.0
    assert numeric_claim({"exp": 1.5}, "exp", ClaimsError) == 1.5


def test_target_advertises_the_shared_names(start_target: StartTarget) -> None:
    target = start_target("HS256")
    metadata = requests.get(
        f"{target.url}/.well-known/oauth-authorization-server", timeout=TIMEOUT_S
    ).json()
    assert metadata["grant_types_supported"] == [CLIENT_CREDENTIALS, JWT_BEARER]
    assert metadata["token_endpoint_auth_signing_alg_values_supported"] == list(
        ASSERTION_ALGORITHMS
    )
    document = openapi_schema()
    assert document["components"]["schemas"]["NewDevice"]["properties"]["alg"]["enum"] == list(
        ASSERTION_ALGORITHMS
    )
    token = target.device_token("jose-device", secrets.token_urlsafe(32))
    assert token.count(".") == 2
    assert client_credentials_form("a", "b") == {
        "grant_type": "client_credentials",
        "client_id": "a",
        "client_secret": "b",
    }
