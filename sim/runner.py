"""``fleetbench run`` as a function: target, fleet, Locust, account, summary.

The orchestrator never imports Locust or gevent: Locust runs as a child process (with
``--processes`` for several workers) and hands back one raw account file, which is merged here
with the target's ``/metrics`` and ``/admin/stats`` and the generator's CPU into ``summary.json``.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, cast

from sim import __version__
from sim.artefacts import GeneratorCpu, RunParameters, Summary, TargetCpu, write_summary
from sim.config import SimConfig
from sim.embedded import EmbeddedTarget, TargetStartError
from sim.errors import ConfigError, SimError, TargetError
from sim.fleet import CredentialKind, Fleet, load_fleet, make_fleet, save_fleet
from sim.generator import GeneratorSampler, ProcessTreeSampler, sample_until
from sim.http import TargetClient
from sim.measure import Measurements
from sim.profiles import Profile, load_profile
from sim.profiles.provision import profile_fleet, register_by_call
from sim.provision import ProvisionResult, register_fleet
from sim.scenarios import MIXED, Endpoint, RefreshMode, Scenario
from sim.server_view import MetricsCpuSampler, scrape_metrics, server_delta, telemetry_stats
from sim.summary import build_summary, telemetry_account

__all__ = ["Interrupted", "LiveFigures", "RunConfig", "RunProgress", "run_benchmark"]

# Inside the package: an installed fleetbench has no repository to find a locustfile in.
LOCUSTFILE = Path(__file__).resolve().parent / "locustfiles" / "devices.py"
STOP_GRACE_S = 20.0  # after a stop request, how long Locust gets to write its account
STARTUP_ALLOWANCE_S = 60.0  # fleet parse, worker start-up and shutdown around the run time


LIVE_EVERY_S = 2.0  # how often a running benchmark reports its live figures


class Interrupted(SimError):
    """The run was stopped by SIGINT or SIGTERM before load started."""


@dataclass(frozen=True)
class LiveFigures:
    """A running benchmark's figures so far, every ``LIVE_EVERY_S`` while Locust runs."""

    elapsed_s: float
    duration_s: float
    requests: int
    rps: float  # since the previous report
    p50_us: float | None  # over every request so far
    p99_us: float | None
    not_ok: dict[str, int]  # outcome -> count, every outcome other than ok
    generator_cpu_percent: float  # the Locust process tree, % of one core


class RunProgress(Protocol):
    """Where a run reports while it runs (the CLI draws bars and a live line)."""

    def bar(self, description: str, total: int) -> Callable[[int], None]:
        """Start a step of ``total`` units; the returned function advances it by n."""

    def live(self, figures: LiveFigures) -> None:
        """The load phase's figures so far."""


@dataclass
class RunConfig:
    """Everything ``fleetbench run`` takes. ``target`` None: start the embedded target."""

    target: str | None = None
    admin_key: str | None = field(default=None, repr=False)
    fleet: Path | None = None
    devices: int = 100
    alg: CredentialKind = "ES256"
    token_alg: str = "ES256"
    token_ttl: int | None = None  # embedded target only; default 3600, or 10 with expiry
    # The target's clock leeway: set on the embedded target (default 10, or 1 with a short TTL);
    # with --target, what the judge allows past exp (default 10), since late acceptance depends
    # on it.
    leeway: int | None = None
    scenarios: dict[Scenario, int] = field(default_factory=lambda: {"verification": 1})
    endpoint: Endpoint = "telemetry"
    interval_s: float = 1.0
    refresh: RefreshMode = "on-expiry"
    bad_ratio: float = 0.5
    duration_s: float = 10.0
    spawn_rate: float | None = None
    workers: int = 1
    results: Path | None = None
    pin: bool = True
    # Cores for Locust when the target is not ours to pin (a benchmark that pins its own target).
    generator_cpus: set[int] | None = None
    log: Callable[[str], None] = field(default=lambda message: None, repr=False)
    progress: RunProgress | None = field(default=None, repr=False)
    profile: str = "fleetbench"  # the target profile, by name or file (sim/profiles)
    _profile: Profile | None = field(default=None, init=False, repr=False)

    @property
    def loaded_profile(self) -> Profile:
        if self._profile is None:
            self._profile = load_profile(self.profile, os.environ)
        return self._profile

    def check(self) -> None:
        profile = self.loaded_profile
        if self.target is None and profile.name != "fleetbench":
            raise ConfigError(f"profile {profile.name} describes another API: give --target URL")
        if self.target is not None and not self.admin_key and profile.provision.via == "admin":
            raise ConfigError("--target needs --admin-key (or FLEETBENCH_ADMIN_KEY)")
        if profile.minted and "issuance" in self.scenarios:
            if self.scenarios != MIXED:
                raise ConfigError(
                    f"the issuance scenario needs a token endpoint: profile {profile.name} "
                    "mints its tokens (token.source = minted)"
                )
            self.scenarios = {k: v for k, v in self.scenarios.items() if k != "issuance"}
            self.log(f"profile {profile.name} mints its tokens: mixed runs without issuance")
        if self.devices < 1 and self.fleet is None:
            raise ConfigError("--devices must be at least 1")
        if self.duration_s <= 0:
            raise ConfigError("--duration must be positive")
        if self.duration_s != int(self.duration_s):
            # Locust's --run-time takes whole seconds; rounding ran 2.5 s for 2 s.
            raise ConfigError("--duration must be whole seconds (Locust's --run-time)")
        if self.interval_s < 0:
            raise ConfigError("--interval must be 0 or more")
        if not 0.0 <= self.bad_ratio <= 1.0:
            raise ConfigError("--bad-ratio must be between 0 and 1")
        if self.workers < 1:
            raise ConfigError("--workers must be at least 1")
        if self.target is not None and not self.target.startswith(("http://", "https://")):
            raise ConfigError("--target must be an http:// or https:// URL")
        if self.target is not None and self.token_ttl is not None:
            raise ConfigError("--token-ttl sets the embedded target's tokens; drop --target")
        if self.leeway is not None and self.leeway < 0:
            raise ConfigError("--leeway must be 0 or more")
        if self.token_ttl is not None and self.token_ttl < 1:
            raise ConfigError("--token-ttl must be at least 1 second")

    @property
    def effective_token_ttl(self) -> int:
        if self.token_ttl is not None:
            return self.token_ttl
        return 10 if "expiry" in self.scenarios else 3600

    @property
    def effective_leeway(self) -> int:
        if self.leeway is not None:
            return self.leeway
        if self.target is not None:
            return round(self.loaded_profile.leeway_s)  # 10 for our own contract
        return 1 if self.effective_token_ttl < 60 else 10

    def parameters(self) -> RunParameters:
        """The run's parameters for ``summary.json``: no admin key, no secrets."""
        hidden = {"admin_key", "log", "progress", "_profile"}  # a secret, callables, a cache
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in hidden}
        data["scenarios"] = dict(self.scenarios)
        data["generator_cpus"] = sorted(self.generator_cpus) if self.generator_cpus else None
        data["fleet"] = str(self.fleet) if self.fleet else None
        data["results"] = str(self.results) if self.results else None
        if self.target is None:
            data["token_ttl"] = self.effective_token_ttl
        data["leeway"] = self.effective_leeway
        return cast(RunParameters, data)


class _Stop:
    """SIGINT/SIGTERM while running: remember it, and stop Locust if it is running."""

    def __init__(self) -> None:
        self.requested = False
        self.locust: subprocess.Popen[bytes] | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if self.locust is None:
            raise Interrupted(f"interrupted by {signal.Signals(signum).name}")
        with contextlib.suppress(ProcessLookupError):
            self.locust.send_signal(signal.SIGTERM)

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Stop]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {sig: signal.signal(sig, self) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)


def _raise_open_files_limit() -> None:
    """Children inherit it: the target and Locust each hold one connection per device."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _cpu_split(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """Target on the first core, Locust on the others, when there are at least two."""
    if not pin or not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[0]}, set(cpus[1:])


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"fleetbench": __version__, "python": platform.python_version()}
    for package in ("locust", "hdrhistogram", "pyjwt", "cryptography", "starlette", "uvicorn"):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    return found


def _results_folder(config: RunConfig) -> Path:
    if config.results is not None:
        folder = config.results
    else:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        folder = Path("results") / f"run-{stamp}"
        suffix = 1
        while folder.exists():
            suffix += 1
            folder = Path("results") / f"run-{stamp}-{suffix}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _discover(client: TargetClient) -> dict[str, Any]:
    """The target's issuer and token algorithm, if it publishes RFC 8414 metadata."""
    response = client.request("GET", "/.well-known/oauth-authorization-server")
    if response.status_code != 200:
        return {}
    try:
        data: dict[str, Any] = response.json()
    except ValueError:
        return {}
    return data


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


def _locust_command(config: RunConfig, users: int, url: str, folder: Path) -> list[str]:
    spawn_rate = config.spawn_rate or float(min(users, 500))
    folder = folder.resolve()  # Locust runs in the results folder
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(spawn_rate),
        "--run-time",
        f"{max(1, round(config.duration_s))}s",
        "--host",
        url,
        "--csv",
        str(folder / "locust"),
        "--html",
        str(folder / "locust.html"),
        "--json-file",
        str(folder / "locust_stats"),  # Locust's final merged stats, as locust_stats.json
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    if config.workers > 1:
        command += ["--processes", str(config.workers)]
    return command


def _run_locust(
    config: RunConfig,
    command: list[str],
    env: dict[str, str],
    folder: Path,
    cpus: set[int] | None,
    stop: _Stop,
    also: list[ProcessTreeSampler],
    progress_file: Path,
) -> tuple[int, GeneratorSampler]:
    """Run Locust to its end, sampling its process tree and ``also`` (the embedded target's)."""

    def pin() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)

    with open(folder / "locust.log", "wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin,
            start_new_session=True, cwd=folder.resolve(),
        )  # fmt: skip
    stop.locust = process
    sampler = GeneratorSampler(process.pid)
    samplers = [sampler, *also]
    deadline = time.monotonic() + config.duration_s + STARTUP_ALLOWANCE_S
    tick = _live_reporter(config, progress_file, sampler) if config.progress else None
    try:
        sample_until(
            samplers,
            lambda: process.poll() is not None or stop.requested,
            deadline=deadline,
            tick=tick,
        )
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # interrupted, or past its deadline
            stop.requested = True
        # Locust writes the account on its way out: give it a bounded time, sampling on.
        sample_until(
            samplers, lambda: process.poll() is not None, deadline=time.monotonic() + STOP_GRACE_S
        )
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # workers left behind by a killed master
        stop.locust = None
    return process.returncode, sampler


def _live_reporter(
    config: RunConfig, progress_file: Path, sampler: GeneratorSampler
) -> Callable[[], None]:
    """Called after each generator sample: every ``LIVE_EVERY_S``, the live figures from the
    file Locust's master rewrites every second."""
    previous: dict[str, float] = {"at": time.monotonic(), "t": 0.0, "requests": 0.0}

    def tick() -> None:
        if config.progress is None or time.monotonic() - previous["at"] < LIVE_EVERY_S:
            return
        data = _read_raw(progress_file)
        if not data.get("started") or data.get("t", 0.0) <= previous["t"]:
            return
        requests = int(data.get("requests", 0))
        span_s = data["t"] - (previous["t"] or data["started"])
        rps = (requests - previous["requests"]) / span_s if span_s > 0 else 0.0
        previous.update(at=time.monotonic(), t=data["t"], requests=requests)
        outcomes: dict[str, int] = data.get("outcomes", {})
        config.progress.live(
            LiveFigures(
                elapsed_s=data["t"] - data["started"],
                duration_s=config.duration_s,
                requests=requests,
                rps=rps,
                p50_us=data.get("p50_us"),
                p99_us=data.get("p99_us"),
                not_ok={o: n for o, n in outcomes.items() if o != "ok" and n},
                generator_cpu_percent=sampler.latest_cpu_percent(),
            )
        )

    return tick


def _read_raw(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


def run_benchmark(config: RunConfig) -> dict[str, Any]:
    """Run one benchmark end to end and return its summary (also written to the results folder).

    The summary is a :class:`sim.artefacts.Summary`; it is returned untyped until its callers
    (smoke, compare, the CLI: issue 14, being split apart) take the type."""
    config.check()
    _raise_open_files_limit()
    folder = _results_folder(config)
    scratch = Path(tempfile.mkdtemp(prefix="fleetbench-run-"))
    target_cpus, locust_cpus = _cpu_split(config.pin and config.target is None)
    if config.generator_cpus:
        locust_cpus = config.generator_cpus
    embedded: EmbeddedTarget | None = None
    stop = _Stop()
    try:
        with stop.installed():
            admin_key: str | None
            if config.target is None:
                config.log(f"starting the embedded {config.token_alg} target")
                embedded = EmbeddedTarget(
                    config.token_alg,
                    cpus=target_cpus,
                    token_ttl=config.effective_token_ttl,
                    leeway=config.effective_leeway,
                )
                try:
                    embedded.start()
                except TargetStartError as e:
                    raise TargetError(str(e)) from e
                url, admin_key = embedded.url, embedded.admin_key
            else:
                url, admin_key = config.target.rstrip("/"), config.admin_key or None
            client = TargetClient(url, admin_key)
            client.check_alive()
            metadata = _discover(client)
            profile = config.loaded_profile
            via = profile.provision.via
            # /admin/stats (also proves the admin key) is our own contract's.
            stats_before = telemetry_stats(client) if via == "admin" else None
            fleet, fleet_path = _fleet(config, scratch)
            started = time.monotonic()
            if via == "admin":
                config.log(f"registering {len(fleet)} devices")
                bar = config.progress.bar("register", len(fleet)) if config.progress else None
                provisioned = register_fleet(client, fleet, progress=bar)
            elif via == "call":
                config.log(f"registering {len(fleet)} devices ({profile.name} profile)")
                provisioned = register_by_call(client, profile, fleet)
            else:  # none, file: the API knows its devices already
                provisioned = ProvisionResult(0, 0)
            provision_s = time.monotonic() - started
            metrics_before = scrape_metrics(client)
            leeway = config.effective_leeway
            sim_config = SimConfig(
                fleet=str(fleet_path),
                scenarios=config.scenarios,
                endpoint=config.endpoint,
                interval_s=config.interval_s,
                refresh=config.refresh,
                bad_ratio=config.bad_ratio,
                leeway_s=float(leeway),
                issuer=metadata.get("issuer"),
                raw=str(scratch / "raw.json"),
                claim_file=str(scratch / "claims"),
                progress=str(scratch / "progress.json"),
                profile=config.profile,
                seq_base={
                    d: int(s.get("max_seq", 0)) for d, s in (stats_before or {}).items() if s
                },
            )
            sim_config.write(scratch / "sim-config.json")
            env = {**os.environ, "FLEETBENCH_CONFIG": str(scratch / "sim-config.json")}
            env.pop("FLEETBENCH_ADMIN_KEY", None)
            env.pop("TARGET_ADMIN_KEY", None)
            users = len(fleet)
            config.log(f"running {users} devices for {config.duration_s:g} s")
            command = _locust_command(config, users, url, folder)
            target_tree = (
                [ProcessTreeSampler(embedded.pid, ("server", "worker"))]
                if embedded is not None and embedded.pid is not None
                else []
            )
            # An external target's CPU, if its /metrics exports it; the embedded one's by psutil.
            target_metrics = MetricsCpuSampler(url).start() if embedded is None else None
            try:
                exit_code, generator_sampler = _run_locust(
                    config,
                    command,
                    env,
                    folder,
                    locust_cpus,
                    stop,
                    target_tree,
                    scratch / "progress.json",
                )
            finally:
                if target_metrics is not None:
                    target_metrics.stop()
            raw = _read_raw(scratch / "raw.json")
            window = (
                (float(raw["started"]), float(raw["stopped"]))
                if raw.get("started") and raw.get("stopped")
                else None
            )
            generator: GeneratorCpu = {"exit_code": exit_code, **generator_sampler.summary(window)}
            target_cpu: TargetCpu
            if target_tree:
                target_cpu = {
                    "available": True,
                    "source": "psutil",
                    **target_tree[0].summary(window),
                }
            elif target_metrics is not None:
                target_cpu = target_metrics.summary(window)
            else:
                target_cpu = {"available": False}
            if not raw and not stop.requested:
                raise SimError(f"Locust wrote no measurements; see {folder / 'locust.log'}")
            measurements = Measurements.from_wire(raw.get("measurements", {}))
            if embedded is not None:
                time.sleep(0.2)  # one telemetry flush tick
            server = server_delta(metrics_before, scrape_metrics(client))
            stats_after = telemetry_stats(client) if via == "admin" else None
            summary = build_summary(
                measurements,
                run={
                    "fleetbench": __version__,
                    "versions": _versions(),
                    "cpu": {
                        "model": _cpu_model(),
                        "count": os.cpu_count(),
                        "target_cpus": sorted(target_cpus) if target_cpus else None,
                        "generator_cpus": sorted(locust_cpus) if locust_cpus else None,
                    },
                    "target": {
                        "url": url,
                        "embedded": embedded is not None,
                        "token_alg": metadata.get("access_token_signing_alg"),
                        "issuer": metadata.get("issuer"),
                    },
                    "parameters": config.parameters(),
                    "profile": {"name": profile.name, "source": profile.source},
                    "fleet": {
                        "devices": len(fleet),
                        "kind": fleet.kind,
                        "created": provisioned.created,
                        "already_registered": provisioned.already_registered,
                        "provision_s": round(provision_s, 3),
                    },
                    "locust_workers": raw.get("workers", 0),
                },
                started=raw.get("started"),
                stopped=raw.get("stopped"),
                server=server,
                telemetry=telemetry_account(measurements, stats_before, stats_after),
                generator=generator,
                interrupted=stop.requested,
                interval_s=config.interval_s,
                target_cpu=target_cpu,
                weights={str(name): weight for name, weight in config.scenarios.items()},
            )
            _write_outputs(summary, folder)
            return cast(dict[str, Any], summary)
    finally:
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def _write_outputs(summary: Summary, folder: Path) -> None:
    summary["run"]["results"] = str(folder)
    write_summary(summary, folder / "summary.json")
    try:
        from sim.report import write_report
    except ImportError:
        return
    write_report(summary, folder / "report.html")
