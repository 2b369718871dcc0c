"""Wycheproof vectors (independent, see ../shared/vectors/README.md) through our signature layer.

1. ``json_web_signature_test.json`` through ``target.jose.jws``: split, strict base64url, the header
   as a JSON object, the header ``alg`` bound to the key's, then ``verify_signature``. Every
   ``invalid`` vector must be refused; each vector where we differ from Wycheproof is named in
   ``JWS_DIFFERENCES`` with the reason, and the test checks that the difference is still real.
2. The raw primitive vectors (ECDSA P-256 in r||s form, Ed25519, HMAC-SHA256) through both the
   PyJWT algorithm objects the target signs and prepares keys with and the prepared checks
   (``SigningKey.verify``) that ``verify_signature`` uses on every request.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from target.errors import TokenError
from target.jose.algorithms import ALGORITHMS, SigningKey
from target.jose.jws import b64url_decode, decode_json_object, split_compact, verify_signature
from tests.conftest import VECTORS

WYCHEPROOF = VECTORS / "wycheproof"
if not WYCHEPROOF.is_dir():
    pytest.skip(
        f"Wycheproof vectors not found at {WYCHEPROOF} (they live in ../shared/vectors)",
        allow_module_level=True,
    )


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((WYCHEPROOF / name).read_text())
    return data


def _cases(name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(group, test) for every test in a vector file."""
    return [(group, test) for group in _load(name)["testGroups"] for test in group["tests"]]


# ---- 1. JSON Web Signature vectors through target.jose.jws --------------------------------------

_UNSUPPORTED = "not in our algorithm allow-list, so refused (RFC 8725 §3.1)"
_EMPTY_PAYLOAD = "an empty payload cannot carry claims; split_compact refuses it as malformed"

# tcId -> why our verdict differs from Wycheproof's result. Each entry is checked to still differ.
JWS_DIFFERENCES: dict[int, str] = {
    **dict.fromkeys((259, 264, 268, 272, 320, 325), _EMPTY_PAYLOAD),
    **dict.fromkeys((265, 266, 267), f"RS384 is {_UNSUPPORTED}"),
    **dict.fromkeys((269, 270, 271), f"RS512 is {_UNSUPPORTED}"),
    **dict.fromkeys((321, 322, 323), f"PS384 is {_UNSUPPORTED}"),
    **dict.fromkeys((326, 327, 328), f"PS512 is {_UNSUPPORTED}"),
    **dict.fromkeys((347, 351), f"ES512 (RFC 7520 fig. 27; its JWK says ES521) is {_UNSUPPORTED}"),
    **dict.fromkeys(
        (346, 350),
        "RFC 7520 figure 20 is signed PS384 with a JWK that says PS256: a key is bound to one "
        "algorithm, so the header alg must equal the key's (and PS384 is not supported)",
    ),
    **dict.fromkeys(
        (372, 373),
        "Wycheproof calls a '?' inserted into a segment valid for decoders that skip junk; ours "
        "accepts only the base64url alphabet (the README notes PyJWT rejects these too)",
    ),
    **dict.fromkeys(
        (353, 354, 355, 356),
        "the JWK says use 'enc' / key_ops ['encrypt']: key selection is not this layer's job (it "
        "verifies with the key it is given); where JWKs enter the target, device registration "
        "refuses such keys (test_admin: key-use-enc, key-ops-encrypt)",
    ),
    **dict.fromkeys(
        (367, 370),
        "defective upstream: the token and key are byte-identical to tcId 357 (valid), so no "
        "verifier can both accept 357 and refuse these; the padding their names describe is not "
        "in the token (checked by test_defective_padding_vectors_are_copies_of_a_valid_one)",
    ),
}

# The only ``invalid`` vectors our layer lets through, each explained above; none is a forgery.
INVALID_BUT_ACCEPTED = frozenset({353, 354, 355, 356, 367, 370})

_KTY_ALGS = {"RSA": ("RS256", "PS256"), "oct": ("HS256", "HS384", "HS512"), "OKP": ("EdDSA",)}
_CURVE_ALG = {"P-256": "ES256", "P-384": "ES384"}


def _key_for(jwk: dict[str, Any], header_alg: object) -> SigningKey | None:
    """The verification key for a vector's JWK, bound to one algorithm; None if unsupported.

    The algorithm is the JWK's ``alg``; without one, the curve's for EC, else the header's when
    it fits the key type (the header cannot pick an algorithm the key type does not allow).
    """
    alg = jwk.get("alg")
    if alg is None:
        if jwk["kty"] == "EC":
            alg = _CURVE_ALG.get(jwk.get("crv", ""))
        elif header_alg in _KTY_ALGS.get(jwk["kty"], ()):
            alg = header_alg
    if alg not in ALGORITHMS:
        return None
    spec = ALGORITHMS[alg]
    kid = jwk.get("kid", "wycheproof")
    if spec.symmetric:
        secret = b64url_decode(jwk["k"])
        return SigningKey(kid, alg, spec.pyjwt, secret, secret)
    key = spec.pyjwt.from_jwk(jwk)
    if hasattr(key, "public_key"):  # a private JWK: verify with its public half
        key = key.public_key()
    return spec.verify_only_key(key, kid)


def _jws_accepts(jws: str, jwk: dict[str, Any]) -> bool:
    """Whether our signature layer accepts ``jws`` under ``jwk``, as the verifier runs it."""
    if not jws.isascii():  # the middleware refuses a non-ASCII token before anything else
        return False
    try:
        header_segment, payload_segment, signature_segment = split_compact(jws)
        header = decode_json_object(b64url_decode(header_segment), "header")
        b64url_decode(payload_segment)  # the verifier decodes the payload after the signature
        key = _key_for(jwk, header.get("alg"))
        if key is None or header.get("alg") != key.alg:
            return False
        signing_input = f"{header_segment}.{payload_segment}".encode("ascii")
        verify_signature(signing_input, signature_segment, key)
    except TokenError:
        return False
    return True


JWS_CASES = _cases("json_web_signature_test.json")


@pytest.mark.parametrize(
    ("group", "test"), JWS_CASES, ids=[f"tc{t['tcId']}-{t['comment']}" for _, t in JWS_CASES]
)
def test_json_web_signature_vector(group: dict[str, Any], test: dict[str, Any]) -> None:
    jwk = group.get("public") or group["private"]
    accepted = _jws_accepts(test["jws"], jwk)
    wanted = test["result"] in ("valid", "acceptable")
    if test["tcId"] in JWS_DIFFERENCES:
        assert accepted is not wanted, f"no longer differs: {JWS_DIFFERENCES[test['tcId']]}"
    else:
        assert accepted is wanted, (test["result"], test["comment"])
    if test["result"] == "invalid" and accepted:
        assert test["tcId"] in INVALID_BUT_ACCEPTED


def test_every_named_difference_is_a_vector() -> None:
    assert set(JWS_DIFFERENCES) <= {test["tcId"] for _, test in JWS_CASES}


def test_defective_padding_vectors_are_copies_of_a_valid_one() -> None:
    by_id = {test["tcId"]: (group, test) for group, test in JWS_CASES}
    valid_group, valid = by_id[357]
    assert valid["result"] == "valid"
    for tc_id in (367, 370):
        group, test = by_id[tc_id]
        assert test["result"] == "invalid"
        assert test["jws"] == valid["jws"]
        assert group["private"] == valid_group["private"]


def test_none_and_key_confusion_vectors_are_all_refused() -> None:
    """The vectors that matter most for a verifier, counted so none can silently drop out."""
    attacks = [
        (group, test)
        for group, test in JWS_CASES
        if "None" in test["comment"]
        or "Confusion" in test["comment"]
        or "Embedded" in test["comment"]
    ]
    assert len(attacks) >= 5
    for group, test in attacks:
        assert test["result"] == "invalid"
        assert not _jws_accepts(test["jws"], group.get("public") or group["private"]), test["tcId"]


# ---- 2. primitive vectors through the PyJWT objects and our prepared checks ---------------------


def _agrees(result: str, accepted: bool) -> bool:
    return result == "acceptable" or accepted is (result == "valid")


ECDSA_CASES = _cases("ecdsa_secp256r1_sha256_p1363_test.json")


@pytest.mark.parametrize(
    ("group", "test"), ECDSA_CASES, ids=[f"tc{t['tcId']}" for _, t in ECDSA_CASES]
)
def test_ecdsa_p256_p1363_vector(group: dict[str, Any], test: dict[str, Any]) -> None:
    spec = ALGORITHMS["ES256"]
    public = spec.pyjwt.from_jwk(group["publicKeyJwk"])
    key = spec.verify_only_key(public, "wycheproof")
    msg, sig = bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"])
    assert _agrees(test["result"], spec.pyjwt.verify(msg, public, sig)), test["comment"]
    assert _agrees(test["result"], key.verify(msg, sig)), test["comment"]


ED25519_CASES = _cases("ed25519_test.json")


@pytest.mark.parametrize(
    ("group", "test"), ED25519_CASES, ids=[f"tc{t['tcId']}" for _, t in ED25519_CASES]
)
def test_ed25519_vector(group: dict[str, Any], test: dict[str, Any]) -> None:
    spec = ALGORITHMS["EdDSA"]
    public = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(group["publicKey"]["pk"]))
    key = spec.verify_only_key(public, "wycheproof")
    msg, sig = bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"])
    assert _agrees(test["result"], spec.pyjwt.verify(msg, public, sig)), test["comment"]
    assert _agrees(test["result"], key.verify(msg, sig)), test["comment"]


HMAC_CASES = _cases("hmac_sha256_test.json")


@pytest.mark.parametrize(
    ("group", "test"),
    HMAC_CASES,
    ids=[f"tc{t['tcId']}-tag{g['tagSize']}" for g, t in HMAC_CASES],
)
def test_hmac_sha256_vector(group: dict[str, Any], test: dict[str, Any]) -> None:
    """HS256 uses the whole 32-byte tag: a truncated tag is refused even where Wycheproof's
    truncated-MAC result is valid."""
    spec = ALGORITHMS["HS256"]
    secret = bytes.fromhex(test["key"])
    key = SigningKey("wycheproof", "HS256", spec.pyjwt, secret, secret)
    msg, tag = bytes.fromhex(test["msg"]), bytes.fromhex(test["tag"])
    for accepted in (spec.pyjwt.verify(msg, secret, tag), key.verify(msg, tag)):
        if group["tagSize"] < 256:
            assert not accepted, "a truncated tag was accepted"
        else:
            assert _agrees(test["result"], accepted), test["comment"]


def test_the_vector_files_have_the_expected_size() -> None:
    """Guard against an empty or truncated copy making the tests above vacuous."""
    assert len(JWS_CASES) == 401
    assert len(ECDSA_CASES) == 252
    assert len(ED25519_CASES) == 150
    assert len(HMAC_CASES) == 174
    assert sum(g["tagSize"] < 256 for g, _ in HMAC_CASES) == 87
