"""A profile's ``[mqtt]`` section: every bad key is one line FILE:LINE, a profile cannot send
tokens to a host of its choosing, and the section fills the devices' MqttSettings."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.errors import ConfigError
from sim.profiles import ProfileError, load_profile
from sim.profiles.mqtt import broker_host, credentials, mqtt_settings, topic
from sim.run.config import RunConfig
from sim.run.embedded import EmbeddedTarget
from sim.run.runner import run_benchmark
from tests.commands import REPO, fleetbench_here

BASE = """\
name = "broker"

[[endpoints]]
name = "config"
path = "/devices/{device_id}/config"

[mqtt]
"""


def profile_file(tmp_path: Path, mqtt: str) -> Path:
    path = tmp_path / "broker.toml"
    path.write_text(BASE + mqtt + "\n")
    return path


@pytest.mark.parametrize(
    ("mqtt", "words"),
    [
        ("prot = 1884", "unknown key 'prot' (allowed here: host, port, tls, ca_file"),
        ("port = 0", "mqtt.port must be 1 to 65535"),
        ('port = "1883"', "mqtt.port: expected `int`, got `str`"),
        ('protocol = "4"', "mqtt.protocol: invalid enum value '4'"),
        ('token_in = "header"', "mqtt.token_in: invalid enum value 'header'"),
        ('ca_file = "ca.pem"', "mqtt.ca_file needs tls = true"),
        ("qos = 2", "mqtt.qos must be 0 or 1"),
        ("connect_timeout_s = 0", "mqtt.connect_timeout_s must be over 0"),
        ("bad_credentials = [0]", "mqtt.bad_credentials must list CONNACK codes from 1 to 255"),
        ("not_authorised = []", "mqtt.not_authorised must list CONNACK codes"),
        ('username = "{secret}"', "mqtt.username may name only {device_id}, not {secret}"),
        ('client_id = "{token}"', "mqtt.client_id may name only {device_id}, not {token}"),
        ('telemetry_topic = "devices/all"', "mqtt.telemetry_topic must name {device_id}"),
        ('acl_topic = "devices/{device_id}/x"', "mqtt.acl_topic must name {other_device_id}"),
        ('telemetry_topic = "d/{device_id}/#"', "must be a topic name without + or #"),
        ('host = "broker.example/x"', "mqtt.host must be a host name or address"),
        ('host = "${BROKER}"', "${BROKER} in mqtt.host: environment variables may stand only"),
    ],
)
def test_a_bad_mqtt_key_is_one_line_naming_its_line(tmp_path: Path, mqtt: str, words: str) -> None:
    path = profile_file(tmp_path, mqtt)
    with pytest.raises(ProfileError) as caught:
        load_profile(str(path), {"BROKER": "elsewhere.example"})
    message = str(caught.value)
    assert message.startswith(f"{path}:8: "), message
    assert words in message, message
    assert "\n" not in message


def test_a_bad_mqtt_section_through_the_command_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = profile_file(tmp_path, "qos = 2")
    result = fleetbench_here(
        "attack", "--transport", "mqtt", "--profile", str(path), "--target", "http://127.0.0.1:9"
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"fleetbench: error: {path}:8: mqtt.qos must be 0 or 1"
    ]


def test_the_broker_is_on_the_targets_host_unless_the_command_line_says_otherwise(
    tmp_path: Path,
) -> None:
    named = load_profile(str(profile_file(tmp_path, 'host = "broker.example"')), {}).mqtt
    with pytest.raises(ConfigError) as caught:
        broker_host(named, "http://127.0.0.1:8000")
    assert str(caught.value) == (
        "the profile's mqtt.host broker.example is not --target's host 127.0.0.1: a profile may "
        "not send tokens to another host; pass --mqtt-host to choose the broker yourself"
    )
    assert broker_host(named, "https://BROKER.example:8443/api") == "broker.example"
    assert broker_host(named, "http://127.0.0.1:8000", "broker.example") == "broker.example"
    unnamed = load_profile(str(profile_file(tmp_path, "")), {}).mqtt
    assert broker_host(unnamed, "http://[::1]:8000") == "::1"


def test_the_profiles_host_rule_stops_the_attack_before_anything_is_sent(tmp_path: Path) -> None:
    path = profile_file(tmp_path, 'host = "broker.example"')
    result = fleetbench_here(
        "attack", "--transport", "mqtt", "--profile", str(path), "--target", "http://127.0.0.1:9",
        "--admin-key", "k", "--results", str(tmp_path / "results"),
    )  # fmt: skip
    assert result.returncode == 2
    assert "mqtt.host broker.example is not --target's host 127.0.0.1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()


def test_mqtt_flags_need_the_mqtt_transport() -> None:
    result = fleetbench_here(
        "attack", "--mqtt-port", "1883", "--target", "http://127.0.0.1:9", "--admin-key", "k"
    )
    assert result.returncode == 2
    assert "--mqtt-host and --mqtt-port need --transport mqtt" in result.stderr


def test_the_token_goes_where_the_profile_says(tmp_path: Path) -> None:
    in_password = load_profile(str(profile_file(tmp_path, 'client_id = "c-{device_id}"')), {})
    sent = credentials(in_password.mqtt, "dev-1", "a.b.c")
    assert (sent.client_id, sent.username, sent.password) == ("c-dev-1", "dev-1", "a.b.c")
    assert "a.b.c" not in repr(sent)
    in_username = load_profile(str(profile_file(tmp_path, 'token_in = "username"')), {})
    sent = credentials(in_username.mqtt, "dev-1", "a.b.c")
    assert (sent.client_id, sent.username, sent.password) == ("dev-1", "a.b.c", None)
    settings = mqtt_settings(in_username.mqtt, "127.0.0.1")
    assert (settings.username, settings.password) == ("{token}", "")
    assert topic(in_username.mqtt.acl_topic, "dev-1", "dev-2") == "devices/dev-2/telemetry"


def test_refusal_codes_follow_the_protocol_unless_named(tmp_path: Path) -> None:
    v311 = load_profile(str(profile_file(tmp_path, "")), {}).mqtt
    assert v311.refusal_codes() == ([4], [5])
    v5 = load_profile(str(profile_file(tmp_path, 'protocol = "5"')), {}).mqtt
    assert v5.refusal_codes() == ([0x86], [0x87])
    named = load_profile(str(profile_file(tmp_path, "not_authorised = [5, 135]")), {}).mqtt
    assert named.refusal_codes() == ([4], [5, 135])
    settings = mqtt_settings(v5, "broker", 8883)
    assert (settings.port, settings.bad_credentials, settings.not_authorised) == (
        8883, (0x86,), (0x87,),
    )  # fmt: skip


def test_the_devices_verify_a_tls_broker_by_the_profiles_ca_file(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    section = f'tls = true\nca_file = "{bundle}"'
    mqtt = load_profile(str(profile_file(tmp_path, section)), {}).mqtt
    settings = mqtt_settings(mqtt, "broker", 8883)
    assert (settings.tls, settings.ca_file) == (True, str(bundle))


@pytest.mark.slow
def test_a_runs_devices_connect_as_the_profiles_mqtt_section_says(tmp_path: Path) -> None:
    """Our contract with another client-id pattern: the devices send it, and our broker, which
    binds the client id to the device, refuses every CONNECT (CONNACK 2). The section reached
    them; with the shipped profile the same run connects (tests/sim/device/test_mqtt_tasks.py)."""
    profile = tmp_path / "fleetbench.toml"
    shipped = REPO / "sim" / "profiles" / "builtin" / "fleetbench.toml"
    profile.write_text(shipped.read_text() + '\n[mqtt]\nclient_id = "x-{device_id}"\n')
    summary = run_benchmark(
        RunConfig(
            transport="mqtt", profile=str(profile), devices=3, token_alg="HS256", alg="secret",
            duration_s=3, interval_s=0.25, results=tmp_path / "results",
        )
    )  # fmt: skip
    mqtt = summary.get("mqtt")
    assert mqtt is not None
    assert mqtt["connack_codes"].get("2", 0) >= 3, mqtt["connack_codes"]
    assert mqtt["connack_codes"].get("0", 0) == 0
    assert not summary["verdict"]["passed"]


@pytest.mark.slow
def test_a_run_through_the_emqx_example_adds_up_on_our_broker(tmp_path: Path) -> None:
    """The shipped EMQX example drives another broker's devices: pointed at our target and its
    broker, its run connects every device, and every reading sent is acknowledged and received."""
    with EmbeddedTarget("ES256", mqtt=True) as target:
        assert target.mqtt_port is not None
        summary = run_benchmark(
            RunConfig(
                transport="mqtt", profile="emqx-jwt", target=target.url,
                admin_key=target.admin_key, mqtt_port=target.mqtt_port, devices=4,
                duration_s=3, interval_s=0.25, results=tmp_path / "results",
            )
        )  # fmt: skip
    mqtt = summary.get("mqtt")
    assert mqtt is not None and mqtt["connack_codes"] == {"0": 4}, mqtt
    telemetry = summary["telemetry"]
    assert telemetry["sent"] == telemetry["acknowledged"] == telemetry["received"] > 0
    assert summary["outcomes"]["accepted_invalid"] == summary["outcomes"]["refused_valid"] == 0
    assert summary["verdict"]["passed"]
