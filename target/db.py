"""The SQLite database: one connection per process, WAL, schema made on first start."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

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


def connect(path: str) -> sqlite3.Connection:
    """Open (and if new, create) the database; files are private to the owner (0600)."""
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
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(SCHEMA)
    return conn


def bump_revision(conn: sqlite3.Connection, name: str) -> None:
    conn.execute("UPDATE revisions SET value = value + 1 WHERE name = ?", (name,))


def revisions(conn: sqlite3.Connection) -> dict[str, int]:
    return {name: value for name, value in conn.execute("SELECT name, value FROM revisions")}
