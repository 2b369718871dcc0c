"""Secret strength: is an HMAC token signed with a common secret? Offline, no request sent."""

from __future__ import annotations

import hmac
from functools import cache
from importlib import resources

from sim.corpus.forging import token_parts, unb64url


@cache
def common_secrets() -> tuple[bytes, ...]:
    """Secrets people sign HS256 tokens with (``sim/common_secrets.txt``), plus the empty one."""
    text = resources.files("sim").joinpath("common_secrets.txt").read_text(encoding="utf-8")
    lines = (line.rstrip("\n") for line in text.splitlines())
    return (b"", *(line.encode() for line in lines if line and not line.startswith("#")))


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
