"""The attack's MQTT end against brokers that misbehave: one that never answers, one that
answers garbage, one that hangs up. Every wait is bounded and ends in one line."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sim.attack.broker import BrokerAddress, BrokerSession

pytestmark = pytest.mark.slow  # each test serves a loopback socket

Reply = Callable[[socket.socket], object]


@contextmanager
def serving(reply: Reply) -> Iterator[int]:
    """A loopback listener that hands each connection to ``reply``; its port."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)
    held: list[socket.socket] = []

    def accept() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        held.append(conn)
        reply(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
        thread.join(timeout=5)
        for conn in held:
            conn.close()


def connect(port: int) -> tuple[str, str]:
    session = BrokerSession(BrokerAddress("127.0.0.1", port, timeout_s=1.0), "c", "dev", "a.b.c")
    try:
        connack = session.connect()
    finally:
        session.close()
    return str(connack.code), connack.error


def test_a_broker_that_never_answers_costs_one_deadline() -> None:
    with serving(lambda conn: conn.recv(4096)) as port:
        assert connect(port) == ("None", "no CONNACK within 1 s")


def test_a_broker_that_hangs_up_is_a_closed_connection() -> None:
    def hang_up(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.close()

    with serving(hang_up) as port:
        assert connect(port) == ("None", "connection closed before a CONNACK")


def test_a_broker_that_answers_garbage_is_no_connack() -> None:
    def garbage(conn: socket.socket) -> None:
        conn.recv(4096)
        # A CONNACK header claiming a body it never sends, then an unknown packet type.
        conn.sendall(b"\x20\x7f\x00" + b"\xf0\x02\x00\x00")

    with serving(garbage) as port:
        code, error = connect(port)
    assert code == "None"
    assert "\n" not in error and "a.b.c" not in error


def test_no_broker_is_one_line() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert connect(port) == (
        "None",
        f"cannot connect to mqtt://127.0.0.1:{port}: Connection refused",
    )


def test_a_ca_file_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    for ca_file, why in ((tmp_path / "missing.pem", "No such file or directory"), (not_pem, "")):
        address = BrokerAddress("127.0.0.1", 1, tls=True, ca_file=str(ca_file), timeout_s=1.0)
        connack = BrokerSession(address, "c", "dev", "a.b.c").connect()
        assert connack.code is None
        assert connack.error.startswith(f"cannot use mqtt.ca_file {ca_file}: {why}")
        assert "\n" not in connack.error


def test_a_broker_that_floods_messages_costs_no_memory() -> None:
    """5,000 messages on distinct topics to one session: it keeps at most 1,000 topics, and the
    wait still ends on time."""

    def flood(conn: socket.socket) -> None:
        conn.recv(4096)  # CONNECT
        conn.sendall(b"\x20\x02\x00\x00")  # CONNACK 0
        packets = []
        for n in range(5_000):
            topic = f"flood/{n:05d}".encode()
            body = len(topic).to_bytes(2, "big") + topic + b"x"
            packets.append(b"\x30" + bytes([len(body)]) + body)  # PUBLISH, QoS 0
        conn.sendall(b"".join(packets))
        conn.recv(4096)  # until the client goes

    with serving(flood) as port:
        session = BrokerSession(BrokerAddress("127.0.0.1", port, timeout_s=2.0), "c", "d", "p")
        try:
            assert session.connect().accepted
            session.wait(1.0)
            assert len(session.received) == 1_000
            assert "flood/00000" in session.received
        finally:
            session.close()
