"""The signed cases of ``fleetbench attack`` (sim/attack/signed.py) are correctly signed with the
profile's key and break exactly the rule each names; the common-secret helpers."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sim.attack.signed import SIGNED_CASES, SignedContext, sign_with, switched_alg
from sim.corpus import common_secret_index, common_secret_name, find_common_secret
from sim.profiles import Profile, load_profile

if TYPE_CHECKING:
    from jwt.types import Options

REPO = Path(__file__).resolve().parents[3]
LAX = REPO / "tests" / "apis" / "lax" / "profile.toml"


def _profile(tmp_path: Path, alg: str, key_line: str) -> Profile:
    text = LAX.read_text().replace('alg = "HS256"', f'alg = "{alg}"')
    text = text.replace('secret = "lax-api-test-secret-not-used-by-the-api"', key_line)
    path = tmp_path / "profile.toml"
    path.write_text(text.replace("leeway_s = 0", "leeway_s = 30"))
    return load_profile(str(path), {})


def _context(profile: Profile, key: object) -> SignedContext:
    now = int(time.time())
    values = {"device_id": "dev-1", "other_device_id": "dev-2", "secret": "", "n": 0,
              "now": now, "ts": float(now), "ttl": profile.token.ttl_s, "seq": 1}  # fmt: skip
    return SignedContext(profile, key, values)


def _tokens(ctx: SignedContext) -> dict[str, tuple[str, str]]:
    built = {case.name: case.build(ctx) for case in SIGNED_CASES}
    return {name: (b.token, b.device_id) for name, b in built.items() if b is not None}


def test_each_hmac_case_is_correctly_signed_and_breaks_one_rule(tmp_path: Path) -> None:
    secret = secrets.token_hex(32)  # 64 bytes: long enough for HS512 too
    profile = _profile(tmp_path, "HS256", f'secret = "{secret}"')
    tokens = _tokens(_context(profile, secret))
    now = time.time()
    lenient: Options = {"verify_exp": False, "verify_nbf": False, "verify_iat": False}
    claims = {}
    for name, (token, _) in tokens.items():
        if name == "signed_alg_none":
            continue
        # The signature is good: the API verifies it with its own key and this allow-list.
        claims[name] = jwt.decode(token, secret, algorithms=["HS256", "HS512"], options=lenient)
    assert jwt.get_unverified_header(tokens["signed_alg_switched"][0])["alg"] == "HS512"
    signature = tokens["signed_alg_none"][0].split(".")[2]
    assert signature == "" and jwt.get_unverified_header(tokens["signed_alg_none"][0]) == {
        "alg": "none", "typ": "JWT",
    }  # fmt: skip
    assert "exp" not in claims["signed_no_exp"]
    assert claims["signed_exp_far_future"]["exp"] > now + 9 * 365 * 86400
    # Beyond the profile's leeway (30 s here), by an hour.
    assert claims["signed_expired"]["exp"] < now - 30 - 3000
    assert claims["signed_nbf_future"]["nbf"] > now + 30 + 3000
    assert claims["signed_iat_future"]["iat"] > now + 30 + 3000
    # The unknown device: a fresh id in the claims and on the path.
    unknown_path = tokens["signed_unknown_device"][1]
    assert claims["signed_unknown_device"]["sub"] == unknown_path != "dev-1"
    # Each other case keeps the device's own claims but for the one rule it breaks.
    assert claims["signed_nbf_future"]["sub"] == "dev-1"


def test_an_rsa_key_switches_within_its_family(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    (tmp_path / "key.pem").write_bytes(pem)
    profile = _profile(tmp_path, "RS256", f'private_key_file = "{tmp_path / "key.pem"}"')
    token, _ = _tokens(_context(profile, key))["signed_alg_switched"]
    assert jwt.get_unverified_header(token)["alg"] == "RS512"
    assert jwt.decode(token, key.public_key(), algorithms=["RS512"])["sub"] == "dev-1"


@pytest.mark.parametrize(("alg", "other"), [("HS256", "HS512"), ("RS256", "RS512"),
                                            ("ES256", None), ("EdDSA", None)])  # fmt: skip
def test_switched_alg(alg: str, other: str | None) -> None:
    assert switched_alg(alg) == other


def test_a_common_secret_is_found_and_named_even_the_empty_one() -> None:
    # PyJWT refuses to sign with an empty key; the attack signs through hmac itself.
    empty = sign_with(b"", "HS256", {"sub": "x"}, {})
    assert find_common_secret(empty) == 0 and common_secret_name(0) == "the empty secret"
    index = common_secret_index("secret_key")
    assert index is not None and common_secret_name(index) == "'secret_key'"
    assert find_common_secret(sign_with("secret_key", "HS256", {"sub": "x"}, {})) == index
    assert common_secret_index(secrets.token_hex(16)) is None
