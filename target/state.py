"""Everything one target process holds, built once from the settings."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

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
        return cls(
            settings, conn, registry, keys, verifier, issuer, assertions,
            TelemetryLog(conn), Metrics(), revisions(conn),
        )  # fmt: skip

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

    def close(self) -> None:
        self.telemetry.flush()
        self.conn.close()
