"""Access-token verification (RFC 9068 profile, RFC 8725 rules) on top of the signature layer."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from target.errors import ClaimsError, ExpiredTokenError, RevokedError, SignatureError
from target.jose.algorithms import SignatureCheck, SigningKey
from target.jose.jws import b64url_decode, decode_json_object, prepare_signature, split_compact
from target.jose.vocabulary import FORBIDDEN_HEADERS, numeric_claim

__all__ = ["REQUIRED_CLAIMS", "AccessClaims", "Verifier"]

REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_HEADER_CACHE_SIZE = 64
# Tokens already parsed, by the token itself: a device sends the same token for its whole
# lifetime, and taking it apart again (segments, base64url, the signature's DER form, JSON, the
# claims that do not depend on the time) was most of the per-request cost outside the signature.
# Only a token whose signature verified is stored; its signature, its times and the device's
# status are still checked on every request (see ``_Parsed``). Emptied when the key ring changes.
_TOKEN_CACHE_SIZE = 4096


class _Parsed(NamedTuple):
    """What a token that verified once was taken apart into: what the next check needs."""

    check: SignatureCheck  # its key's signature check
    signing_input: bytes
    signature: bytes  # prepared for ``check`` (DER for ECDSA)
    grant: AccessClaims


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token grants."""

    sub: str
    scopes: frozenset[str]
    exp: float
    alg: str
    claims: dict[str, Any]
    iat: float = 0.0
    nbf: float | None = None
    # The registration the token was issued to (the device's ``created_at`` in microseconds): an id
    # deleted and registered again is another registration, and the old one's tokens stay refused.
    reg: float | None = None


class Verifier:
    """Verifies bearer tokens against the current keys, the issuer, audience and device status.

    ``keys`` is a ring of kid -> key, each bound to one algorithm; ``is_active`` answers whether a
    device may still use its tokens; ``registered_at``, where given, replaces it: it answers the
    device's current registration stamp (its ``created_at`` in microseconds), and a token must
    carry that same value as its ``reg`` claim (an id deleted and registered again, even within
    the same second, does not revive the old registration's tokens). With ``cache_size`` > 0,
    verified tokens are remembered in an LRU so a repeat skips signature and parsing work, but
    expiry and revocation are still checked on every hit.
    """

    def __init__(
        self,
        keys: dict[str, SigningKey],
        *,
        algorithms: frozenset[str],
        issuer: str,
        audience: str,
        leeway_s: float,
        is_active: Callable[[str], bool],
        cache_size: int = 0,
        registered_at: Callable[[str], int | None] | None = None,
    ) -> None:
        self._algorithms = algorithms
        self._issuer = issuer
        self._audience = audience
        self._leeway_s = leeway_s
        self._is_active = is_active
        self._registered_at = registered_at
        self._on_unknown_kid: Callable[[], dict[str, SigningKey] | None] | None = None
        self._cache_size = cache_size
        self._cache: OrderedDict[str, AccessClaims] = OrderedDict()
        self._headers: dict[str, SigningKey] = {}
        self._tokens: dict[str, _Parsed] = {}
        self._keys: dict[str, SigningKey] = {}
        self.set_keys(keys)
        self.cache_hits = 0

    def set_keys(self, keys: dict[str, SigningKey]) -> None:
        """Replace the key ring (after rotation or when a grace period ends)."""
        if keys.keys() != self._keys.keys() or any(
            self._keys[kid] is not key for kid, key in keys.items()
        ):
            self._headers = {}
            self._tokens = {}  # each holds its key's check: a retired or replaced key goes
            self._cache.clear()
        self._keys = dict(keys)

    def set_unknown_kid_hook(self, hook: Callable[[], dict[str, SigningKey] | None]) -> None:
        """``hook()`` is asked for a newer key ring when a token names a kid we do not know."""
        self._on_unknown_kid = hook

    def _resolve_key(self, header_segment: str) -> SigningKey:
        header = decode_json_object(b64url_decode(header_segment), "header")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise SignatureError("algorithm not allowed")
        for name in FORBIDDEN_HEADERS:
            if name in header:
                raise SignatureError(f"header parameter {name} not allowed")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise ClaimsError("typ is not at+jwt")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise SignatureError("kid missing or not a string")
        key = self._keys.get(kid)
        if key is None and self._on_unknown_kid is not None:
            # Another worker may have rotated keys since our last look (one upkeep tick).
            keys = self._on_unknown_kid()
            if keys is not None:
                self.set_keys(keys)
                key = self._keys.get(kid)
        if key is None:
            raise SignatureError("unknown kid")
        if key.alg != alg:
            raise SignatureError("algorithm does not match the key")
        if len(self._headers) >= _HEADER_CACHE_SIZE:
            self._headers.clear()
        self._headers[header_segment] = key
        return key

    def verify(self, token: str, now: float | None = None) -> AccessClaims:
        """The token's grant, or a :class:`~target.errors.TokenError` saying why not."""
        if now is None:
            now = time.time()
        if self._cache_size:
            cached = self._cache.get(token)
            if cached is not None:
                self._cache.move_to_end(token)
                self.cache_hits += 1
                return self.still_valid(cached, now)
        parsed = self._tokens.get(token)
        if parsed is None:
            parsed = self._parse(token)
        elif not parsed.check(parsed.signing_input, parsed.signature):
            raise SignatureError("signature does not verify")
        grant = self._in_time(parsed.grant, now)
        if self._cache_size:
            self._cache[token] = grant
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return grant

    def _parse(self, token: str) -> _Parsed:
        """Take a token apart and check its signature and the claims that do not depend on the
        time; remember it (signed correctly) for its next request."""
        header_segment, payload_segment, signature_segment = split_compact(token)
        key = self._headers.get(header_segment) or self._resolve_key(header_segment)
        signing_input = token[: len(header_segment) + len(payload_segment) + 1].encode()
        signature = prepare_signature(signature_segment, key)
        check = key.scheme.check
        if not check(signing_input, signature):
            raise SignatureError("signature does not verify")
        parsed = _Parsed(
            check, signing_input, signature, self._parse_payload(payload_segment, key.alg)
        )
        if len(self._tokens) >= _TOKEN_CACHE_SIZE:
            self._tokens.clear()
        self._tokens[token] = parsed
        return parsed

    def _in_time(self, grant: AccessClaims, now: float) -> AccessClaims:
        if grant.iat > now + self._leeway_s:
            raise ClaimsError("iat is in the future")
        if grant.nbf is not None and grant.nbf > now + self._leeway_s:
            raise ClaimsError("token not yet valid")
        return self.still_valid(grant, now)

    def honoured_until(self, grant: AccessClaims) -> float:
        """When ``grant`` expires for good: its ``exp`` plus the clock leeway (wall clock)."""
        return grant.exp + self._leeway_s

    def still_valid(self, grant: AccessClaims, now: float) -> AccessClaims:
        """``grant`` again, if it has not expired and its device still holds that registration
        (an MQTT session checks this on every reading, having verified its token once)."""
        if now >= self.honoured_until(grant):
            raise ExpiredTokenError("token has expired")
        if self._registered_at is not None:
            registration = self._registered_at(grant.sub)
            if registration is None:
                raise RevokedError("device is not active")
            if grant.reg != registration:
                raise RevokedError("token belongs to another registration of this device")
        elif not self._is_active(grant.sub):
            raise RevokedError("device is not active")
        return grant

    def _parse_payload(self, payload_segment: str, alg: str) -> AccessClaims:
        """The grant a payload states, checked for everything that does not depend on the time."""
        claims = decode_json_object(b64url_decode(payload_segment), "payload")
        for name in REQUIRED_CLAIMS:
            if name not in claims:
                raise ClaimsError(f"missing claim {name}")
        exp = numeric_claim(claims, "exp", ClaimsError)
        iat = numeric_claim(claims, "iat", ClaimsError)
        nbf = numeric_claim(claims, "nbf", ClaimsError) if "nbf" in claims else None
        reg = numeric_claim(claims, "reg", ClaimsError) if "reg" in claims else None
        if claims["iss"] != self._issuer:
            raise ClaimsError("wrong issuer")
        aud = claims["aud"]
        if not (aud == self._audience or (isinstance(aud, list) and self._audience in aud)):
            raise ClaimsError("wrong audience")
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub:
            raise ClaimsError("sub is not a string")
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise ClaimsError("scope is not a string")
        return AccessClaims(sub, frozenset(scope.split()), exp, alg, claims, iat, nbf, reg)
