"""Secret strength: is an HMAC token signed with a common secret? Offline, no request sent."""

from __future__ import annotations

import hmac
from functools import cache
from importlib import resources

from sim.corpus.forging import token_parts, unb64url


@cache
def common_secrets() -> tuple[bytes, ...]:
    """Secrets people sign HS256 tokens with (``sim/corpus/common_secrets.txt``), plus the
    empty one."""
    text = resources.files("sim.corpus").joinpath("common_secrets.txt").read_text(encoding="utf-8")
    lines = (line.rstrip("\n") for line in text.splitlines())
    return (b"", *(line.encode() for line in lines if line and not line.startswith("#")))


def common_secret_name(index: int) -> str:
    """Common secret ``index`` as a report names it. It is on a public list, so naming it tells
    an attacker nothing new and tells the team exactly what to replace; a secret that is not on
    the list is never named."""
    secret = common_secrets()[index]
    return repr(secret.decode()) if secret else "the empty secret"


def common_secret_index(secret: str | bytes) -> int | None:
    """Where ``secret`` (a profile's own HMAC secret) sits in :func:`common_secrets`, if at all."""
    raw = secret.encode() if isinstance(secret, str) else secret
    found = [
        index for index, known in enumerate(common_secrets()) if hmac.compare_digest(known, raw)
    ]
    return found[0] if found else None


_HMAC_DIGESTS = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}


def find_common_secret(token: str) -> int | None:
    """Which common secret (its index in :func:`common_secrets`) signs this HMAC token, if any;
    None for a strong secret or a token of another algorithm. Offline: no request is sent."""
    head, payload, signature = token.split(".")
    digest = _HMAC_DIGESTS.get(token_parts(token)[0].get("alg", ""))
    if digest is None:
        return None
    signing_input = f"{head}.{payload}".encode()
    expected = unb64url(signature)
    for index, secret in enumerate(common_secrets()):
        if hmac.compare_digest(hmac.digest(secret, signing_input, digest), expected):
            return index
    return None
