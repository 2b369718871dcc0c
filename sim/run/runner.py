"""``fleetbench run`` as a function: target, fleet, Locust, account, summary.

The orchestrator never imports Locust or gevent: Locust runs as a child process (with
``--processes`` for several workers) and hands back one raw account file, which is merged here
with the target's ``/metrics`` and ``/admin/stats`` and the generator's CPU into ``summary.json``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sim import __version__
from sim.account.generator import ProcessTreeSampler
from sim.account.live_metrics import active, asked_rate, live_account
from sim.account.measure import Measurements
from sim.account.server_view import (
    DeviceStats,
    MetricsCpuSampler,
    Samples,
    received_count,
    scrape_metrics,
    server_delta,
    telemetry_stats,
)
from sim.account.storms import OUTAGE_AT_SHARE, Outage, storm_section
from sim.account.summary import build_summary, received_account, telemetry_account
from sim.artefacts.codec import write_summary
from sim.artefacts.summary_file import FleetFacts, GeneratorCpu, Summary, TargetCpu
from sim.device.seal import KEY_ENV
from sim.device.settings import REFUSED_FILE
from sim.errors import SimError
from sim.fleet.admin import ProvisionResult, register_fleet
from sim.fleet.client import TargetClient
from sim.fleet.model import Fleet, load_fleet, make_fleet, save_fleet
from sim.output.table import refused_line
from sim.processes import raise_open_files_limit, split_cores
from sim.profiles import Profile
from sim.profiles.mqtt import broker_host, mqtt_settings
from sim.profiles.mqtt_settings import MqttSettings
from sim.profiles.registration import profile_fleet, register_by_call
from sim.run.commands import run_command, wait_answering
from sim.run.config import RunConfig
from sim.run.distributed import (
    apply_cluster,
    cluster_section,
    master_key,
    with_workers,
)
from sim.run.embedded import EmbeddedTarget
from sim.run.locust_child import Stop, locust_command, read_raw, run_locust
from sim.run.machine import cpu_model, versions
from sim.run.machine_share import available_cpus, sharing_note
from sim.run.results import results_folder
from sim.run.trust import TrustPlan
from sim.untrusted import checked_alg, shown

__all__ = ["fleet_file", "run_benchmark"]


def _scrapes_metrics(profile: Profile) -> bool:
    """Whether the run reads the target's /metrics: ours, or a profile that names [metrics]."""
    return profile.name == "fleetbench" or profile.metrics.verify_time is not None


ISSUER_CHARS = 2048


def _discover(client: TargetClient) -> dict[str, Any]:
    """The target's issuer and token algorithm, if it publishes RFC 8414 metadata."""
    response = client.request("GET", "/.well-known/oauth-authorization-server")
    if response.status_code != 200:
        return {}
    try:
        data = response.json()
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    # Validated where it enters: only a name that reads as an algorithm, and an issuer that is
    # one plain line (it becomes the devices' assertion audience: never altered, only refused).
    issuer = data.get("issuer")
    plain = isinstance(issuer, str) and len(issuer) <= ISSUER_CHARS and shown(issuer) == issuer
    return {
        "access_token_signing_alg": checked_alg(data.get("access_token_signing_alg")),
        "issuer": issuer if plain else None,
    }


def _fleet(config: RunConfig, scratch: Path) -> tuple[Fleet, Path]:
    if config.fleet is not None:
        return load_fleet(config.fleet), config.fleet
    profile = config.loaded_profile
    if profile.name != "fleetbench":
        fleet = profile_fleet(profile, config.devices)
        path = scratch / "fleet.json"
        save_fleet(fleet, path)
        return fleet, path
    config.log(f"making {config.devices} {config.alg} devices")
    advance = (
        config.progress.bar(f"keys ({config.alg})", config.devices) if config.progress else None
    )
    fleet = make_fleet(config.devices, config.alg, progress=advance)
    path = scratch / "fleet.json"  # secrets stay out of the results folder
    save_fleet(fleet, path)
    return fleet, path


def fleet_file(config: RunConfig, folder: Path) -> Path:
    """The fleet ``config`` would make, written to ``folder`` (secrets: keep it out of results),
    for runs that must reuse one fleet (compare's rounds against one service)."""
    return _fleet(config, folder)[1]


@dataclass(frozen=True)
class _Target:
    """The target a run measures: ours (``embedded``) or the user's."""

    url: str
    admin_key: str | None = field(repr=False)
    embedded: EmbeddedTarget | None
    mqtt: MqttSettings | None = None  # --transport mqtt: where the devices' broker is


@contextlib.contextmanager
def _target(config: RunConfig, cpus: set[int] | None) -> Iterator[_Target]:
    mqtt = config.transport == "mqtt"
    if config.target is not None:
        url = config.target.rstrip("/")
        broker = None
        if mqtt and config.mqtt_port is not None:  # the profile's [mqtt], on --target's host
            section = config.loaded_profile.mqtt
            broker = mqtt_settings(section, broker_host(section, url), config.mqtt_port)
        yield _Target(url, config.admin_key or None, None, broker)
        return
    config.log(f"starting the embedded {config.token_alg} target" + (" with MQTT" if mqtt else ""))
    embedded = EmbeddedTarget(
        config.token_alg, cpus=cpus, token_ttl=config.effective_token_ttl,
        leeway=config.effective_leeway,
        workers=config.target_workers if config.target_workers > 1 else None,
        mqtt=mqtt,
    )  # fmt: skip
    try:
        embedded.start()
        section = config.loaded_profile.mqtt
        broker = mqtt_settings(section, "127.0.0.1", embedded.mqtt_port) if mqtt else None
        yield _Target(embedded.url, embedded.admin_key, embedded, broker)
    finally:
        embedded.stop()


@dataclass(frozen=True)
class _Provisioned:
    fleet: Fleet
    path: Path
    result: ProvisionResult
    elapsed_s: float

    def facts(self) -> FleetFacts:
        return {
            "devices": len(self.fleet),
            "kind": self.fleet.kind,
            "created": self.result.created,
            "already_registered": self.result.already_registered,
            "provision_s": round(self.elapsed_s, 3),
        }


def _provision(config: RunConfig, client: TargetClient, scratch: Path) -> _Provisioned:
    """The fleet made or loaded, and registered as the profile says (``provision.via``)."""
    fleet, path = _fleet(config, scratch)
    profile = config.loaded_profile
    via = profile.provision.via
    started = time.monotonic()
    if via == "admin":
        config.log(f"registering {len(fleet)} devices")
        advance = config.progress.bar("register", len(fleet)) if config.progress else None
        result = register_fleet(client, fleet, progress=advance)
    elif via == "call":
        config.log(f"registering {len(fleet)} devices ({profile.name} profile)")
        result = register_by_call(client, profile, fleet)
    else:  # none, file: the API knows its devices already
        result = ProvisionResult(0, 0)
    return _Provisioned(fleet, path, result, time.monotonic() - started)


def _announce(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # even with --quiet: the workers need it


def _locust_env(
    config: RunConfig,
    fleet_path: Path,
    metadata: dict[str, Any],
    stats_before: DeviceStats | None,
    scratch: Path,
    trust: TrustPlan | None = None,
    mqtt: MqttSettings | None = None,
) -> dict[str, str]:
    """The environment Locust runs in: its run described in a file, and no admin key."""
    sim_config = config.locust_settings(
        fleet=fleet_path,
        mqtt=mqtt.to_dict() if mqtt else None,
        issuer=metadata.get("issuer"),
        scratch=scratch,
        live_account=active(),
        seq_base={d: int(s.get("max_seq", 0)) for d, s in (stats_before or {}).items() if s},
        **(trust.locust_settings() if trust else {}),
    )
    sim_config.write(scratch / "sim-config.json")
    env = {**os.environ, "FLEETBENCH_CONFIG": str(scratch / "sim-config.json")}
    env.pop("FLEETBENCH_ADMIN_KEY", None)
    env.pop("TARGET_ADMIN_KEY", None)
    return env


@dataclass(frozen=True)
class _Load:
    """What the load phase left: Locust's account and the CPU both sides used."""

    raw: dict[str, Any]
    generator: GeneratorCpu
    target_cpu: TargetCpu


def _load(
    config: RunConfig,
    target: _Target,
    users: int,
    env: dict[str, str],
    folder: Path,
    scratch: Path,
    locust_cpus: set[int] | None,
    stop: Stop,
) -> _Load:
    config.log(f"running {users} devices for {config.duration_s:g} s")
    command = locust_command(config, users, target.url, folder)
    live_account().load_started(
        asked_rate(config.rate_rps, config.stages, config.interval_s, users)
    )
    embedded = target.embedded
    target_tree = (
        [ProcessTreeSampler(embedded.pid, ("server", "worker"))]
        if embedded is not None and embedded.pid is not None
        else []
    )
    # An external target's CPU, if its /metrics exports it; the embedded one's by psutil.
    scrapes = _scrapes_metrics(config.loaded_profile)
    target_metrics = MetricsCpuSampler(target.url).start() if embedded is None and scrapes else None
    try:
        exit_code, generator_sampler = run_locust(
            config, command, env, folder, locust_cpus, stop, target_tree, scratch / "progress.json"
        )
    finally:
        if target_metrics is not None:
            target_metrics.stop()
    raw = read_raw(scratch / "raw.json")
    if config.master and not raw.get("started") and not stop.requested:
        refused = refused_line(read_raw(scratch / REFUSED_FILE).get("refused", []))
        raise SimError(
            f"{config.expect_workers} workers did not join {config.bind} within "
            f"{config.worker_wait_s} s (fleetbench worker --master HOST:PORT on each host)"
            + (f"; {refused}" if refused else "")
        )
    window = (
        (float(raw["started"]), float(raw["stopped"]))
        if raw.get("started") and raw.get("stopped")
        else None
    )
    generator: GeneratorCpu = {"exit_code": exit_code, **generator_sampler.summary(window)}
    target_cpu: TargetCpu = {"available": False}
    if target_tree:
        target_cpu = {"available": True, "source": "psutil", **target_tree[0].summary(window)}
    elif target_metrics is not None:
        target_cpu = target_metrics.summary(window)
    if not raw and not stop.requested:
        raise SimError(f"Locust wrote no measurements; see {folder / 'locust.log'}")
    return _Load(raw, generator, target_cpu)


def run_benchmark(config: RunConfig) -> Summary:
    """Run one benchmark end to end and return its summary (also written to the results folder)."""
    config.check()
    # Announced before the fleet is provisioned: the operator starts the workers meanwhile.
    key = master_key(os.environ, _announce) if config.master else None
    if config.effective_scenarios != config.scenarios:
        profile = config.loaded_profile.name
        config.log(f"profile {profile} mints its tokens: mixed runs without issuance")
    raise_open_files_limit()
    folder = results_folder(config.results, "run")
    scratch = Path(tempfile.mkdtemp(prefix="fleetbench-run-"))
    target_cpus, locust_cpus = split_cores(config.pin and config.target is None)
    if config.generator_cpus:
        locust_cpus = config.generator_cpus
    shared = sharing_note(config.target, locust_cpus) if config.target else None
    if shared:
        config.log(f"warning: {shared}")
    stop = Stop()
    live = live_account()
    live.begin()
    try:
        with stop.installed(), _target(config, target_cpus) as target:
            client = TargetClient(target.url, target.admin_key)
            # Our contract's own calls (health, RFC 8414 metadata, /metrics) go only to a target
            # that speaks it; a foreign API gets only the calls its profile names.
            ours = config.loaded_profile.name == "fleetbench"
            scrapes = _scrapes_metrics(config.loaded_profile)
            if ours:
                client.check_alive()
            else:
                client.check_reachable()
            metadata = _discover(client) if ours else {}
            via = config.loaded_profile.provision.via
            # /admin/stats (also proves the admin key) is our own contract's.
            stats_before = telemetry_stats(client) if via == "admin" else None
            live.stage("provisioning")
            # A foreign API's own received count, when its profile names a [stats] call.
            stats_call = config.loaded_profile.stats
            received_before = received_count(client, stats_call) if stats_call else None
            provisioned = _provision(config, client, scratch)
            metrics_before = scrape_metrics(client) if scrapes else None
            trust = TrustPlan.make(
                config.storm, config.loaded_profile, TargetClient(target.url, target.admin_key),
                scratch, embedded=target.embedded is not None, fleet=provisioned.fleet,
                revoke_percent=config.revoke_percent, bound_s=config.revocation_bound_s,
                rotate_cmd=config.rotate_cmd,
            )  # fmt: skip
            env = _locust_env(
                config, provisioned.path, metadata, stats_before, scratch, trust, target.mqtt
            )
            env.pop(KEY_ENV, None)
            if key is not None:
                env[KEY_ENV] = key  # to Locust's master only: it proves and seals with it
            with (
                _outage(config, target, scratch) as outage,
                trust.running(scratch / "progress.json", config.duration_s)
                if trust
                else contextlib.nullcontext(),
            ):
                load = _load(
                    config, target, len(provisioned.fleet), env, folder, scratch, locust_cpus, stop
                )
            measurements = Measurements.from_wire(load.raw.get("measurements", {}))
            live.stage("reporting")
            cluster = cluster_section(load.raw["cluster"]) if "cluster" in load.raw else None
            generator = with_workers(load.generator, cluster) if cluster else load.generator
            if target.embedded is not None:
                time.sleep(0.2)  # one telemetry flush tick
            server = server_delta(
                metrics_before,
                _scrape_after(client, mqtt=target.mqtt is not None) if scrapes else None,
                # Over MQTT the tokens are verified by the broker, at CONNECT.
                target.mqtt.verify_metric
                if target.mqtt is not None
                else config.loaded_profile.metrics.verify_time,
                _token_alg(measurements),
            )
            if outage is not None and outage.down_at is not None:
                server = {"available": False, "reason": RESTARTED}
            stats_after = telemetry_stats(client) if via == "admin" else None
            received_after = received_count(client, stats_call) if stats_call else None
            summary = build_summary(
                measurements,
                run={
                    "fleetbench": __version__,
                    "versions": versions(),
                    "cpu": {
                        "model": cpu_model(),
                        "count": os.cpu_count(),
                        "target_cpus": sorted(target_cpus) if target_cpus else None,
                        # Unpinned: every core it could run on (it shared them with all).
                        "generator_cpus": sorted(locust_cpus or available_cpus()),
                        "shares_machine": shared,
                    },
                    "target": {
                        "url": target.url,
                        "embedded": target.embedded is not None,
                        "token_alg": metadata.get("access_token_signing_alg"),
                        "issuer": metadata.get("issuer"),
                    },
                    "parameters": config.parameters(),
                    "profile": {
                        "name": config.loaded_profile.name,
                        "source": config.loaded_profile.source,
                        "endpoints": [e.name for e in config.loaded_profile.endpoints],
                        "token_endpoint": not config.loaded_profile.minted,
                    },
                    "fleet": provisioned.facts(),
                    "locust_workers": load.raw.get("workers", 0),
                },
                started=load.raw.get("started"),
                stopped=load.raw.get("stopped"),
                server=server,
                telemetry=received_account(measurements, received_before, received_after)
                if stats_call
                else telemetry_account(measurements, stats_before, stats_after),
                generator=generator,
                interrupted=stop.requested,
                # The open model's devices each send once per fleet / rate seconds.
                interval_s=(
                    config.interval_s
                    if config.rate_rps is None
                    else len(provisioned.fleet) / config.rate_rps
                ),
                rate_rps=config.rate_rps,
                stages=config.stages,
                target_cpu=load.target_cpu,
                weights=dict(config.effective_scenarios),
            )
            if cluster is not None:
                apply_cluster(summary, cluster)
            if config.storm is not None:
                summary["storms"] = storm_section(
                    measurements,
                    config.storm,
                    backoff=config.backoff,
                    outage=outage,
                    lost=summary["telemetry"].get("lost"),
                )
                if outage is not None and outage.error:
                    summary["verdict"]["failures"].append(outage.error)
                    summary["verdict"]["passed"] = False
                    summary["verdict"]["label"] = "FAIL"
            if trust is not None:
                trust.apply(summary, measurements)
            live.finish(measurements, summary["verdict"])
            _write_outputs(summary, folder)
            return summary
    finally:
        live.abandon()  # a run that failed leaves no live figures behind
        shutil.rmtree(scratch, ignore_errors=True)
        if config.results is None and not any(folder.iterdir()):
            folder.rmdir()  # nor an empty stamped folder


RESTARTED = "the target restarted mid-run (reconnect-storm): its /metrics counters started again"


def command_outage(command: str, url: str) -> tuple[float, float]:
    """``--outage-cmd``: the outage runs from the command's start until, after its end, the
    API answers HTTP again (any status)."""
    down_at = time.time()
    run_command(command, "--outage-cmd")
    return down_at, wait_answering(url)


# How long the reconnect storm's target stays down before it starts again (plus its start time).
OUTAGE_DOWN_S = 1.0


@contextlib.contextmanager
def _outage(config: RunConfig, target: _Target, scratch: Path) -> Iterator[Outage | None]:
    """The reconnect storm's restart of the embedded target, on its own thread during the load."""
    embedded = target.embedded
    if config.storm != "reconnect-storm":
        yield None
        return
    after_s = config.duration_s * OUTAGE_AT_SHARE
    restart: Callable[[], tuple[float, float]] = (
        partial(embedded.restart, OUTAGE_DOWN_S)
        if embedded is not None
        else partial(command_outage, config.outage_cmd or "", target.url)
    )
    with Outage(restart, scratch / "progress.json", after_s) as outage:
        config.log(
            f"the target goes down {after_s:.0f} s into the run, for about {OUTAGE_DOWN_S:g} s"
        )
        yield outage


# After an MQTT run the broker is still closing the fleet's sessions (thousands, each one at
# once): /metrics may not answer within one scrape's timeout, so it is asked this many times.
MQTT_SCRAPES = 3


def _scrape_after(client: TargetClient, *, mqtt: bool) -> Samples | None:
    """The target's /metrics after the load."""
    for _ in range(MQTT_SCRAPES if mqtt else 1):
        samples = scrape_metrics(client)
        if samples is not None:
            return samples
    return None


def _token_alg(measurements: Measurements) -> str:
    """The one algorithm of the tokens the API honoured, to name a verify-time histogram that
    has no ``alg`` label by; ``all`` when there were several or none."""
    algs = {
        key.alg
        for key in measurements.latency
        if key.outcome == "ok" and not key.endpoint.startswith("token ")
    }
    return algs.pop() if len(algs) == 1 else "all"


def _write_outputs(summary: Summary, folder: Path) -> None:
    summary["run"]["results"] = str(folder)
    write_summary(summary, folder / "summary.json")
    try:
        from sim.output.report import write_report
    except ImportError:
        return
    write_report(summary, folder / "report.html")
