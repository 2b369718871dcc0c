"""The master's door: which peers' messages reach Locust in a ``fleetbench run --master``.

Locust's master takes any peer that says ``client_ready`` as a worker, counts it towards
``--expect-workers``, gives it users, and hands every message it sends (its own id included) to
the listeners. Here each message is first checked against the peer it came from:

- a message whose sender id is not the connection's own is dropped (no speaking for another);
- a peer is registered with Locust only once it has answered a fresh challenge with an HMAC by
  the cluster key (:mod:`sim.device.seal`); until then its ``client_ready`` is acknowledged but
  held, and nothing else it sends reaches Locust: no claim, no report, no heartbeat;
- an admitted worker's claims and reports arrive sealed, and are opened here (once each: a
  replayed message is dropped); one that does not open is dropped and counted against the worker.

A peer with a wrong or no key is told so in one message and named in the summary; it is never
registered, so it is given no users, no devices and no settings. This module runs inside Locust.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from locust.rpc import Message
from locust.runners import MasterRunner

from sim.device.seal import CHALLENGE_BYTES, ClusterKey, Unsealed

__all__ = [
    "CHALLENGE",
    "HELLO",
    "PROOF",
    "REFUSED",
    "REFUSED_REASONS",
    "REPORT",
    "Door",
]

log = logging.getLogger("fleetbench")

HELLO = "fleetbench_hello"  # worker -> master, once Locust acknowledged it: challenge me
CHALLENGE = "fleetbench_challenge"  # master -> worker: {"challenge": fresh random bytes}
PROOF = "fleetbench_proof"  # worker -> master: {"proof": HMAC(key, challenge, worker id)}
REFUSED = "fleetbench_refused"  # master -> worker: {"reason": one of REFUSED_REASONS}
REPORT = "fleetbench_report"  # what a worker's reports (Locust's "stats", FINAL) are sealed as
# Reasons travel as codes: a worker prints its own words, never text a master sent.
REFUSED_REASONS = {
    "no-key": "it holds no cluster key",
    "wrong-key": "its cluster key is not the master's",
    "no-challenge": "it sent a proof the master never asked for",
    "no-proof": "it never proved it holds the cluster key",
}
MAX_PENDING = 1000  # peers waiting for their proof: beyond this, new ones are not challenged
LISTED_REFUSED = 100


@dataclass
class _Peer:
    challenge: bytes | None = None
    ready: Message | None = None  # its client_ready, held until it proves the key
    admitted: bool = False
    refused: str | None = None  # a REFUSED_REASONS key
    seen: set[int] = field(default_factory=set)  # sequence numbers of its sealed messages
    unauthentic: int = 0  # sealed messages that did not open, or came twice


class Door:
    """Wraps the master's ``handle_message``: only proven workers' messages pass to Locust."""

    def __init__(
        self,
        runner: MasterRunner,
        key: ClusterKey,
        sealed: dict[str, str],
        changed: Callable[[Door], None] = lambda door: None,
    ) -> None:
        """``sealed``: message type -> the kind it is sealed as (opened before Locust sees it);
        ``changed``: called when a peer is held, admitted or refused."""
        self.runner = runner
        self.key = key
        self.sealed = sealed
        self.changed = changed
        self.peers: dict[str, _Peer] = {}
        self._pass: Callable[[str, Message], None] = runner.handle_message
        runner.handle_message = self.handle  # type: ignore[method-assign]

    def challenge(self, client_id: str) -> bytes:
        """The challenge an admitted worker proved: its sealed messages are bound to it."""
        challenge = self.peers[client_id].challenge
        assert challenge is not None
        return challenge

    def admitted(self, client_id: str) -> bool:
        peer = self.peers.get(client_id)
        return peer is not None and peer.admitted

    def unauthentic(self, client_id: str) -> int:
        peer = self.peers.get(client_id)
        return peer.unauthentic if peer else 0

    def refused(self) -> list[dict[str, str]]:
        """Every peer that was not admitted, and why (for the summary)."""
        listed = []
        for client_id, peer in self.peers.items():
            if peer.admitted:
                continue
            reason = REFUSED_REASONS[peer.refused or "no-proof"]
            listed.append({"id": client_id, "host": client_id.rsplit("_", 1)[0], "reason": reason})
        return listed[:LISTED_REFUSED]

    def handle(self, client_id: str, msg: Message) -> None:
        if msg.node_id != client_id:
            return  # a peer speaking for another: Locust would take the id in the message
        kind = msg.type
        peer = self.peers.get(client_id)
        if peer is None:
            if len(self.peers) >= MAX_PENDING + len(self.runner.clients):
                return
            peer = self.peers[client_id] = _Peer()
        if kind == HELLO:
            self._challenge(client_id, peer)
        elif kind == PROOF:
            self._check(client_id, peer, msg.data)
        elif not peer.admitted:
            if kind == "client_ready" and peer.refused is None:
                self._hold(client_id, peer, msg)
            # Anything else from a peer that has not proved the key goes nowhere.
        elif kind in self.sealed:
            opened = self._open(client_id, peer, self.sealed[kind], msg.data)
            if opened is not None:
                msg.data = opened
                self._pass(client_id, msg)
        else:
            self._pass(client_id, msg)

    def _hold(self, client_id: str, peer: _Peer, msg: Message) -> None:
        """Acknowledge it (so its Locust starts and can prove the key) without registering it."""
        first = peer.ready is None
        peer.ready = msg
        index = self.runner.get_worker_index(client_id)  # type: ignore[no-untyped-call]
        self.runner.send_message("ack", {"index": index}, client_id=client_id)
        if first:
            self.changed(self)

    def _challenge(self, client_id: str, peer: _Peer) -> None:
        if peer.admitted or peer.refused is not None:
            return  # one challenge per worker: its sealed messages are bound to it
        peer.challenge = os.urandom(CHALLENGE_BYTES)
        self.runner.send_message(CHALLENGE, {"challenge": peer.challenge}, client_id=client_id)

    def _check(self, client_id: str, peer: _Peer, data: Any) -> None:
        if peer.admitted or peer.refused is not None:
            return
        proof = data.get("proof") if isinstance(data, dict) else None
        if peer.challenge is None:
            self._refuse(client_id, peer, "no-challenge")
        elif not proof:
            self._refuse(client_id, peer, "no-key")
        elif not self.key.proves(peer.challenge, client_id, proof):
            self._refuse(client_id, peer, "wrong-key")
        else:
            peer.admitted = True
            log.info("worker %s proved the cluster key", client_id)
            if peer.ready is not None:
                self._pass(client_id, peer.ready)  # Locust registers it now
                peer.ready = None
            self.changed(self)

    def _refuse(self, client_id: str, peer: _Peer, reason: str) -> None:
        peer.refused, peer.ready = reason, None
        log.warning("fleetbench: refused worker %s: %s", client_id, REFUSED_REASONS[reason])
        self.runner.send_message(REFUSED, {"reason": reason}, client_id=client_id)
        self.changed(self)

    def _open(self, client_id: str, peer: _Peer, kind: str, data: Any) -> Any:
        sealed = data.get("sealed") if isinstance(data, dict) else None
        try:
            opened = self.key.open(kind, client_id, self.challenge(client_id), sealed)
            seq, payload = int(opened["seq"]), opened["data"]
        except (Unsealed, KeyError, TypeError, ValueError) as e:
            peer.unauthentic += 1
            log.warning("fleetbench: dropped from worker %s: %s", client_id, e)
            return None
        if seq in peer.seen:
            peer.unauthentic += 1
            log.warning("fleetbench: dropped from worker %s: a %s sent twice", client_id, kind)
            return None
        peer.seen.add(seq)
        return payload
