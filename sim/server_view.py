"""The target's own view of a run: ``/metrics`` deltas and ``/admin/stats`` telemetry counts."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from sim.errors import TargetError
from sim.http import TargetClient

__all__ = ["scrape_metrics", "server_delta", "telemetry_stats"]

Samples = dict[str, float]


def scrape_metrics(client: TargetClient) -> Samples | None:
    """Every sample of ``/metrics`` as ``name{label=value,...}`` -> value; None if unavailable."""
    try:
        response = client.request("GET", "/metrics")
    except TargetError:
        return None
    if response.status_code != 200:
        return None
    samples: Samples = {}
    try:
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}"] = float(sample.value)
    except ValueError:
        return None
    return samples


def _by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    found: dict[str, float] = {}
    prefix = name + "{"
    for key, value in samples.items():
        if key.startswith(prefix):
            labels = dict(part.split("=", 1) for part in key[len(prefix) : -1].split(",") if part)
            if label in labels and set(labels) == {label}:
                found[labels[label]] = value
    return found


def _summed_by(samples: Samples, name: str, label: str) -> dict[str, float]:
    """``name``'s samples summed per value of ``label``, over every other label."""
    found: defaultdict[str, float] = defaultdict(float)
    prefix = name + "{"
    for key, value in samples.items():
        if key.startswith(prefix):
            labels = dict(part.split("=", 1) for part in key[len(prefix) : -1].split(",") if part)
            if label in labels:
                found[labels[label]] += value
    return dict(found)


def server_delta(before: Samples | None, after: Samples | None) -> dict[str, Any]:
    """Verify time per algorithm and counters, as differences over the run."""
    if before is None or after is None:
        return {"available": False}

    def delta(name: str, label: str) -> dict[str, float]:
        old = _by_label(before, name, label)
        return {k: v - old.get(k, 0.0) for k, v in _by_label(after, name, label).items()}

    verify: dict[str, Any] = {}
    sums, counts = (
        delta("fleetbench_verify_seconds_sum", "alg"),
        delta("fleetbench_verify_seconds_count", "alg"),
    )
    for alg, count in counts.items():
        if count > 0:
            verify[alg] = {
                "count": int(count),
                "mean_us": round(sums.get(alg, 0.0) / count * 1e6, 2),
            }
    # By grant type (the target signs with one algorithm), not by raw Prometheus label text.
    issued_before = _summed_by(before, "fleetbench_tokens_issued_total", "grant")
    issued = {
        grant: int(value - issued_before.get(grant, 0.0))
        for grant, value in _summed_by(after, "fleetbench_tokens_issued_total", "grant").items()
    }
    return {
        "available": True,
        "verify": verify,
        "verifications": {
            k: int(v) for k, v in delta("fleetbench_verifications_total", "result").items() if v
        },
        "token_errors": {
            k: int(v) for k, v in delta("fleetbench_token_errors_total", "error").items() if v
        },
        "tokens_issued": {k: v for k, v in issued.items() if v},
    }


def telemetry_stats(client: TargetClient) -> dict[str, Any] | None:
    """``/admin/stats`` per device, or None if the target has no such endpoint."""
    response = client.request("GET", "/admin/stats", admin=True)
    if response.status_code != 200:
        return None
    try:
        body = response.json()
        devices: dict[str, Any] = body["devices"]
    except (ValueError, KeyError, TypeError):
        return None
    return devices
