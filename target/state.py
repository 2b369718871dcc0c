"""Everything one target process holds, built once from the settings."""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass

from target.auth.assertions import AssertionChecker
from target.auth.tokens import TokenIssuer
from target.auth.verifier import Verifier
from target.jose.algorithms import SigningKey
from target.metrics import Metrics
from target.settings import Settings
from target.store.db import Database, revisions
from target.store.keys import KeyStore, load_signing_key_file
from target.store.registry import DeviceRegistry
from target.store.telemetry import TelemetryLog

__all__ = ["TargetState"]

KID_CHECK_INTERVAL_S = 0.2

log = logging.getLogger("target.state")


class ChangeWatch:
    """Picks up what other worker processes committed (revocations, rotations) on the hot path.

    ``PRAGMA data_version`` on the reader connection tells, in about a microsecond, whether
    anything was committed since we last looked; only then are the revision counters read, and
    only a changed counter reloads the active set or the key ring. So a revocation made by
    another worker is honoured on the very next request here, not after an upkeep tick.
    """

    def __init__(self, db: Database, registry: DeviceRegistry, keys: KeyStore) -> None:
        self.db = db
        self.registry = registry
        self.keys = keys
        self.revisions = revisions(db.reader)
        self.verifier: Verifier | None = None

    def registered_at(self, device_id: str) -> int | None:
        """The verifier's device check, after picking up any change committed elsewhere."""
        try:
            self.sync_if_changed()
        except sqlite3.Error as e:  # keep serving from memory; the next request tries again
            log.warning("could not read revisions (%s)", e)
        return self.registry.registered_at(device_id)

    def sync_if_changed(self) -> None:
        if self.db.changed():
            try:
                self.sync()
            except BaseException:
                self.db.forget_version()
                raise

    def sync(self) -> None:
        """Reload what changed: the active devices, the key ring. Reads only."""
        current = revisions(self.db.reader)  # before the data, so a change in between is seen
        if current["devices"] != self.revisions["devices"]:
            self.registry.reload()
        if current["keys"] != self.revisions["keys"]:
            self.keys.reload()
            if self.verifier is not None:
                self.verifier.set_keys(self.keys.verification_keys(time.time()))
        self.revisions = current


@dataclass
class TargetState:
    settings: Settings
    db: Database
    registry: DeviceRegistry
    keys: KeyStore
    verifier: Verifier
    issuer: TokenIssuer
    assertions: AssertionChecker
    telemetry: TelemetryLog
    metrics: Metrics
    watch: ChangeWatch
    _last_kid_check: float = 0.0

    @classmethod
    def build(cls, settings: Settings) -> TargetState:
        # Durable acknowledgements fsync each (group) commit: see telemetry.py and docs/target.md.
        db = Database(
            settings.db, synchronous="FULL" if settings.telemetry_ack == "commit" else "NORMAL"
        )
        conn = db.writer
        registry = DeviceRegistry(conn, db.reader)
        pinned = (
            load_signing_key_file(settings.signing_key, settings.alg)
            if settings.signing_key is not None
            else None
        )
        keys = KeyStore(conn, settings.alg, settings.key_grace_s, pinned, reader=db.reader)
        watch = ChangeWatch(db, registry, keys)
        verifier = Verifier(
            keys.verification_keys(time.time()),
            algorithms=frozenset({settings.alg}),
            issuer=settings.issuer,
            audience=settings.audience,
            leeway_s=settings.leeway,
            is_active=registry.is_active,
            # Other workers' commits are looked for on every request (``ChangeWatch``); a single
            # worker makes every change itself, in memory at once, so it skips that query (about
            # 18 µs a request under wrk) and leaves outside writers to the 1 s upkeep tick.
            registered_at=watch.registered_at if settings.workers > 1 else registry.registered_at,
            cache_size=settings.verify_cache,
        )
        issuer = TokenIssuer(
            keys, issuer=settings.issuer, audience=settings.audience, ttl_s=settings.token_ttl
        )
        assertions = AssertionChecker(
            conn, registry, audience=settings.issuer, leeway_s=settings.leeway
        )
        state = cls(
            settings, db, registry, keys, verifier, issuer, assertions,
            TelemetryLog(db, settings.telemetry_ack), Metrics(), watch,
        )  # fmt: skip
        watch.verifier = verifier
        verifier.set_unknown_kid_hook(state.keys_if_rotated)
        return state

    def refresh(self, now: float) -> None:
        """The upkeep tick: pick up changes and retire keys whose grace period has ended."""
        self.watch.sync_if_changed()
        self.verifier.set_keys(self.keys.verification_keys(now))
        self.metrics.active_devices.set(self.registry.active_count)

    def keys_if_rotated(self) -> dict[str, SigningKey] | None:
        """The key ring, if another worker rotated since we last looked; checked at most every
        0.2 s, so a flood of unknown kids costs one small query per interval, not one each."""
        now = time.monotonic()
        if now - self._last_kid_check < KID_CHECK_INTERVAL_S:
            return None
        self._last_kid_check = now
        current = revisions(self.db.reader)["keys"]
        if current == self.watch.revisions["keys"]:
            return None
        self.keys.reload()
        self.watch.revisions = {**self.watch.revisions, "keys": current}
        return self.keys.verification_keys(time.time())

    def close(self) -> None:
        self.telemetry.flush_now()
        self.db.close()
