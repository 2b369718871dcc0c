"""The attack's MQTT end: one paho client per session, every wait bounded.

No background thread: each wait turns paho's loop in short steps until its answer or its
deadline, so a broker that never answers costs one deadline, and a broker that answers garbage
is one line (``error``), never a traceback. Codes are kept in the protocol's own numbering
(MQTT 3.1.1 CONNACK 4 and 5; MQTT 5 reason codes 0x86, 0x87), as profiles name them.
"""

from __future__ import annotations

import contextlib
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from sim.profiles.mqtt_settings import MqttProtocol

__all__ = [
    "MAX_PASSWORD_BYTES",
    "BrokerAddress",
    "BrokerSession",
    "Connack",
    "Protocol",
    "SessionAnswer",
]

Protocol = MqttProtocol
MAX_PASSWORD_BYTES = 65_535  # a CONNECT field's two-byte length
_STEP_S = 0.05
_RECEIVED_KEPT = 1_000  # distinct topics of messages received, kept to see a delivery
# paho hands MQTT 3.1.1 CONNACK codes over as MQTT 5 reason codes; back to the wire's numbers.
_V311_CONNACK = {0x00: 0, 0x84: 1, 0x85: 2, 0x88: 3, 0x86: 4, 0x87: 5}
_PROTOCOLS = {"3.1.1": paho.MQTTv311, "5": paho.MQTTv5}
# What a hostile or broken broker can make paho raise while it reads an answer.
_READ_ERRORS = (OSError, ValueError, struct.error, IndexError, KeyError, UnicodeDecodeError)


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    protocol: Protocol = "3.1.1"
    tls: bool = False
    ca_file: str | None = None
    timeout_s: float = 10.0

    def __str__(self) -> str:
        return f"mqtt{'s' if self.tls else ''}://{self.host}:{self.port}"


@dataclass(frozen=True)
class Connack:
    """``code`` None: no CONNACK came (``error`` says what happened instead)."""

    code: int | None
    error: str = ""

    @property
    def accepted(self) -> bool:
        return self.code == 0


@dataclass(frozen=True)
class SessionAnswer:
    """A PUBLISH's PUBACK or a SUBSCRIBE's SUBACK: ``codes`` as the broker gave them (MQTT 3.1.1
    PUBACK has none: ``[0]``), or ``closed``, or neither within the deadline."""

    codes: tuple[int, ...] = ()
    closed: bool = False

    @property
    def answered(self) -> bool:
        return bool(self.codes)


@dataclass
class _State:
    connack: int | None = None
    closed: bool = False
    error: str = ""
    acks: dict[int, tuple[int, ...]] = field(default_factory=dict)
    received: set[str] = field(default_factory=set)


def _code(reason: ReasonCode, protocol: Protocol, connack: bool = False) -> int:
    value = int(reason.value)
    if protocol == "3.1.1" and connack:
        return _V311_CONNACK.get(value, value)
    return value


class BrokerSession:
    """One MQTT connection: CONNECT with these credentials, then publish and subscribe."""

    def __init__(
        self, address: BrokerAddress, client_id: str, username: str | None,
        password: str | None,
    ) -> None:  # fmt: skip
        self.address = address
        self.state = _State()
        protocol = address.protocol
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=_PROTOCOLS[protocol],
            reconnect_on_failure=False,
        )
        client.connect_timeout = address.timeout_s
        if username is not None or password is not None:
            client.username_pw_set(username or "", password)
        state = self.state

        def on_connect(c: Any, u: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
            state.connack = _code(reason, protocol, connack=True)

        def on_disconnect(c: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
            state.closed = True

        def on_publish(c: Any, u: Any, mid: int, reason: ReasonCode, props: Any) -> None:
            state.acks[mid] = (_code(reason, protocol),)

        def on_subscribe(c: Any, u: Any, mid: int, reasons: list[ReasonCode], props: Any) -> None:
            state.acks[mid] = tuple(_code(reason, protocol) for reason in reasons)

        def on_message(c: Any, u: Any, message: paho.MQTTMessage) -> None:
            if len(state.received) < _RECEIVED_KEPT:  # a broker that floods costs no memory
                state.received.add(message.topic)

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        self._client = client

    def _turn(self, until: Callable[[], bool], seconds: float) -> None:
        """Paho's loop until ``until()`` or the connection ends or ``seconds`` pass."""
        deadline = time.monotonic() + seconds
        state = self.state
        while not until() and not state.closed and time.monotonic() < deadline:
            try:
                rc = self._client.loop(timeout=_STEP_S)
            except _READ_ERRORS as e:
                state.closed, state.error = True, f"{type(e).__name__} reading the broker"
                return
            if rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_AGAIN):
                state.closed = True
                state.error = state.error or f"connection ended ({paho.error_string(rc)})"

    def connect(self) -> Connack:
        """CONNECT, then the CONNACK within the address's timeout."""
        address = self.address
        if address.tls:
            try:
                context = ssl.create_default_context(cafile=address.ca_file)
            except (OSError, ssl.SSLError) as e:  # the CA file: missing, unreadable, not PEM
                why = getattr(e, "strerror", None) or type(e).__name__
                return Connack(None, f"cannot use mqtt.ca_file {address.ca_file}: {why}")
            self._client.tls_set_context(context)
        try:
            self._client.connect(address.host, address.port, keepalive=60)
        except (OSError, ValueError, ssl.SSLError) as e:
            why = getattr(e, "strerror", None) or getattr(e, "reason", None) or type(e).__name__
            return Connack(None, f"cannot connect to {address}: {why}")
        self._turn(lambda: self.state.connack is not None, address.timeout_s)
        state = self.state
        if state.connack is not None:
            return Connack(state.connack)
        if state.closed:
            return Connack(None, "connection closed before a CONNACK")
        return Connack(None, f"no CONNACK within {address.timeout_s:g} s")

    def publish(self, topic: str, payload: bytes, qos: int) -> SessionAnswer:
        """PUBLISH; the PUBACK (QoS 1) or the connection's end within the timeout. QoS 0 has no
        answer: the connection still open after a short wait reads as ``(0,)``."""
        try:
            info = self._client.publish(topic, payload, qos=qos)
        except (ValueError, OSError):
            return SessionAnswer(closed=True)
        if qos == 0:
            self.wait(0.5)
            return SessionAnswer((0,) if not self.state.closed else (), self.state.closed)
        return self._answer(info.mid)

    def subscribe(self, topic: str, qos: int) -> SessionAnswer:
        try:
            _, mid = self._client.subscribe(topic, qos=qos)
        except (ValueError, OSError):
            return SessionAnswer(closed=True)
        if mid is None:
            return SessionAnswer(closed=True)
        return self._answer(mid)

    def _answer(self, mid: int) -> SessionAnswer:
        acks = self.state.acks
        self._turn(lambda: mid in acks, self.address.timeout_s)
        return SessionAnswer(acks.get(mid, ()), mid not in acks and self.state.closed)

    def wait(self, seconds: float) -> None:
        """Read what comes for ``seconds`` (messages to this session's subscriptions)."""
        self._turn(lambda: False, seconds)

    @property
    def received(self) -> set[str]:
        return self.state.received

    @property
    def open(self) -> bool:
        return self.state.connack == 0 and not self.state.closed

    def close(self) -> None:
        try:
            if self.open:
                self._client.disconnect()
                self._turn(lambda: False, 0.05)
        except _READ_ERRORS:
            pass
        finally:
            sock = self._client.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
