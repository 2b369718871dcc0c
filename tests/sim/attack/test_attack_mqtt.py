"""``fleetbench attack --transport mqtt``: the corpus as CONNECT credentials and the topic-ACL
cases, against real brokers. Our embedded broker passes with every case judged; a plain amqtt
broker that lets anyone in (``tests/apis/lax_mqtt``) fails with ``accepted_invalid`` on the
forged tokens and the ACL cases; a broker that never answers is one line."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sim.artefacts.codec import read_attack
from sim.run.embedded import EmbeddedTarget
from tests.apis.serve import serve_listening

pytestmark = pytest.mark.slow  # each test starts brokers, a target and the command

REPO = Path(__file__).resolve().parents[3]
LAX_PROFILE = REPO / "tests" / "apis" / "lax" / "profile.toml"
FLEETBENCH = REPO / "sim" / "profiles" / "builtin" / "fleetbench.toml"
# The cases that carry a genuine credential (they must be served) and those not sent over MQTT.
CONTROLS = {"valid_connect", "valid_publish_own_topic", "device_jwt_valid"}
ACL = {"acl_publish_other_device", "acl_subscribe_other_device", "acl_subscribe_wildcard"}


def attack(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    return subprocess.run(
        [sys.executable, "-m", "sim", "attack", "--transport", "mqtt", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def read_run(folder: Path) -> dict[str, Any]:
    body = read_attack(folder / "attack.json")  # validated against its type
    assert len(body["runs"]) == 1
    return dict(body["runs"][0])


@pytest.fixture(scope="module")
def issuer() -> Iterator[EmbeddedTarget]:
    """Our target as the token issuer, without its broker: the brokers under test are others."""
    with EmbeddedTarget("ES256") as target:
        yield target


Run = tuple[subprocess.CompletedProcess[str], dict[str, Any]]


@pytest.fixture(scope="module")
def lax_runs(issuer: EmbeddedTarget, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """The lax broker attacked with our contract's tokens, and through a profile whose devices
    mint their own (so its signed rule-breakers go as CONNECTs too)."""
    command = [sys.executable, "-m", "tests.apis.lax_mqtt.broker"]
    # Our contract with a 1 s leeway: session_outlives_token waits exp + leeway, not 10 s.
    ours = tmp_path_factory.mktemp("profiles") / "fleetbench.toml"
    ours.write_text(FLEETBENCH.read_text().replace("leeway_s = 10", "leeway_s = 1"))
    runs = {}
    with serve_listening(command, os.environ) as url:
        port = url.rsplit(":", 1)[1]
        for name, profile in (("ours", str(ours)), ("minted", str(LAX_PROFILE))):
            folder = tmp_path_factory.mktemp(f"lax-mqtt-{name}")
            result = attack(
                "--profile", profile, "--target", issuer.url, "--admin-key", issuer.admin_key,
                "--mqtt-port", port, "--results", str(folder), "--quiet",
            )  # fmt: skip
            runs[name] = (result, read_run(folder))
    return runs


@pytest.fixture(scope="module")
def lax_run(lax_runs: dict[str, Run]) -> Run:
    return lax_runs["ours"]


def test_a_lax_broker_takes_the_signed_rule_breakers_of_a_minted_profile(
    lax_runs: dict[str, Run],
) -> None:
    result, run = lax_runs["minted"]
    assert result.returncode == 1, result.stderr
    assert run["profile"] == "lax" and run["transport"] == "mqtt"
    cases = {case["name"]: case for case in run["cases"]}
    for name in ("signed_alg_none", "signed_expired", "signed_nbf_future"):
        assert (cases[name]["verdict"], cases[name]["outcome"]) == ("accepted", "accepted_invalid")
    assert cases["signed_no_exp"]["verdict"] == "finding"
    assert cases["short_hmac_secret"]["verdict"] == "refused"  # 39 bytes: long enough


def test_a_lax_broker_fails_with_accepted_invalid(
    lax_run: Run,
) -> None:
    result, run = lax_run
    assert result.returncode == 1, result.stderr
    assert result.stdout.count("\nFAIL ES256 mqtt://127.0.0.1:") == 1
    assert run["transport"] == "mqtt" and not run["passed"]
    cases = {case["name"]: case for case in run["cases"]}
    for name in CONTROLS:
        assert cases[name]["verdict"] == "valid", cases[name]
    forged = [
        c for c in run["cases"]
        if c["family"] not in ("control", "acl", "identity")
        and c["name"] not in {*CONTROLS, "session_outlives_token"}
    ]  # fmt: skip
    sent = [c for c in forged if c["verdict"] != "skipped"]
    assert len(sent) > 90  # the bearer corpus, as CONNECT passwords
    for case in sent:
        assert (case["verdict"], case["outcome"]) == ("accepted", "accepted_invalid"), case
        assert case["got"] == "CONNACK 0 (session accepted)"
    for name in ACL:
        assert (cases[name]["verdict"], cases[name]["outcome"]) == ("accepted", "accepted_invalid")
    # Judged by where the message landed, not by the broker's word alone.
    assert cases["acl_publish_other_device"]["got"] == "delivered to the other device's subscriber"
    assert "reading came through" in cases["acl_subscribe_wildcard"]["got"]
    assert cases["other_device"]["severity"] == "high"  # a valid token, another device's name
    assert "another registered device's id as username" in cases["other_device"]["description"]
    # Correctly signed by the device's own key, each breaking one rule: all let in.
    assert cases["device_jwt_replayed"]["verdict"] == "accepted"
    assert cases["device_jwt_expired"]["verdict"] == "accepted"
    outlives = cases["session_outlives_token"]
    assert (outlives["verdict"], outlives["outcome"]) == ("accepted", "accepted_invalid")
    assert outlives["got"].endswith("s after exp, and its PUBLISH was acknowledged")
    assert cases["mqtt_username_unknown_device"]["verdict"] == "accepted"
    assert cases["mqtt_client_id_other_device"]["verdict"] == "finding"
    skipped = {c["name"]: c["got"] for c in forged if c["verdict"] == "skipped"}
    assert skipped == {
        "scope_missing": "not sent: a scope is an HTTP endpoint's rule",
        "oversized_1mib": "not sent: longer than a CONNECT field holds (65535 bytes)",
    }
    assert run["counts"]["refused_valid"] == 0 and run["still_serving"]


def test_the_report_shows_the_mqtt_cases(lax_run: Run, tmp_path: Path) -> None:
    result, _ = lax_run
    folder = Path(result.stdout.strip().splitlines()[-1].rsplit(" in ", 1)[1])
    html = (folder / "report.html").read_text()
    assert "ES256 over MQTT: FAIL" in html
    assert "acl_publish_other_device" in html and "accepted_invalid" in html


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("embedded-mqtt")
    result = attack("--algs", "ES256", "--results", str(folder))
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, read_run(folder)


def test_our_embedded_broker_passes_with_every_case_judged(
    embedded_run: tuple[str, dict[str, Any]],
) -> None:
    stdout, run = embedded_run
    assert run["passed"] and run["embedded"] and run["broker"].startswith("mqtt://127.0.0.1:")
    assert run["still_serving"] and not run["failures"]
    verdicts = {case["name"]: case["verdict"] for case in run["cases"]}
    assert {verdicts[name] for name in CONTROLS} == {"valid"}
    # Every case judged from the broker's own answer: a refusal code, a closed connection.
    judged = {name: v for name, v in verdicts.items() if v != "skipped" and name not in CONTROLS}
    assert set(judged.values()) == {"refused"}, {n: v for n, v in judged.items() if v != "refused"}
    assert len(judged) > 95
    assert [name for name, v in verdicts.items() if v == "skipped"] == [
        "scope_missing", "oversized_1mib",
    ]  # fmt: skip
    cases = {case["name"]: case for case in run["cases"]}
    assert cases["alg_none"]["got"] == "CONNACK 4 bad credentials"
    assert cases["alg_none"]["outcome"] == "rejected_as_expected"
    assert cases["other_device"]["got"].startswith("CONNACK ")  # username B, token of A
    assert cases["acl_publish_other_device"]["got"] == "connection closed on the PUBLISH"
    assert cases["acl_subscribe_other_device"]["got"] == "SUBACK 0x80"
    assert cases["acl_subscribe_wildcard"]["got"] == "SUBACK 0x80"
    device_jwts = [c for c in run["cases"] if c["family"] == "device_jwt"]
    assert len(device_jwts) == 9 and verdicts["device_jwt_replayed"] == "refused"
    assert cases["session_outlives_token"]["got"].startswith("closed by ")
    assert "\nPASS ES256 mqtt://127.0.0.1:" in stdout


@pytest.fixture(scope="module")
def our_broker() -> Iterator[EmbeddedTarget]:
    """Our target with its broker, attacked as an outside one (--target, --mqtt-port)."""
    with EmbeddedTarget("ES256", mqtt=True) as target:
        yield target


def test_the_emqx_example_profile_works_against_our_broker(
    our_broker: EmbeddedTarget, tmp_path: Path
) -> None:
    """The shipped EMQX example with its [mqtt] settings as they are, pointed at our broker."""
    target = our_broker
    result = attack(
        "--profile", "emqx-jwt", "--target", target.url, "--admin-key", target.admin_key,
        "--mqtt-port", str(target.mqtt_port), "--results", str(tmp_path), "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    run = read_run(tmp_path)
    assert run["profile"] == "emqx-jwt" and run["passed"] and run["still_serving"]
    verdicts = [case["verdict"] for case in run["cases"]]
    assert verdicts.count("valid") == 2 and "accepted" not in verdicts
    assert verdicts.count("refused") > 90  # through a profile: no revoked device, no JWKS key
    assert "(profile emqx-jwt)" in result.stdout


def test_a_protocol_the_broker_does_not_speak_is_one_line(
    our_broker: EmbeddedTarget, tmp_path: Path
) -> None:
    profile = ours_as(tmp_path, "v5", 'protocol = "5"')
    result = attack(
        "--profile", str(profile), "--target", our_broker.url, "--admin-key",
        our_broker.admin_key, "--mqtt-port", str(our_broker.mqtt_port), "--results",
        str(tmp_path / "r"),
    )  # fmt: skip
    assert result.returncode == 2, result.stdout
    assert result.stderr.strip().splitlines() == [
        f"fleetbench: error: the MQTT broker at mqtt://127.0.0.1:{our_broker.mqtt_port} does not "
        "speak MQTT 5 (CONNACK 132): set [mqtt] protocol in the profile"
    ]


def ours_as(folder: Path, name: str, mqtt: str) -> Path:
    """Our contract's profile under another name (so it goes the profile's way), with ``mqtt``
    as its [mqtt] section."""
    profile = folder / f"{name}.toml"
    text = FLEETBENCH.read_text().replace('name = "fleetbench"', f'name = "{name}"')
    profile.write_text(f"{text}\n[mqtt]\n{mqtt}\n")
    return profile


def attack_scripted(
    issuer: EmbeddedTarget, folder: Path, answered: int
) -> tuple[subprocess.CompletedProcess[str], int, int]:
    """The attack against a scripted broker that answers CONNACK 0 to its first ``answered``
    connections and nothing to the rest; (result, its port, connections it took)."""
    profile = ours_as(folder, "scripted", "connect_timeout_s = 1")
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(30)
    port = server.getsockname()[1]
    held: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                held.append(conn)
                conn.recv(65_536)
                if len(held) <= answered:
                    conn.sendall(b"\x20\x02\x00\x00")  # CONNACK 0

    threading.Thread(target=serve, daemon=True).start()
    try:
        result = attack(
            "--profile", str(profile), "--target", issuer.url, "--admin-key", issuer.admin_key,
            "--mqtt-port", str(port), "--results", str(folder / "r"), timeout=60,
        )  # fmt: skip
    finally:
        server.close()
        for conn in held:
            conn.close()
    assert result.returncode == 2, result.stdout
    return result, port, len(held)


def test_a_broker_that_never_answers_is_one_line(issuer: EmbeddedTarget, tmp_path: Path) -> None:
    result, port, _ = attack_scripted(issuer, tmp_path, answered=0)
    assert result.stderr.strip().splitlines() == [
        f"fleetbench: error: the MQTT broker at mqtt://127.0.0.1:{port}: no CONNACK within 1 s"
    ]


def test_a_broker_that_stops_answering_is_one_line(issuer: EmbeddedTarget, tmp_path: Path) -> None:
    """It lets the genuine CONNECT in, then answers no other: three silent CONNECTs in a row stop
    the attack (not a hundred timeouts)."""
    result, port, connections = attack_scripted(issuer, tmp_path, answered=1)
    assert result.stderr.strip().splitlines() == [
        f"fleetbench: error: the MQTT broker at mqtt://127.0.0.1:{port} stopped answering: 3 "
        "CONNECTs in a row without a CONNACK (the last: no CONNACK within 1 s)"
    ]
    assert connections == 4  # the genuine CONNECT, then three


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([loopback]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )  # fmt: skip
    return cert_file, key_file


def test_tls_to_the_broker_checks_it_with_the_profiles_ca_file(
    issuer: EmbeddedTarget, tmp_path: Path
) -> None:
    """Over TLS the broker's certificate is verified with ``[mqtt] ca_file``: the right CA
    connects (and the lax broker fails the attack as over TCP); another CA is one line."""
    cert, key = self_signed(tmp_path, "broker")
    stranger, _ = self_signed(tmp_path, "stranger")
    results = {}
    command = [sys.executable, "-m", "tests.apis.lax_mqtt.broker", str(cert), str(key)]
    with serve_listening(command, os.environ) as url:
        port = url.rsplit(":", 1)[1]
        for ca in (cert, stranger):
            mqtt = f'tls = true\nca_file = "{ca}"\nconnect_timeout_s = 2'
            profile = ours_as(tmp_path, f"tls-{ca.stem}", mqtt)
            results[ca.stem] = attack(
                "--profile", str(profile), "--target", issuer.url, "--admin-key",
                issuer.admin_key, "--mqtt-port", port, "--results", str(tmp_path / ca.stem),
                "--quiet",
            )  # fmt: skip
    trusted, untrusted = results["broker"], results["stranger"]
    assert trusted.returncode == 1, trusted.stderr
    run = read_run(tmp_path / "broker")
    assert run["broker"] == f"mqtts://127.0.0.1:{port}"
    assert [c["verdict"] for c in run["cases"] if c["name"] == "valid_connect"] == ["valid"]
    assert untrusted.returncode == 2
    lines = untrusted.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in untrusted.stderr
    assert lines[0].startswith(
        f"fleetbench: error: the MQTT broker at mqtts://127.0.0.1:{port}: cannot connect to "
    )
    assert "CERTIFICATE_VERIFY_FAILED" in lines[0]
