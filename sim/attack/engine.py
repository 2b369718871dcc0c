"""The attack as a function: the corpus against one target, or against our own per algorithm.

The attack uses only what an outside attacker has. It registers three devices of its own through
the admin API (``attack-*``: one to forge from, one whose path it trespasses on, one it revokes),
takes genuine tokens from the token endpoint, reads the public keys the target publishes, and
forges from those (:mod:`sim.corpus`). Traffic goes to the target URL and to one loopback listener
the attack opens itself (:mod:`sim.attack.listener`). Every verdict other than ``refused``,
``mismatch``, ``skipped`` and ``finding`` fails the run (:mod:`sim.attack.verdicts`), as do a
weak HMAC secret and a target that no longer serves a valid device after the corpus.

Through a profile other than ``fleetbench`` the attack plays by that profile's contract instead
(:mod:`sim.attack.profiled`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sim.artefacts.attack_file import ATTACK_SCHEMA, AttackFile
from sim.artefacts.codec import write_artefact
from sim.attack import mqtt_cases
from sim.attack.broker import BrokerAddress
from sim.attack.cases import run_case, run_token_case, secret_strength
from sim.attack.device_jwt import DeviceJwtContext, device_jwt_cases
from sim.attack.listener import listening
from sim.attack.mqtt_cases import MqttContext
from sim.attack.profiled import attack_profile
from sim.attack.session import (
    AttackSession,
    issuer_of,
    public_key_for,
    token_alg,
    token_claim,
)
from sim.attack.topic_acl import acl_cases
from sim.attack.verdicts import AttackReport, CaseResult
from sim.corpus import CASES, TOKEN_CASES, ForgeContext, TokenContext
from sim.errors import ConfigError, TargetUnusable
from sim.fleet.admin import register_fleet
from sim.fleet.client import TargetClient
from sim.fleet.model import Device, make_fleet
from sim.output.report import write_attack_report
from sim.profiles import Profile
from sim.profiles.model import Mqtt
from sim.profiles.mqtt import broker_host
from sim.run.embedded import EmbeddedTarget
from target.jose.vocabulary import ALG_NAMES

__all__ = [
    "ATTACK_SCHEMA",
    "DEFAULT_ALGS",
    "AttackConfig",
    "AttackReport",
    "attack_json",
    "attack_target",
    "run_attack",
    "write_attack_outputs",
]

DEFAULT_ALGS = ("HS256", "ES256", "EdDSA")
_EMBEDDED_MQTT_LEEWAY_S = 1


def _still_serving(session: AttackSession, token: str, device: Device, other: Device) -> bool:
    """A valid device's token still works, and another device still gets a working token."""
    status, _ = session.resource("config", device.id, f"Bearer {token}")
    if status != 200:
        return False
    try:
        fresh = session.access_token(other)
    except TargetUnusable:
        return False
    return session.resource("config", other.id, f"Bearer {fresh}")[0] == 200


def attack_target(
    url: str,
    admin_key: str,
    *,
    embedded: bool = False,
    on_result: Callable[[CaseResult], None] = lambda result: None,
    broker: BrokerAddress | None = None,
    mqtt: Mqtt | None = None,
    leeway_s: float = 10.0,
) -> AttackReport:
    """Every corpus case against the target at ``url``; the attack devices are deleted after.
    With ``broker``: the target issues the tokens, and the cases go to its MQTT broker, played
    by the ``mqtt`` rules (:mod:`sim.attack.mqtt_cases`); ``leeway_s``: how long past a
    token's exp its broker may keep a session."""
    started = time.monotonic()
    client = TargetClient(url, admin_key)
    session = AttackSession(url)
    fleet = make_fleet(3, "ES256", prefix="attack")
    device, other, revoked = fleet.devices
    try:
        client.check_alive()
        register_fleet(client, fleet)
        token = session.access_token(device)
        alg = token_alg(token)
        report = AttackReport(url, embedded, alg, broker=str(broker) if broker else "")
        scoped = session.access_token(device, scope="config:read")
        revoked_token = session.access_token(revoked)
        response = client.request("POST", f"/admin/devices/{revoked.id}/revoke", admin=True)
        if response.status_code != 200:
            raise TargetUnusable(f"revoking an attack device answered {response.status_code}")
        public_key = public_key_for(client, token, device)
        issuer = issuer_of(client)

        def record(result: CaseResult) -> None:
            report.results.append(result)
            on_result(result)

        with listening(alg) as listener:
            ctx = ForgeContext(
                token, alg, device.id, other.id, public_key=public_key,
                listener_url=listener.url, revoked_token=revoked_token,
                revoked_device_id=revoked.id, scoped_token=scoped,
            )  # fmt: skip
            if broker is None:
                for case in CASES:
                    record(run_case(session, case, ctx, listener))
                token_ctx = TokenContext(issuer, device, other, revoked, token)
                for token_case in TOKEN_CASES:
                    record(run_token_case(session, token_case, token_ctx))
            else:
                other_token = session.access_token(other)
                mqtt_ctx = MqttContext(
                    broker, mqtt or Mqtt(), device.id, token, other.id, other_token
                )
                mqtt_cases.play(mqtt_ctx, ctx, listener, record)
                acl_cases(mqtt_ctx, record)
                audience = token_claim(token, "aud")
                jwt_ctx = DeviceJwtContext(device, other, revoked, audience, issuer, leeway_s)
                device_jwt_cases(mqtt_ctx, jwt_ctx, record)
            if alg.startswith("HS"):
                record(secret_strength(token, alg))
            time.sleep(0.2)  # a fetch the target made in the background still counts
            report.listener_requests = listener.count()
        if broker is None:
            report.still_serving = _still_serving(session, token, device, other)
        else:
            report.still_serving = mqtt_cases.still_serving(mqtt_ctx, session.access_token(device))
    finally:
        for attacker in fleet.devices:
            with suppress(TargetUnusable):
                client.request("DELETE", f"/admin/devices/{attacker.id}", admin=True)
        session.close()
        client.close()
    report.elapsed_s = time.monotonic() - started
    return report


@dataclass(frozen=True)
class AttackConfig:
    """``target`` None: one embedded target per algorithm of ``algs``. ``profile`` None (or
    ``fleetbench``): our own contract; another profile needs ``target``."""

    target: str | None = None
    admin_key: str | None = field(default=None, repr=False)
    algs: tuple[str, ...] = DEFAULT_ALGS
    strict: bool = False
    on_result: Callable[[CaseResult], None] = field(default=lambda result: None, repr=False)
    log: Callable[[str], None] = field(default=lambda message: None, repr=False)
    profile: Profile | None = None
    transport: Literal["http", "mqtt"] = "http"
    mqtt_host: str | None = None  # the command line's: the only way to another host
    mqtt_port: int | None = None

    @property
    def mqtt(self) -> Mqtt:
        return self.profile.mqtt if self.profile is not None else Mqtt()

    def broker(self, target_url: str, embedded_port: int | None = None) -> BrokerAddress:
        """Where the MQTT cases go: the embedded broker, or the profile's (``--mqtt-host``
        and ``--mqtt-port`` first)."""
        mqtt = self.mqtt
        if embedded_port is not None:
            host, port = "127.0.0.1", embedded_port
        else:
            host = broker_host(mqtt, target_url, self.mqtt_host)
            port = self.mqtt_port or mqtt.port
        return BrokerAddress(
            host, port, mqtt.protocol, mqtt.tls, mqtt.ca_file, mqtt.connect_timeout_s
        )

    @property
    def foreign(self) -> Profile | None:
        """The profile when it is not our own contract."""
        return None if self.profile is None or self.profile.name == "fleetbench" else self.profile

    def check(self) -> None:
        unknown = [alg for alg in self.algs if alg not in ALG_NAMES]
        if unknown or not self.algs:
            raise ConfigError(f"--algs: unknown algorithm {','.join(unknown) or '(none)'}")
        foreign = self.foreign
        if foreign is not None and self.target is None:
            raise ConfigError(
                f"--profile {foreign.name} needs --target URL (only our own target is embedded)"
            )
        if self.target is not None:
            needs_key = foreign is None or foreign.provision.via == "admin"
            if needs_key and not self.admin_key:
                raise ConfigError("--target needs --admin-key (or FLEETBENCH_ADMIN_KEY)")
            if not self.target.startswith(("http://", "https://")):
                raise ConfigError("--target must be an http:// or https:// URL")
        if self.transport == "http" and (self.mqtt_host or self.mqtt_port):
            raise ConfigError("--mqtt-host and --mqtt-port need --transport mqtt")
        if self.transport == "mqtt" and self.target is None and (self.mqtt_host or self.mqtt_port):
            raise ConfigError(
                "--mqtt-host and --mqtt-port need --target (the embedded broker is ours)"
            )
        if self.mqtt_port is not None and not 0 < self.mqtt_port < 65536:
            raise ConfigError("--mqtt-port must be 1 to 65535")
        if self.transport == "mqtt" and self.target is not None:
            self.broker(self.target)  # a profile's broker on another host: one line, now


def run_attack(config: AttackConfig) -> list[AttackReport]:
    """The corpus against ``config.target``, or against an embedded target per algorithm."""
    config.check()
    foreign = config.foreign
    mqtt = config.transport == "mqtt"
    target_url = config.target
    if target_url is not None:
        broker = config.broker(target_url) if mqtt else None
        where = f"{target_url}{f' (MQTT: {broker})' if broker else ''}"
        if foreign is not None:
            config.log(f"attacking {where} through profile {foreign.name}")
            return [
                attack_profile(
                    foreign, target_url, config.admin_key, on_result=config.on_result,
                    broker=broker,
                )
            ]  # fmt: skip
        assert config.admin_key is not None  # checked above
        config.log(f"attacking {where}")
        leeway_s = config.profile.leeway_s if config.profile is not None else 10.0
        return [
            attack_target(
                target_url, config.admin_key, on_result=config.on_result, broker=broker,
                mqtt=config.mqtt, leeway_s=leeway_s,
            )
        ]  # fmt: skip
    reports = []
    for alg in config.algs:
        config.log(f"starting the embedded {alg} target{' and its MQTT broker' if mqtt else ''}")
        # A short leeway: session_outlives_token waits it out.
        leeway = _EMBEDDED_MQTT_LEEWAY_S if mqtt else None
        with EmbeddedTarget(alg, mqtt=mqtt, leeway=leeway) as target:
            broker = config.broker(target.url, target.mqtt_port) if mqtt else None
            reports.append(
                attack_target(
                    target.url, target.admin_key, embedded=True, on_result=config.on_result,
                    broker=broker, mqtt=config.mqtt, leeway_s=leeway or 0,
                )
            )  # fmt: skip
    return reports


def attack_json(reports: list[AttackReport], strict: bool) -> AttackFile:
    """The ``attack.json`` document."""
    return {
        "schema": ATTACK_SCHEMA,
        "created_at": time.time(),
        "strict": strict,
        "passed": all(not report.failures(strict) for report in reports),
        "runs": [report.to_json(strict) for report in reports],
    }


def write_attack_outputs(body: AttackFile, folder: Path) -> None:
    """``attack.json`` and ``report.html`` in ``folder``."""
    write_artefact(body, folder / "attack.json")
    write_attack_report(body, folder / "report.html")
