# mypy: disable-error-code="no-untyped-call"
"""A peer that speaks Locust's worker protocol by hand (pyzmq and ``locust.rpc.Message``), as
anyone who reaches a master's port can: it says what it likes and records every frame it gets.

Run as its own process (importing Locust patches the standard library with gevent):
``python -m tests.sim.rogue_peer --port P --mode rogue|greedy --out report.json``. It prints
``acknowledged`` once the master answered it, and writes what it got to ``--out`` at the end.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
from locust import __version__ as locust_version
from locust.rpc import Message

__all__ = ["RoguePeer", "forged_report", "main"]

POLL_MS = 50


class RoguePeer:
    """A DEALER socket on the master's port, with a thread that records what arrives and, once
    the master has acknowledged it, answers heartbeats as a live worker would."""

    def __init__(self, port: int, name: str = "rogue") -> None:
        self.id = f"{name}_{uuid.uuid4().hex}"
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.IDENTITY, self.id.encode())
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(f"tcp://127.0.0.1:{port}")
        self.frames: list[bytes] = []  # every frame the master sent, raw
        self.received: list[Message] = []
        self.on_message: Callable[[Message], None] | None = None
        self._lock = threading.Lock()
        self._outbox: list[Message] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def send(self, kind: str, data: Any) -> None:
        with self._lock:  # the socket belongs to the thread: it sends what is queued
            self._outbox.append(Message(kind, data, self.id))

    def types(self) -> list[str]:
        return [m.type for m in list(self.received)]

    def wait_for(self, kind: str, timeout_s: float) -> Message | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in list(self.received):
                if message.type == kind:
                    return message
            time.sleep(0.05)
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()
        self._context.term()

    def _run(self) -> None:
        last_beat = 0.0
        while not self._stop.is_set():
            with self._lock:
                outbox, self._outbox = self._outbox, []
            for message in outbox:
                self._socket.send(message.serialize())
            # Locust's import made this thread a greenlet: let the main one run.
            time.sleep(0.01)
            if self._socket.poll(POLL_MS):
                frame = self._socket.recv()
                self.frames.append(frame)
                message = Message.unserialize(frame)
                self.received.append(message)
                if self.on_message is not None:
                    self.on_message(message)
            acknowledged = any(m.type == "ack" for m in self.received)
            if acknowledged and time.monotonic() - last_beat > 1.0:
                last_beat = time.monotonic()
                # "ready" until given users, as Locust's worker: the master counts ready ones.
                state = "running" if "spawn" in self.types() else "ready"
                beat = {"state": state, "current_cpu_usage": 1.0, "current_memory_usage": 1}
                self._socket.send(Message("heartbeat", beat, self.id).serialize())

    def ready(self) -> None:
        """Locust's first words: ``client_ready`` with its version."""
        self.send("client_ready", locust_version)


def forged_report(requests: int) -> dict[str, Any]:
    """A worker's last report that says ``requests`` telemetry requests were all ok."""
    from locust.stats import RequestStats, StatsEntry

    from sim.account.measure import Measurements

    account = Measurements()
    for _ in range(requests):
        account.request_started()
        account.record("telemetry", "verification", "HS256", "ok", 1000.0)
    total = StatsEntry(RequestStats(), "Aggregated", "", use_response_times_cache=False)
    return {
        "stats": [],
        "stats_total": total.get_stripped_report(),
        "errors": {},
        "user_count": 0,
        "user_classes_count": {},
        "fleetbench": account.take_wire(),
        "fleetbench_worker": {
            "host": "rogue", "pid": 1, "requests": requests, "devices": 12, "cpu": [1.0],
            "peak_rss": 1, "cores": 1, "stopped": True,
        },
    }  # fmt: skip


def _rogue(peer: RoguePeer, forge_after_s: float) -> dict[str, Any]:
    """The review's script: ready, a claim for every device, and a forged all-ok account."""
    peer.send("fleetbench_claim", {"count": 1_000_000})
    time.sleep(forge_after_s)
    peer.send("fleetbench_claim", {"count": 1_000_000})
    peer.send("fleetbench_final", forged_report(5000))
    peer.send("stats", forged_report(5000))
    return {}


def _greedy(peer: RoguePeer, run_s: float) -> dict[str, Any]:
    """Holds the key, proves it, and asks for a million devices once given users."""
    from sim.device.seal import ClusterKey

    key = ClusterKey(os.environ["FLEETBENCH_CLUSTER_KEY"])
    state: dict[str, Any] = {"users": None, "dealt": [], "challenge": None}

    def answer(message: Message) -> None:
        if message.type == "fleetbench_challenge":
            state["challenge"] = message.data["challenge"]
            proof = key.proof(message.data["challenge"], peer.id)
            peer.send("fleetbench_proof", {"proof": proof})
        elif message.type == "spawn" and state["users"] is None:
            state["users"] = sum(message.data["user_classes_count"].values())
            payload = {"seq": 1, "data": {"count": 1_000_000}}
            sealed = key.seal("fleetbench_claim", peer.id, state["challenge"], payload)
            peer.send("fleetbench_claim", {"sealed": sealed})
        elif message.type == "fleetbench_shard":
            shard = key.open(
                "fleetbench_shard", peer.id, state["challenge"], message.data["sealed"]
            )
            state["dealt"] += [entry["device"]["id"] for entry in shard["devices"]]

    peer.on_message = answer
    peer.send("fleetbench_hello", None)
    time.sleep(run_s)
    return {"users": state["users"], "dealt": state["dealt"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("rogue", "greedy"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--run-s", type=float, default=20.0)  # bounded, whatever happens
    args = parser.parse_args(argv)
    peer = RoguePeer(args.port, args.mode)
    deadline = time.monotonic() + 60
    while not peer.received and time.monotonic() < deadline:
        peer.ready()
        time.sleep(0.5)
    print("acknowledged" if peer.received else "no answer", flush=True)
    if args.mode == "rogue":
        found = _rogue(peer, forge_after_s=4.0)
        time.sleep(args.run_s)
    else:
        found = _greedy(peer, args.run_s)
    peer.close()
    report = {
        "id": peer.id,
        "types": peer.types(),
        "frames": [base64.b64encode(f).decode() for f in peer.frames],
        **found,
    }
    args.out.write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
