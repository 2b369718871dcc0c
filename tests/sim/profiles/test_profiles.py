"""Target profiles: the shipped ones load; every error is one line FILE:LINE; no secret leaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.errors import SimError
from sim.profiles import ProfileError, load_profile
from sim.profiles.load import builtin_names, line_of

SECRET = "s3cr3t-value-that-must-not-leak"

GOOD = """\
name = "mine"
leeway_s = 2

[token]
source = "minted"
secret = "${MY_SECRET}"
claims = { sub = "{device_id}", exp = "{now + ttl}" }

[present]
format = "{token}"

[[endpoints]]
name = "data"
path = "/api/{device_id}"

[[endpoints]]
name = "other"
path = "/other"
weight = 3
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(text)
    return path


def test_fleetbench_profile_is_our_contract() -> None:
    profile = load_profile("fleetbench", {})
    assert profile.name == "fleetbench"
    assert profile.leeway_s == 10
    assert profile.provision.via == "admin"
    assert profile.token.source == "endpoint" and profile.token.path == "/auth/token"
    assert profile.refusals.read == "rfc6750"
    assert [e.name for e in profile.endpoints] == ["telemetry", "config", "data"]
    assert profile.present.format == "Bearer {token}"


def test_seed_express_takes_its_secret_from_the_environment() -> None:
    profile = load_profile("seed-express", {"JWT_SECRET": SECRET})
    assert profile.minted and profile.token.secret == SECRET
    assert profile.present.format == "{token}"
    assert SECRET not in repr(profile)


def test_shipped_profiles_are_listed() -> None:
    assert {"fleetbench", "seed-express", "flask-jwt-extended"} <= set(builtin_names())
    for name in builtin_names():
        assert load_profile(name, {"JWT_SECRET": SECRET}).name == name


def test_a_file_substitutes_variables(tmp_path: Path) -> None:
    profile = load_profile(str(write(tmp_path, GOOD)), {"MY_SECRET": SECRET})
    assert profile.token.secret == SECRET
    assert [e.weight for e in profile.endpoints] == [1, 3]
    assert profile.source.endswith("p.toml")


def test_missing_variable_names_it_and_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    with pytest.raises(ProfileError) as caught:
        load_profile(str(path), {})
    assert str(caught.value) == f"{path}:6: environment variable MY_SECRET is not set"
    assert isinstance(caught.value, SimError)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (GOOD.replace("leeway_s = 2", "leeway_s = 2\ncolour = 1"), 3, "unknown key 'colour'"),
        (GOOD.replace('format = "{token}"', 'format = "{token}"\nheadr = "X"'), 11, "'headr'"),
        (GOOD.replace("weight = 3", "weight = 3\nwieght = 1"), 20, "unknown key 'wieght'"),
        (GOOD.replace("weight = 3", 'weight = "heavy"'), 19, "expected `int`, got `str`"),
        (GOOD.replace("leeway_s = 2", 'leeway_s = "2"'), 2, "leeway_s"),
        (GOOD.replace("{now + ttl}", "{now + tomorrow}"), 7, "placeholder {now + tomorrow}"),
        (GOOD.replace("/api/{device_id}", "/api/{device}"), 14, "placeholder {device}"),
        (GOOD.replace("[token]", "[tokn]"), 4, "unknown key 'tokn'"),
        (GOOD.replace('source = "minted"', 'source = "magic"'), 5, "token.source"),
        (GOOD + "[[endpoints]]\nname = 'x'\npath = '/x'\nweight = 0\n", 23, "weight must be"),
        (GOOD.replace("[present]", "[present"), 9, "not valid TOML"),
        (
            GOOD.replace("[present]", "[token.refresh]\npath = '/r'\n[present]"),
            9,
            "refresh_token_field",
        ),
    ],
)
def test_errors_are_one_line_with_file_and_line(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as caught:
        load_profile(str(path), {"MY_SECRET": SECRET})
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert words in message
    assert "\n" not in message
    assert SECRET not in message


def test_a_secret_that_does_not_fit_is_not_shown(tmp_path: Path) -> None:
    text = GOOD.replace("leeway_s = 2", 'leeway_s = 2\n[devices]\ncredentials = "${MY_SECRET}"')
    path = write(tmp_path, text)
    # As written, "${MY_SECRET}" is not one of secret/key/none either: refused before substitution
    # with the placeholder, not the value.
    with pytest.raises(ProfileError) as caught:
        load_profile(str(path), {"MY_SECRET": SECRET})
    assert SECRET not in str(caught.value)
    assert str(caught.value).startswith(f"{path}:4: ")


def test_unknown_profile_names_the_shipped_ones() -> None:
    with pytest.raises(ProfileError, match=r"unknown profile 'nope': use one of .*fleetbench"):
        load_profile("nope", {})


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"missing.toml: cannot read the profile"):
        load_profile(str(tmp_path / "missing.toml"), {})


def test_line_of_finds_nested_tables() -> None:
    text = "a = 1\n[t]\nb = 2\n[[e]]\nc = 3\n[[e]]\nc = 4\n[t.r]\nd = { x = 1 }\n"
    assert line_of(text, ("a",)) == 1
    assert line_of(text, ("t", "b")) == 3
    assert line_of(text, ("e", 1, "c")) == 7
    assert line_of(text, ("t", "r", "d", "x")) == 9


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "smoke", "provision"])
def test_a_bad_profile_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    import os
    import subprocess
    import sys

    path = write(tmp_path, GOOD.replace("weight = 3", "weight = 3\nwieght = 1"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    env["MY_SECRET"] = SECRET
    result = subprocess.run(
        [sys.executable, "-m", "sim", command, "--profile", str(path),
         "--target", "http://127.0.0.1:9", "--out", str(tmp_path / "f.json")][
            : None if command == "provision" else -2
        ],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"fleetbench: error: {path}:20: unknown key 'wieght'"
    ]


def test_profile_fleets_and_device_files(tmp_path: Path) -> None:
    from sim.errors import FleetError
    from sim.fleet.model import make_fleet, save_fleet
    from sim.profiles.registration import profile_fleet, read_devices_file

    seed = load_profile("seed-express", {"JWT_SECRET": SECRET})
    fleet = profile_fleet(seed, 3)
    assert [d.id for d in fleet] == ["device-00000", "device-00001", "device-00002"]
    assert fleet.kind == "secret" and all(d.private_pem is None for d in fleet)
    csv_file = tmp_path / "devices.csv"
    csv_file.write_text("id,secret\nmeter-1,pw1\nmeter-2,pw2\n")
    assert [(d.id, d.secret) for d in read_devices_file(csv_file)] == [
        ("meter-1", "pw1"),
        ("meter-2", "pw2"),
    ]
    csv_file.write_text("meter-1\n")
    with pytest.raises(FleetError, match="row 1 is not id,secret"):
        read_devices_file(csv_file)
    ours = make_fleet(2, "secret")
    save_fleet(ours, tmp_path / "fleet.json")
    assert [d.id for d in read_devices_file(tmp_path / "fleet.json")] == [d.id for d in ours]
