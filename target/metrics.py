"""Prometheus metrics for ``/metrics``, in one registry per app (multi-process aware)."""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# ``*_created`` timestamps double the exposition and tell a benchmark nothing.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Fine enough to tell 5 µs from 50 µs from 500 µs: verify costs range from HMAC to RSA signing keys.
VERIFY_BUCKETS_S = (
    1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 5e-2,
)  # fmt: skip


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._flushes: list[Callable[[], None]] = []
        self._multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
        registry = None if self._multiprocess else self.registry
        if not self._multiprocess:
            # process_cpu_seconds_total: a load generator elsewhere reads the target's own CPU
            # from it (several workers' processes would each count only themselves).
            ProcessCollector(registry=self.registry)
        self.tokens_issued = Counter(
            "fleetbench_tokens_issued", "Access tokens issued", ["grant", "alg"], registry=registry
        )
        self.token_errors = Counter(
            "fleetbench_token_errors", "Token endpoint refusals", ["error"], registry=registry
        )
        self.verifications = Counter(
            "fleetbench_verifications",
            "Bearer token verifications by result class",
            ["result"],
            registry=registry,
        )
        self.verify_seconds = Histogram(
            "fleetbench_verify_seconds",
            "Time to verify one bearer token",
            ["alg"],
            buckets=VERIFY_BUCKETS_S,
            registry=registry,
        )
        self.telemetry_accepted = Counter(
            "fleetbench_telemetry_accepted", "Telemetry readings accepted (202)", registry=registry
        )
        # MQTT (target/mqtt/): siblings of the HTTP families, so a profile names one or the other.
        self.mqtt_connects = Counter(
            "fleetbench_mqtt_connects",
            "MQTT CONNECTs by result (accepted, or why refused) and the CONNACK code sent",
            ["result", "connack"],
            registry=registry,
        )
        self.mqtt_verify_seconds = Histogram(
            "fleetbench_mqtt_verify_seconds",
            "Time to verify one MQTT CONNECT password (access token or device JWT)",
            ["alg"],
            buckets=VERIFY_BUCKETS_S,
            registry=registry,
        )
        self.mqtt_connections = Gauge(
            "fleetbench_mqtt_connections",
            "MQTT connections open now (before and after CONNECT)",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.mqtt_sessions_closed = Counter(
            "fleetbench_mqtt_sessions_closed",
            "MQTT connections the broker closed, by reason",
            ["reason"],
            registry=registry,
        )
        self.mqtt_acl_refusals = Counter(
            "fleetbench_mqtt_acl_refusals",
            "MQTT publishes and subscriptions refused for a topic outside the device's own",
            ["action"],
            registry=registry,
        )
        self.mqtt_readings = Counter(
            "fleetbench_mqtt_readings",
            "MQTT telemetry readings by result (acknowledged: stored, then PUBACKed)",
            ["result"],
            registry=registry,
        )
        self.active_devices = Gauge(
            "fleetbench_active_devices",
            "Devices whose tokens are honoured",
            registry=registry,
            multiprocess_mode="max",
        )

    @property
    def multiprocess(self) -> bool:
        """Whether several worker processes share these metrics through files."""
        return self._multiprocess

    def before_exposition(self, flush: Callable[[], None]) -> None:
        """Have ``flush`` called before each exposition (counts held back on the hot path)."""
        self._flushes.append(flush)

    def exposition(self) -> bytes:
        for flush in self._flushes:
            flush()
        if self._multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
