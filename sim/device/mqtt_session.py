"""One device's MQTT session: a paho-mqtt client driven from the device's own greenlet.

Locust runs under gevent with sockets monkeypatched, so paho's socket is cooperative. paho's
thread is never started and its ``loop()`` never called (it opens a socket pair per client:
two more descriptors per device); the device's greenlet runs paho's ``loop_read``,
``loop_write`` and ``loop_misc`` itself while it waits for an answer (CONNACK, PUBACK), and
reads the socket once, without waiting, before each reading, so a close by the broker is seen
at the device's next reading. No thread and no greenlet per device: memory is the client
object and its socket.

The same client object serves every reconnect: paho keeps the QoS 1 messages still waiting
for their PUBACK and sends them again (DUP) after the next CONNACK, so a reading cut off by a
close is delivered then, counted once as sent and, if the broker stored it twice, as a
duplicate on the target, not as a loss.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

import paho.mqtt.client as mqtt
from gevent import get_hub
from gevent.socket import wait as wait_on
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.matcher import MQTTMatcher

from sim.profiles.mqtt_settings import MqttSettings

__all__ = ["CLOSE_CAUSES", "CloseCause", "MqttSession", "ShortQueue"]

# Why a session ended without the device asking: the broker closed it at the token's expiry
# (judged by the device's clock against the token's exp), the broker closed it otherwise
# (an end of stream or an MQTT 5 DISCONNECT), or the network failed (reset, timeout).
CloseCause = Literal["expiry_close", "broker_close", "network_error"]
CLOSE_CAUSES: tuple[CloseCause, ...] = ("expiry_close", "broker_close", "network_error")
# paho hands an MQTT 3.1.1 CONNACK's return code to on_connect as MQTT 5's reason code: back to
# the code the broker sent (3.1.1 section 3.2.2.3), so the account names what was on the wire.
_V311_CODES = {0: 0, 0x84: 1, 0x85: 2, 0x88: 3, 0x86: 4, 0x87: 5}


class _NoLock:
    """A lock for what only one greenlet ever touches."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return True

    def release(self) -> None:
        pass

    def __enter__(self) -> _NoLock:
        return self

    def __exit__(self, *_: object) -> None:
        pass


_NO_LOCK = _NoLock()
# paho's seven mutexes guard a client against its own network thread; each of ours is driven
# by its device's greenlet alone, so they guard nothing, and were a fifth of a client's memory.
_MUTEXES = (
    "_in_callback_mutex",
    "_callback_mutex",
    "_msgtime_mutex",
    "_out_message_mutex",
    "_in_message_mutex",
    "_reconnect_delay_mutex",
    "_mid_generate_mutex",
)
# A device subscribes to nothing: one empty topic matcher for all (each was 1.5 KB).
_NO_SUBSCRIPTIONS = MQTTMatcher()  # type: ignore[no-untyped-call]
_READ, _WRITE = 1, 2  # libev's EV_READ, EV_WRITE


class _Quiet(Exception):
    """Nothing on the socket within the wait's slice."""


class ShortQueue(list[Any]):
    """A deque's queue operations on a list, for a queue that holds one or two items: an empty
    deque is 760 bytes (its first block of 64 slots), a list 56. paho's outgoing packets and
    Locust's task queue are such queues, one each per device."""

    def popleft(self) -> Any:
        return self.pop(0)

    def appendleft(self, item: Any) -> None:
        self.insert(0, item)


class _Client(mqtt.Client):
    """paho's client, slimmed for a fleet of them in one process, and telling an end of stream
    (the broker closed the socket) from a socket error (the network): paho reports both as
    MQTT_ERR_CONN_LOST."""

    ended_by_peer = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in _MUTEXES:
            setattr(self, name, _NO_LOCK)
        self._on_message_filtered = _NO_SUBSCRIPTIONS
        self._out_packet = ShortQueue()  # type: ignore[assignment]

    def _sock_recv(self, bufsize: int) -> bytes:
        data: bytes = super()._sock_recv(bufsize)
        if not data:
            self.ended_by_peer = True
        return data


class MqttSession:
    """The device's connection to the broker; ``connected`` while a CONNACK 0 session holds."""

    __slots__ = (
        "_acked",
        "_broker_disconnect",
        "_lost",
        "_slice_s",
        "_values",
        "client",
        "connack",
        "connected",
        "settings",
        "started",
    )

    def __init__(self, settings: MqttSettings, values: dict[str, Any]) -> None:
        self.settings = settings
        # The longest single wait on the socket: paho's keepalive (loop_misc) runs in between.
        self._slice_s = max(1.0, settings.keepalive_s / 2)
        self._values = values
        version = mqtt.MQTTv5 if settings.protocol == "5" else mqtt.MQTTv311
        client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id.format(**values),
            protocol=version,
            clean_session=True if version == mqtt.MQTTv311 else None,
        )
        if settings.tls:
            client.tls_set(ca_certs=settings.ca_file)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        # Message ids PUBACKed and not yet counted by the device: one or two at a time (a list:
        # an empty set is four times its size, and there are thousands of sessions).
        self._acked: list[int] = []
        self.client = client
        self.connack: int | None = None
        self.connected = False
        self.started = False  # connect() called once: later ones are reconnects
        self._lost = False  # the session ended without the device asking
        self._broker_disconnect = False  # an MQTT 5 DISCONNECT from the broker

    # -- paho's callbacks (run inside loop_read, in this greenlet) ------------------------------

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        code = int(reason.value)
        self.connack = _V311_CODES.get(code, code) if self.settings.protocol == "3.1.1" else code
        self.connected = self.connack == 0

    def _on_publish(self, _c: Any, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        self._acked.append(mid)

    def _on_disconnect(self, _c: Any, _u: Any, flags: Any, _r: Any, _p: Any) -> None:
        if self.connected:
            self._lost = True
            self._broker_disconnect = bool(flags.is_disconnect_packet_from_server)  # MQTT 5
        self.connected = False

    # -- what the device does -------------------------------------------------------------------

    def connect(self, token: str, timeout_s: float) -> int | None:
        """CONNECT with ``token`` as the password and wait for the CONNACK: its code; None when
        none came (no TCP connection, the socket closed, or ``timeout_s`` passed)."""
        settings, client = self.settings, self.client
        values = {**self._values, "token": token}
        # A pattern that leaves a field empty (the token in the username) sends no such field.
        client.username_pw_set(
            settings.username.format(**values) or None,
            settings.password.format(**values) or None,
        )
        self.connack, self.connected, self._lost = None, False, False
        self._broker_disconnect = False
        client.ended_by_peer = False
        try:
            if self.started:
                client.reconnect()
            else:
                self.started = True
                client.connect(settings.host, settings.port, settings.keepalive_s)
        except (OSError, ValueError):
            return None
        self.pump(lambda: self.connack is not None, timeout_s)
        # The CONNECT is on the wire: paho's bytes copy of the token (600 bytes a device) is
        # not needed again; the next connect sets the password it presents.
        client.username_pw_set(client.username, None)
        if self.connack is None:
            self.close()
        return self.connack

    def publish(self, topic: str, payload: bytes, timeout_s: float) -> int:
        """PUBLISH at the settings' QoS and wait until it is acknowledged, the session ends or
        ``timeout_s`` passes; its message id (``acknowledged`` says which). paho keeps a QoS 1
        message published without a session, and sends it after the next CONNACK."""
        mid = self.client.publish(topic, payload, qos=self.settings.qos).mid
        if self.connected:
            self.pump(lambda: mid in self._acked or not self.connected, timeout_s)
        return mid

    def acknowledged(self, mid: int) -> bool:
        """Whether message ``mid``'s PUBACK came (paho's message info raises for a message
        queued without a session, so the PUBACKs are kept here, by id)."""
        return mid in self._acked

    def forget(self, mid: int) -> None:
        """The device counted message ``mid``'s PUBACK."""
        if mid in self._acked:
            self._acked.remove(mid)

    def alive(self) -> bool:
        """Read what the broker sent meanwhile, without waiting (a close, a PUBACK of a message
        sent again), and keep the keepalive: whether the session still holds."""
        client = self.client
        if client.socket() is not None:
            client.loop_read()
        if client.socket() is not None:
            client.loop_misc()
        return self.connected

    def lost(self) -> bool:
        """Whether the session ended without the device asking (since the last connect)."""
        return self._lost

    def forget_loss(self) -> None:
        """The loss was counted: the next one is another."""
        self._lost = False

    def close_cause(self, token_exp: float, now: float, slop_s: float) -> CloseCause:
        """Why the session ended: at or after the token's ``exp`` (less the clock slop), the
        expiry close the broker owes; else an end of stream or a broker's DISCONNECT, the
        broker's; else the network's."""
        if now >= token_exp - slop_s:
            return "expiry_close"
        if self._broker_disconnect or self.client.ended_by_peer:
            return "broker_close"
        return "network_error"

    def pump(self, done: Callable[[], bool], timeout_s: float) -> None:
        """Serve the socket (read, write, keepalive) until ``done()``, the socket closes or
        ``timeout_s`` passes: the device's greenlet waits cooperatively on one libev watcher."""
        client = self.client
        deadline = time.monotonic() + timeout_s
        while not done():
            sock = client.socket()
            remaining_s = deadline - time.monotonic()
            if sock is None or remaining_s <= 0:
                return
            # One io watcher for the wait, not gevent's select.poll (its poll object, result,
            # event and watcher list cost 1 KB per waiting device; select() also stops at
            # descriptor 1024, and a fleet has thousands).
            watcher = get_hub().loop.io(
                sock.fileno(), _READ | (_WRITE if client.want_write() else 0)
            )
            try:
                wait_on(watcher, min(remaining_s, self._slice_s), _Quiet)
                woken = True
            except _Quiet:
                woken = False
            finally:
                watcher.close()
            # paho's socket is non-blocking: a read or write with nothing to do returns at once.
            if woken and client.want_write() and client.loop_write() and client.socket() is None:
                return
            if woken and client.loop_read() and client.socket() is None:
                return
            if client.socket() is not None:
                client.loop_misc()

    def close(self) -> None:
        """End the session from the device's side (a DISCONNECT if it is up), not counted as a
        loss."""
        self.connected = False
        client = self.client
        if client.socket() is not None:
            client.disconnect()
            self.pump(lambda: client.socket() is None, 1.0)
        if client.socket() is not None:
            client._sock_close()  # never answered: drop it
