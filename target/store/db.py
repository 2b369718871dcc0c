"""The SQLite database: WAL, schema made on first start, and two connections per process.

The *writer* connection belongs to one thread (:class:`Database`'s executor): every statement
that may wait for SQLite's write lock runs there, never on the event loop, so a lock held by
another process stalls writes but not the worker. The *reader* connection is used on the event
loop for the hot path's small reads (``PRAGMA data_version``, the revision counters, the active
set); in WAL mode a reader never waits for a writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar

from target.errors import DatabaseUnavailable

__all__ = ["Database", "DatabaseUnavailable", "connect", "transaction"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    secret_salt BLOB,
    secret_hash BLOB,
    public_jwk TEXT,
    alg TEXT,
    scope TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    private BLOB NOT NULL,
    created_at REAL NOT NULL,
    retired_at REAL
);
CREATE TABLE IF NOT EXISTS used_jti (
    device_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (device_id, jti)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS readings (
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (device_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS telemetry_counts (
    device_id TEXT PRIMARY KEY,
    received INTEGER NOT NULL,
    duplicates INTEGER NOT NULL,
    last_seq INTEGER NOT NULL
);
-- Bumped on every change other worker processes must pick up (revocation, key rotation).
CREATE TABLE IF NOT EXISTS revisions (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO revisions (name, value) VALUES ('devices', 0), ('keys', 0);
"""


P = ParamSpec("P")
T = TypeVar("T")

Synchronous = Literal["NORMAL", "FULL"]
# How long a statement waits for another connection's write lock before the request that needs
# it is answered 503 (and a telemetry batch is retried); short, so the writer thread's queue
# does not grow long behind one held lock.
WRITE_BUSY_TIMEOUT_MS = 2000


def connect(
    path: str, *, synchronous: Synchronous = "NORMAL", busy_timeout_ms: int = 5000
) -> sqlite3.Connection:
    """Open (and if new, create) the database; files are private to the owner (0600).

    ``synchronous=FULL`` makes each commit fsync the WAL, so a committed transaction survives a
    power loss; ``NORMAL`` survives a crash of the process but not of the machine.
    """
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        old_umask = os.umask(0o077)  # the -wal and -shm files SQLite makes inherit this
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(SCHEMA)
    return conn


def connect_reader(path: str) -> sqlite3.Connection:
    """A second connection to an existing database file, for reads on the event loop."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=100")  # WAL readers only wait in rare recovery cases
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error.

    Under ``isolation_level=None`` a ``with conn:`` block is *not* a transaction: each statement
    commits on its own, so a crash between two of them leaves half a change on disk.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class Database:
    """One process's connections: the writer (on its own thread) and the event loop's reader."""

    def __init__(self, path: str, *, synchronous: Synchronous = "NORMAL") -> None:
        self.path = path
        self.synchronous = synchronous
        self.writer = connect(path, synchronous=synchronous, busy_timeout_ms=WRITE_BUSY_TIMEOUT_MS)
        # A :memory: database exists only in its own connection, and no other process can lock it.
        self.reader = self.writer if path == ":memory:" else connect_reader(path)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleetbench-db")
        self._data_version = self.data_version()

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args)`` on the writer thread; a SQLite failure is :class:`DatabaseUnavailable`."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, lambda: fn(*args, **kwargs))
        except sqlite3.Error as e:
            raise DatabaseUnavailable(_reason(e)) from e

    def data_version(self) -> int:
        """SQLite's counter of commits made by *other* connections (the writer included)."""
        row = self.reader.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def changed(self) -> bool:
        """Whether anything was committed since the last call: one PRAGMA, about a microsecond."""
        version = self.data_version()
        if version == self._data_version:
            return False
        self._data_version = version
        return True

    def forget_version(self) -> None:
        """Make the next :meth:`changed` answer True (a sync that failed is tried again)."""
        self._data_version = -1

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        if self.reader is not self.writer:
            self.reader.close()
        self.writer.close()


def _reason(error: sqlite3.Error) -> str:
    """A short fixed reason for logs and 503 bodies (SQLite's own text names no user data)."""
    text = str(error).lower()
    if "locked" in text or "busy" in text:
        return "database is locked"
    return "database error"


def bump_revision(conn: sqlite3.Connection, name: str) -> None:
    conn.execute("UPDATE revisions SET value = value + 1 WHERE name = ?", (name,))


def revisions(conn: sqlite3.Connection) -> dict[str, int]:
    return {name: value for name, value in conn.execute("SELECT name, value FROM revisions")}
