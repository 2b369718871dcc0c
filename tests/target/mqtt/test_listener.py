"""``python -m target --mqtt-port 0``: the port it picked on stderr, and the listener's bounds."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from amqtt.mqtt.subscribe import SubscribePacket

from sim.run.embedded import free_port
from target.jose.vocabulary import client_credentials_form
from tests.target.helpers import wait_until
from tests.target.mqtt.clients import raw_exchange, raw_session

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
MAX_CONNECTIONS = 3
MAX_PACKET = 4096
# Short, so a connection that never sends CONNECT is closed in seconds (the default is 10 s),
# and long enough for the tests that hold raw connections open meanwhile.
CONNECT_TIMEOUT_S = 4
ANNOUNCED = re.compile(rb"target: MQTT 3\.1\.1 on 127\.0\.0\.1:(\d+)")


class Started:
    def __init__(self, http_port: int, mqtt_port: int, stderr: Path) -> None:
        self.url = f"http://127.0.0.1:{http_port}"
        self.mqtt_port = mqtt_port
        self.stderr = stderr

    def metric(self, line_start: str) -> float:
        text = requests.get(f"{self.url}/metrics", timeout=10).text
        return sum(float(x.split()[-1]) for x in text.splitlines() if x.startswith(line_start))


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    folder = tmp_path_factory.mktemp("mqtt-listener")
    http_port, stderr = free_port(), folder / "stderr"
    flags = ["--port", str(http_port), "--db", ":memory:", "--mqtt-port", "0"]
    flags += ["--mqtt-max-connections", str(MAX_CONNECTIONS), "--mqtt-max-packet", str(MAX_PACKET)]
    flags += ["--mqtt-connect-timeout", str(CONNECT_TIMEOUT_S)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TARGET_")}
    with open(stderr, "wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "target", *flags],
            cwd=REPO,
            env={**env, "TARGET_ADMIN_KEY": "k" * 32},
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    try:
        assert wait_until(lambda: ANNOUNCED.search(stderr.read_bytes()) is not None, 20, 0.05)
        found = ANNOUNCED.search(stderr.read_bytes())
        assert found is not None
        yield Started(http_port, int(found.group(1)), stderr)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def test_port_0_picks_a_port_and_says_which(started: Started) -> None:
    assert started.mqtt_port > 0
    assert requests.get(f"{started.url}/healthz", timeout=10).status_code == 200
    with socket.create_connection(("127.0.0.1", started.mqtt_port), timeout=10):
        pass


def test_a_connection_over_the_limit_is_closed_at_once(started: Started) -> None:
    before = started.metric('fleetbench_mqtt_connects_total{connack="none",result="over_limit"}')
    held = [socket.create_connection(("127.0.0.1", started.mqtt_port)) for _ in range(3)]
    try:
        assert wait_until(lambda: started.metric("fleetbench_mqtt_connections ") == 3, 10)
        assert raw_exchange(started.mqtt_port, b"") == b""  # closed without waiting for CONNECT
        assert (
            started.metric('fleetbench_mqtt_connects_total{connack="none",result="over_limit"}')
            == before + 1
        )
    finally:
        for sock in held:
            sock.close()
    assert wait_until(lambda: started.metric("fleetbench_mqtt_connections ") == 0, 10)


def test_a_connection_that_never_sends_connect_is_closed_at_the_deadline(started: Started) -> None:
    no_connect = 'fleetbench_mqtt_connects_total{connack="none",result="no_connect"}'
    before = started.metric(no_connect)
    with socket.create_connection(("127.0.0.1", started.mqtt_port)) as sock:
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # held open meanwhile: the deadline, not some other close
        # Well before the default 10 s: the configured deadline closed it.
        sock.settimeout(CONNECT_TIMEOUT_S + 4)
        assert sock.recv(1) == b""
    assert wait_until(lambda: started.metric(no_connect) == before + 1, 10)


def test_a_field_over_the_packet_limit_closes_the_connection(started: Started) -> None:
    before = started.metric('fleetbench_mqtt_sessions_closed_total{reason="too_large"}')
    # A CONNECT whose client id announces 60 000 bytes: refused before they are read.
    huge = b"\x10\xe8\xd4\x03\x00\x04MQTT\x04\x02\x00\x3c\xea\x60" + b"a" * 1000
    assert raw_exchange(started.mqtt_port, huge) == b""
    assert started.metric('fleetbench_mqtt_sessions_closed_total{reason="too_large"}') == before + 1
    assert requests.get(f"{started.url}/healthz", timeout=10).status_code == 200


def test_a_sessions_filters_go_with_it(started: Started) -> None:
    """Filters are capped at 8 per allowed connection (24 here); those of a session that ended
    are dropped (amqtt's scan of every filter is replaced by an index), so a device that
    subscribes anew on each of 40 connections is granted every time."""
    admin = {"Authorization": f"Bearer {'k' * 32}"}
    secret = secrets.token_urlsafe(24)
    registered = requests.post(
        f"{started.url}/admin/devices",
        json={"devices": [{"id": "filters", "secret": secret}]},
        headers=admin,
        timeout=10,
    )
    assert registered.status_code == 201
    token = requests.post(
        f"{started.url}/auth/token",
        data=client_credentials_form("filters", secret),
        timeout=10,
    ).json()["access_token"]
    for round_ in range(40):
        topic_filter = f"devices/filters/f{round_}"
        with raw_session(started.mqtt_port, "filters", token) as sock:
            sock.sendall(bytes(SubscribePacket.build([(topic_filter, 1)], 1).to_bytes()))
            suback = b""
            while len(suback) < 5:
                suback += sock.recv(5 - len(suback))
        assert suback == b"\x90\x03\x00\x01\x01", (round_, suback)
