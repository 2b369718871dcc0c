"""What the Locust side of a run needs to know, from one JSON file or ``FLEETBENCH_*`` variables.

``fleetbench run`` writes the file and points ``FLEETBENCH_CONFIG`` at it. Standalone
``locust -f locustfile.py --host URL`` reads ``FLEETBENCH_FLEET`` (required),
``FLEETBENCH_SCENARIO``, ``FLEETBENCH_ENDPOINT``, ``FLEETBENCH_INTERVAL``,
``FLEETBENCH_REFRESH``, ``FLEETBENCH_BAD_RATIO``, ``FLEETBENCH_LEEWAY``, ``FLEETBENCH_RAW``,
``FLEETBENCH_PROFILE``, ``FLEETBENCH_RATE`` (the open model's fleet-wide requests per second)
and ``FLEETBENCH_STAGES`` (as ``--stages``).
No secret is ever in this configuration: the fleet file holds them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from sim.errors import ConfigError
from sim.profiles import Profile, load_profile
from sim.profiles.mqtt_settings import MqttSettings
from sim.shape.scenarios import REFRESH_MODES, RefreshMode, Scenario, parse_scenarios
from sim.shape.stages import Stages, parse_stages

__all__ = ["REFUSED_EXIT", "REFUSED_FILE", "REMOTE_ENV", "SimConfig", "choose_endpoint"]

REMOTE_ENV = "FLEETBENCH_REMOTE"  # "1": the Locust process is a remote worker (fleetbench worker)
REFUSED_EXIT = 3  # a remote worker's Locust, refused by the master (it printed why)
REFUSED_FILE = "refused.json"  # beside the raw account: the peers the master refused so far


def choose_endpoint(profile: Profile, name: str | None, option: str = "--endpoint") -> str | None:
    """The endpoint a run calls: ``name`` if the profile has it (else one line listing the
    profile's), or the profile's ``default_endpoint``; None: all of them, by weight."""
    if name is None:
        return profile.default_endpoint
    if profile.endpoint(name) is None:
        names = ", ".join(profile.endpoint_names())
        raise ConfigError(f"{option} {name!r}: profile {profile.name} has the endpoints {names}")
    return name


@dataclass(frozen=True)
class SimConfig:
    fleet: str
    scenarios: dict[Scenario, int] = field(default_factory=lambda: {"verification": 1})
    # One of the profile's [[endpoints]] by name; None: all of them, by weight.
    endpoint: str | None = "telemetry"
    interval_s: float = 1.0  # pacing of each device's requests
    refresh: RefreshMode = "on-expiry"  # how the expiry scenario renews its token
    bad_ratio: float = 0.5  # share of rejection-scenario requests that carry a forged credential
    leeway_s: float = 10.0  # the target's clock leeway: an expired token is accepted that long
    issuer: str | None = None  # the ``aud`` of device assertions; discovered if None
    raw: str | None = None  # where the master writes the raw measurements at the end
    claim_file: str | None = None  # shared counter that hands each user its own device
    seq_base: dict[str, int] = field(default_factory=dict)  # last seq the target holds per device
    progress_file: str | None = None  # where the master writes the live figures every second
    profile: str = "fleetbench"  # the target profile, by name or path (secrets: ${VAR} only)
    # The open model (sim.shape.schedule): fleet-wide requests per second, each device sending
    # rate / fleet size on its own schedule; None: the closed model, paced by interval_s.
    rate_rps: float | None = None
    # Load stages (sim.shape.stages), as given to --stages: devices reporting, or rates; None: none.
    stages: str | None = None
    distributed: bool = False  # the master deals the fleet to remote workers (sim.device.cluster)
    # Each device waits a random 0..start_spread_s before its first request, so that many
    # generators starting together do not all ask the token endpoint in the same instant.
    start_spread_s: float = 0.0
    storm: str | None = None  # a storm scenario (sim.account.storms): "expiry-storm", ...
    backoff: bool = False  # jittered exponential backoff on refused token calls, 429 and 503
    # The first warmup_s of the run (by each request's intended send time): requests go out as
    # usual but are recorded under the "warmup" scenario, outside the corrected latency, so a
    # first-token burst is not judged (capacity's steps).
    warmup_s: float = 0.0
    minted_ttl_s: int | None = None  # --token-ttl with a minted profile: instead of its ttl_s
    # --scenario revocation (sim.account.revocation): the devices the run revokes mid-run, the
    # journal of the revoke calls (sent and answered, Unix s) and the API's stated bound.
    revoked_devices: list[str] = field(default_factory=list)
    revocation_journal: str | None = None
    revocation_bound_s: float | None = None  # None: no revocation in this run (or its default)
    # The master adds the live account to the progress file (a metrics endpoint reads it).
    live_account: bool = False
    # The whole fleet's size on a remote worker, which holds only its shard (0: the fleet file's):
    # the open model's per-device rate is the fleet-wide rate over it.
    fleet_size: int = 0
    # A private folder of tokens kept from an earlier run of this fleet on this service
    # (sim.device.kept_tokens): devices start with them and write theirs back at the stop.
    kept_tokens: str | None = None
    # At most this many of a process's devices fetch their first token at once (0: no bound):
    # capacity's login rounds, so that a round's stop abandons few logins on a slow server.
    setup_concurrency: int = 0
    # How the devices send their readings: "http" (the profile's endpoints) or "mqtt" (one
    # session per device, with the token as its CONNECT password), and then the broker's
    # settings (MqttSettings.to_dict: plain JSON, to cross processes as it is).
    transport: str = "http"
    mqtt: dict[str, Any] | None = None
    mqtt_session: str = "held"  # or "per-reading" (sim.profiles.mqtt_settings.MqttSessions)

    @cached_property
    def mqtt_settings(self) -> MqttSettings:
        """The broker's settings, read once in this process (our contract's without any)."""
        return MqttSettings.from_dict(self.mqtt or {})

    @cached_property
    def parsed_stages(self) -> Stages | None:
        """The stages' text, parsed once in this process (it crossed into Locust as text)."""
        return parse_stages(self.stages) if self.stages else None

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def read(cls, path: Path) -> SimConfig:
        data: dict[str, Any] = json.loads(path.read_text())
        return cls(**data)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SimConfig:
        env = dict(os.environ) if env is None else env
        if env.get("FLEETBENCH_CONFIG"):
            return cls.read(Path(env["FLEETBENCH_CONFIG"]))
        fleet = env.get("FLEETBENCH_FLEET")
        if not fleet:
            raise ConfigError(
                "set FLEETBENCH_FLEET to a fleet file (fleetbench provision makes one)"
            )
        refresh = env.get("FLEETBENCH_REFRESH", "on-expiry")
        if refresh not in REFRESH_MODES:
            raise ConfigError("FLEETBENCH_REFRESH has an unknown value")
        profile_name = env.get("FLEETBENCH_PROFILE", "fleetbench")
        endpoint = choose_endpoint(
            load_profile(profile_name, env), env.get("FLEETBENCH_ENDPOINT"), "FLEETBENCH_ENDPOINT"
        )
        return cls(
            fleet=fleet,
            scenarios=parse_scenarios(env.get("FLEETBENCH_SCENARIO", "verification")),
            endpoint=endpoint,  # checked above
            interval_s=float(env.get("FLEETBENCH_INTERVAL", "1.0")),
            refresh=refresh,  # checked above
            bad_ratio=float(env.get("FLEETBENCH_BAD_RATIO", "0.5")),
            leeway_s=float(env.get("FLEETBENCH_LEEWAY", "10")),
            issuer=env.get("FLEETBENCH_ISSUER"),
            raw=env.get("FLEETBENCH_RAW"),
            profile=profile_name,
            rate_rps=float(env["FLEETBENCH_RATE"]) if env.get("FLEETBENCH_RATE") else None,
            stages=env.get("FLEETBENCH_STAGES") or None,
        )
