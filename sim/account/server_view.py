"""The target's own view of a run: ``/metrics`` deltas and ``/admin/stats`` telemetry counts."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from sim.account.generator import SATURATED_CPU_PERCENT, SATURATION_RULE, cpu_saturated
from sim.artefacts.summary_file import Server, TargetCpu, VerifyCost
from sim.errors import TargetUnusable
from sim.fleet.client import TargetClient
from sim.profiles.model import Stats
from sim.untrusted import AnswerRefused, fetch

__all__ = [
    "DeviceStats",
    "MetricsCpuSampler",
    "received_count",
    "scrape_metrics",
    "server_delta",
    "telemetry_stats",
]

SCRAPE_TIMEOUT_S = 5.0

Samples = dict[str, float]
# ``/admin/stats`` per device: ``received``, ``distinct``, ``duplicates``, ``max_seq``.
DeviceStats = Mapping[str, Mapping[str, int]]


def scrape_metrics(client: TargetClient) -> Samples | None:
    """Every sample of ``/metrics`` as ``name{label=value,...}`` -> value; None if unavailable."""
    try:
        response = client.request("GET", "/metrics", timeout_s=SCRAPE_TIMEOUT_S)
    except TargetUnusable:
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


def _verify_costs(
    before: Samples, after: Samples, histogram: str, unlabelled_as: str
) -> dict[str, VerifyCost]:
    """The histogram's mean over the run per ``alg`` label (summed over any other label); a
    histogram without an ``alg`` label is one figure, named ``unlabelled_as``."""

    def per_alg(samples: Samples, name: str) -> dict[str, float]:
        found: defaultdict[str, float] = defaultdict(float)
        prefix = name + "{"
        for key, value in samples.items():
            if key.startswith(prefix):
                labels = dict(
                    part.split("=", 1) for part in key[len(prefix) : -1].split(",") if part
                )
                found[labels.get("alg", unlabelled_as)] += value
        return dict(found)

    sums_before = per_alg(before, f"{histogram}_sum")
    counts_before = per_alg(before, f"{histogram}_count")
    sums = {k: v - sums_before.get(k, 0.0) for k, v in per_alg(after, f"{histogram}_sum").items()}
    verify: dict[str, VerifyCost] = {}
    for alg, total in per_alg(after, f"{histogram}_count").items():
        count = total - counts_before.get(alg, 0.0)
        if count > 0:
            verify[alg] = {
                "count": int(count),
                "mean_us": round(sums.get(alg, 0.0) / count * 1e6, 2),
            }
    return verify


def server_delta(
    before: Samples | None,
    after: Samples | None,
    verify_time: str | None,
    unlabelled_as: str = "all",
) -> Server:
    """Verify time per algorithm and counters, as differences over the run.

    ``verify_time`` is the profile's ``[metrics] verify_time`` histogram: none configured, or no
    ``/metrics``, and the server view is not available (never a verify time of zero); a
    histogram with no samples yet (a labelled one before its first observation) is no
    verifications."""
    if verify_time is None:
        return {"available": False, "reason": "the profile names no [metrics] verify_time"}
    if before is None or after is None:
        return {
            "available": False,
            "reason": "/metrics not available",
            "verify_metric": verify_time,
        }

    def delta(name: str, label: str) -> dict[str, float]:
        old = _by_label(before, name, label)
        return {k: v - old.get(k, 0.0) for k, v in _by_label(after, name, label).items()}

    verify = _verify_costs(before, after, verify_time, unlabelled_as)
    # By grant type (the target signs with one algorithm), not by raw Prometheus label text.
    issued_before = _summed_by(before, "fleetbench_tokens_issued_total", "grant")
    issued = {
        grant: int(value - issued_before.get(grant, 0.0))
        for grant, value in _summed_by(after, "fleetbench_tokens_issued_total", "grant").items()
    }
    return {
        "available": True,
        "verify_metric": verify_time,
        "verify": verify,
        "verifications": {
            k: int(v) for k, v in delta("fleetbench_verifications_total", "result").items() if v
        },
        "token_errors": {
            k: int(v) for k, v in delta("fleetbench_token_errors_total", "error").items() if v
        },
        "tokens_issued": {k: v for k, v in issued.items() if v},
    }


def telemetry_stats(client: TargetClient) -> DeviceStats | None:
    """``/admin/stats`` per device, or None if the target has no such endpoint."""
    response = client.request("GET", "/admin/stats", admin=True)
    if response.status_code != 200:
        return None
    try:
        body = response.json()
        devices: DeviceStats = body["devices"]
    except (ValueError, KeyError, TypeError):
        return None
    return devices


def received_count(client: TargetClient, stats: Stats) -> int | None:
    """The API's own received count from the profile's ``[stats]`` call, or None when the call
    does not answer 200 with a number at ``stats.field``."""
    response = client.request(stats.method, stats.path, headers=stats.headers)  # no redirect
    if response.status_code != 200:
        return None
    try:
        value: Any = response.json()
        for key in stats.field.split("."):
            value = value[key]
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class MetricsCpuSampler:
    """An external target's own CPU, from ``process_cpu_seconds_total`` in its ``/metrics``
    (prometheus_client's default registry exports it), scraped every ``interval_s`` in a thread.

    Each pair of scrapes is one sample: CPU seconds per wall second, in % of one core, stamped
    at the second scrape. A target that does not export it yields ``{"available": False}``.
    """

    def __init__(self, url: str, interval_s: float = 1.0) -> None:
        self._url = url.rstrip("/") + "/metrics"
        self._session = requests.Session()
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="target-cpu", daemon=True)
        self.samples: list[tuple[float, float]] = []  # (epoch s, % of one core)
        self.exported: bool | None = None  # None: no scrape answered yet

    def _read(self) -> float | None:
        """The target's CPU seconds; None if this scrape got no answer. Sets ``exported``."""
        try:
            response = fetch(self._session, "GET", self._url, timeout_s=SCRAPE_TIMEOUT_S)
        except AnswerRefused:
            self.exported = False  # too large or too slow every time: leave it alone
            return None
        except TargetUnusable:
            return None  # an overloaded target may not answer in time: skip this sample
        if response.status_code != 200:
            self.exported = False
            return None
        try:
            for family in text_string_to_metric_families(response.text):
                for sample in family.samples:
                    if sample.name == "process_cpu_seconds_total" and not sample.labels:
                        self.exported = True
                        return float(sample.value)
        except ValueError:
            pass
        self.exported = False
        return None

    def _loop(self) -> None:
        last: tuple[float, float] | None = None
        while not self._stop.is_set():
            cpu_s = self._read()
            if self.exported is False:
                return  # nothing to sample: leave a target without the metric alone
            now = time.time()
            if cpu_s is not None:
                if last is not None and now > last[0]:
                    self.samples.append((now, 100.0 * (cpu_s - last[1]) / (now - last[0])))
                last = (now, cpu_s)
            self._stop.wait(self._interval_s)

    def start(self) -> MetricsCpuSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=SCRAPE_TIMEOUT_S + 1)
        self._session.close()

    def summary(self, window: tuple[float, float] | None) -> TargetCpu:
        if not self.exported:
            return {"available": False, "source": "metrics"}
        cpu = [c for t, c in self.samples if window is None or window[0] <= t <= window[1]]
        cpu = cpu or [c for _, c in self.samples]
        mean = sum(cpu) / len(cpu) if cpu else 0.0
        return {
            "available": bool(cpu),
            "source": "metrics",
            "processes": [
                {
                    "role": "server",
                    "cpu_percent_mean": round(mean, 1),
                    "cpu_percent_max": round(max(cpu, default=0.0), 1),
                    "saturated": cpu_saturated(cpu),
                }
            ],
            "samples": len(cpu),
            "saturated": cpu_saturated(cpu),
            "saturation_threshold_percent": SATURATED_CPU_PERCENT,
            "saturation_rule": SATURATION_RULE,
        }
