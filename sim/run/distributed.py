"""A run over remote workers, as the orchestrator sees it: the master's address, the Locust
options of a master and of a worker, and the summary's ``cluster`` section from the account the
master wrote (:mod:`sim.device.cluster` deals the fleet and follows the workers inside Locust).

Everything a master and its workers exchange travels over Locust's messaging (ZeroMQ, no
encryption), devices' secrets and keys included: keep the master's port on a private network or
an SSH tunnel (README, "Running across machines").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.account.generator import cpu_saturated
from sim.account.summary import verdict
from sim.artefacts.summary_file import Cluster, ClusterWorker, GeneratorCpu, ProcessCpu, Summary
from sim.errors import ConfigError

__all__ = [
    "DEFAULT_PORT",
    "START_SPREAD_S",
    "Address",
    "apply_cluster",
    "cluster_section",
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


def _worker(raw: dict[str, Any], started: float | None, stopped: float | None) -> ClusterWorker:
    cpu = [float(c) for c in raw.get("cpu", [])]
    lost_at = raw.get("lost_at")
    last_report = raw.get("last_report_at")
    elapsed_s = (stopped - started) if started and stopped else 0.0
    requests = int(raw.get("requests", 0))
    lost = lost_at is not None
    returned_at = raw.get("returned_at")
    affected: list[float] | None = None
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
    }


def apply_cluster(summary: Summary, cluster: Cluster) -> None:
    """Put ``cluster`` in the summary; a lost worker fails the verdict (the run is degraded)."""
    summary["cluster"] = cluster
    failures = list(summary["verdict"]["failures"])
    for worker in cluster["workers"]:
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
