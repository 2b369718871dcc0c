"""``fleetbench attack --profile`` against real APIs of other libraries: the Express +
jsonwebtoken seed API (weak and strong secrets), a flask-jwt-extended login API, and the lax API
that reads tokens without verifying them."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sim.artefacts.codec import read_attack
from tests.apis.serve import serve_listening
from tests.sim.conftest import serve_broken_target

pytestmark = pytest.mark.slow  # each test starts a server, a run or the command

REPO = Path(__file__).resolve().parents[3]
SEED = REPO / "tests" / "apis" / "seed_express"
LAX_PROFILE = REPO / "tests" / "apis" / "lax" / "profile.toml"

no_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
no_modules = pytest.mark.skipif(
    not (SEED / "node_modules" / "express").is_dir(),
    reason="run npm ci --prefix tests/apis/seed_express (as .ci/run does)",
)


def attack(
    *args: str, secret: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``fleetbench attack ARGS`` as a user runs it, ``JWT_SECRET`` set only when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    env.pop("JWT_SECRET", None)
    if secret is not None:
        env["JWT_SECRET"] = secret
    return subprocess.run(
        [sys.executable, "-m", "sim", "attack", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def cases(folder: Path) -> dict[str, dict[str, Any]]:
    body = read_attack(folder / "attack.json")  # validated against its type
    assert len(body["runs"]) == 1
    return {case["name"]: dict(case) for case in body["runs"][0]["cases"]}


StartSeed = Callable[[str], str]


@pytest.fixture
def start_seed() -> Iterator[StartSeed]:
    """Start the seed API (node) with a given ``JWT_SECRET``; its URL. Stopped after the test."""
    with contextlib.ExitStack() as stack:

        def start(secret: str) -> str:
            env = {**os.environ, "JWT_SECRET": secret}
            return stack.enter_context(serve_listening(["node", str(SEED / "server.js"), "0"], env))

        yield start


@no_node
@no_modules
def test_seed_express_with_a_common_secret_fails_naming_it(
    start_seed: StartSeed, tmp_path: Path
) -> None:
    url = start_seed("secret_key")
    done = attack("--profile", "seed-express", "--target", url, "--results", str(tmp_path),
                  secret="secret_key")  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    # A secret from the public list is named: the team must know which one to replace.
    assert "common secret #" in done.stdout and "'secret_key'" in done.stdout
    assert "anyone can mint a token for any device id" in done.stdout
    found = cases(tmp_path)
    weak = found["weak_hmac_secret"]
    assert weak["verdict"] == "weak_secret" and weak["severity"] == "critical"
    # The attack proved it: a token it minted with the secret for a device of its choosing passed.
    assert "the API ACCEPTED it" in weak["impact"]
    # Nothing else is accepted: the weak secret alone fails this API.
    assert [n for n, c in found.items() if c["verdict"] == "accepted"] == []
    assert "secret_key" in (tmp_path / "report.html").read_text()
    # 10 bytes for HS256 (RFC 7518 3.2 asks for 32): a finding of its own, the length only.
    short = found["short_hmac_secret"]
    assert (short["verdict"], short["severity"], short["got"]) == ("finding", "medium", "10 bytes")


@no_node
@no_modules
def test_seed_express_with_a_strong_secret_passes_with_findings(
    start_seed: StartSeed, tmp_path: Path
) -> None:
    secret = secrets.token_hex(32)
    url = start_seed(secret)
    done = attack("--profile", "seed-express", "--target", url, "--results", str(tmp_path),
                  secret=secret)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS HS256" in done.stdout and "(profile seed-express)" in done.stdout
    found = cases(tmp_path)
    verdicts = {name: case["verdict"] for name, case in found.items()}
    # jsonwebtoken refuses none, expired and early tokens and pins HS256 (server.js algorithms).
    for name in ("signed_alg_none", "signed_expired", "signed_nbf_future", "signed_alg_switched",
                 "alg_none", "expired", "tampered_signature", "no_token"):  # fmt: skip
        assert verdicts[name] == "refused", (name, found[name])
    assert found["no_token"]["got"] == "401 missing"
    assert found["alg_none"]["got"] == "403 invalid"
    # ... and by default takes a token without exp, years ahead, or stamped in the future.
    assert verdicts["signed_no_exp"] == "finding" and found["signed_no_exp"]["severity"] == "medium"
    assert verdicts["signed_exp_far_future"] == verdicts["signed_iat_future"] == "finding"
    # No registry: any device id signed with the key passes, by design (info).
    assert found["signed_unknown_device"]["severity"] == "info"
    assert verdicts["weak_hmac_secret"] == verdicts["short_hmac_secret"] == "refused"
    assert "critical" not in {case.get("severity") for case in found.values()}
    # The secret is not on the list: it appears nowhere.
    for path in [*tmp_path.iterdir()]:
        assert secret not in path.read_text(), path
    assert secret not in done.stdout + done.stderr
    # --strict makes the findings failures.
    strict = attack("--profile", "seed-express", "--target", url, "--results",
                    str(tmp_path / "strict"), "--strict", "--quiet", secret=secret)  # fmt: skip
    assert strict.returncode == 1, strict.stdout + strict.stderr


def test_flask_jwt_extended_refuses_every_forgery(tmp_path: Path) -> None:
    env = {**os.environ, "JWT_SECRET": secrets.token_hex(32), "JWT_TTL_S": "900"}
    with serve_listening([sys.executable, "-m", "tests.apis.flask_jwt.app", "0"], env) as url:
        done = attack("--profile", "flask-jwt-extended", "--target", url, "--results",
                      str(tmp_path), "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    found = cases(tmp_path)
    verdicts = {name: case["verdict"] for name, case in found.items()}
    # Issued tokens: no signing key, so no signed cases; the API's own token cracked offline.
    assert not any(name.startswith("signed_") for name in found)
    assert verdicts["weak_hmac_secret"] == "refused"
    # flask-jwt-extended's answers, read through the profile: 401 missing, 422 invalid.
    assert found["no_token"]["got"] == "401 missing"
    assert found["tampered_signature"]["got"] == "422 invalid"
    assert found["alg_none"]["got"] == "422 invalid"
    assert set(verdicts.values()) <= {"refused", "skipped"}
    # Its login refuses wrong credentials, and each of the pair is refused where the other goes.
    token_calls = [name for name, case in found.items() if case["family"] == "token_call"]
    assert len(token_calls) == 6 and "refresh_token_as_access" in token_calls
    for name in token_calls:
        assert verdicts[name] == "refused", (name, found[name])
    assert found["login_wrong_secret"]["got"] == "401"
    assert found["refresh_token_as_access"]["got"] == "422 invalid"
    # Our target's own cases are skipped, with the reason.
    assert found["revoked_device"]["got"].startswith("not sent:")
    assert read_attack(tmp_path / "attack.json")["runs"][0]["still_serving"]


def test_the_lax_api_fails_for_what_it_accepts(tmp_path: Path) -> None:
    with serve_broken_target("tests.apis.lax.app:app") as url:
        done = attack("--profile", str(LAX_PROFILE), "--target", url, "--results", str(tmp_path),
                      "--quiet")  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL HS256" in done.stdout
    found = cases(tmp_path)
    for name, severity in (("alg_none", "critical"), ("tampered_signature", "critical"),
                           ("signed_alg_none", "critical"), ("signed_expired", "high"),
                           ("other_device", "high")):  # fmt: skip
        assert found[name]["verdict"] == "accepted", (name, found[name])
        assert found[name]["severity"] == severity
    assert "another device's data" in found["other_device"]["impact"]
    assert found["missing_exp"]["verdict"] == "accepted"
    body = read_attack(tmp_path / "attack.json")
    assert body["passed"] is False and body["runs"][0]["profile"] == "lax"
    assert any("signed_expired: accepted, high" in f for f in body["runs"][0]["failures"])


def test_a_login_that_ignores_the_password_fails(tmp_path: Path) -> None:
    profile = REPO / "tests" / "apis" / "lax" / "login-profile.toml"
    with serve_broken_target("tests.apis.lax.app:app") as url:
        done = attack("--profile", str(profile), "--target", url, "--results", str(tmp_path),
                      "--quiet")  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    found = cases(tmp_path)
    for name in ("login_wrong_secret", "login_empty_secret", "login_unknown_device",
                 "login_other_device"):  # fmt: skip
        assert found[name]["verdict"] == "accepted", (name, found[name])
        assert found[name]["severity"] == "critical"
        assert found[name]["got"] == "200 with a token"
    # No refresh call in this profile; issued tokens: no signed cases.
    assert "refresh_with_access_token" not in found
    assert not any(name.startswith("signed_") for name in found)


def test_profile_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(LAX_PROFILE.read_text().replace("[present]", "[present]\nshape = 1"))
    results = str(tmp_path / "results")
    runs = [
        attack("--profile", str(bad), "--target", "http://127.0.0.1:9", "--results", results),
        attack("--profile", "no-such-profile", "--target", "http://127.0.0.1:9"),
        attack("--profile", str(LAX_PROFILE)),  # a foreign API is never embedded
        attack("--profile", "seed-express", "--target", "http://127.0.0.1:9"),  # no JWT_SECRET
    ]
    for done in runs:
        assert done.returncode == 2, done.stdout + done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("fleetbench: error: "), lines
    assert f"{bad}:" in runs[0].stderr and "unknown key 'shape'" in runs[0].stderr
    assert "needs --target" in runs[2].stderr
    assert "JWT_SECRET" in runs[3].stderr
    assert not (tmp_path / "results").exists()  # no results folder for bad input


def test_an_unreachable_api_is_one_line_exit_2() -> None:
    done = attack("--profile", str(LAX_PROFILE), "--target", "http://127.0.0.1:9")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().startswith("fleetbench: error: ")
    assert len(done.stderr.strip().splitlines()) == 1
