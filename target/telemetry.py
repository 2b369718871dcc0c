"""Telemetry intake and accounting: every reading kept once, per-device counts, gaps, duplicates.

Readings are acknowledged (202) on receipt and written in batches, at most ``FLUSH_INTERVAL_S``
later; ``/admin/stats`` flushes this process's batch first, so what it reports includes every
reading this worker acknowledged.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from typing import Any

__all__ = ["FLUSH_INTERVAL_S", "TelemetryLog"]

FLUSH_INTERVAL_S = 0.1


class TelemetryLog:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._pending: list[tuple[str, int, float, str]] = []

    def add(self, device_id: str, seq: int, ts: float, values: dict[str, Any]) -> None:
        self._pending.append((device_id, seq, ts, json.dumps(values, separators=(",", ":"))))

    def flush(self) -> int:
        """Write pending readings in one transaction; returns how many were written."""
        pending, self._pending = self._pending, []
        if not pending:
            return 0
        received: defaultdict[str, int] = defaultdict(int)
        duplicates: defaultdict[str, int] = defaultdict(int)
        last_seq: dict[str, int] = {}
        with self._conn:
            for row in pending:
                cursor = self._conn.execute(
                    "INSERT OR IGNORE INTO readings (device_id, seq, ts, body) VALUES (?, ?, ?, ?)",
                    row,
                )
                device_id = row[0]
                received[device_id] += 1
                duplicates[device_id] += 1 - cursor.rowcount
                last_seq[device_id] = row[1]
            self._conn.executemany(
                "INSERT INTO telemetry_counts (device_id, received, duplicates, last_seq)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET"
                " received = received + excluded.received,"
                " duplicates = duplicates + excluded.duplicates, last_seq = excluded.last_seq",
                [(d, n, duplicates[d], last_seq[d]) for d, n in received.items()],
            )
        return len(pending)

    def stats(self) -> dict[str, Any]:
        """Per-device and total accounting. ``gaps`` counts sequence numbers missing between a
        device's lowest and highest received ``seq``."""
        self.flush()
        rows = self._conn.execute(
            "SELECT c.device_id, c.received, c.duplicates, c.last_seq,"
            " COUNT(r.seq), MIN(r.seq), MAX(r.seq)"
            " FROM telemetry_counts c JOIN readings r ON r.device_id = c.device_id"
            " GROUP BY c.device_id"
        )
        devices: dict[str, Any] = {}
        totals = {"devices": 0, "received": 0, "distinct": 0, "duplicates": 0, "gaps": 0}
        for device_id, received, dups, last_seq, distinct, min_seq, max_seq in rows:
            gaps = max_seq - min_seq + 1 - distinct
            devices[device_id] = {
                "received": received,
                "distinct": distinct,
                "duplicates": dups,
                "gaps": gaps,
                "last_seq": last_seq,
                "max_seq": max_seq,
            }
            totals["devices"] += 1
            totals["received"] += received
            totals["distinct"] += distinct
            totals["duplicates"] += dups
            totals["gaps"] += gaps
        return {"devices": devices, "totals": totals}
