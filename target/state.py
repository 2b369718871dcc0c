"""Everything one target process holds, built once from the settings."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from target.algorithms import SigningKey
from target.assertions import AssertionChecker
from target.db import connect, revisions
from target.keys import KeyStore, load_signing_key_file
from target.metrics import Metrics
from target.registry import DeviceRegistry
from target.settings import Settings
from target.telemetry import TelemetryLog
from target.tokens import TokenIssuer
from target.verifier import Verifier

__all__ = ["TargetState"]

KID_CHECK_INTERVAL_S = 0.2


@dataclass
class TargetState:
    settings: Settings
    conn: sqlite3.Connection
    registry: DeviceRegistry
    keys: KeyStore
    verifier: Verifier
    issuer: TokenIssuer
    assertions: AssertionChecker
    telemetry: TelemetryLog
    metrics: Metrics
    revisions: dict[str, int]
    _last_kid_check: float = 0.0

    @classmethod
    def build(cls, settings: Settings) -> TargetState:
        conn = connect(settings.db)
        registry = DeviceRegistry(conn)
        pinned = (
            load_signing_key_file(settings.signing_key, settings.alg)
            if settings.signing_key is not None
            else None
        )
        keys = KeyStore(conn, settings.alg, settings.key_grace_s, pinned)
        verifier = Verifier(
            keys.verification_keys(time.time()),
            algorithms=frozenset({settings.alg}),
            issuer=settings.issuer,
            audience=settings.audience,
            leeway_s=settings.leeway,
            is_active=registry.is_active,
            registered_at=registry.registered_at,
            cache_size=settings.verify_cache,
        )
        issuer = TokenIssuer(
            keys, issuer=settings.issuer, audience=settings.audience, ttl_s=settings.token_ttl
        )
        assertions = AssertionChecker(
            conn, registry, audience=settings.issuer, leeway_s=settings.leeway
        )
        state = cls(
            settings, conn, registry, keys, verifier, issuer, assertions,
            TelemetryLog(conn), Metrics(), revisions(conn),
        )  # fmt: skip
        verifier.set_unknown_kid_hook(state.keys_if_rotated)
        return state

    def refresh(self, now: float) -> None:
        """Pick up other workers' changes and retire keys whose grace period has ended."""
        current = revisions(self.conn)
        if current["devices"] != self.revisions["devices"]:
            self.registry.reload()
        if current["keys"] != self.revisions["keys"]:
            self.keys.reload()
        self.revisions = current
        self.verifier.set_keys(self.keys.verification_keys(now))
        self.metrics.active_devices.set(self.registry.active_count)

    def keys_if_rotated(self) -> dict[str, SigningKey] | None:
        """The key ring, if another worker rotated since we last looked; checked at most every
        0.2 s, so a flood of unknown kids costs one small query per interval, not one each."""
        now = time.monotonic()
        if now - self._last_kid_check < KID_CHECK_INTERVAL_S:
            return None
        self._last_kid_check = now
        current = revisions(self.conn)["keys"]
        if current == self.revisions["keys"]:
            return None
        self.keys.reload()
        self.revisions = {**self.revisions, "keys": current}
        return self.keys.verification_keys(time.time())

    def close(self) -> None:
        self.telemetry.flush()
        self.conn.close()
