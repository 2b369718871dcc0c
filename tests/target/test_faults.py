"""The target under faults, with real processes: another connection holding SQLite's write lock,
``kill -9`` and a restart on the same file, a failing statement inside a change (issue 10).

Every wait here is bounded: locks are held for a fixed few seconds and every request has a
timeout, so a regression fails the test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from sim.run.embedded import EmbeddedTarget
from tests.conftest import StartTarget
from tests.target.helpers import (
    TIMEOUT_S,
    admin_headers,
    assert_refused,
    bearer,
    client_token,
    get,
    new_device,
    register,
    send_reading,
    unique_id,
    wait_until,
)

# Longer than the old 5 s busy timeout, so the old code's statements fail while it is held.
LOCK_HELD_S = 6.5
# Requests may wait for the lock (then retry inside the target): never longer than this.
SLOW_TIMEOUT_S = 20
# A worker that keeps its event loop free answers /healthz well within this, lock or not.
LIVENESS_TIMEOUT_S = 2


@contextlib.contextmanager
def write_lock_held(db: str) -> Iterator[None]:
    """A second sqlite3 connection holding the database's write lock (``BEGIN IMMEDIATE``)."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=10)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


def hold_write_lock(db: str, seconds: float) -> threading.Thread:
    """Hold the write lock for ``seconds`` on a thread of its own; returns once it is held."""
    held = threading.Event()

    def hold() -> None:
        with write_lock_held(db):
            held.set()
            time.sleep(seconds)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert held.wait(10), "could not take the write lock"
    return thread


def stats(target: EmbeddedTarget) -> dict[str, Any]:
    response = requests.get(
        f"{target.url}/admin/stats", headers=admin_headers(target), timeout=SLOW_TIMEOUT_S
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def stored_seqs(db: str, device_id: str) -> set[int]:
    """The readings on disk for ``device_id``, read straight from the database file."""
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        rows = conn.execute("SELECT seq FROM readings WHERE device_id = ?", (device_id,))
        return {row[0] for row in rows}


def post_reading(target: EmbeddedTarget, device_id: str, token: str, seq: int) -> int:
    """Send one reading on a fresh connection (so workers share the load); its status."""
    response = requests.post(
        f"{target.url}/devices/{device_id}/telemetry",
        json={"seq": seq, "ts": time.time(), "values": {"temp_c": 20.5}},
        headers=bearer(token),
        timeout=SLOW_TIMEOUT_S,
    )
    if response.status_code == 503:
        assert response.headers["Retry-After"].isdigit()
        assert response.json()["error"] == "temporarily_unavailable"
    return response.status_code


def kill_9(target: EmbeddedTarget) -> None:
    """SIGKILL the target's whole process group: no shutdown code of ours runs."""
    assert target.process is not None
    os.killpg(target.process.pid, signal.SIGKILL)
    target.process.wait(timeout=10)


def test_a_held_lock_neither_ends_upkeep_nor_drops_a_batch(
    start_target: StartTarget, tmp_path: Path
) -> None:
    """Item 1: the old upkeep task died on the first ``database is locked``: the batch it was
    writing was dropped and rotated-out keys were never retired (nor revocations picked up)."""
    db = str(tmp_path / "target.db")
    target = start_target("HS256", db=db, key_grace=2)
    device = new_device(target)
    token = client_token(target, device)  # signed with the key about to be rotated out
    assert get(target, "/api/data", token).status_code == 200

    with ThreadPoolExecutor(max_workers=16) as pool:
        locker = hold_write_lock(db, LOCK_HELD_S)
        # Sent at once: a batch that meets the lock (and old code then drops).
        early = {seq: pool.submit(post_reading, target, device.id, token, seq) for seq in range(8)}
        time.sleep(1.0)
        started = time.monotonic()
        health = requests.get(f"{target.url}/healthz", timeout=LIVENESS_TIMEOUT_S)
        assert health.status_code == 200  # the event loop is not stuck behind the lock
        assert time.monotonic() - started < LIVENESS_TIMEOUT_S
        time.sleep(2.0)
        # Sent late in the episode: committed soon after the lock goes, within the deadline.
        late = {
            seq: pool.submit(post_reading, target, device.id, token, seq) for seq in range(8, 16)
        }
        locker.join(timeout=LOCK_HELD_S + 10)
        answers = {seq: f.result() for seq, f in {**early, **late}.items()}

    assert set(answers.values()) <= {202, 503}, answers
    assert all(answers[seq] == 202 for seq in late), answers
    # Every reading was kept, those answered 503 included: a failed batch is retried, not dropped.
    stats(target)  # waits for this worker's queue
    assert stored_seqs(db, device.id) == set(range(16))
    assert "not written" in target.log_tail(200)  # the failure was said, not swallowed

    # Upkeep still runs: the rotated-out key is retired when its grace (2 s) ends.
    rotated = requests.post(
        f"{target.url}/admin/keys/rotate", headers=admin_headers(target), timeout=TIMEOUT_S
    )
    assert rotated.status_code == 200
    assert get(target, "/api/data", token).status_code == 200  # within grace
    time.sleep(2 + 1 + 1.5)  # the grace, one upkeep tick, and a margin for a busy machine
    assert_refused(get(target, "/api/data", token), "signature")
    assert send_reading(target, device.id, client_token(target, device), 99).status_code == 202


def test_every_acknowledged_reading_survives_kill_9_and_restart(
    start_target: StartTarget, tmp_path: Path
) -> None:
    """Item 2: a 202 means the reading is committed. Old code answered on receipt and wrote
    within 0.1 s, so readings answered just before a crash were lost."""
    db = str(tmp_path / "target.db")
    target = start_target("HS256", db=db)
    device = new_device(target)
    token = client_token(target, device)
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(
            pool.map(lambda seq: post_reading(target, device.id, token, seq), range(50))
        )
    assert statuses == [202] * 50
    kill_9(target)  # at once, after the last 202

    assert stored_seqs(db, device.id) == set(range(50))
    restarted = start_target("HS256", db=db)
    counts = stats(restarted)["devices"][device.id]
    assert (counts["received"], counts["distinct"], counts["gaps"]) == (50, 50, 0)
    assert send_reading(restarted, device.id, token, 50).status_code == 202


def test_a_held_lock_answers_503_with_retry_after_and_keeps_the_worker_free(
    start_target: StartTarget, tmp_path: Path
) -> None:
    """Item 5: SQLite calls on the event loop froze the worker (``/healthz`` took 4.5 s) and the
    request that met the lock got a 500 after 5 s."""
    db = str(tmp_path / "target.db")
    target = start_target("HS256", db=db)
    device = new_device(target)
    token = client_token(target, device)
    newcomer = {"id": unique_id(), "secret": secrets.token_urlsafe(24)}

    with ThreadPoolExecutor(max_workers=4) as pool:
        locker = hold_write_lock(db, LOCK_HELD_S)
        registration = pool.submit(
            lambda: requests.post(
                f"{target.url}/admin/devices",
                json={"devices": [newcomer]},
                headers=admin_headers(target),
                timeout=SLOW_TIMEOUT_S,
            )
        )
        reading = pool.submit(post_reading, target, device.id, token, 1)
        time.sleep(0.5)
        for _ in range(3):  # the loop stays free throughout
            health = requests.get(f"{target.url}/healthz", timeout=LIVENESS_TIMEOUT_S)
            assert health.status_code == 200
            assert get(target, "/api/data", token).status_code == 200
            time.sleep(0.5)
        refused = registration.result(timeout=SLOW_TIMEOUT_S)
        assert reading.result(timeout=SLOW_TIMEOUT_S) == 503
        locker.join(timeout=LOCK_HELD_S + 10)

    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "1"
    assert refused.json() == {
        "error": "temporarily_unavailable",
        "error_description": "database unavailable",
    }
    # Nothing half-written: the same registration now succeeds.
    assert register(target, [newcomer]).status_code == 201
    assert send_reading(target, device.id, token, 2).status_code == 202


def test_a_revocation_reaches_every_worker_at_once_after_a_lock_episode(
    start_target: StartTarget, tmp_path: Path
) -> None:
    """Item 1 and the "also": on ``--workers 2`` the old upkeep died in each worker that had a
    batch during the lock, and its revocations were never picked up; even alive, a worker that
    did not serve the revoke honoured the token for up to 1 s."""
    db = str(tmp_path / "target.db")
    target = start_target("HS256", db=db, workers=2)
    device = new_device(target)
    token = client_token(target, device)
    assert get(target, "/api/data", token).status_code == 200

    with ThreadPoolExecutor(max_workers=24) as pool:
        locker = hold_write_lock(db, LOCK_HELD_S)
        # Fresh connections from many threads, so both workers have a batch meeting the lock.
        readings = [pool.submit(post_reading, target, device.id, token, seq) for seq in range(24)]
        locker.join(timeout=LOCK_HELD_S + 10)
        assert {f.result() for f in readings} <= {202, 503}

    revoked = requests.post(
        f"{target.url}/admin/devices/{device.id}/revoke",
        headers=admin_headers(target),
        timeout=SLOW_TIMEOUT_S,
    )
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    # At once, on fresh connections spread over both workers: no grace of an upkeep tick.
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: get(target, "/api/data", token), range(24)))
    assert [a.status_code for a in answers] == [401] * 24
    for answer in answers:
        assert_refused(answer, "revoked")
    # No batch dropped in either worker (one answered 503 is retried until it commits).
    assert wait_until(lambda: stored_seqs(db, device.id) == set(range(24)), timeout_s=10)


def test_a_revocation_is_one_transaction(start_target: StartTarget, tmp_path: Path) -> None:
    """Item 6: under ``isolation_level=None`` the old ``with conn:`` committed the device's flag
    and the revision bump separately; when the bump failed, the device was revoked on disk but
    other workers were never told. Now both happen or neither does."""
    db = str(tmp_path / "target.db")
    target = start_target("HS256", db=db)
    device = new_device(target)
    token = client_token(target, device)
    with contextlib.closing(sqlite3.connect(db, isolation_level=None, timeout=10)) as conn:
        revision = conn.execute("SELECT value FROM revisions WHERE name = 'devices'").fetchone()[0]
        conn.execute(
            "CREATE TRIGGER fail_bump BEFORE UPDATE ON revisions"
            " BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )
    response = requests.post(
        f"{target.url}/admin/devices/{device.id}/revoke",
        headers=admin_headers(target),
        timeout=SLOW_TIMEOUT_S,
    )
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    with contextlib.closing(sqlite3.connect(db, isolation_level=None, timeout=10)) as conn:
        active = conn.execute("SELECT active FROM devices WHERE id = ?", (device.id,)).fetchone()
        after = conn.execute("SELECT value FROM revisions WHERE name = 'devices'").fetchone()[0]
        conn.execute("DROP TRIGGER fail_bump")
    assert (active[0], after) == (1, revision)  # neither half of the change
    assert get(target, "/api/data", token).status_code == 200

    again = requests.post(
        f"{target.url}/admin/devices/{device.id}/revoke",
        headers=admin_headers(target),
        timeout=SLOW_TIMEOUT_S,
    )
    assert again.status_code == 200
    assert_refused(get(target, "/api/data", token), "revoked")
