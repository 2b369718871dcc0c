"""What a shared profile may not do (issue 30): send traffic off ``--target``, read environment
variables outside its credential fields, or crash the loader with a deeply nested file."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.profiles import ProfileError, load_profile
from sim.untrusted import same_origin
from tests.sim.profiles.test_profiles import GOOD, SECRET, write

ENV = {"MY_SECRET": SECRET, "AWS_SECRET_ACCESS_KEY": SECRET, "GITHUB_TOKEN": SECRET}


@pytest.mark.parametrize(
    "path",
    ["@127.0.0.1:18402/login", "api/data", "//evil.example/x", "{device_id}/data"],
)
def test_a_path_that_does_not_start_with_a_slash_is_refused(tmp_path: Path, path: str) -> None:
    text = GOOD.replace('path = "/other"', f'path = "{path}"')
    if path.startswith("/"):  # "//host" starts with "/" but names a host to a browser, not to us
        profile = load_profile(str(write(tmp_path, text)), ENV)
        assert profile.endpoints[1].path == path
        return
    with pytest.raises(ProfileError) as e:
        load_profile(str(write(tmp_path, text)), ENV)
    assert "endpoints.1.path must start with '/'" in str(e.value)
    assert str(e.value).count("\n") == 0


FORMAT = '[present]\nformat = "{token}"'
CLAIMS = 'claims = { sub = "{device_id}", exp = "{now + ttl}" }'
OTHER = 'path = "/other"'


@pytest.mark.parametrize(
    ("where", "old", "new"),
    [
        ("present.query", FORMAT, '[present]\nquery = "access_token&aws=${AWS_SECRET_ACCESS_KEY}"'),
        ("present.header", FORMAT, f'{FORMAT}\nheader = "X-${{GITHUB_TOKEN}}"'),
        ("endpoints.1.name", 'name = "other"', 'name = "other-${GITHUB_TOKEN}"'),
        ("endpoints.1.method", OTHER, f'{OTHER}\nmethod = "${{GITHUB_TOKEN}}"'),
        ("endpoints.1.path", OTHER, 'path = "/other/${GITHUB_TOKEN}"'),
        ("token.claims.sub", CLAIMS, CLAIMS.replace("{device_id}", "${GITHUB_TOKEN}")),
    ],
)
def test_environment_variables_outside_credential_fields_are_refused(
    tmp_path: Path, where: str, old: str, new: str
) -> None:
    assert old in GOOD
    with pytest.raises(ProfileError) as e:
        load_profile(str(write(tmp_path, GOOD.replace(old, new))), ENV)
    message = str(e.value)
    assert f"in {where}:" in message, message
    assert SECRET not in message


def test_credential_fields_still_read_the_environment(tmp_path: Path) -> None:
    text = GOOD.replace('format = "{token}"', 'format = "${API_KEY} {token}"')
    profile = load_profile(str(write(tmp_path, text)), {**ENV, "API_KEY": "k"})
    assert profile.token.secret == SECRET and profile.present.format == "k {token}"
    assert profile.reads == ("API_KEY", "MY_SECRET")
    assert load_profile("seed-express", {"JWT_SECRET": SECRET}).reads == ("JWT_SECRET",)
    assert load_profile("fleetbench", {}).reads == ()


def test_a_deeply_nested_profile_is_one_line(tmp_path: Path) -> None:
    text = GOOD + "\n[devices]\nid_pattern = " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(ProfileError) as e:
        load_profile(str(write(tmp_path, text)), ENV)
    assert "nested too deep" in str(e.value)


def test_only_the_targets_origin_is_the_same_origin() -> None:
    base = "http://127.0.0.1:8000"
    assert same_origin(base, base + "/login")
    assert same_origin(base, base + "//evil.example/x")  # a path on the target
    assert not same_origin(base, base + "@127.0.0.1:18402/login")
    assert not same_origin(base, "https://127.0.0.1:8000/login")
    assert not same_origin(base, "http://127.0.0.1:8001/login")
    assert not same_origin(base, "http://127.0.0.1:x/login")


ENDPOINT_TOKEN = """\
name = "api"

[token]
path = "/auth/token"
form = { client_id = "{device_id}", client_secret = "${API_SECRET}" }

[[endpoints]]
name = "data"
path = "/api/data"
"""


def test_a_credential_in_a_token_form_reads_the_environment(tmp_path: Path) -> None:
    profile = load_profile(str(write(tmp_path, ENDPOINT_TOKEN)), {"API_SECRET": SECRET})
    assert profile.token.form == {"client_id": "{device_id}", "client_secret": SECRET}
    assert profile.reads == ("API_SECRET",)
    # Braces would read as a placeholder when the form is filled: refused, without the value.
    with pytest.raises(ProfileError) as e:
        load_profile(str(write(tmp_path, ENDPOINT_TOKEN)), {"API_SECRET": "s{x}"})
    assert "holds { or }" in str(e.value) and "s{x}" not in str(e.value)
