"""Property tests: whatever string arrives as a token, the verifier refuses it with one of our own
TokenErrors (never accepts it, never raises anything else)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from target.auth.tokens import TokenIssuer
from target.auth.verifier import Verifier
from target.errors import TokenError
from target.jose.algorithms import ALGORITHMS
from target.store.db import connect
from target.store.keys import KeyStore

ISSUER, AUDIENCE, DEVICE = "urn:test:issuer", "urn:test:api", "device-1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _setup(alg: str) -> tuple[Verifier, TokenIssuer]:
    keys = KeyStore(connect(":memory:"), alg, grace_s=0)
    verifier = Verifier(
        {keys.current.kid: keys.current},
        algorithms=frozenset({alg}),
        issuer=ISSUER,
        audience=AUDIENCE,
        leeway_s=5,
        is_active=frozenset({DEVICE}).__contains__,
    )
    return verifier, TokenIssuer(keys, issuer=ISSUER, audience=AUDIENCE, ttl_s=600)


ISSUERS = {alg: _setup(alg) for alg in ("HS256", "ES256", "EdDSA")}
VERIFIERS = {alg: verifier for alg, (verifier, _) in ISSUERS.items()}


def _real(alg: str) -> tuple[Verifier, str]:
    """The verifier and a token minted now: one minted at import time expired before its test
    when the whole suite took longer than its lifetime (10 min)."""
    verifier, issuer = ISSUERS[alg]
    return verifier, issuer.mint(DEVICE, "config:read")


def _refused(verifier: Verifier, token: str) -> None:
    with pytest.raises(TokenError):
        verifier.verify(token)


@pytest.mark.parametrize("alg", sorted(VERIFIERS))
def test_the_real_token_is_accepted(alg: str) -> None:
    verifier, token = _real(alg)
    assert verifier.verify(token).sub == DEVICE


@pytest.mark.parametrize("alg", sorted(VERIFIERS))
@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=600))
def test_arbitrary_text_is_refused(alg: str, text: str) -> None:
    _refused(VERIFIERS[alg], text)


@pytest.mark.parametrize("alg", sorted(VERIFIERS))
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes_as_latin1_are_refused(alg: str, data: bytes) -> None:
    _refused(VERIFIERS[alg], data.decode("latin-1"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@pytest.mark.parametrize("alg", sorted(VERIFIERS))
@settings(max_examples=300, deadline=None)
@given(header=json_values, payload=json_values, signature=st.binary(max_size=300))
def test_well_formed_forgeries_are_refused(
    alg: str, header: Any, payload: Any, signature: bytes
) -> None:
    token = ".".join(
        (_b64(json.dumps(header).encode()), _b64(json.dumps(payload).encode()), _b64(signature))
    )
    _refused(VERIFIERS[alg], token)


@pytest.mark.parametrize("alg", sorted(VERIFIERS))
@settings(max_examples=300, deadline=None)
@given(position=st.integers(min_value=0), replacement=st.characters(codec="ascii"))
def test_any_one_character_change_to_a_real_token_is_refused(
    alg: str, position: int, replacement: str
) -> None:
    verifier, token = _real(alg)
    position %= len(token)
    forged = token[:position] + replacement + token[position + 1 :]
    if forged == token:
        return
    _refused(verifier, forged)


@pytest.mark.parametrize("alg", sorted(VERIFIERS))
@settings(max_examples=200, deadline=None)
@given(
    claims=st.dictionaries(
        st.sampled_from(["iss", "aud", "sub", "exp", "iat", "nbf", "scope"]), json_values
    )
)
def test_claims_signed_with_the_real_key_but_arbitrary_values_never_raise_other_errors(
    alg: str, claims: dict[str, Any]
) -> None:
    """A correctly signed token with junk claims is refused or accepted, never a crash: accepted
    only when every required claim is right."""
    verifier, token = _real(alg)
    header = token.split(".")[0]
    keys = verifier._keys  # the ring the verifier holds; the private key signs test tokens
    key = next(iter(keys.values()))
    signing_input = f"{header}.{_b64(json.dumps(claims).encode())}".encode()
    signature = ALGORITHMS[alg].pyjwt.sign(signing_input, key.private)
    forged = f"{signing_input.decode()}.{_b64(signature)}"
    try:
        grant = verifier.verify(forged)
    except TokenError:
        return
    assert claims["iss"] == ISSUER and claims["sub"] == DEVICE
    assert claims["aud"] == AUDIENCE or AUDIENCE in claims["aud"]
    assert grant.sub == DEVICE
