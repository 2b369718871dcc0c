"""The JOSE and OAuth vocabulary both halves speak: algorithm names, key making, grant types.

Only standard names live here (RFC 7518 algorithms, RFC 7519 NumericDate, RFC 6749 and RFC 7523
grant types), never our target's HTTP contract, so the simulator may import this module to talk to
any target.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from typing import Any, Literal, get_args

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

__all__ = [
    "ALG_NAMES",
    "CLIENT_CREDENTIALS",
    "FORBIDDEN_HEADERS",
    "HMAC_SECRET_BYTES",
    "JWT_BEARER",
    "RSA_BITS",
    "AlgName",
    "client_credentials_form",
    "generate_private_key",
    "numeric_claim",
]

# -- header parameters both verifiers refuse (RFC 8725 §3.10, RFC 7515 §4.1.11) --------------------

# They would let a token choose its own key (jku, x5u, jwk, x5c) or demand extensions nobody here
# understands (crit). Both verifiers, access tokens and device assertions, refuse them.
FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c", "crit")

# -- algorithms (RFC 7518 §3.1, RFC 8037 §3.1) ---------------------------------------------------

AlgName = Literal["HS256", "HS384", "HS512", "ES256", "ES384", "EdDSA", "RS256", "PS256"]
ALG_NAMES: tuple[AlgName, ...] = get_args(AlgName)

HMAC_SECRET_BYTES = 64
RSA_BITS = 2048
RSA_EXPONENT = 65537


def _hmac_secret() -> bytes:
    return secrets.token_bytes(HMAC_SECRET_BYTES)


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=RSA_EXPONENT, key_size=RSA_BITS)


_KEY_MAKERS: dict[str, Callable[[], Any]] = {
    "HS256": _hmac_secret,
    "HS384": _hmac_secret,
    "HS512": _hmac_secret,
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ES384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
    "RS256": _rsa_key,
    "PS256": _rsa_key,
}
assert set(_KEY_MAKERS) == set(ALG_NAMES)


def generate_private_key(alg: str) -> Any:
    """A fresh private key for ``alg``: a cryptography key object, or the HMAC secret bytes."""
    return _KEY_MAKERS[alg]()


# -- claims (RFC 7519 §2) ------------------------------------------------------------------------


def numeric_claim(claims: dict[str, Any], name: str, error: Callable[[str], Exception]) -> float:
    """The NumericDate claim ``name`` as a finite float; ``error(reason)`` is raised otherwise."""
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(f"{name} is not a number")
    try:
        number = float(value)
    except OverflowError as e:  # a JSON integer too large for a float
        raise error(f"{name} is not a finite number") from e
    if not math.isfinite(number):  # NaN passes every comparison: an exp of NaN would never expire
        raise error(f"{name} is not a finite number")
    return number


# -- OAuth 2.0 grants (RFC 6749 §4.4, RFC 7523 §2.1) ---------------------------------------------

CLIENT_CREDENTIALS = "client_credentials"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def client_credentials_form(client_id: str, client_secret: str) -> dict[str, str]:
    """The token request body of the client-credentials grant, the client authenticated in it."""
    return {
        "grant_type": CLIENT_CREDENTIALS,
        "client_id": client_id,
        "client_secret": client_secret,
    }
