"""The amqtt broker, subclassed where amqtt has no hook, and the TCP listener in front of it.

amqtt 0.12.1 (pinned in requirements.lock) is a plain asyncio broker, so it runs in the same event
loop as the Starlette app and reaches the same ``TargetState``. What is ours and why:

- The listener is ours (amqtt's "external" listener type): we know the port when it is 0,
  refuse a connection over ``--mqtt-max-connections`` at once (amqtt's own limit makes it
  wait, unanswered), and read through :class:`BoundedReader`.
- ``_initialize_client_session`` replaces amqtt's own (a private method, the one place that
  reads the CONNECT): it waits at most ``--mqtt-connect-timeout`` for it, authenticates it before
  amqtt touches an existing session of that client id (amqtt deletes or takes over that
  session before authenticating, so a forged CONNECT could end a device's session), answers a
  refusal with its own CONNACK code (amqtt only ever sends 5), and makes the protocol handler a
  :class:`DeviceHandler`. The session logic after that is amqtt's, as 0.12.1 has it.
- ``_authenticate`` (private) admits exactly the sessions admitted above, so any other path
  into amqtt's session handling is refused (fail closed).
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import weakref
from typing import Any

from amqtt.adapters import BufferReader
from amqtt.broker import Broker
from amqtt.errors import BrokerError, MQTTError
from amqtt.events import BrokerEvents
from amqtt.mqtt.connack import NOT_AUTHORIZED, UNACCEPTABLE_PROTOCOL_VERSION, ConnackPacket
from amqtt.mqtt.constants import QOS_0
from amqtt.mqtt.packet import CONNECT, MQTTFixedHeader
from amqtt.session import Session
from transitions import MachineError

from target.errors import ConnectRefused
from target.metrics import Metrics
from target.mqtt.gate import ConnectGate
from target.mqtt.handler import DeviceHandler, SessionRules
from target.mqtt.streams import BoundedReader, BoundedWriter
from target.mqtt.topics import is_own_filter, is_own_topic
from target.state import TargetState
from target.store.db import revisions

__all__ = ["WRITE_STALL_S", "MqttListener"]

WRITE_STALL_S = 10.0  # a client that leaves our packets unread this long is cut off
LISTEN_BACKLOG = 4096
MQTT_3_1_1 = 4
REVOCATION_SWEEP_S = 1.0
# The longest a client may leave our packets unread (less if its keepalive is shorter).
MAX_WRITE_WAIT_S = 30.0
LISTENER = "default"
SUBACK_FAILURE = 0x80
# A client without keepalive (0) is treated as asking for the most a client can ask for: the
# read timeout is what bounds a silent connection (and it makes amqtt's reader yield per packet).
MAX_KEEPALIVE_S = 65535
# Subscription filters held at once, over all sessions: each is memory a client chooses.
FILTERS_PER_CONNECTION = 8

log = logging.getLogger("target.mqtt")


async def _read_packet(reader: Any) -> bytes:
    """One whole packet (fixed header and body), read with amqtt's own header codec."""
    header = await MQTTFixedHeader.from_stream(reader)
    if header is None or header.packet_type != CONNECT:
        raise MQTTError("the first packet is not a CONNECT")
    body: bytes = await reader.read(header.remaining_length)
    if len(body) != header.remaining_length:
        raise MQTTError("CONNECT cut short")
    return bytes(header.to_bytes()) + body


def _protocol_level(connect: bytes) -> int | None:
    """The CONNECT's protocol level, if its protocol name is MQTT's (None: let amqtt judge)."""
    start = connect.find(b"\x00\x04MQTT")
    if not 2 <= start <= 5 or len(connect) <= start + 6:
        return None
    return connect[start + 6]


async def _refuse(writer: Any, connack: int) -> None:
    try:
        await ConnackPacket.build(0, connack).to_stream(writer)
    finally:
        await writer.close()


class _Filters(dict[str, list[tuple[Session, int]]]):
    """amqtt's subscription table, with a repr that does not walk it.

    After every SUBSCRIBE, amqtt 0.12.1 calls ``logger.debug(repr(self._subscriptions))``: the
    argument is built even with debug logging off, a string of every filter and every session in
    the broker, so each SUBSCRIBE cost O(filters) (5,000 subscribed devices: 6.1 ms of target CPU
    per CONNECT and SUBSCRIBE, against 1.2 ms for a CONNECT alone)."""

    def __repr__(self) -> str:
        return f"<{len(self)} subscription filters>"


class DeviceBroker(Broker):
    def __init__(self, state: TargetState, gate: ConnectGate, rules: SessionRules) -> None:
        settings = state.settings
        super().__init__(
            {
                "listeners": {LISTENER: {"type": "external"}},
                "plugins": {},  # no $SYS, no event logging, no anonymous access
                "session_expiry_interval": max(settings.token_ttl, 3600),
            }
        )
        self._gate = gate
        self._rules = rules
        self._metrics = rules.metrics
        self._connect_timeout_s = settings.mqtt_connect_timeout
        # By identity: amqtt's Session defines __eq__ and so is unhashable.
        self._admitted: weakref.WeakValueDictionary[int, Session] = weakref.WeakValueDictionary()
        self._max_filters = settings.mqtt_max_connections * FILTERS_PER_CONNECTION
        self._filters_of: dict[str, set[str]] = {}  # client id -> its subscription filters
        self._subscriptions = _Filters()
        self._stopping = False  # shutdown(): every session is cleaned up, connected or not

    def _count(self, result: str, connack: str) -> None:
        self._metrics.mqtt_connects.labels(result=result, connack=connack).inc()

    async def _initialize_client_session(
        self, reader: Any, writer: Any, remote_address: str, remote_port: int
    ) -> tuple[DeviceHandler, Session]:
        try:
            connect = await asyncio.wait_for(_read_packet(reader), self._connect_timeout_s)
        except TimeoutError as e:
            self._count("no_connect", "none")
            await writer.close()
            raise MQTTError("no CONNECT in time") from e
        except Exception as e:  # EOF, a field over the limit, bytes that are not MQTT
            self._count("malformed", "none")
            await writer.close()
            raise MQTTError("unreadable CONNECT") from e
        if _protocol_level(connect) not in (None, MQTT_3_1_1):
            # MQTT 5 (or 3.1): amqtt reads only 3.1.1; say so before its parser misreads the rest.
            self._count("protocol_version", str(UNACCEPTABLE_PROTOCOL_VERSION))
            await _refuse(writer, UNACCEPTABLE_PROTOCOL_VERSION)
            raise MQTTError("not MQTT 3.1.1")
        try:
            # Parsed from memory: a CONNECT whose fields overrun it ends here, not in a wait.
            handler, session = await DeviceHandler.init_from_connect(
                BufferReader(connect), writer, self.plugins_manager
            )
        except MQTTError as e:
            # amqtt's own checks: CONNACK 2 or 4 sent for some, the socket closed for others
            self._count("protocol", "amqtt")
            await writer.close()
            raise MQTTError("CONNECT refused by amqtt") from e
        except Exception as e:  # garbage: whatever amqtt's decoder raised, close cleanly
            self._count("malformed", "none")
            await writer.close()
            raise MQTTError("unreadable CONNECT") from e
        try:
            grant = await self._gate.admit(session.client_id, session.username, session.password)
            if session.will_flag and (
                session.will_retain or not is_own_topic(grant.sub, session.will_topic or "")
            ):
                raise ConnectRefused(NOT_AUTHORIZED, "will")
        except ConnectRefused as e:
            self._count(e.reason, str(e.connack))
            await _refuse(writer, e.connack)
            raise MQTTError("CONNECT refused") from e
        self._count("accepted", "0")
        asked_keepalive = session.keep_alive > 0
        session.keep_alive = math.ceil(1.5 * (session.keep_alive or MAX_KEEPALIVE_S))
        if isinstance(writer, BoundedWriter):  # our packets may wait unread as long, no longer
            writer.deadline_s = min(session.keep_alive, MAX_WRITE_WAIT_S)
        handler.admit(grant, self._rules, asked_keepalive)
        session.password = None  # the token stays out of amqtt's session (and its reprs)

        # From here on, amqtt 0.12.1's Broker._initialize_client_session, unchanged.
        if session.clean_session:
            await self._delete_session(session.client_id)
            session.parent = 0
        elif session.client_id in self._sessions:
            existing, _ = self._sessions[session.client_id]
            existing.will_flag = session.will_flag
            existing.will_message = session.will_message
            existing.will_topic = session.will_topic
            existing.will_qos = session.will_qos
            existing.keep_alive = session.keep_alive
            existing.username = session.username
            existing.password = session.password
            session = existing
            session.parent = 1
        else:
            session.parent = 0
        self._admitted[id(session)] = session
        return handler, session

    async def _handle_client_session(
        self,
        reader: Any,
        writer: Any,
        client_session: Session,
        handler: DeviceHandler,
        server: Any,
        listener_name: str,
    ) -> None:
        # amqtt 0.12.1's, but for one loop: after every CONNECT it offered the retained messages of
        # every filter in the broker (every device's, not this session's) to the new session, two
        # debug strings formatted per filter: O(filters) per CONNECT, so a fleet that subscribes
        # reconnected in O(n^2) (3,000 devices: 54 reconnects/s). No retained message is ever held
        # here (a retained PUBLISH or will is refused), so the loop runs only if one is.
        authenticated = await self._authenticate(
            client_session, self.listeners_config[listener_name]
        )
        if client_session.client_id is None:
            raise BrokerError("Client ID was not correctly created/set.")
        while True:
            try:
                client_session.transitions.connect()
                break
            except (MachineError, ValueError):
                if client_session.transitions.is_connected():
                    old_session = self._sessions[client_session.client_id]  # take-over
                    await old_session[1].handle_connection_closed()
                    await old_session[1].stop()
                    break
                await asyncio.sleep(1)  # reconnecting too quickly
        handler.attach(client_session, reader, writer)
        self._sessions[client_session.client_id] = (client_session, handler)
        await handler.mqtt_connack_authorize(authenticated)
        if not authenticated:
            await writer.close()
            return
        await self.plugins_manager.fire_event(
            BrokerEvents.CLIENT_CONNECTED,
            client_id=client_session.client_id,
            client_session=client_session,
        )
        await handler.start()
        await self._publish_session_retained_messages(client_session)
        if self._retained_messages:
            for topic in list(self._subscriptions):
                await self._publish_retained_messages_for_subscription(
                    (topic, QOS_0), client_session
                )
        await self._client_message_loop(client_session, handler)

    async def _cleanup_session(self, client_id: str) -> None:
        # amqtt 0.12.1's session monitor lists the clean sessions it finds disconnected, then
        # cleans them up one by one, awaiting each: a device that connected again meanwhile
        # under the same client id (one that connects per reading) had its new, live session
        # popped and its handler stopped, its connection closed under it. A session found
        # connected again is no longer the monitor's; at shutdown every one goes.
        found = self._sessions.get(client_id)
        if not self._stopping and found is not None and found[0].transitions.is_connected():
            return
        await super()._cleanup_session(client_id)

    async def shutdown(self) -> None:
        self._stopping = True
        await super().shutdown()

    async def _del_all_subscriptions(self, session: Session) -> None:
        # amqtt scans every filter in the broker for the session's: O(filters) per session ended
        # (each clean session's reconnect, each session the monitor expires). Ours are indexed.
        for topic_filter in self._filters_of.pop(session.client_id, ()):
            self._del_subscription(topic_filter, session)
            if not self._subscriptions.get(topic_filter, True):
                del self._subscriptions[topic_filter]

    async def _authenticate(self, session: Session, _: Any) -> bool:
        return self._admitted.get(id(session)) is session

    async def add_subscription(self, subscription: tuple[str, int], session: Session) -> int:
        topic_filter, _ = subscription
        if session.username is None or not is_own_filter(session.username, topic_filter):
            self._metrics.mqtt_acl_refusals.labels(action="subscribe").inc()
            return SUBACK_FAILURE
        if topic_filter not in self.subscriptions and len(self.subscriptions) >= self._max_filters:
            return SUBACK_FAILURE
        granted: int = await super().add_subscription(subscription, session)
        if granted != SUBACK_FAILURE:
            self._filters_of.setdefault(session.client_id, set()).add(topic_filter)
        return granted


class MqttListener:
    """The broker and its TCP listener, started and stopped with the app (see ``create_app``)."""

    def __init__(self, state: TargetState) -> None:
        self._state = state
        self._settings = state.settings
        self._metrics: Metrics = state.metrics
        self._broker: DeviceBroker | None = None
        self._server: asyncio.Server | None = None
        self._open = 0
        self._sweeper: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> int:
        """Start listening; returns the port (the one picked, for ``--mqtt-port 0``)."""
        # amqtt logs a warning for every client that misbehaves: a flood of garbage would be a
        # flood of log lines. Our metrics count them instead.
        logging.getLogger("amqtt").setLevel(
            max(logging.ERROR, logging.getLevelName(self._settings.log_level.upper()))
        )
        gate = ConnectGate(self._state)
        rules = SessionRules(gate, self._state.telemetry, self._metrics)
        self._broker = DeviceBroker(self._state, gate, rules)
        await self._broker.start()
        try:
            self._server = await asyncio.start_server(
                self._connected,
                self._settings.mqtt_host,
                self._settings.mqtt_port or 0,
                reuse_address=True,
                # asyncio's read buffer: a field up to --mqtt-max-packet, and no more waits in it.
                limit=self._settings.mqtt_max_packet + 1024,
                # A reconnect storm queues here while CONNECTs are checked: a SYN the kernel drops
                # from a full backlog is retried 1 s, 3 s, 7 s later. Linux caps it at somaxconn.
                backlog=LISTEN_BACKLOG,
            )
        except BaseException:
            await self._broker.shutdown()
            raise
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._sweeper = asyncio.create_task(self._close_revoked())
        return self.port

    async def _close_revoked(self) -> None:
        """Close within a second the sessions of devices revoked, deleted or registered again
        (each session checks at its next reading too; this reaches the quiet ones). It looks
        only when the registry's revision moved: one small read a second otherwise."""
        seen: int | None = None
        while True:
            await asyncio.sleep(REVOCATION_SWEEP_S)
            try:
                current = revisions(self._state.db.reader).get("devices")
            except sqlite3.Error:
                continue
            if current == seen or self._broker is None:
                continue
            seen = current
            for _, handler in list(self._broker.sessions.values()):
                if isinstance(handler, DeviceHandler):
                    handler.close_if_lapsed()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open += 1
        self._metrics.mqtt_connections.inc()
        try:
            if self._open > self._settings.mqtt_max_connections or self._broker is None:
                self._metrics.mqtt_connects.labels(result="over_limit", connack="none").inc()
                return
            bounded = BoundedReader(
                reader,
                self._settings.mqtt_max_packet,
                self._metrics.mqtt_sessions_closed.labels(reason="too_large").inc,
            )
            stalled = self._metrics.mqtt_sessions_closed.labels(reason="not_reading").inc
            writes = BoundedWriter(writer, WRITE_STALL_S, stalled)
            await self._broker.external_connected(bounded, writes, LISTENER)
        except Exception as e:  # a client's doing must never reach asyncio's error log as ours
            log.debug("MQTT connection ended: %s", type(e).__name__, exc_info=True)
        finally:
            writer.close()
            self._open -= 1
            self._metrics.mqtt_connections.dec()

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        if self._broker is not None:
            await self._broker.shutdown()
        if self._server is not None:
            await self._server.wait_closed()
