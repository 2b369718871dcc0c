"""``free_port``: a port for a server about to start, out of the way of outgoing connections."""

from __future__ import annotations

import socket

import pytest

from sim.run.embedded import EPHEMERAL_PORTS, LOWEST_PICKED_PORT, free_port


@pytest.mark.skipif(not EPHEMERAL_PORTS.exists(), reason="Linux's ephemeral port range")
def test_a_free_port_is_below_the_range_outgoing_connections_take() -> None:
    """Before, it was the kernel's pick for port 0, inside the ephemeral range: on a busy machine
    an outgoing connection took one before Locust's master bound it ("Address already in use")."""
    lowest_ephemeral = int(EPHEMERAL_PORTS.read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(LOWEST_PICKED_PORT <= port < lowest_ephemeral for port in ports), ports
    assert len(ports) > 1  # picked at random, so two servers starting together seldom meet
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # still free: nothing kept it
