"""The virtual device under load: one Locust ``FastHttpUser`` per device of the fleet.

Each user claims its own device, parses that device's key once in ``on_start``, holds one access
token per scenario (:mod:`sim.device.tokens`), and judges every answer into the outcome account
(:mod:`sim.device.calls`, :mod:`sim.outcomes`); this module holds its scenarios and the
Locust event wiring, :mod:`sim.device.run_state` the process's run-wide state.
How it talks to the API (token call or minted tokens, presentation, endpoints, refusal classes)
comes from the run's target profile (:mod:`sim.profiles`); ``fleetbench`` is our own target's.
Assertion and token minting is timed on its own line (``MINT``), never inside a request's latency.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
from gevent.lock import BoundedSemaphore
from geventhttpclient.url import URL
from locust import FastHttpUser, constant_pacing, events
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from sim.corpus import Case, ForgeContext, cases_for
from sim.device import cluster
from sim.device.keepalive import KeptConnection
from sim.device.kept_tokens import keep, kept_token, save_kept, start_keeping
from sim.device.mqtt_tasks import MqttDevice, watching
from sim.device.run_state import (
    DEFAULT_ISSUER,
    MEASUREMENTS,
    STATE,
    claim_index,
    fleet_size,
    issuer,
    origin_file,
    run_config,
    run_fleet,
    run_profile,
    run_stages,
    set_origin,
)
from sim.device.settings import SimConfig
from sim.device.tokens import RETRIED_OUTCOMES, HeldToken, TokenHolder
from sim.device.trust_tasks import TrustDevice
from sim.fleet.model import Device
from sim.outcomes import Outcome, judge_forged
from sim.processes import raise_open_files_limit
from sim.profiles.http import refused_as_expected
from sim.shape.scenarios import Scenario
from sim.shape.schedule import SendSchedule, StagedSchedule, is_open_model, open_pacing
from sim.shape.stages import Stages

__all__ = ["MEASUREMENTS", "FleetDevice", "configure"]

log = logging.getLogger("fleetbench")

SETUP_ATTEMPTS = 3
# One random generator for the process's devices: they take turns (greenlets), none is seeded,
# and a Mersenne Twister's state was 2.5 KB a device.
_RNG = random.Random()
# How often the master writes the live figures that ``fleetbench run`` prints as progress.
PROGRESS_INTERVAL_S = 1.0
# With live metrics, at most this share of the master's time goes to writing its live account.
LIVE_ACCOUNT_SHARE = 0.01


class FleetDevice(MqttDevice, TrustDevice, TokenHolder, FastHttpUser):
    """One device of the fleet: its own credential, its own tokens, its own connection."""

    concurrency = 1
    max_redirects = 0  # a 3xx is the API's answer, judged: never re-sent (credentials included)
    connection_timeout = 10.0
    network_timeout = 30.0
    wait_time = constant_pacing(1.0)

    device: Device
    device_index: int
    stages: Stages | None = None

    def on_start(self) -> None:
        if cluster.remote():
            claimed = cluster.claim_device(self.environment)  # dealt by the master
            if claimed is None:
                MEASUREMENTS.counters["users_without_device"] += 1
                raise StopUser()
            self.device, self.device_index, self.other_device_id = claimed
        else:
            fleet = run_fleet()
            index = claim_index(self.environment)
            if index >= len(fleet):
                MEASUREMENTS.counters["users_without_device"] += 1
                raise StopUser()
            self.device_index = index
            self.device = fleet.devices[index]
            self.other_device_id = fleet.devices[(index + 1) % len(fleet)].id
        spread_s = run_config().start_spread_s
        if spread_s > 0:
            gevent.sleep(random.uniform(0, spread_s))  # no token storm from N generators at once
        self.profile = run_profile()
        self.key = self.device.private_key() if self.device.private_pem else None
        if self.profile.token.assertion_form is None:
            self.key = None  # the profile's token call takes no device-signed assertion
        # The HTTPClient behind self.client: the same pool, so still one connection per device.
        self._http = self.client.client.clientpool.get_client(URL(self.host or ""))
        self.kept = KeptConnection(self._http._connection_pool, self.network_timeout)
        self.config = run_config()
        self.issuer = issuer(self.host or "") if self.key is not None else DEFAULT_ISSUER
        self.endpoints = self._endpoints()
        refusals = self.profile.refusals
        classes = (refusals.missing, refusals.expired, refusals.invalid, refusals.forbidden)
        self.reads_body = any(r is not None and r.body is not None for r in classes)
        # The lean path reads only the status and WWW-Authenticate: enough for RFC 6750 and for
        # refusal classes told apart by status alone (seed-express).
        self.lean_ok = refusals.read == "rfc6750" or not any(
            r is not None and (r.body is not None or r.header is not None) for r in classes
        )
        self.rng = _RNG
        self.seq = self.config.seq_base.get(self.device.id, 0)
        self.token_alg = "?"
        self.tokens: dict[Scenario, HeldToken] = {}
        self.cases: tuple[Case, ...] = cases_for(
            any("{device_id}" in e.path for e in self.endpoints)
        )
        self.next_case = self.rng.randrange(len(self.cases))
        self.token_failures = 0
        self.last_token_outcome: Outcome = "ok"
        MEASUREMENTS.counters["devices_started"] += 1
        started = MEASUREMENTS.device_started(time.time())
        kept_folder = self.config.kept_tokens
        if kept_folder:
            keep(self.device.id, self.tokens)
        for scenario in self.config.scenarios:
            if scenario == "issuance":
                continue
            fields = kept_token(kept_folder, self.device.id, scenario) if kept_folder else None
            if fields is not None and scenario != "expiry":
                # An earlier run of this fleet on this service fetched it: no login again.
                kept = self.tokens[scenario] = HeldToken(**fields)
                self.token_alg = kept.alg
                MEASUREMENTS.counters["tokens_kept"] += 1
                continue
            if self.profile.minted:
                self.tokens[scenario] = self._mint_held(scenario)
                continue
            with _setup_slot():
                for _ in range(SETUP_ATTEMPTS):
                    if self.tokens_for(scenario, "setup") is not None:
                        break
                    if self.last_token_outcome not in RETRIED_OUTCOMES:
                        break  # refused: retrying the same credential would be refused again
            # Still without a token: the scenario's task asks again, backing off as here.
        MEASUREMENTS.device_ready(time.time() - started)  # from here: one report per interval
        if self.config.transport == "mqtt":
            self.mqtt_open()  # a device connects as it boots; its readings keep their pace
        self.stages = run_stages()
        if self.stages is not None and self.stages.kind == "rate":
            # Rate stages: the open model, each device its share of the stage's rate.
            now = time.perf_counter()
            origin = float(STATE.get("origin_perf_s", now))
            devices = fleet_size()  # the whole fleet's, also on a remote worker with its shard
            self.schedule = StagedSchedule(self.stages, devices, origin, self.rng.random(), now)
            wait_s = min(max(0.0, self.schedule.intended_s - now), self.stages.total_s)
            gevent.sleep(self.ready_for(wait_s))
            return
        if self.config.rate_rps:
            # The open model: this device's share of the rate on its own clock, from a random
            # phase, so the fleet's sends are spread over each period (sim.shape.schedule).
            period_s = fleet_size() / self.config.rate_rps
            now = time.perf_counter()
            self.schedule = SendSchedule(period_s, now + self.rng.uniform(0, period_s), free_s=now)
            gevent.sleep(self.ready_for(self.schedule.first_s - now))
            return
        # Devices spawned together would otherwise report in lockstep, every one in the same
        # instant each interval: a burst that measures queueing, not the target.
        gevent.sleep(self.ready_for(self.rng.uniform(0, self.config.interval_s)))
        # constant_pacing counts from the user's creation, so without this only the first report
        # was spread: every later one fell back into the spawn second's lockstep (issue 16).
        self._cp_last_run = time.perf_counter()

    def reporting(self) -> bool:
        """Device-count stages: whether this device reports now (while the stages ask for more
        devices than its number). If not, sleep until they do, plus a random share of one
        interval so devices joining a ramp do not report in lockstep."""
        stages = self.stages
        if stages is None or stages.kind != "devices":
            return True
        now_s = time.time() - float(STATE.get("origin_s", time.time()))
        if self.device_index < stages.value_at(now_s):
            return True
        joins = stages.first_above(self.device_index, now_s)
        if joins is None:  # not again in this run: the stop ends the sleep
            gevent.sleep(max(1.0, stages.total_s - now_s + 1.0))
            return False
        gevent.sleep(joins - now_s + self.rng.uniform(0, self.config.interval_s))
        return False

    # -- scenarios ------------------------------------------------------------------------------

    def issuance(self) -> None:
        if self.profile.minted:
            return  # no token endpoint: ``fleetbench run`` refuses or drops this scenario
        MEASUREMENTS.counters["runs issuance"] += 1
        grant = (
            "jwt-bearer"
            if self.key is not None and self.rng.random() < 0.5
            else "client_credentials"
        )
        self.fetch_token(grant, "issuance")

    def verification(self) -> None:
        MEASUREMENTS.counters["runs verification"] += 1
        held = self.held("verification", proactive=True)
        if held is None:
            return
        outcome, _ = self.use_held("verification", held)
        if outcome in ("rejected_as_expected", "refused_valid"):
            held.refresh_at = 0.0  # renew before the next reading (by the refresh call if any)

    def expiry(self) -> None:
        MEASUREMENTS.counters["runs expiry"] += 1
        MEASUREMENTS.device_sets["expiry"].add(self.device.id)
        proactive = self.config.refresh == "proactive"
        held = self.held("expiry", proactive=proactive)
        if held is None:
            return
        outcome, _ = self.use_held("expiry", held)
        # Our target names the class (only "expired" is expected); a foreign API's refusal of a
        # token past its exp is expected whatever class it reads as (403 for all, say).
        if outcome == "rejected_as_expected":
            MEASUREMENTS.counters["expirations"] += 1
            MEASUREMENTS.device_sets["expired"].add(self.device.id)
            MEASUREMENTS.counters["refreshes"] += 1
            # By the profile's refresh call when it has one (a refused refresh logs in again).
            renewed = self.tokens_for("expiry", "expiry", refresh_of=held)
            if renewed is not None and self.use_held("expiry", renewed)[0] == "ok":
                MEASUREMENTS.device_sets["recovered"].add(self.device.id)
        elif outcome == "refused_valid":
            self.tokens.pop("expiry", None)

    def rejection(self) -> None:
        MEASUREMENTS.counters["runs rejection"] += 1
        held = self.held("rejection", proactive=True)
        if held is None:
            return
        if self.rng.random() >= self.config.bad_ratio:
            self.use_held("rejection", held)
            return
        context = ForgeContext(held.token, held.alg, self.device.id, self.other_device_id)
        while True:
            case = self.cases[self.next_case % len(self.cases)]
            self.next_case += 1
            forged = case.forge(context)
            # A case that leaves this profile's token as it was (removing a claim the token
            # does not carry: no sub in a seed-express token) forges nothing: not for this API.
            genuine = forged.authorization == f"Bearer {held.token}"
            if not (genuine and forged.device_id == self.device.id) or len(self.cases) == 1:
                break
            self.cases = tuple(c for c in self.cases if c is not case)

        def judge(status: int, reason: str) -> Outcome:
            verdict = judge_forged(status)
            if verdict == "rejected_as_expected":
                # Our target: its RFC 6750 status and class; another API: the profile's class.
                matched = refused_as_expected(
                    self.profile, status, reason, case.expected_status, case.expected_reasons,
                    base_expired=time.time() >= held.exp,
                )  # fmt: skip
                MEASUREMENTS.corpus[case.name]["refused" if matched else "refused_otherwise"] += 1
            else:
                MEASUREMENTS.corpus[case.name][verdict] += 1
            return verdict

        self.call(
            "rejection",
            None,
            forged.device_id,
            judge,
            reading=False,
            authorization=forged.authorization,
        )


SCENARIO_TASKS: dict[Scenario, Callable[[FleetDevice], None]] = {
    "issuance": FleetDevice.issuance,
    "verification": FleetDevice.verification,
    "expiry": FleetDevice.expiry,
    "rejection": FleetDevice.rejection,
}


def _write_locust_csv(environment: Any) -> None:
    """Locust writes its CSV once a second and not at shutdown, so its last rows missed the
    requests of the final second; write them again from the final stats, atomically."""
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if not prefix:
        return
    from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

    writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
    for suffix, write in (
        ("_stats.csv", writer.requests_csv),
        ("_failures.csv", writer.failures_csv),
    ):
        path = Path(prefix + suffix)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", newline="") as f:
            write(csv.writer(f))
        os.replace(tmp, path)


def _progress_writer(path: Path, started: dict[str, float]) -> None:
    """Every ``PROGRESS_INTERVAL_S``: the account so far, for the orchestrator's progress line
    and, when it serves metrics, its live account."""
    live = run_config().live_account
    account_due = 0.0
    while True:
        gevent.sleep(PROGRESS_INTERVAL_S)
        if not (live and time.monotonic() >= account_due):
            MEASUREMENTS.write_progress(path, started=started.get("started"))
            continue
        # Encoding every histogram costs about 0.6 ms a row: a mixed run's hundred rows would
        # take 6 % of the master's core if written every second, so the account is written as
        # often as LIVE_ACCOUNT_SHARE of the time allows (every second for a few rows).
        began = time.monotonic()
        MEASUREMENTS.write_progress(
            path, started=started.get("started"), account=MEASUREMENTS.live_wire()
        )
        account_due = began + (time.monotonic() - began) / LIVE_ACCOUNT_SHARE


def _on_init(environment: Any, **_: Any) -> None:
    raise_open_files_limit()  # each device holds its own connection
    runner = environment.runner
    started: dict[str, float] = {}
    progress: list[gevent.Greenlet] = []

    def on_test_start(**_: Any) -> None:
        # Each test start (the web UI's Start after Stop, too) hands the devices out afresh and
        # starts a fresh account; a headless run starts once.
        STATE["claimed"] = 0
        MEASUREMENTS.reset()
        start_keeping()
        started.clear()
        started["started"] = time.time()
        # Time 0 of the load stages: the master's start (a remote worker's comes in its shard).
        set_origin(started["started"])
        STATE["stopping"] = False  # the web UI starts again after a stop
        claim_file = run_config().claim_file
        if claim_file and not isinstance(runner, WorkerRunner):
            # The master resets before it tells any worker to spawn.
            Path(claim_file).write_text("0")
            origin_file(claim_file).write_text(repr(started["started"]))
        elif claim_file:
            with contextlib.suppress(OSError, ValueError):
                set_origin(float(origin_file(claim_file).read_text()))
        progress_file = run_config().progress_file
        if progress_file and not isinstance(runner, WorkerRunner) and not progress:
            progress.append(gevent.spawn(_progress_writer, Path(progress_file), started))

    def on_test_stopping(**_: Any) -> None:
        STATE["stopping"] = True
        started["stopped"] = time.time()  # the end of the load: nothing new after it
        # What was waiting for an answer when the stop began, before Locust kills the users.
        MEASUREMENTS.counters["in_flight_when_stopping"] += MEASUREMENTS.waiting

    def on_test_stop(**_: Any) -> None:
        started.setdefault("stopped", time.time())
        _save_kept_tokens()

    def on_report_to_master(data: dict[str, Any], **_: Any) -> None:
        data["fleetbench"] = MEASUREMENTS.take_wire()

    def on_worker_report(data: dict[str, Any], **_: Any) -> None:
        if "fleetbench" in data:
            MEASUREMENTS.merge_wire(data["fleetbench"])

    def on_quitting(**_: Any) -> None:
        # Before Locust's runner.quit(): by quit, the per-name entries read 0 though the total
        # did not (every row but "Aggregated" was 0 in locust_stats.csv).
        if not isinstance(runner, WorkerRunner):
            _write_locust_csv(environment)

    def on_quit(**_: Any) -> None:
        for greenlet in progress:
            greenlet.kill(block=False)
        _save_kept_tokens()
        if isinstance(runner, WorkerRunner):
            return
        raw = run_config().raw
        if raw:
            stopped = started.get("stopped", time.time())
            extra = {"cluster": dealer.report(started.get("started"), stopped)} if dealer else {}
            MEASUREMENTS.write(
                Path(raw),
                started=started.get("started"),
                stopped=stopped,
                workers=getattr(runner, "worker_index_max", 0)
                if isinstance(runner, MasterRunner)
                else 0,
                **extra,
            )

    environment.events.test_start.add_listener(on_test_start)
    environment.events.spawning_complete.add_listener(_freeze_heap)
    environment.events.test_stop.add_listener(on_test_stop)
    environment.events.test_stopping.add_listener(on_test_stopping)
    environment.events.report_to_master.add_listener(on_report_to_master)
    environment.events.worker_report.add_listener(on_worker_report)
    environment.events.quit.add_listener(on_quit)
    environment.events.quitting.add_listener(on_quitting)
    # After the account's listeners: the worker's report carries this report's delta already.
    cluster.install_worker(environment, _apply_settings)
    dealer = cluster.install_master(environment)


@contextlib.contextmanager
def _setup_slot() -> Iterator[None]:
    """One of ``setup_concurrency`` places to fetch a first token in (none: no bound)."""
    bound = run_config().setup_concurrency
    if not bound:
        yield
        return
    slots = STATE.get("setup_slots")
    if slots is None:
        slots = STATE["setup_slots"] = BoundedSemaphore(bound)
    with slots:
        yield


def _save_kept_tokens() -> None:
    folder = run_config().kept_tokens
    if folder:
        save_kept(folder)


def _freeze_heap(**_: Any) -> None:
    """Once the fleet is spawned, what it holds for the whole run (modules, fleet, keys, users)
    leaves the collector's reach: a full collection no longer walks it, which was a pause in the
    middle of the schedule that every device due then waited out. No collection first: it
    would be that pause, once, while the first devices already send."""
    gc.freeze()


def scenario_tasks(weights: dict[Scenario, int]) -> list[Callable[[FleetDevice], None]]:
    """Locust's own form of weighted tasks: a list with each task repeated by its weight
    (reduced by their common divisor). A dict set after the class exists is not weighted:
    every runner rebuilds ``tasks`` from its keys (``Environment._filter_tasks_by_tags``)."""
    divisor = math.gcd(*weights.values())
    return [
        _staged(SCENARIO_TASKS[name])
        for name, weight in weights.items()
        for _ in range(weight // divisor)
    ]


def _staged(task: Callable[[FleetDevice], None]) -> Callable[[FleetDevice], None]:
    """The task, run only while the device reports under device-count stages."""

    def run(device: FleetDevice) -> None:
        if device.reporting():
            task(device)

    run.__name__ = task.__name__
    return run


def _apply_settings(config: SimConfig) -> None:
    tasks: list[Any] = scenario_tasks(config.scenarios)
    if config.storm == "expiry-storm":
        tasks = [FleetDevice.expiry_storm]
    elif config.storm == "reconnect-storm":
        tasks = [FleetDevice.reconnect_storm]
    elif config.storm == "rotation-storm":
        tasks = [FleetDevice.rotation_storm]
    elif config.storm == "revocation":
        tasks = [FleetDevice.revocation]
    if config.transport == "mqtt":
        # Over MQTT (sim.device.mqtt_tasks): the steady state and the expiry storm; the run
        # refuses the other scenarios with --transport mqtt before it starts.
        tasks = [_staged(FleetDevice.mqtt_telemetry)]
    FleetDevice.tasks = tasks
    open_model = is_open_model(config.rate_rps, config.parsed_stages)
    pacing = open_pacing if open_model else constant_pacing(config.interval_s)
    FleetDevice.wait_time = watching(pacing) if config.transport == "mqtt" else ready(pacing)


def ready(pacing: Callable[[Any], float]) -> Callable[[Any], float]:
    """Locust's ``wait_time`` for an HTTP device: ``pacing``'s wait, with a connection made
    ready for the next send first (:meth:`DeviceRequests.ready_for`)."""

    def wait_time(device: FleetDevice) -> float:
        return device.ready_for(pacing(device))

    return wait_time


def configure(config: SimConfig | None = None) -> type[FleetDevice]:
    """Set the device's task weights and pacing from the run configuration, and hook the
    measurement into Locust's events. Call once, from the locustfile. A remote worker
    (``fleetbench worker``) gets its configuration from the master with its first devices."""
    if config is None and cluster.remote():
        config = SimConfig(fleet="")  # a placeholder until the master's settings arrive
        STATE["settings"] = config
    _apply_settings(config or run_config())
    events.init.add_listener(_on_init)  # type: ignore[no-untyped-call]
    return FleetDevice
