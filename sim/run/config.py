"""What ``fleetbench run`` takes: the run's frozen config, checked once, and the parameters it
records in ``summary.json``."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any, cast

from sim.account.live import RunProgress
from sim.account.revocation import DEFAULT_REVOKE_PERCENT
from sim.account.storms import Storm, check_storm
from sim.artefacts.summary_file import RunParameters
from sim.device.settings import SimConfig, choose_endpoint
from sim.errors import ConfigError
from sim.fleet.model import CredentialKind
from sim.profiles import Profile, load_profile
from sim.profiles.mqtt_settings import MqttSessions, Transport
from sim.run.commands import parse_command
from sim.run.distributed import DEFAULT_PORT, START_SPREAD_S, Address, parse_address
from sim.run.trust import check_trust
from sim.shape.scenarios import MIXED, RefreshMode, Scenario
from sim.shape.schedule import is_open_model
from sim.shape.stages import Stages

__all__ = ["RunConfig"]


@dataclass(frozen=True)
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
    # One of the profile's [[endpoints]] by name (ours: telemetry, config, data); None: the
    # profile's default_endpoint (ours: telemetry), or all of its endpoints by weight.
    endpoint: str | None = None
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
    # The open model (sim.shape.schedule): fleet-wide requests per second instead of interval_s.
    rate_rps: float | None = None
    # Load stages (sim.shape.stages), parsed once where they were given (--stages
    # "30s:100,60s:1000,30s:0" for devices, "...:500r" for rates); they keep their text.
    stages: Stages | None = None

    @property
    def open_model(self) -> bool:
        """--rate, or rate stages: each device on its own schedule (sim.shape.schedule)."""
        return is_open_model(self.rate_rps, self.stages)

    # Over remote workers (``fleetbench worker``): Locust's master on ``bind``, waiting up to
    # ``worker_wait_s`` for ``expect_workers`` of them, dealing each its own shard
    # (sim.device.cluster).
    master: bool = False
    bind: str = f"127.0.0.1:{DEFAULT_PORT}"
    expect_workers: int = 0
    worker_wait_s: int = 60
    # A storm scenario (sim.account.storms; --scenario expiry-storm runs the expiry task with it).
    storm: Storm | None = None
    # Jittered exponential backoff on refused token calls too, and on 429/503 in a storm.
    backoff: bool = False
    warmup_s: float = 0.0  # the first seconds' requests are sent, not judged (SimConfig.warmup_s)
    # The embedded target's worker processes (its --workers): revocation across processes.
    target_workers: int = 1
    # The trust scenarios (sim.run.trust) and storms on any API: the user's commands that rotate
    # their API's key and restart it (never written to the summary: they may name anything).
    rotate_cmd: str | None = field(default=None, repr=False)
    outage_cmd: str | None = field(default=None, repr=False)
    revoke_percent: float = DEFAULT_REVOKE_PERCENT  # --scenario revocation: devices revoked
    revocation_bound_s: float | None = None  # None: the profile's [revoke] bound_s
    # capacity's steps: a private folder where each run's devices keep their tokens for the next
    # run of the same fleet on the same service (sim.device.kept_tokens); a scratch path.
    kept_tokens: str | None = None
    setup_concurrency: int = 0  # capacity's login rounds (SimConfig.setup_concurrency)
    # How the devices send their readings (sim.device.mqtt_tasks for "mqtt"): the embedded
    # target then runs its broker too; a --target's broker is at its host, on mqtt_port.
    transport: Transport = "http"
    mqtt_port: int | None = None
    # "per-reading": each reading its own session, a CONNECT each (compare's and capacity's
    # MQTT load, where the auth cost is the question); "held": one session per token lifetime.
    mqtt_session: MqttSessions = "held"

    @cached_property
    def loaded_profile(self) -> Profile:  # read once (a frozen dataclass still caches this)
        return load_profile(self.profile, os.environ)

    @property
    def effective_scenarios(self) -> dict[Scenario, int]:
        """The scenarios run: a mixed run without issuance when the profile mints its tokens."""
        if self.loaded_profile.minted and self.scenarios == MIXED:
            return {k: v for k, v in self.scenarios.items() if k != "issuance"}
        return self.scenarios

    @property
    def effective_endpoint(self) -> str | None:
        """The endpoint the devices call (checked against the profile); None: all, by weight."""
        return choose_endpoint(self.loaded_profile, self.endpoint)

    def check(self) -> None:
        profile = self.loaded_profile
        choose_endpoint(profile, self.endpoint)  # an unknown --endpoint: one line, before any work
        if self.target is None and profile.name != "fleetbench":
            raise ConfigError(f"profile {profile.name} describes another API: give --target URL")
        if self.target is not None and not self.admin_key and profile.provision.via == "admin":
            raise ConfigError("--target needs --admin-key (or FLEETBENCH_ADMIN_KEY)")
        if profile.minted and "issuance" in self.scenarios and self.scenarios != MIXED:
            raise ConfigError(
                f"the issuance scenario needs a token endpoint: profile {profile.name} "
                "mints its tokens (token.source = minted)"
            )
        if self.devices < 1 and self.fleet is None:
            raise ConfigError("--devices must be at least 1")
        if self.duration_s <= 0:
            raise ConfigError("--duration must be positive")
        if self.duration_s != int(self.duration_s):
            # Locust's --run-time takes whole seconds; rounding ran 2.5 s for 2 s.
            raise ConfigError("--duration must be whole seconds (Locust's --run-time)")
        if self.interval_s < 0:
            raise ConfigError("--interval must be 0 or more")
        if self.rate_rps is not None and not 0 < self.rate_rps < float("inf"):
            raise ConfigError("--rate must be a number of requests per second above 0")
        stages = self.stages
        if stages is not None:
            if self.rate_rps is not None:
                raise ConfigError("--stages gives the load: drop --rate (rate steps: 30s:500r)")
            if self.duration_s != stages.total_s:
                raise ConfigError("--stages sets the run time: drop --duration")
            if stages.kind == "devices" and self.devices < stages.peak:
                raise ConfigError(f"--stages asks for {stages.peak:.0f} devices: --devices too few")
        if not 0.0 <= self.bad_ratio <= 1.0:
            raise ConfigError("--bad-ratio must be between 0 and 1")
        if self.workers < 1:
            raise ConfigError("--workers must be at least 1")
        if self.target is not None and not self.target.startswith(("http://", "https://")):
            raise ConfigError("--target must be an http:// or https:// URL")
        if (
            self.target is not None
            and self.token_ttl is not None
            and not self.loaded_profile.minted
        ):
            raise ConfigError(
                "--token-ttl sets the embedded target's tokens or a minted profile's; an API"
                " that issues its own sets their lifetime: drop --token-ttl"
            )
        if self.leeway is not None and self.leeway < 0:
            raise ConfigError("--leeway must be 0 or more")
        if self.token_ttl is not None and self.token_ttl < 1:
            raise ConfigError("--token-ttl must be at least 1 second")
        if self.target_workers < 1 or (self.target_workers > 1 and self.target is not None):
            raise ConfigError(
                "--target-workers sets the embedded target's processes: drop --target"
            )
        if not 0 < self.revoke_percent <= 100:
            raise ConfigError("--revoke-percent must be above 0 and at most 100")
        if self.revocation_bound_s is not None and self.revocation_bound_s < 0:
            raise ConfigError("--revocation-bound must be 0 or more seconds")
        for option, command in (
            ("--outage-cmd", self.outage_cmd),
            ("--rotate-cmd", self.rotate_cmd),
        ):
            if command is not None:
                parse_command(command, option)  # one line now, not a failed run later
        if self.storm is not None or self.outage_cmd is not None or self.rotate_cmd is not None:
            ttl = self.effective_token_ttl if self.target is None else None
            check_storm(
                self.storm,
                self.refresh,
                self.duration_s,
                ttl,
                self.effective_leeway,
                embedded=self.target is None,
                outage_cmd=self.outage_cmd is not None,
            )
            check_trust(
                self.storm,
                profile,
                embedded=self.target is None,
                admin_key=self.target is None or bool(self.admin_key),
                rotate_cmd=self.rotate_cmd,
                duration_s=self.duration_s,
                token_ttl=ttl,
            )
            if self.rate_rps is not None or self.stages:
                raise ConfigError("a storm scenario runs closed-loop: drop --rate, --stages")
        self._check_transport()
        self._check_master()

    def _check_transport(self) -> None:
        """--transport mqtt: what the MQTT devices can do (one line for the rest)."""
        if self.transport != "mqtt":
            if self.mqtt_port is not None:
                raise ConfigError("--mqtt-port is the broker of --transport mqtt")
            if self.mqtt_session != "held":
                raise ConfigError("--mqtt-session is the sessions of --transport mqtt")
            return
        if self.mqtt_session == "per-reading" and self.storm is not None:
            raise ConfigError(
                f"--mqtt-session per-reading runs the steady state: drop --scenario {self.storm}"
            )
        if self.storm not in (None, "expiry-storm", "reconnect-storm", "revocation") or (
            self.storm is None and set(self.scenarios) != {"verification"}
        ):
            raise ConfigError(
                "--transport mqtt runs the verification scenario, expiry-storm, reconnect-storm"
                " or revocation: drop --scenario"
            )
        if self.endpoint not in (None, "telemetry"):
            raise ConfigError("--transport mqtt publishes telemetry: drop --endpoint")
        if self.loaded_profile.name != "fleetbench" and not self.loaded_profile.has_mqtt:
            raise ConfigError(
                f"--transport mqtt needs the profile's [mqtt] section: profile "
                f"{self.loaded_profile.name} has none"
            )
        if self.target is not None and self.mqtt_port is None:
            raise ConfigError("--transport mqtt with --target needs --mqtt-port (its broker)")
        if self.target is None and self.mqtt_port is not None:
            raise ConfigError("--mqtt-port names a --target's broker: the embedded one has its own")
        if self.target_workers > 1:
            raise ConfigError(
                "--transport mqtt: the embedded broker is one process: drop --target-workers"
            )

    def _check_master(self) -> None:
        if not self.master:
            if self.expect_workers:
                raise ConfigError("--expect-workers needs --master")
            return
        if self.expect_workers < 1:
            raise ConfigError("--master needs --expect-workers N (at least 1)")
        if self.workers > 1:
            raise ConfigError("--workers runs processes on this host; with --master drop it")
        if self.worker_wait_s < 1:
            raise ConfigError("--worker-wait must be at least 1 second")
        parse_address(self.bind, "--bind")

    @property
    def bind_address(self) -> Address:
        return parse_address(self.bind, "--bind")

    @property
    def effective_token_ttl(self) -> int:
        if self.token_ttl is not None:
            return self.token_ttl
        # Rotation: tokens the devices renew within the run, on the new key.
        return 10 if "expiry" in self.scenarios or self.storm == "rotation-storm" else 3600

    @property
    def effective_leeway(self) -> int:
        if self.leeway is not None:
            return self.leeway
        if self.target is not None:
            return round(self.loaded_profile.leeway_s)  # 10 for our own contract
        return 1 if self.effective_token_ttl < 60 else 10

    def locust_settings(
        self,
        *,
        fleet: Path,
        issuer: str | None,
        scratch: Path,
        seq_base: dict[str, int],
        live_account: bool = False,
        **found: Any,
    ) -> SimConfig:
        """What the Locust side is told, derived from this config: a field the two share by name
        (one name, one meaning) is copied as it is; the rest is what the run found or made
        (``found``: more of it, such as the trust scenarios' revoked devices and bound)."""
        shared = {f.name for f in fields(SimConfig)} & {f.name for f in fields(self)}
        settings = {name: getattr(self, name) for name in shared}
        profile = Path(self.profile)
        settings.update(
            fleet=str(fleet),
            scenarios=self.effective_scenarios,
            endpoint=self.effective_endpoint,
            # Locust runs in the results folder: a profile file named relative to here must still
            # be found there.
            profile=str(profile.resolve()) if profile.is_file() else self.profile,
            stages=self.stages.text if self.stages else None,  # parsed again on the Locust side
            leeway_s=float(self.effective_leeway),
            issuer=issuer,
            raw=str(scratch / "raw.json"),
            claim_file=str(scratch / "claims"),
            progress_file=str(scratch / "progress.json"),
            distributed=self.master,
            start_spread_s=START_SPREAD_S if self.master else 0.0,
            seq_base=seq_base,
            live_account=live_account,
            # --token-ttl with a minted profile: the lifetime the devices mint with.
            minted_ttl_s=self.token_ttl if self.target is not None else None,
            **found,
        )
        return SimConfig(**settings)

    def parameters(self) -> RunParameters:
        """The run's parameters for ``summary.json``: no admin key, no secrets."""
        # A secret, callables, and the user's commands (they may name anything).
        hidden = {
            "admin_key",
            "log",
            "progress",
            "rotate_cmd",
            "outage_cmd",
            "kept_tokens",
            "setup_concurrency",
        }
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in hidden}
        data["scenarios"] = dict(self.effective_scenarios)
        data["generator_cpus"] = sorted(self.generator_cpus) if self.generator_cpus else None
        data["fleet"] = str(self.fleet) if self.fleet else None
        data["results"] = str(self.results) if self.results else None
        if self.target is None:
            data["token_ttl"] = self.effective_token_ttl
        elif self.loaded_profile.minted:
            data["token_ttl"] = self.token_ttl or self.loaded_profile.token.ttl_s
        data["leeway"] = self.effective_leeway
        data["endpoint"] = self.effective_endpoint
        data["stages"] = self.stages.text if self.stages else None
        if not data["warmup_s"]:
            del data["warmup_s"]
        for optional in ("rate_rps", "stages", "revocation_bound_s"):
            if data[optional] is None:
                del data[optional]  # a run without them keeps its parameters as they always were
        if self.target_workers == 1:
            del data["target_workers"]
        if self.storm != "revocation":
            del data["revoke_percent"]
        if self.transport == "http":
            del data["transport"]  # an HTTP run keeps its parameters as they always were
        if self.mqtt_port is None:
            del data["mqtt_port"]
        if self.mqtt_session == "held":
            del data["mqtt_session"]  # as runs recorded it before sessions per reading
        return cast(RunParameters, data)
