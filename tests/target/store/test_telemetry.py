"""Telemetry intake and accounting: every reading counted once, with gaps and duplicates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from sim.run.embedded import EmbeddedTarget
from target.store.db import connect
from target.store.telemetry import Row, _write_all_new, _write_row_by_row, read_stats, write_batch
from tests.conftest import StartTarget
from tests.target.helpers import (
    TIMEOUT_S,
    admin_headers,
    client_token,
    new_device,
    send_reading,
)


def _stats(target: EmbeddedTarget) -> dict[str, Any]:
    response = requests.get(
        f"{target.url}/admin/stats", headers=admin_headers(target), timeout=TIMEOUT_S
    )
    assert response.status_code == 200
    stats: dict[str, Any] = response.json()
    return stats


def test_stats_count_gaps_and_duplicates_per_device_and_in_total(
    start_target: StartTarget,
) -> None:
    target = start_target("HS256")
    assert _stats(target) == {
        "devices": {},
        "totals": {"devices": 0, "received": 0, "distinct": 0, "duplicates": 0, "gaps": 0},
    }
    first, second = new_device(target), new_device(target)
    first_token, second_token = client_token(target, first), client_token(target, second)
    for seq in (1, 2, 2, 5):
        response = send_reading(target, first.id, first_token, seq)
        assert response.status_code == 202
        assert response.json() == {"seq": seq}
    for seq in (10, 11, 12):
        assert send_reading(target, second.id, second_token, seq).status_code == 202

    stats = _stats(target)  # flushes this worker's pending batch first
    assert stats["devices"][first.id] == {
        "received": 4,
        "distinct": 3,
        "duplicates": 1,
        "gaps": 2,
        "last_seq": 5,
        "max_seq": 5,
    }
    assert stats["devices"][second.id] == {
        "received": 3,
        "distinct": 3,
        "duplicates": 0,
        "gaps": 0,
        "last_seq": 12,
        "max_seq": 12,
    }
    assert stats["totals"] == {
        "devices": 2,
        "received": 7,
        "distinct": 6,
        "duplicates": 1,
        "gaps": 2,
    }


def test_duplicates_are_counted_across_batches_and_last_seq_follows_arrival(
    start_target: StartTarget,
) -> None:
    target = start_target("HS256")
    device = new_device(target)
    token = client_token(target, device)
    for seq in (3, 4):
        assert send_reading(target, device.id, token, seq).status_code == 202
    assert _stats(target)["devices"][device.id]["received"] == 2  # batch written
    for seq in (4, 1):  # a duplicate of an earlier batch, then a late reading
        assert send_reading(target, device.id, token, seq).status_code == 202
    counts = _stats(target)["devices"][device.id]
    assert counts == {
        "received": 4,
        "distinct": 3,
        "duplicates": 1,
        "gaps": 1,
        "last_seq": 1,
        "max_seq": 4,
    }


def test_refused_readings_are_not_counted(start_target: StartTarget) -> None:
    target = start_target("HS256")
    device, other = new_device(target), new_device(target)
    token = client_token(target, device)
    assert send_reading(target, other.id, token, 1).status_code == 403  # another device's path
    bad = requests.post(
        f"{target.url}/devices/{device.id}/telemetry",
        json={"seq": -1, "ts": 0},
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT_S,
    )
    assert bad.status_code == 422
    assert _stats(target)["totals"]["received"] == 0


def test_readings_are_kept_across_a_restart(start_target: StartTarget, tmp_path: Any) -> None:
    db = str(tmp_path / "target.db")
    first = start_target("HS256", db=db)
    device = new_device(first)
    token = client_token(first, device)
    for seq in (1, 2, 3):
        assert send_reading(first, device.id, token, seq).status_code == 202
    first.stop()  # a clean stop writes the pending batch
    second = start_target("HS256", db=db)
    assert send_reading(second, device.id, token, 3).status_code == 202
    counts = _stats(second)["devices"][device.id]
    assert (counts["received"], counts["distinct"], counts["duplicates"]) == (4, 3, 1)


def _batches_written(path: Path, batches: list[list[Row]]) -> tuple[dict[str, Any], list[Any]]:
    conn = connect(str(path))
    for rows in batches:
        write_batch(conn, rows)
    stored = conn.execute("SELECT device_id, seq, ts, body FROM readings ORDER BY 1, 2").fetchall()
    stats = read_stats(conn)
    conn.close()
    return stats, stored


def test_a_batch_is_written_exactly_as_row_by_row_duplicates_and_all(tmp_path: Path) -> None:
    """The whole-batch statement (one GIL release, not one per row) stores the same readings and
    counts as writing each row: within-batch and across-batch repeats, and text beyond ASCII."""
    body = '{"t":21.5,"note":"caf\\u00e9 \U0001f321 \\"q\\""}'
    batches: list[list[Row]] = [
        [("dev-a", 1, 1.5, body), ("dev-b", 7, 2.25, "{}"), ("dev-\u00e9\U0001f600", 1, 3.0, body)],
        [("dev-a", 2, 4.0, "{}"), ("dev-a", 2, 4.5, '{"again":1}'), ("dev-b", 6, 5.0, "{}")],
        [("dev-a", 1, 6.0, "{}"), ("dev-c", 1, 7.0, "{}")],
        [("dev-c", 3, 8.0, "{}"), ("dev-a", 3, 9.0, "{}")],
    ]
    stats, stored = _batches_written(tmp_path / "batch.db", batches)

    conn = connect(str(tmp_path / "rows.db"))
    for rows in batches:
        _write_row_by_row(conn, rows)
    assert stats == read_stats(conn)
    assert (
        stored
        == conn.execute("SELECT device_id, seq, ts, body FROM readings ORDER BY 1, 2").fetchall()
    )
    conn.close()

    assert stats["devices"]["dev-a"] == {
        "received": 5, "distinct": 3, "duplicates": 2, "gaps": 0, "last_seq": 3, "max_seq": 3,
    }  # fmt: skip
    assert stats["devices"]["dev-b"]["last_seq"] == 6  # the last to arrive, not the highest
    assert ("dev-a", 1, 1.5, body) in stored  # the first of a repeated reading is the one kept
    assert ("dev-\u00e9\U0001f600", 1, 3.0, body) in stored


def test_only_a_batch_that_repeats_a_reading_is_written_row_by_row(tmp_path: Path) -> None:
    conn = connect(str(tmp_path / "t.db"))
    assert _write_all_new(conn, [("dev-a", 1, 1.0, "{}"), ("dev-b", 1, 1.0, "{}")])
    assert not _write_all_new(conn, [("dev-c", 1, 1.0, "{}"), ("dev-a", 1, 2.0, "{}")])
    assert not _write_all_new(conn, [("dev-d", 1, 1.0, "{}"), ("dev-d", 1, 2.0, "{}")])
    # A refused fast path leaves nothing behind: dev-c and dev-d are not stored.
    assert read_stats(conn)["totals"] == {
        "devices": 2, "received": 2, "distinct": 2, "duplicates": 0, "gaps": 0,
    }  # fmt: skip
    conn.close()
