"""Real paho-mqtt 2.2 clients against a target's MQTT port, with the answers a test waits for.

paho reports an MQTT 3.1.1 CONNACK code by its MQTT 5 name (``_packet.py``,
``convert_connack_rc_to_reason_code``): these are the names of codes 0, 2, 4 and 5.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from amqtt.mqtt.publish import PublishPacket
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from benchmarks.mqtt_broker import connect_packet
from sim.run.embedded import EmbeddedTarget

ACCEPTED = "Success"  # 0
IDENTIFIER_REJECTED = "Client identifier not valid"  # 2
BAD_CREDENTIALS = "Bad user name or password"  # 4
NOT_AUTHORISED = "Not authorized"  # 5
WAIT_S = 10.0


class Device:
    """One paho client (its network loop in a thread) and what it has been told so far."""

    def __init__(
        self,
        target: EmbeddedTarget,
        username: str,
        password: str,
        *,
        client_id: str | None = None,
        clean_session: bool = True,
        keepalive_s: int = 60,
    ) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=username if client_id is None else client_id,
            protocol=mqtt.MQTTv311,
            clean_session=clean_session,
        )
        self.client.username_pw_set(username, password)
        self.connack: str | None = None
        self.connected = threading.Event()
        self.answered = threading.Event()
        self.disconnected = threading.Event()
        self.messages: list[tuple[str, bytes]] = []
        self.granted: list[int] = []
        self.subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.device_id = username
        self._target = target
        self._keepalive_s = keepalive_s

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        self.connack = rc.getName()
        if not rc.is_failure:
            self.connected.set()
        self.answered.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.connected.clear()
        self.disconnected.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.messages.append((message.topic, bytes(message.payload)))

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        self.granted = [code.value for code in codes]
        self.subscribed.set()

    def connect(self, *, retry: bool = False) -> str | None:
        """Connect, wait for the CONNACK (or the socket's end), return its name; with ``retry``,
        paho reconnects by itself after a close (as a device would)."""
        self.disconnected.clear()
        self.answered.clear()
        if not retry:
            self.client.reconnect_delay_set(60, 60)
        self.client.connect("127.0.0.1", self._target.mqtt_port, keepalive=self._keepalive_s)
        self.client.loop_start()
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and not self.answered.is_set():
            if self.disconnected.is_set() and not retry:
                break
            time.sleep(0.02)
        return self.connack

    def publish_reading(self, seq: int, qos: int = 1, device_id: str | None = None) -> Any:
        topic = f"devices/{device_id or self.device_id}/telemetry"
        body = json.dumps({"seq": seq, "ts": time.time(), "values": {"temp_c": 21.5}})
        return self.client.publish(topic, body, qos=qos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connack_of(target: EmbeddedTarget, username: str, password: str, **kwargs: Any) -> str | None:
    """The CONNACK a fresh client gets (its MQTT 5 name), the client closed again."""
    device = Device(target, username, password, **kwargs)
    try:
        return device.connect()
    finally:
        device.close()


def raw_exchange(port: int, data: bytes, wait_s: float = WAIT_S) -> bytes:
    """Send ``data`` on a fresh socket and read until the server closes it (or ``wait_s``):
    what the server answered. A server that keeps the socket open fails the read's timeout."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(data)
        received = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return received
            received += chunk


def raw_session(port: int, device_id: str, token: str, keepalive_s: int = 60) -> socket.socket:
    """A socket past CONNECT: the CONNACK read and checked to be 0 (no paho: a test that must
    misbehave at the byte level, never answering PINGs or flooding, drives it itself)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    sock.sendall(connect_packet(device_id, token, keepalive_s))
    connack = b""
    while len(connack) < 4:
        chunk = sock.recv(4 - len(connack))
        assert chunk, "closed before CONNACK"
        connack += chunk
    assert connack == b"\x20\x02\x00\x00", connack
    return sock


def publish_packet(topic: str, payload: bytes, packet_id: int, qos: int = 1) -> bytes:
    return bytes(PublishPacket.build(topic, payload, packet_id, False, qos, False).to_bytes())
