"""The bearer-case catalogue: each forgery with the refusal a careful target gives (RFC 6750)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from functools import cache

from sim.corpus.forgers import (
    alg_forgery,
    alg_rsa,
    alg_switch,
    another_key,
    duplicate_claim,
    duplicate_header,
    ecdsa,
    ecdsa_der,
    eddsa_s_plus_l,
    embedded_jwk,
    embedded_x5c,
    exactly,
    flip_in_value,
    flip_signature,
    garbage,
    header_bytes,
    header_invalid_utf8,
    header_utf8_bom,
    header_utf16,
    hmac_with_public_key,
    jku_forgery,
    jku_genuine,
    kid_hmac,
    nested,
    non_ascii,
    other_device,
    padded_header,
    payload_invalid_utf8,
    revoked_forgery,
    scoped,
    segments,
    standard_alphabet,
    stripped,
    with_kid,
    x5u_forgery,
)
from sim.corpus.forging import (
    bearer,
    genuine_signature,
    raw_segments,
    with_claims,
    with_header,
    with_signature,
    without_claim,
    without_header,
)
from sim.corpus.model import Case, ForgeContext, Forged, Need

# The P-256 group order n: r or s equal to n (or 0) must never verify.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


MAX_TOKEN_BYTES = 8192


MALFORMED = frozenset({"malformed"})


SIGNATURE = frozenset({"signature"})


# The signature checked first, or the broken JSON found first: both are right.
SIGNATURE_OR_MALFORMED = frozenset({"signature", "malformed"})


SIGNATURE_OR_CLAIMS = frozenset({"signature", "claims"})


MISSING = frozenset({"missing"})


FORBIDDEN = frozenset({"insufficient_scope"})


def _case(
    name: str,
    family: str,
    description: str,
    forge: Callable[[ForgeContext], Forged],
    reasons: frozenset[str],
    *needs: Need,
    status: int = 401,
) -> Case:
    return Case(name, family, description, forge, status, reasons, frozenset(needs))


def _format_cases() -> Iterator[Case]:
    f = "format"
    yield _case(
        "no_token", f, "no Authorization header", lambda c: Forged(None, c.device_id), MISSING
    )
    yield _case(
        "empty", f, "an empty Authorization header", lambda c: Forged("", c.device_id), MISSING
    )
    yield _case(
        "bearer_without_token",
        f,
        "the Bearer scheme and nothing after it",
        lambda c: Forged("Bearer", c.device_id),
        frozenset({"malformed", "missing"}),
    )
    yield _case(
        "wrong_scheme_basic",
        f,
        "the genuine token under the Basic scheme",
        lambda c: Forged(f"Basic {c.token}", c.device_id),
        MISSING,
    )
    yield _case(
        "wrong_scheme_token",
        f,
        "the genuine token under a made-up 'Token' scheme",
        lambda c: Forged(f"Token {c.token}", c.device_id),
        MISSING,
    )
    for count in (1, 2, 4, 5):
        yield _case(
            f"segments_{count}",
            f,
            f"{count} dot-separated segment{'s' * (count > 1)} instead of 3",
            segments(count),
            MALFORMED,
        )
    yield _case("garbage", f, "random hex, not a JWS", garbage, MALFORMED)
    yield _case("header_padded", f, "header base64url with '=' padding", padded_header, MALFORMED)
    yield _case(
        "header_standard_base64",
        f,
        "header in the standard base64 alphabet ('+', '/')",
        standard_alphabet,
        MALFORMED,
    )
    yield _case(
        "header_bad_character",
        f,
        "a '!' inside the header segment",
        lambda c: bearer(c, "ey!" + c.token[3:]),
        MALFORMED,
    )
    yield _case(
        "signature_bad_character",
        f,
        "a '*' inside the signature segment",
        lambda c: bearer(c, c.token[:-2] + "*" + c.token[-1:]),
        SIGNATURE_OR_MALFORMED,
    )
    yield _case(
        "non_ascii",
        f,
        "a non-ASCII character inside the token",
        non_ascii,
        SIGNATURE_OR_MALFORMED,
        "attack_only",  # how a load generator's HTTP client encodes it is its own business
    )
    for label, data in (("array", b'["ES256"]'), ("null", b"null"), ("string", b'"at+jwt"')):
        yield _case(
            f"header_{label}",
            f,
            f"header is a JSON {label}, not an object",
            header_bytes(data),
            MALFORMED,
        )
    yield _case(
        "header_not_json", f, "header is not JSON at all", header_bytes(b"alg=none"), MALFORMED
    )
    yield _case(
        "payload_array",
        f,
        "payload is a JSON array, under the original signature",
        lambda c: raw_segments(c, payload=b"[]"),
        SIGNATURE_OR_MALFORMED,
    )
    yield _case(
        "header_invalid_utf8",
        f,
        "header holds bytes that are not UTF-8",
        header_invalid_utf8,
        MALFORMED,
    )
    yield _case("header_utf8_bom", f, "header starts with a UTF-8 BOM", header_utf8_bom, MALFORMED)
    yield _case("header_utf16", f, "header encoded as UTF-16", header_utf16, MALFORMED)
    yield _case(
        "payload_invalid_utf8",
        f,
        "payload holds an overlong UTF-8 sequence",
        payload_invalid_utf8,
        SIGNATURE_OR_MALFORMED,
    )
    yield _case(
        "header_deeply_nested",
        f,
        "header member nested 2,000 arrays deep",
        nested(2000),
        SIGNATURE_OR_MALFORMED,
    )
    yield _case(
        "header_duplicate_alg",
        f,
        "header names alg twice, the second none",
        duplicate_header("alg", "none"),
        MALFORMED,
    )
    yield _case(
        "header_duplicate_kid",
        f,
        "header names kid twice",
        duplicate_header("kid", "attacker"),
        MALFORMED,
    )
    yield _case(
        "payload_duplicate_sub",
        f,
        "payload names sub twice, the second another device",
        duplicate_claim,
        SIGNATURE_OR_MALFORMED,
    )


def _algorithm_cases() -> Iterator[Case]:
    f = "algorithm"
    yield _case(
        "alg_none",
        f,
        "header alg none, signature removed",
        alg_forgery("none", False),
        SIGNATURE_OR_MALFORMED,
    )
    for spelling in ("None", "NONE", "nOnE"):
        yield _case(
            f"alg_{spelling}",
            f,
            f"header alg {spelling}, signature removed",
            alg_forgery(spelling, False),
            SIGNATURE_OR_MALFORMED,
        )
    for spelling in ("none", "None", "NONE", "nOnE"):
        yield _case(
            f"alg_{spelling}_signed",
            f,
            f"header alg {spelling}, original signature kept",
            alg_forgery(spelling, True),
            SIGNATURE,
        )
    yield _case(
        "alg_missing",
        f,
        "no alg in the header",
        lambda c: without_header(c, "alg"),
        SIGNATURE_OR_MALFORMED,
    )
    yield _case("alg_not_string", f, "alg is a list", _alg_list, SIGNATURE_OR_MALFORMED)
    yield _case(
        "alg_switch",
        f,
        "re-signed with an HMAC alg the target does not use",
        alg_switch,
        SIGNATURE,
    )
    yield _case(
        "alg_rsa", f, "re-signed with an RSA alg the target does not use", alg_rsa, SIGNATURE
    )
    yield _case(
        "alg_unknown",
        f,
        "alg ES256K, a name the target does not know",
        alg_forgery("ES256K", True),
        SIGNATURE,
    )
    for form, label in (("pem", "PEM"), ("der", "DER"), ("jwk", "JWK"), ("openssh", "OpenSSH")):
        yield _case(
            f"hmac_public_key_{form}",
            f,
            f"HS256 signed with the target's public key ({label}) as the secret",
            hmac_with_public_key(form),
            SIGNATURE,
            "public_key",
        )


def _alg_list(ctx: ForgeContext) -> Forged:
    return with_header(ctx, alg=[ctx.token_alg])


def _signature_cases() -> Iterator[Case]:
    f = "signature"
    yield _case(
        "stripped_signature", f, "signature segment emptied", stripped, SIGNATURE_OR_MALFORMED
    )
    yield _case(
        "flipped_header",
        f,
        "one bit flipped in the header (inside kid)",
        flip_in_value(0, "kid"),
        SIGNATURE,
    )
    yield _case(
        "flipped_payload",
        f,
        "one bit flipped in the payload (inside jti)",
        flip_in_value(1, "jti"),
        SIGNATURE,
    )
    yield _case("tampered_signature", f, "one signature bit flipped", flip_signature(10), SIGNATURE)
    yield _case(
        "flipped_signature_last", f, "last signature byte flipped", flip_signature(-1), SIGNATURE
    )
    yield _case(
        "tampered_payload",
        f,
        "scope widened in the payload, original signature kept",
        lambda c: with_claims(c, scope="telemetry:write config:read admin"),
        SIGNATURE,
    )
    yield _case(
        "truncated_signature",
        f,
        "signature cut to its first half",
        lambda c: with_signature(c, genuine_signature(c)[: len(genuine_signature(c)) // 2]),
        SIGNATURE,
    )
    yield _case(
        "extended_signature",
        f,
        "a zero byte appended to the signature",
        lambda c: with_signature(c, genuine_signature(c) + b"\0"),
        SIGNATURE,
    )
    yield _case(
        "another_key",
        f,
        "same header and claims signed by a key the target never saw",
        another_key,
        SIGNATURE,
    )
    yield _case(
        "ecdsa_zero", f, "ES256 signature r = s = 0", ecdsa(lambda r: 0, lambda s: 0), SIGNATURE
    )
    yield _case(
        "ecdsa_r_order",
        f,
        "ES256 signature with r = n (the group order)",
        ecdsa(lambda r: P256_ORDER, lambda s: s),
        SIGNATURE,
    )
    yield _case(
        "ecdsa_s_order",
        f,
        "ES256 signature with s = n (the group order)",
        ecdsa(lambda r: r, lambda s: P256_ORDER),
        SIGNATURE,
    )
    yield _case(
        "ecdsa_der",
        f,
        "the signature's r and s DER-encoded instead of raw r || s",
        ecdsa_der,
        SIGNATURE,
    )
    yield _case(
        "eddsa_s_plus_order",
        f,
        "EdDSA signature with S + L (malleated)",
        eddsa_s_plus_l,
        SIGNATURE,
    )


def _key_header_cases() -> Iterator[Case]:
    f = "key_header"
    yield _case(
        "unknown_kid",
        f,
        "kid the target never issued",
        lambda c: with_header(c, kid="unknown-" + secrets.token_hex(4)),
        SIGNATURE,
    )
    yield _case(
        "kid_missing", f, "no kid in the header", lambda c: without_header(c, "kid"), SIGNATURE
    )
    for label, value in (("int", 1), ("null", None), ("list", ["k1"]), ("object", {"k": 1})):
        yield _case(f"kid_{label}", f, f"kid is a JSON {label}", with_kid(value), SIGNATURE)
    yield _case(
        "kid_path_traversal",
        f,
        "kid ../../../../dev/null, HS256 signed with the empty secret",
        kid_hmac("../../../../../../dev/null", b""),
        SIGNATURE,
    )
    yield _case(
        "kid_sql",
        f,
        "kid with SQL selecting a known secret, HS256 signed with it",
        kid_hmac("x' UNION SELECT 'attacker' -- ", b"attacker"),
        SIGNATURE,
    )
    yield _case("kid_long", f, "a 4,000-character kid", with_kid("k" * 4000), SIGNATURE)
    yield _case(
        "jku",
        f,
        "jku naming a loopback JWKS of the attacker's key, signed with it",
        jku_forgery,
        SIGNATURE,
        "listener",
    )
    yield _case(
        "jku_genuine_signature",
        f,
        "jku added to the genuine header, original signature kept",
        jku_genuine,
        SIGNATURE,
        "listener",
    )
    yield _case(
        "x5u",
        f,
        "x5u naming a loopback certificate of the attacker's key, signed with it",
        x5u_forgery,
        SIGNATURE,
        "listener",
    )
    yield _case(
        "embedded_jwk", f, "the attacker's public key embedded as jwk", embedded_jwk, SIGNATURE
    )
    yield _case(
        "embedded_x5c",
        f,
        "the attacker's self-signed certificate embedded as x5c",
        embedded_x5c,
        SIGNATURE,
    )
    yield _case(
        "crit_exp",
        f,
        "crit naming exp as an extension to understand",
        lambda c: with_header(c, crit=["exp"]),
        SIGNATURE,
    )
    yield _case(
        "crit_b64",
        f,
        "crit b64 with b64 false (RFC 7797 unencoded payload)",
        lambda c: with_header(c, crit=["b64"], b64=False),
        SIGNATURE,
    )


def _now() -> int:
    return int(time.time())


def _claims_cases() -> Iterator[Case]:
    f = "claims"
    yield _case(
        "expired",
        f,
        "exp an hour in the past (cannot re-sign: the signature breaks too)",
        lambda c: with_claims(c, exp=_now() - 3600),
        frozenset({"signature", "expired"}),
    )
    yield _case(
        "nbf_future",
        f,
        "nbf an hour ahead, beyond any leeway",
        lambda c: with_claims(c, nbf=_now() + 3600),
        SIGNATURE_OR_CLAIMS,
    )
    yield _case(
        "iat_future",
        f,
        "iat an hour ahead, beyond any leeway",
        lambda c: with_claims(c, iat=_now() + 3600),
        SIGNATURE_OR_CLAIMS,
    )
    for name in ("exp", "iat", "iss", "aud", "sub"):
        yield _case(
            f"missing_{name}", f, f"claim {name} removed", without_claim(name), SIGNATURE_OR_CLAIMS
        )
    yield _case(
        "wrong_audience",
        f,
        "aud of another API",
        lambda c: with_claims(c, aud="urn:example:other-api"),
        SIGNATURE_OR_CLAIMS,
    )
    yield _case(
        "wrong_issuer",
        f,
        "iss of another issuer",
        lambda c: with_claims(c, iss="https://evil.example"),
        SIGNATURE_OR_CLAIMS,
    )
    yield _case(
        "sub_other_device",
        f,
        "sub of another device, original signature kept",
        lambda c: with_claims(c, sub=c.other_device_id),
        SIGNATURE_OR_CLAIMS,
    )
    yield _case(
        "typ_jwt",
        f,
        "typ changed from at+jwt to JWT",
        lambda c: with_header(c, typ="JWT"),
        SIGNATURE_OR_CLAIMS,
    )
    yield _case(
        "typ_missing",
        f,
        "no typ in the header",
        lambda c: without_header(c, "typ"),
        SIGNATURE_OR_CLAIMS,
    )
    yield _case(
        "typ_refresh",
        f,
        "a refresh-like token type (typ rt+jwt)",
        lambda c: with_header(c, typ="rt+jwt"),
        SIGNATURE_OR_CLAIMS,
    )
    yield _case(
        "token_use_refresh",
        f,
        "a refresh-like token_use claim, original signature kept",
        lambda c: with_claims(c, token_use="refresh"),
        SIGNATURE_OR_CLAIMS,
    )
    yield _case(
        "other_device",
        f,
        "a genuine token on another device's path",
        other_device,
        FORBIDDEN,
        "device_path",
        status=403,
    )
    yield _case(
        "scope_missing",
        f,
        "a genuine config:read token sending telemetry",
        scoped,
        FORBIDDEN,
        "device_path",
        "scoped_token",
        status=403,
    )
    yield _case(
        "revoked_device",
        f,
        "a genuine token of a device revoked since",
        revoked_forgery,
        frozenset({"revoked"}),
        "device_path",
        "revoked_token",
    )


def _size_cases() -> Iterator[Case]:
    yield _case("oversized", "size", "token of 8,193 characters", exactly(8193), MALFORMED)
    yield _case(
        "oversized_1mib",
        "size",
        "token of 1 MiB",
        exactly(1 << 20),
        MALFORMED,
        "attack_only",
    )


CASES: tuple[Case, ...] = (
    *_format_cases(),
    *_algorithm_cases(),
    *_signature_cases(),
    *_key_header_cases(),
    *_claims_cases(),
    *_size_cases(),
)


assert len({case.name for case in CASES}) == len(CASES)


@cache
def cases_for(device_path: bool) -> tuple[Case, ...]:
    """The cases the rejection scenario can send from a held token: on an endpoint with (or
    without) a device id in its path, needing nothing else (one tuple for every device)."""
    usable: frozenset[Need] = frozenset({"device_path"}) if device_path else frozenset()
    return tuple(case for case in CASES if case.needs <= usable)
