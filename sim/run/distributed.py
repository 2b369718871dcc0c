"""A run over remote workers, as the orchestrator sees it: the master's address, the Locust
options of a master and of a worker, and the summary's ``cluster`` section from the account the
master wrote (:mod:`sim.device.cluster` deals the fleet and follows the workers inside Locust).

Only workers that prove they hold the cluster key join; the shards and the workers' accounts
travel sealed (:mod:`sim.device.seal`, :mod:`sim.device.admission`; docs/security.md says
what is sealed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sim.account.generator import cpu_saturated
from sim.account.open_model import GENERATOR_LAG_US
from sim.account.summary import verdict
from sim.artefacts.summary_file import Cluster, ClusterWorker, GeneratorCpu, ProcessCpu, Summary
from sim.device.seal import KEY_ENV, ClusterKey, new_key_text
from sim.errors import ConfigError

__all__ = [
    "DEFAULT_PORT",
    "START_SPREAD_S",
    "Address",
    "apply_cluster",
    "cluster_section",
    "master_key",
    "parse_address",
    "with_workers",
]

DEFAULT_PORT = 5557  # Locust's own default master port
# A device's first request waits a random share of this in a run over remote workers: enough
# to keep N generators that start together from asking the token endpoint in one instant.
START_SPREAD_S = 1.0
LISTED_LOST_DEVICES = 100


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str, what: str, default_host: str | None = None) -> Address:
    """``HOST``, ``HOST:PORT``, ``:PORT`` (with ``default_host``) or ``[v6]:PORT``."""
    host, port_text = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    host = host or (default_host or "")
    if not host:
        raise ConfigError(f"{what} needs a host: HOST[:PORT], not {text!r}")
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        raise ConfigError(f"{what}: the port must be a number, not {port_text!r}") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{what}: port {port} is out of range")
    return Address(host, port)


def master_key(environ: Mapping[str, str], announce: Callable[[str], None]) -> str:
    """The cluster key of a run over remote workers: ``FLEETBENCH_CLUSTER_KEY``, or a fresh one,
    announced once (the operator passes it to each worker; it is written nowhere else)."""
    text = environ.get(KEY_ENV, "").strip()
    if text:
        ClusterKey(text)  # a bad key is one line now, not a refused worker later
        return text
    text = new_key_text()
    announce(
        f"cluster key (start each worker with {KEY_ENV}={text} fleetbench worker ...); "
        f"set {KEY_ENV} to choose your own"
    )
    return text


def _worker(raw: dict[str, Any], started: float | None, stopped: float | None) -> ClusterWorker:
    cpu = [float(c) for c in raw.get("cpu", [])]
    lost_at = raw.get("lost_at")
    last_report = raw.get("last_report_at")
    elapsed_s = (stopped - started) if started and stopped else 0.0
    requests = int(raw.get("requests", 0))
    lost = lost_at is not None
    returned_at = raw.get("returned_at")
    affected: list[float] | None = None
    lag = raw.get("generator_lag_p99_us")
    lag_p99_us = float(lag) if lag is not None else None
    if lost and started and stopped:
        since = raw.get("silent_from") or last_report or started
        until = min(returned_at, stopped) if returned_at is not None else stopped
        affected = [round(max(since - started, 0.0), 1), round(until - started, 1)]
    return {
        "id": str(raw["id"]),
        "host": str(raw.get("host", "")),
        "pid": int(raw["pid"]) if raw.get("pid") is not None else None,
        "late": bool(raw.get("late", False)),
        "devices": int(raw.get("devices", 0)),
        "requests": requests,
        "requests_per_s": round(requests / elapsed_s, 2) if elapsed_s > 0 else 0.0,
        "cpu_percent_mean": round(sum(cpu) / len(cpu), 1) if cpu else 0.0,
        "cpu_percent_max": round(max(cpu), 1) if cpu else 0.0,
        "cpu_samples": len(cpu),
        # One Locust process drives one core at most, whatever the host has.
        "saturated": cpu_saturated(cpu),
        "peak_rss_bytes": int(raw.get("peak_rss", 0)),
        "lost": lost,
        "lost_as": raw.get("lost_as"),
        "lost_at_s": round(lost_at - started, 1) if lost_at is not None and started else None,
        "returned_at_s": round(returned_at - started, 1) if returned_at and started else None,
        "account_complete": bool(raw.get("final")),
        "affected_s": affected,
        "lost_device_ids": list(raw.get("device_ids", []))[:LISTED_LOST_DEVICES] if lost else [],
        "users": int(raw.get("users", 0)),
        "unauthentic": int(raw.get("unauthentic", 0)),
        "scheduled_sends": int(raw.get("sends", 0)),
        "corrected_requests": int(raw.get("corrected_requests", 0)),
        "generator_lag_p99_us": lag_p99_us,
        # The open model's per-worker check: its own scheduling lag past the one-host limit.
        "lagging": lag_p99_us is not None and lag_p99_us >= GENERATOR_LAG_US,
    }


def cluster_section(raw: dict[str, Any]) -> Cluster:
    """The summary's ``cluster`` from the master's ``cluster`` account."""
    started, stopped = raw.get("started"), raw.get("stopped")
    workers = [_worker(w, started, stopped) for w in raw.get("workers", [])]
    lost = sum(1 for w in workers if w["lost"])
    return {
        "workers": workers,
        "fleet_devices": int(raw.get("fleet_devices", 0)),
        "dealt": int(raw.get("dealt", 0)),
        "degraded": lost > 0,
        "lost_workers": lost,
        "refused": [
            {"id": str(r["id"]), "host": str(r["host"]), "reason": str(r["reason"])}
            for r in raw.get("refused", [])
        ],
    }


def apply_cluster(summary: Summary, cluster: Cluster) -> None:
    """Put ``cluster`` in the summary. A lost worker fails the verdict (the run is degraded), and
    so does a worker whose users had no device, or whose sealed account did not all open."""
    summary["cluster"] = cluster
    failures = list(summary["verdict"]["failures"])
    for worker in cluster["workers"]:
        users, devices = worker.get("users", 0), worker["devices"]
        if users > devices and not worker["lost"]:
            failures.append(
                f"worker {worker['id']} was given {users} users but dealt {devices} devices: "
                f"{users - devices} ran without a device"
            )
        if worker.get("unauthentic"):
            failures.append(
                f"worker {worker['id']}: {worker.get('unauthentic')} of its messages failed "
                "authentication and were dropped: its account is incomplete"
            )
        if not worker["lost"]:
            continue
        first, last = worker["affected_s"] or [0.0, 0.0]
        if worker["returned_at_s"] is not None and worker["account_complete"]:
            failures.append(
                f"worker {worker['id']} went missing and came back: its {worker['devices']} "
                f"devices were not heard from {first:g} s to {last:g} s"
            )
        else:
            failures.append(
                f"worker {worker['id']} lost ({worker['lost_as']}): {worker['devices']} devices, "
                f"its account missing from {first:g} s to {last:g} s"
            )
    lagging = [w for w in cluster["workers"] if w.get("lagging")]
    if lagging and "open_model" in summary:
        summary["open_model"]["notes"] = [
            *summary["open_model"]["notes"],
            *(
                f"worker {w['id']} sent late on its own: its generator's scheduling lag p99 was "
                f"{(w.get('generator_lag_p99_us') or 0) / 1000:,.1f} ms: its devices' corrected "
                "latency measures that worker, not the target (add a worker, or lower --rate)"
                for w in lagging
            ),
        ]
    if cluster["dealt"] < cluster["fleet_devices"]:
        failures.append(
            f"{cluster['fleet_devices'] - cluster['dealt']} devices were dealt to no worker"
        )
    summary["verdict"] = verdict(failures, summary["load"])


def with_workers(generator: GeneratorCpu, cluster: Cluster) -> GeneratorCpu:
    """The generator's CPU with the remote workers in it: they, not the master, make the load,
    so a saturated worker is a saturated generator (the load account and the table say so)."""
    workers: list[ProcessCpu] = []
    for worker in cluster["workers"]:
        if not worker["cpu_samples"]:
            continue  # a late worker, or one lost before its first report
        process: ProcessCpu = {
            "role": f"worker@{worker['host']}",
            "cpu_percent_mean": worker["cpu_percent_mean"],
            "cpu_percent_max": worker["cpu_percent_max"],
            "saturated": worker["saturated"],
            "peak_rss_bytes": worker["peak_rss_bytes"],
        }
        if worker["pid"] is not None:
            process["pid"] = worker["pid"]
        workers.append(process)
    return {
        **generator,
        "processes": [*generator["processes"], *workers],
        "saturated": generator["saturated"] or any(w["saturated"] for w in workers),
        "peak_rss_bytes": generator["peak_rss_bytes"] + sum(w["peak_rss_bytes"] for w in workers),
    }
