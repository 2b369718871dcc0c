"""The fleet spread over remote Locust workers (``fleetbench run --master``, ``fleetbench worker``).

The master deals each worker its own shard of the fleet (ids, secrets, keys) and the run's
settings over Locust's messaging; a worker never reads the fleet file and holds only the devices
dealt to it. Dealing is on request: a worker asks for as many devices as Locust gave it users, and
the master hands out each device once, in fleet order. So any number of workers and users shard
exactly, one device to one worker, and a worker joining late finds no device that is running.

Only a worker that proved it holds the cluster key is registered and dealt anything
(:mod:`sim.device.admission`); its claims, shards and reports travel sealed
(:mod:`sim.device.seal`).
A claim is capped at the users Locust gave that worker.

The master follows each worker through its reports (what it sent, its CPU and memory) and
Locust's heartbeats (``missing`` after about three silent seconds); what each worker drove, and
which were lost when, goes into the raw account as ``cluster`` (:mod:`sim.run.distributed` reads
it).
This module runs inside Locust (gevent); the orchestrator never imports it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gevent
import gevent.queue
import psutil
from hdrh.histogram import HdrHistogram
from locust.runners import (
    STATE_MISSING,
    STATE_RUNNING,
    STATE_SPAWNING,
    MasterRunner,
    WorkerRunner,
)

from sim.account.measure import new_histogram
from sim.device.admission import (
    CHALLENGE,
    HELLO,
    PROOF,
    REFUSED,
    REFUSED_REASONS,
    REPORT,
    Door,
)
from sim.device.run_state import STATE, run_config, run_fleet, set_origin
from sim.device.seal import ClusterKey, Unsealed, new_key_text
from sim.device.settings import REFUSED_EXIT, REFUSED_FILE, REMOTE_ENV, SimConfig
from sim.fleet.model import Device

__all__ = [
    "CLAIM",
    "SHARD",
    "claim_device",
    "install_master",
    "install_worker",
    "remote",
]

# Sealed both ways (sim.device.seal): only the master and its proven workers can read or make them.
CLAIM = "fleetbench_claim"  # worker -> master: {"count": devices wanted}
SHARD = "fleetbench_shard"  # master -> worker: settings, devices, how many it could not have
# Locust's headless master ends a run with "quit" alone and waits half a second for the workers'
# last reports; over a network that can lose a worker's last seconds. So the master first asks
# each worker to stop and send its final report (FINAL), and waits for them, bounded.
STOP = "fleetbench_stop"  # master -> worker: stop your users, send your final report
FINAL = "fleetbench_final"  # worker -> master: the final report (a Locust "stats" report)
CLAIM_WAIT_S = 30.0  # a user waits this long for its device before it gives up
WATCH_EVERY_S = 0.5  # how often the master looks at its workers' states
FINAL_REPORT_WAIT_S = 10.0  # at stop, how long the master waits for each worker's last report
CPU_EVERY_S = 0.5  # a worker's own CPU sampling period (as the one-host sampler's)
# Settings that are the master's own business: files on the master's host, per-device seqs.
_LOCAL_SETTINGS = ("fleet", "raw", "claim_file", "progress_file", "seq_base")

log = logging.getLogger("fleetbench")

# The device, its index in the fleet (a profile's ``{n}``), and another device's id (the
# rejection scenario's).
Claimed = tuple[Device, int, str]


def remote() -> bool:
    """This Locust process is a ``fleetbench worker``: its devices come from the master."""
    return os.environ.get(REMOTE_ENV) == "1"


def settings_wire(config: SimConfig) -> dict[str, Any]:
    """The run's settings a worker needs: no paths of the master's host, no secrets (the
    profile's ``${VAR}`` secrets are read from each worker's own environment)."""
    return {k: v for k, v in asdict(config).items() if k not in _LOCAL_SETTINGS}


def _device(entry: dict[str, Any]) -> Device:
    return Device(
        entry["id"], entry["secret"], entry.get("alg"), entry.get("private_key"),
        entry.get("public_key"),
    )  # fmt: skip


# -- the worker's side ---------------------------------------------------------------------------


@dataclass
class _Shard:
    """The devices dealt to this worker, waiting for users to take them."""

    queue: gevent.queue.Queue[Claimed | None] = field(default_factory=gevent.queue.Queue)
    asked: int = 0  # devices asked for so far
    wanted: int = 0  # users that asked for a device so far
    dealt: int = 0
    cpu: list[float] = field(default_factory=list)  # % of one core, since the last report
    peak_rss: int = 0
    stopped: bool = False
    configured: bool = False  # the master's settings arrived (with the first shard)
    key: ClusterKey | None = None
    challenge: bytes | None = None  # the master's, proved: every sealed message is bound to it
    seq: int = 0  # of this worker's sealed messages (the master drops one it saw before)

    def seal(self, kind: str, client_id: str, payload: Any) -> dict[str, Any]:
        assert self.key is not None and self.challenge is not None
        self.seq += 1
        sealed = self.key.seal(kind, client_id, self.challenge, {"seq": self.seq, "data": payload})
        return {"sealed": sealed}


_SHARD = _Shard()


def claim_device(environment: Any) -> Claimed | None:
    """This user's device from the worker's shard, asking the master for as many devices as the
    worker has users; None when the master has none left (or does not answer)."""
    shard = _SHARD
    shard.wanted += 1
    users = int(getattr(environment.runner, "target_user_count", 0) or 0)
    target = max(shard.wanted, users)
    if shard.challenge is None:
        return None  # not admitted by the master: it deals nothing
    if target > shard.asked:
        runner = environment.runner
        runner.send_message(
            CLAIM, shard.seal(CLAIM, runner.client_id, {"count": target - shard.asked})
        )
        shard.asked = target
    try:
        claimed: Claimed | None = shard.queue.get(timeout=CLAIM_WAIT_S)
    except gevent.queue.Empty:
        return None
    return claimed


def install_worker(environment: Any, apply_settings: Callable[[SimConfig], None]) -> None:
    """Receive shards and settings from the master; report what this worker sent and its own
    CPU and memory with each report."""
    runner = environment.runner
    if not isinstance(runner, WorkerRunner) or not remote():
        return  # not a fleetbench worker (--workers N runs local workers on the claim file)
    process = psutil.Process()
    process.cpu_percent(None)  # the first call only sets the baseline
    _SHARD.key = ClusterKey.from_env(os.environ)

    def on_challenge(environment: Any, msg: Any, **_: Any) -> None:
        challenge = msg.data.get("challenge") if isinstance(msg.data, dict) else None
        if not isinstance(challenge, bytes) or _SHARD.challenge is not None:
            return
        _SHARD.challenge = challenge
        proof = _SHARD.key.proof(challenge, runner.client_id) if _SHARD.key else b""
        runner.send_message(PROOF, {"proof": proof})
        if _SHARD.key is not None:
            # A first sealed report at once (Locust's own reports come every 3 s, and the master
            # drops any before the proof): the master knows this worker's host and pid before
            # it runs anything, even if it is lost in its first seconds.
            gevent.spawn(runner._send_stats)

    def on_refused(environment: Any, msg: Any, **_: Any) -> None:
        code = msg.data.get("reason") if isinstance(msg.data, dict) else None
        # Our own words: the master's text never reaches this terminal.
        reason = REFUSED_REASONS.get(str(code), "refused")
        print(f"fleetbench: error: the master refused this worker: {reason}", file=sys.stderr)
        environment.process_exit_code = REFUSED_EXIT
        _SHARD.challenge = None
        gevent.spawn(runner.quit)  # not from the runner's own greenlet: quit kills those

    def on_shard(environment: Any, msg: Any, **_: Any) -> None:
        try:
            assert _SHARD.key is not None and _SHARD.challenge is not None
            sealed = msg.data.get("sealed") if isinstance(msg.data, dict) else None
            data: dict[str, Any] = _SHARD.key.open(
                SHARD, runner.client_id, _SHARD.challenge, sealed
            )
        except (AssertionError, Unsealed) as e:
            print(f"fleetbench: ignored a shard: {e}", file=sys.stderr)
            return
        if not _SHARD.configured:
            settings = SimConfig(fleet="", **data["settings"])
            STATE["settings"] = settings
            apply_settings(settings)
            _SHARD.configured = True
        if data.get("origin_s"):
            # The master's start, by this host's clock: the stages' time 0 is the run's, as the
            # master counts what they asked (hosts' clocks are assumed in step, as by NTP).
            set_origin(float(data["origin_s"]))
        seqs: dict[str, int] = STATE["settings"].seq_base
        for entry in data["devices"]:
            device = _device(entry["device"])
            seqs[device.id] = int(entry.get("seq", 0))
            _SHARD.queue.put((device, int(entry["index"]), str(entry["other"])))
            _SHARD.dealt += 1
        for _missing in range(int(data.get("short", 0))):
            _SHARD.queue.put(None)

    def sample_cpu() -> None:
        while True:
            gevent.sleep(CPU_EVERY_S)
            try:
                cpu = process.cpu_percent(None)
                _SHARD.peak_rss = max(_SHARD.peak_rss, process.memory_info().rss)
            except psutil.Error:
                return
            if runner.state in (STATE_SPAWNING, STATE_RUNNING):  # the load window only
                _SHARD.cpu.append(cpu)

    def on_test_start(**_: Any) -> None:
        _SHARD.stopped = False

    def on_test_stop(**_: Any) -> None:
        _SHARD.stopped = True  # users are gone: the next report holds all this worker sent

    def on_stop(environment: Any, msg: Any, **_: Any) -> None:
        runner.stop()  # fires test_stop: the report below is flagged final
        data: dict[str, Any] = {}
        # What Locust's own stats report does (WorkerRunner._send_stats), sent as FINAL.
        environment.events.report_to_master.fire(client_id=runner.client_id, data=data)
        runner.send_message(FINAL, data)  # sealed by on_report_to_master

    def on_report_to_master(data: dict[str, Any], **_: Any) -> None:
        wire = data.get("fleetbench", {})
        sent = sum(sum(counts.values()) for counts in wire.get("timeline", {}).values())
        data["fleetbench_worker"] = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "requests": sent,
            "devices": _SHARD.dealt,
            "cpu": list(_SHARD.cpu),
            "peak_rss": _SHARD.peak_rss,
            "cores": psutil.cpu_count() or 1,
            "stopped": _SHARD.stopped,
        }
        _SHARD.cpu.clear()
        # The whole report travels sealed: Locust's stats and the account both decide the verdict.
        report = dict(data) if _SHARD.challenge is not None else {}
        data.clear()
        if report:
            data.update(_SHARD.seal(REPORT, runner.client_id, report))

    runner.register_message(CHALLENGE, on_challenge)
    runner.register_message(REFUSED, on_refused)
    runner.register_message(SHARD, on_shard)
    runner.register_message(STOP, on_stop)
    gevent.spawn(sample_cpu)
    environment.events.test_start.add_listener(on_test_start)
    environment.events.test_stop.add_listener(on_test_stop)
    # After the account's own listener (sim.device.user), which puts this report's delta in
    # "fleetbench", and after Locust's: this one seals what they wrote.
    environment.events.report_to_master.add_listener(on_report_to_master)
    runner.send_message(HELLO, None)  # Locust has acknowledged this worker: prove the key


# -- the master's side ---------------------------------------------------------------------------


@dataclass
class _Worker:
    """What the master knows of one worker."""

    id: str
    joined_at: float
    host: str = ""
    pid: int | None = None
    device_ids: list[str] = field(default_factory=list)
    requests: int = 0  # outcomes it reported
    reports: int = 0
    last_report_at: float | None = None
    cpu: list[float] = field(default_factory=list)
    peak_rss: int = 0
    cores: int = 1
    final: bool = False  # it reported after its users stopped
    lost_at: float | None = None  # when the master saw it missing or gone
    lost_as: str | None = None  # "missing" (no heartbeat), "quit", "no final report"
    late: bool = False  # joined a running test: no devices
    silent_from: float | None = None  # its last report before it was lost
    returned_at: float | None = None  # a missing worker that reported again (it was paused)
    users: int = 0  # the most users Locust gave it at once: its claims' cap
    # The open model's: paced sends it reported, and its generator's own scheduling lag.
    sends: int = 0
    corrected: HdrHistogram = field(default_factory=new_histogram)  # all rows together
    generator_lag: HdrHistogram = field(default_factory=new_histogram)


class Dealer:
    """The master's half: deals shards, follows workers, and says what each one drove."""

    def __init__(self, environment: Any, door: Door) -> None:
        self.environment = environment
        self.runner: MasterRunner = environment.runner
        self.door = door
        config = run_config()
        self.fleet = run_fleet()
        # The fleet's size: each remote device's share of an open-model rate is rate / size.
        self.settings = settings_wire(config) | {"fleet_size": len(self.fleet)}
        self.seq_base = config.seq_base
        self.next = 0  # the next device to deal
        self.workers: dict[str, _Worker] = {}
        self.started_at: float | None = None
        self.stopping = False

    def _worker(self, client_id: str) -> _Worker:
        worker = self.workers.get(client_id)
        if worker is None:
            worker = self.workers[client_id] = _Worker(client_id, time.time())
        return worker

    def users_given(self, worker: _Worker) -> int:
        """The most users Locust's dispatcher gave this worker at once (it only grows)."""
        dispatcher = self.runner._users_dispatcher
        if dispatcher is not None:
            given = dispatcher._users_on_workers.get(worker.id, {})
            worker.users = max(worker.users, sum(given.values()))
        return worker.users

    def on_claim(self, environment: Any, msg: Any, **_: Any) -> None:
        if msg.node_id not in self.runner.clients or not isinstance(msg.data, dict):
            return  # the door passes only proven workers; Locust must have registered it too
        worker = self._worker(msg.node_id)
        # No more devices than Locust gave it users: a claim cannot take another worker's share.
        room = max(self.users_given(worker) - len(worker.device_ids), 0)
        asked = max(int(msg.data.get("count", 0)), 0)
        wanted = min(asked, room)
        dealing = not self.stopping and worker.lost_at is None
        first = self.next
        devices = self.fleet.devices[first : first + wanted] if dealing else []
        self.next += len(devices)
        entries = []
        for offset, device in enumerate(devices):
            worker.device_ids.append(device.id)
            other = self.fleet.devices[(first + offset + 1) % len(self.fleet)]
            entries.append(
                {"device": device.to_json(), "seq": self.seq_base.get(device.id, 0),
                 "index": first + offset, "other": other.id}
            )  # fmt: skip
        shard = {
            "settings": self.settings,
            "devices": entries,
            "short": asked - len(devices),
            "origin_s": STATE.get("origin_s"),  # the run's time 0 (load stages, schedules)
        }
        challenge = self.door.challenge(msg.node_id)
        sealed = self.door.key.seal(SHARD, msg.node_id, challenge, shard)
        self.runner.send_message(SHARD, {"sealed": sealed}, client_id=msg.node_id)

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        info = data.get("fleetbench_worker")
        if not info:
            return
        worker = self._worker(client_id)
        worker.host = str(info.get("host", ""))
        worker.pid = int(info["pid"]) if info.get("pid") is not None else None
        worker.requests += int(info.get("requests", 0))
        wire = data.get("fleetbench", {})
        worker.sends += int(wire.get("counters", {}).get("scheduled_sends", 0))
        lag = wire.get("lag", {}).get("generator")
        if lag:
            worker.generator_lag.decode_and_add(lag)
        for encoded in wire.get("corrected", {}).values():
            worker.corrected.decode_and_add(encoded)
        worker.reports += 1
        if worker.lost_at is not None and worker.returned_at is None:
            worker.returned_at = time.time()
        worker.last_report_at = time.time()
        worker.cpu.extend(float(c) for c in info.get("cpu", []))
        worker.peak_rss = max(worker.peak_rss, int(info.get("peak_rss", 0)))
        worker.cores = int(info.get("cores", 1))
        if info.get("stopped") and self.stopping:
            worker.final = True

    def on_final(self, environment: Any, msg: Any, **_: Any) -> None:
        # Every listener of a worker's report: Locust's stats, the account, on_worker_report.
        environment.events.worker_report.fire(client_id=msg.node_id, data=msg.data)

    def _awaited(self, worker: _Worker) -> bool:
        """A worker whose final report the master waits for: it drove devices and is there."""
        there = worker.lost_at is None or worker.returned_at is not None
        return bool(worker.device_ids) and there and not worker.final

    def stop_workers(self) -> None:
        for worker in self.workers.values():
            if self._awaited(worker) and worker.id in self.runner.clients:
                self.runner.send_message(STOP, None, client_id=worker.id)

    def watch(self) -> None:
        """Every ``WATCH_EVERY_S`` until the stop: note joins, and workers Locust marks missing
        (no heartbeat for about three seconds) or that left."""
        while not self.stopping:
            now = time.time()
            clients = self.runner.clients
            for client_id in clients:
                self.users_given(self._worker(client_id))
            for worker in self.workers.values():
                if worker.lost_at is not None:
                    continue
                if worker.id not in clients:
                    worker.lost_at, worker.lost_as = now, "quit"
                elif clients[worker.id].state == STATE_MISSING:
                    worker.lost_at, worker.lost_as = now, "missing"
                if worker.lost_at is not None:
                    worker.silent_from = worker.last_report_at or worker.joined_at
            gevent.sleep(WATCH_EVERY_S)

    def wait_for_final_reports(self) -> None:
        """At the stop: each live worker's report after its users stopped (it holds the rest of
        its account), bounded by ``FINAL_REPORT_WAIT_S``."""
        deadline = time.monotonic() + FINAL_REPORT_WAIT_S
        while time.monotonic() < deadline and any(map(self._awaited, self.workers.values())):
            gevent.sleep(0.1)

    def report(self, started: float | None, stopped: float | None) -> dict[str, Any]:
        """What the raw account carries as ``cluster`` (typed in :mod:`sim.run.distributed`)."""
        workers = []
        for worker in self.workers.values():
            if worker.device_ids and not worker.final and worker.lost_at is None:
                # Killed in the last seconds, or its last report never came: lost all the same.
                worker.lost_at, worker.lost_as = worker.last_report_at or stopped, "no final report"
                worker.silent_from = worker.last_report_at
            workers.append(
                {
                    "id": worker.id,
                    "host": worker.host or worker.id.rsplit("_", 1)[0],
                    "pid": worker.pid,
                    "late": worker.late,
                    "joined_at": worker.joined_at,
                    "devices": len(worker.device_ids),
                    "device_ids": worker.device_ids,
                    "requests": worker.requests,
                    "reports": worker.reports,
                    "last_report_at": worker.last_report_at,
                    "cpu": worker.cpu,
                    "peak_rss": worker.peak_rss,
                    "cores": worker.cores,
                    "lost_at": worker.lost_at,
                    "lost_as": worker.lost_as,
                    "silent_from": worker.silent_from,
                    "returned_at": worker.returned_at,
                    "final": worker.final,
                    "users": worker.users,
                    "sends": worker.sends,
                    "corrected_requests": worker.corrected.get_total_count(),
                    "generator_lag_p99_us": (
                        worker.generator_lag.get_value_at_percentile(99.0)
                        if worker.generator_lag.get_total_count()
                        else None
                    ),
                    "unauthentic": self.door.unauthentic(worker.id),
                }
            )
        return {
            "fleet_devices": len(self.fleet),
            "dealt": self.next,
            "refused": self.door.refused(),
            "started": started,
            "stopped": stopped,
            "workers": workers,
        }


def _note_refused(door: Door) -> None:
    """The refused so far, beside the raw account: a master whose workers never all joined
    ends before it writes one, and the orchestrator's error names them from here."""
    raw = run_config().raw
    if raw:
        path = Path(raw).with_name(REFUSED_FILE)
        path.write_text(json.dumps({"refused": door.refused()}))


def install_master(environment: Any) -> Dealer | None:
    """On a master whose run deals the fleet (``SimConfig.distributed``): the dealer, listening."""
    runner = environment.runner
    if not isinstance(runner, MasterRunner) or not run_config().distributed:
        return None
    key = ClusterKey.from_env(os.environ)
    if key is None:  # the orchestrator always passes one: without it no worker can join
        log.error("fleetbench: the master has no cluster key: no worker can join")
        key = ClusterKey(new_key_text())
    # Locust's "stats" and FINAL carry a worker's account; CLAIM asks for devices.
    door = Door(runner, key, {"stats": REPORT, FINAL: REPORT, CLAIM: CLAIM}, _note_refused)
    dealer = Dealer(environment, door)
    runner.register_message(CLAIM, dealer.on_claim)
    runner.register_message(FINAL, dealer.on_final)
    environment.events.worker_report.add_listener(dealer.on_worker_report)

    def on_test_start(**_: Any) -> None:
        dealer.started_at = time.time()
        dealer.stopping = False
        gevent.spawn(dealer.watch)

    def on_test_stopping(**_: Any) -> None:
        dealer.stopping = True

    def on_worker_connect(client_id: str, **_: Any) -> None:
        """A worker joining a running test: Locust would take users (with their devices, which
        would stop mid-run) from the others and give them to it. It gets none instead: with
        no dispatcher for this one message Locust only registers it (the ``worker_connect``
        event fires just before; Locust's own heartbeat check empties it the same way)."""
        dispatcher = runner._users_dispatcher
        if dealer.started_at is None or dealer.stopping or dispatcher is None:
            return
        dealer._worker(client_id).late = True
        runner._users_dispatcher = None

        def restore() -> None:
            if runner._users_dispatcher is None and not dealer.stopping:
                runner._users_dispatcher = dispatcher

        gevent.spawn(restore)  # runs once the message is handled

    def on_test_stop(**_: Any) -> None:
        dealer.stop_workers()
        dealer.wait_for_final_reports()

    environment.events.test_start.add_listener(on_test_start)
    environment.events.test_stopping.add_listener(on_test_stopping)
    environment.events.worker_connect.add_listener(on_worker_connect)
    environment.events.test_stop.add_listener(on_test_stop)
    return dealer
