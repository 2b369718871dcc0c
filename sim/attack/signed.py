"""Correctly signed tokens that break one rule at a time, for a profile that holds the signing key.

When the devices mint their own tokens (``token.source = "minted"``), the profile holds the key
the API verifies with, so ``fleetbench attack`` can sign what the outside-attacker corpus
(:mod:`sim.corpus`) cannot: a token whose signature is good and whose claims are wrong. Such a
token is refused for its claims or not at all, so each case shows which rule the API enforces.

Which acceptances fail the attack (``accepted``) and which are findings (``finding``, with a
severity; a failure only with ``--strict``), and why:

- ``alg_none`` (an unsigned token), ``expired`` (past ``exp`` by more than the profile's leeway)
  and ``nbf_future`` fail: RFC 8725 section 3.1 and RFC 7519 sections 4.1.4/4.1.5 say such a token
  MUST NOT be accepted, and JWT libraries refuse them by default, so an acceptance means the
  verification is off or bypassed.
- ``no_exp``, ``exp_far_future``, ``iat_future``, ``alg_switched`` and ``unknown_device`` are
  findings: no RFC forbids them outright and common libraries accept some by default
  (``jsonwebtoken`` takes a token without ``exp``, any HMAC alg unless ``algorithms`` is given,
  and never checks ``iat``), but each widens what a leaked key or token is worth. A token without
  ``exp`` or years ahead is a stolen credential that never lapses (medium, low); switching the
  algorithm shows no allow-list (RFC 8725 section 3.1; low: it still needs the key); an unknown
  device is high when the API registers its devices (it knows them, and should refuse the rest),
  info when it keeps no registry (the key is then the only gate, by design).

Another device's id on a device path is the corpus case ``other_device`` (a genuine token on
another device's path): it fails the attack, for minted and issued tokens alike.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sim.attack.verdicts import Severity
from sim.corpus.forging import PYJWT_ALGORITHMS, b64url, json_bytes, sign_jws
from sim.profiles.http import render
from sim.profiles.model import Profile

__all__ = [
    "SIGNED_CASES",
    "SignedCase",
    "SignedContext",
    "SignedToken",
    "sign_with",
    "switched_alg",
]

YEARS_AHEAD_S = 10 * 365 * 86400
BEYOND_LEEWAY_S = 3600  # nbf/iat ahead and exp behind by this much more than the leeway

# The same key signs under another alg of its family: the allow-list test (RFC 8725 3.1).
_SWITCH = {
    "HS256": "HS512", "HS384": "HS512", "HS512": "HS256",
    "RS256": "RS512", "RS384": "RS256", "RS512": "RS256",
    "PS256": "PS512", "PS384": "PS256", "PS512": "PS256",
}  # fmt: skip


def switched_alg(alg: str) -> str | None:
    """Another alg the same key can sign with, or None (ECDSA and EdDSA keys fix their alg)."""
    return _SWITCH.get(alg)


@dataclass(frozen=True)
class SignedContext:
    """The profile, its signing key, and the attack device's template values."""

    profile: Profile
    key: Any
    values: dict[str, Any]

    def claims(self, **values: Any) -> dict[str, Any]:
        """The profile's claims template rendered for the device (``values`` override)."""
        merged = {**self.values, **values}
        merged.setdefault("exp", int(merged["now"]) + int(merged["ttl"]))
        rendered = render(self.profile.token.claims, merged)
        return dict(rendered)

    def sign(self, claims: dict[str, Any], alg: str | None = None) -> str:
        return sign_with(self.key, alg or self.profile.token.alg, claims, self.header())

    def header(self) -> dict[str, Any]:
        return dict(render(self.profile.token.jose_header, self.values))


_HMAC = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}


def sign_with(key: Any, alg: str, claims: dict[str, Any], header: dict[str, Any]) -> str:
    """A JWS as PyJWT's ``encode`` makes it. An HMAC key goes straight through :mod:`hmac`:
    PyJWT warns about a short key and refuses an empty one, and the attack must sign with
    whatever key the API uses (it reports a weak one itself)."""
    full = {"alg": alg, "typ": "JWT", **header}
    if alg in _HMAC:
        secret = key.encode() if isinstance(key, str) else bytes(key)
        unsigned = f"{b64url(json_bytes(full))}.{b64url(json_bytes(claims))}"
        return f"{unsigned}.{b64url(hmac.digest(secret, unsigned.encode(), _HMAC[alg]))}"
    return sign_jws(alg, PYJWT_ALGORITHMS[alg].prepare_key(key), full, claims)


@dataclass(frozen=True)
class SignedToken:
    """The token to present and the device id the endpoint path names."""

    token: str
    device_id: str


@dataclass(frozen=True)
class SignedCase:
    name: str
    description: str
    fails: bool  # an acceptance fails the attack; else it is a finding
    severity: Callable[[Profile], Severity]
    impact: str  # what an acceptance means, for the report
    build: Callable[[SignedContext], SignedToken | None]  # None: not applicable to this key


def _own(ctx: SignedContext, claims: dict[str, Any], alg: str | None = None) -> SignedToken:
    return SignedToken(ctx.sign(claims, alg), str(ctx.values["device_id"]))


def _no_exp(ctx: SignedContext) -> SignedToken:
    claims = ctx.claims()
    claims.pop("exp", None)
    return _own(ctx, claims)


def _exp_far(ctx: SignedContext) -> SignedToken:
    return _own(ctx, {**ctx.claims(), "exp": int(ctx.values["now"]) + YEARS_AHEAD_S})


def _ahead(ctx: SignedContext) -> int:
    return int(ctx.values["now"]) + int(ctx.profile.leeway_s) + BEYOND_LEEWAY_S


def _nbf_future(ctx: SignedContext) -> SignedToken:
    return _own(ctx, {**ctx.claims(), "nbf": _ahead(ctx)})


def _iat_future(ctx: SignedContext) -> SignedToken:
    return _own(ctx, {**ctx.claims(), "iat": _ahead(ctx)})


def _expired(ctx: SignedContext) -> SignedToken:
    # Minted as if long ago, so exp (and any iat) lie in the past beyond the leeway.
    ttl = int(ctx.values["ttl"])
    then = int(ctx.values["now"]) - ttl - int(ctx.profile.leeway_s) - BEYOND_LEEWAY_S
    return _own(ctx, ctx.claims(now=then))


def _unknown_device(ctx: SignedContext) -> SignedToken:
    stranger = f"unknown-{secrets.token_hex(4)}"
    return SignedToken(ctx.sign(ctx.claims(device_id=stranger)), stranger)


def _alg_switched(ctx: SignedContext) -> SignedToken | None:
    other = switched_alg(ctx.profile.token.alg)
    return None if other is None else _own(ctx, ctx.claims(), other)


def _alg_none(ctx: SignedContext) -> SignedToken:
    header = {"alg": "none", "typ": "JWT"}
    unsigned = f"{b64url(json_bytes(header))}.{b64url(json_bytes(ctx.claims()))}."
    return SignedToken(unsigned, str(ctx.values["device_id"]))


def _fixed(severity: Severity) -> Callable[[Profile], Severity]:
    return lambda profile: severity


def _registry(profile: Profile) -> Severity:
    return "info" if profile.provision.via == "none" else "high"


SIGNED_CASES: tuple[SignedCase, ...] = (
    SignedCase(
        "signed_alg_none", "the device's claims, unsigned (alg none)", True, _fixed("critical"),
        "anyone can write any claims: no key is needed at all", _alg_none,
    ),
    SignedCase(
        "signed_expired", "correctly signed, exp past by more than the leeway", True,
        _fixed("high"), "a leaked token works forever: expiry is not enforced", _expired,
    ),
    SignedCase(
        "signed_nbf_future", "correctly signed, nbf an hour beyond the leeway", True,
        _fixed("medium"), "tokens minted for later work now: nbf is not enforced", _nbf_future,
    ),
    SignedCase(
        "signed_no_exp", "correctly signed, no exp claim", False, _fixed("medium"),
        "a token without exp never lapses: a leaked one works until the key changes", _no_exp,
    ),
    SignedCase(
        "signed_exp_far_future", "correctly signed, exp ten years ahead", False, _fixed("low"),
        "the API sets no upper bound on a token's lifetime", _exp_far,
    ),
    SignedCase(
        "signed_iat_future", "correctly signed, iat an hour beyond the leeway", False,
        _fixed("low"), "tokens stamped in the future pass: iat is not checked", _iat_future,
    ),
    SignedCase(
        "signed_alg_switched", "correctly signed with another alg of the same key", False,
        _fixed("low"), "no algorithm allow-list (RFC 8725 3.1); still needs the key",
        _alg_switched,
    ),
    SignedCase(
        "signed_unknown_device", "correctly signed for a device id never registered", False,
        _registry, "any device id passes: the signing key is the only gate", _unknown_device,
    ),
)  # fmt: skip
