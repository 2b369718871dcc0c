"""Calls carry the profile's headers (an admin API key from ``${VAR}``), which stay secret:
never in a report, a log or a message (issue 26 item 1)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.profiles import ProfileError, load_profile
from sim.profiles.http import endpoint_request, refresh_request, token_request
from tests.apis.serve import serve_listening

REPO = Path(__file__).resolve().parents[3]
ADMIN_KEY = "admin-key-" + secrets.token_hex(12)
SHIPPED = (REPO / "sim/profiles/builtin/flask-jwt-extended.toml").read_text()
WITH_HEADERS = SHIPPED.replace(
    "exists = [409]\n", 'exists = [409]\nheaders = { "X-Api-Key" = "${ADMIN_KEY}" }\n'
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "api.toml"
    path.write_text(text)
    return path


def test_every_call_carries_its_headers(tmp_path: Path) -> None:
    text = (
        WITH_HEADERS.replace('token_field = "access_token"\nrefresh_token_field',
                             'token_field = "access_token"\n'
                             'headers = { "X-Client" = "${ADMIN_KEY}" }\nrefresh_token_field')
        .replace('path = "/refresh"\n', 'path = "/refresh"\nheaders = { "X-Refresh" = "r" }\n')
        .replace('path = "/protected"\n', 'path = "/protected"\nheaders = { "X-Tenant" = "t1" }\n')
    )  # fmt: skip
    profile = load_profile(str(write(tmp_path, text)), {"ADMIN_KEY": ADMIN_KEY})
    assert profile.provision.headers == {"X-Api-Key": ADMIN_KEY}
    values = {"device_id": "d", "secret": "s", "refresh_token": "rt"}
    assert token_request(profile, values, assertion=False).headers["X-Client"] == ADMIN_KEY
    assert refresh_request(profile, values).headers["X-Refresh"] == "r"
    request = endpoint_request(profile, profile.endpoints[0], values, "tok")
    assert request.headers == {"X-Tenant": "t1", "Authorization": "Bearer tok"}
    assert ADMIN_KEY not in repr(profile) + repr(request)


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ('path = "/protected"', 'path = "/${ADMIN_KEY}"', "${ADMIN_KEY} in endpoints.0.path"),
        ('name = "protected"', 'name = "p-${ADMIN_KEY}"', "hold credentials"),
        ('method = "GET"', 'method = "${ADMIN_KEY}"', "endpoints.0.method"),
    ],
)
def test_variables_fill_only_credentials(tmp_path: Path, old: str, new: str, words: str) -> None:
    text = WITH_HEADERS.replace(old, new)
    line = text.splitlines().index(new) + 1
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as caught:
        load_profile(str(path), {"ADMIN_KEY": ADMIN_KEY})
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: ") and words in message, message
    assert ADMIN_KEY not in message


def test_unknown_keys_list_the_allowed_ones(tmp_path: Path) -> None:
    path = write(tmp_path, SHIPPED.replace("exists = [409]\n", "exists = [409]\nheader = 1\n"))
    with pytest.raises(ProfileError) as caught:
        load_profile(str(path), {})
    assert str(caught.value) == (
        f"{path}:19: unknown key 'header' (allowed here: via, method, path, json, form, batch,"
        " ok, exists, file, headers)"
    )
    path = write(tmp_path, SHIPPED.replace('path = "/refresh"', 'path = "/refresh"\nfrom = 1'))
    with pytest.raises(ProfileError, match=r"allowed here: path, method, json, form, token_f"):
        load_profile(str(path), {})


def test_minted_tokens_send_no_token_call_headers(tmp_path: Path) -> None:
    text = (REPO / "sim/profiles/builtin/seed-express.toml").read_text()
    text = text.replace("ttl_s = 3600", 'ttl_s = 3600\nheaders = { kid = "k1" }')
    with pytest.raises(ProfileError, match="JOSE header fields go in jose_header"):
        load_profile(str(write(tmp_path, text)), {"JWT_SECRET": "x" * 32})
    minted = load_profile(
        str(write(tmp_path, text.replace("headers =", "jose_header ="))), {"JWT_SECRET": "x" * 32}
    )
    assert minted.token.jose_header == {"kid": "k1"}


@pytest.fixture
def guarded_api() -> Iterator[str]:
    env = {**os.environ, "JWT_SECRET": secrets.token_hex(32), "ADMIN_KEY": ADMIN_KEY}
    with serve_listening([sys.executable, "-m", "tests.apis.flask_jwt.app", "0"], env) as url:
        yield url


@pytest.mark.slow
def test_registration_through_an_api_key_header(guarded_api: str, tmp_path: Path) -> None:
    """Registration guarded by X-Api-Key, the key from the environment: the run registers its
    devices with no step outside fleetbench, and the key is in none of its files or output."""
    profile = write(tmp_path, WITH_HEADERS)
    results = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    result = subprocess.run(
        [sys.executable, "-m", "sim", "run", "--profile", str(profile), "--target", guarded_api,
         "--devices", "3", "--duration", "3", "--interval", "0.2", "--results", str(results)],
        cwd=REPO, env={**env, "ADMIN_KEY": ADMIN_KEY}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((results / "summary.json").read_text())
    assert summary["run"]["fleet"]["created"] == 3
    assert summary["outcomes"]["ok"] > 0
    written = [p.read_bytes() for p in results.rglob("*") if p.is_file()]
    assert written and not any(ADMIN_KEY.encode() in data for data in written)
    assert ADMIN_KEY not in result.stdout + result.stderr
    # Without the header the API refuses registration: the run says so in one line.
    result = subprocess.run(
        [sys.executable, "-m", "sim", "run", "--profile", "flask-jwt-extended", "--target",
         guarded_api, "--devices", "3", "--duration", "3", "--results", str(tmp_path / "r2")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0 and "POST /register answered 401" in result.stderr


@pytest.mark.slow
def test_telemetry_is_reconciled_with_the_apis_stats_call(guarded_api: str, tmp_path: Path) -> None:
    """Issue 26 item 7: a [stats] call (its admin header from the environment) gives the API's
    own received count, so received, lost and duplicated are known on a foreign API."""
    text = WITH_HEADERS.replace(
        "[refusals]",
        '[[endpoints]]\nname = "readings"\nmethod = "POST"\npath = "/readings"\n'
        'body = { seq = "{seq}" }\nok = [202]\n\n'
        '[stats]\npath = "/stats"\nfield = "readings.received"\n'
        'headers = { "X-Api-Key" = "${ADMIN_KEY}" }\n\n[refusals]',
    )
    results = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    result = subprocess.run(
        [sys.executable, "-m", "sim", "run", "--profile", str(write(tmp_path, text)),
         "--target", guarded_api, "--endpoint", "readings", "--devices", "3", "--duration", "3",
         "--interval", "0.2", "--results", str(results)],
        cwd=REPO, env={**env, "ADMIN_KEY": ADMIN_KEY}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    telemetry = json.loads((results / "summary.json").read_text())["telemetry"]
    assert telemetry["available"] and telemetry["acknowledged"] > 0, telemetry
    assert telemetry["lost"] == telemetry["duplicated"] == 0, telemetry
    assert telemetry["received"] == telemetry["acknowledged"] + telemetry["unacknowledged"]
    assert f"received {telemetry['received']}, lost 0, duplicated 0" in result.stdout
    assert ADMIN_KEY not in result.stdout + result.stderr
