"""``python -m benchmarks.seal``: what sealing adds to the start of a run over remote workers.

At the start of a ``fleetbench run --master`` each worker proves the cluster key and is dealt
its shard (:mod:`sim.device.cluster`, :mod:`sim.device.seal`). This times, for a fleet of N
devices over W workers, that start with sealing and as it was before: each shard through
Locust's own message encoding (msgpack) and back, plain; and sealed (msgpack inside
ChaCha20-Poly1305, then Locust's encoding), opened on the other side, plus each worker's proof
and its check. The extra is the difference, for all the shards one after another (the master's
single loop deals them), in CPU time of this process (a busy machine stretches the wall clock,
not the work). The device entries are what the master sends (ids, secrets, private PEMs, public
JWKs); their key material comes from a few generated keys, repeated: the cost depends on the
bytes, not on which key they are.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import msgpack  # type: ignore[import-untyped]  # Locust's own message encoding

from sim.device.seal import CHALLENGE_BYTES, ClusterKey, new_key_text
from sim.device.settings import SimConfig
from sim.fleet.model import CREDENTIAL_KINDS, Device, make_device

__all__ = ["SealCost", "main", "measure"]

GOAL_MS = 1000.0  # issue: sealing costs a 10,000-device run over 2 workers < 1 s at start
DISTINCT_KEYS = 20


def _shards(devices: int, workers: int, kind: str) -> list[dict[str, Any]]:
    """Each worker's shard as the master sends it (one claim of all its users)."""
    models = [make_device(f"model-{i}", kind) for i in range(DISTINCT_KEYS)]  # type: ignore[arg-type]
    fleet = [
        Device(f"dev-bench-{i:05d}", os.urandom(24).hex(), m.alg, m.private_pem, m.public_jwk)
        for i, m in ((i, models[i % DISTINCT_KEYS]) for i in range(devices))
    ]
    settings = {k: v for k, v in asdict(SimConfig(fleet="")).items() if k != "seq_base"}
    per_worker = -(-devices // workers)
    shards = []
    for first in range(0, devices, per_worker):
        entries = [
            {"device": d.to_json(), "seq": 0, "index": first + n, "other": fleet[0].id}
            for n, d in enumerate(fleet[first : first + per_worker])
        ]
        shards.append({"settings": settings, "devices": entries, "short": 0})
    return shards


def _locust_wire(kind: str, data: Any, node_id: str) -> Any:
    """What Locust does to a message: ``msgpack`` of (type, data, node id), and back."""
    frame = msgpack.dumps((kind, data, node_id))
    return msgpack.loads(frame, raw=False, strict_map_key=False)[1], len(frame)


def _timed(work: Callable[[], Any]) -> tuple[float, Any]:
    """Milliseconds of this process's CPU: what the work costs, not how busy the host is."""
    started = time.process_time()
    result = work()
    return (time.process_time() - started) * 1000, result


class SealCost:
    """One measurement: the start's plain and sealed costs in ms, and the bytes on the wire."""

    def __init__(self, shards: list[dict[str, Any]]) -> None:
        key = ClusterKey(new_key_text())
        ids = [f"worker-{n}" for n in range(len(shards))]
        challenges = [os.urandom(CHALLENGE_BYTES) for _ in shards]

        def plain() -> int:
            return sum(_locust_wire("s", shard, i)[1] for shard, i in zip(shards, ids, strict=True))

        def proofs() -> None:
            for worker_id, challenge in zip(ids, challenges, strict=True):
                proof = _locust_wire("p", {"proof": key.proof(challenge, worker_id)}, worker_id)[0]
                assert key.proves(challenge, worker_id, proof["proof"])

        def sealed() -> list[tuple[str, bytes, bytes]]:
            return [
                (i, c, key.seal("s", i, c, shard))
                for shard, i, c in zip(shards, ids, challenges, strict=True)
            ]

        def opened(boxes: list[tuple[str, bytes, bytes]]) -> int:
            size = 0
            for worker_id, challenge, box in boxes:
                data, frame_bytes = _locust_wire("s", {"sealed": box}, worker_id)
                key.open("s", worker_id, challenge, data["sealed"])
                size += frame_bytes
            return size

        self.plain_ms, self.plain_bytes = _timed(plain)
        self.proof_ms, _ = _timed(proofs)
        self.seal_ms, boxes = _timed(sealed)
        self.open_ms, self.sealed_bytes = _timed(lambda: opened(boxes))

    @property
    def extra_ms(self) -> float:
        return self.proof_ms + self.seal_ms + self.open_ms - self.plain_ms


def measure(devices: int, workers: int, kind: str, repeat: int) -> list[SealCost]:
    shards = _shards(devices, workers, kind)
    return [SealCost(shards) for _ in range(repeat)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.seal", description=__doc__)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--alg", choices=CREDENTIAL_KINDS, default="RS256")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    costs = measure(args.devices, args.workers, args.alg, args.repeat)
    median = statistics.median(c.extra_ms for c in costs)
    first = costs[0]
    print(
        f"{args.devices} {args.alg} devices over {args.workers} workers: shards "
        f"{first.plain_bytes / 2**20:.2f} MiB plain, {first.sealed_bytes / 2**20:.2f} MiB sealed"
    )
    for n, cost in enumerate(costs, 1):
        print(
            f"  run {n}: plain {cost.plain_ms:.0f} ms; sealed: proofs {cost.proof_ms:.1f} ms, "
            f"seal {cost.seal_ms:.0f} ms, open {cost.open_ms:.0f} ms; extra {cost.extra_ms:.0f} ms"
        )
    verdict = "met" if median < GOAL_MS else "NOT met"
    print(
        f"sealing adds {median:.0f} ms of CPU at start (median of {len(costs)}): "
        f"goal < 1 s {verdict}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
