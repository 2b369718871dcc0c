"""How much load a service takes at a latency objective (``fleetbench capacity``).

Per algorithm, the open model's rate (``fleetbench run --rate``) is raised in steps, doubling from
the start rate, until a step breaks the objective: its corrected latency percentile (from each
request's intended send time, ``sim.account.open_model``) above the limit, its error share above the
budget, or a target that did not take the rate (sent short of asked by more than the load
account allows). The step is then narrowed by bisection between the highest rate that met the
objective and the lowest that broke it (the knee), a bounded number of times. Every step is one
real, short ``run_benchmark`` and is kept in the result.

When a step's account names the generator as the limit, its figures measure the generator, not
the target: the search stops there and the result is a floor (the target took at least that).

Over MQTT (``--transport mqtt``) the same search drives MQTT devices: by default each reading is
a session of its own (CONNECT with the token, PUBLISH at QoS 1, DISCONNECT), the CONNECT serving
the reading's slot, so the rate searched is CONNECTs per second and the objective is on the
CONNACK's corrected latency: how many JWT-authenticated MQTT connections the broker takes. With
sessions held (``mqtt_session`` "held") the rate is QoS 1 PUBLISHes per second, judged on the
PUBACK's corrected latency.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from sim.account.measure import (
    LATENCY_PERCENTILES,
    SETUP_SCENARIO,
    WARMUP_SCENARIO,
    PercentileName,
)
from sim.account.offered import MAX_SHORTFALL
from sim.artefacts.capacity_file import (
    CAPACITY_SCHEMA,
    CapacityAlgorithm,
    CapacityFile,
    CapacityParameters,
    CapacityStep,
    RateOf,
    SecondOpinion,
    StepPhase,
    StepVerdict,
)
from sim.artefacts.codec import write_artefact
from sim.artefacts.compare_file import CompareTarget
from sim.artefacts.summary_file import Summary
from sim.errors import CapacityError, Interrupted
from sim.processes import running_on, split_cores
from sim.profiles.mqtt_settings import MqttSessions, Transport
from sim.run.machine import cpu_model, versions
from sim.shape.scenarios import ENDPOINT_PATHS
from sim.sweep.compare import (
    EMBEDDED_ENDPOINT,
    AlgTarget,
    check_alg_run,
    check_token_algs,
    recorded_endpoint,
    split_per_alg,
)
from target.jose.algorithms import ALGORITHMS

# The path the search drives on our embedded target, as the second opinion calls it.
EMBEDDED_PATH = ENDPOINT_PATHS[EMBEDDED_ENDPOINT][1]

if TYPE_CHECKING:
    from sim.run.config import RunConfig

__all__ = [
    "CapacityConfig",
    "Objective",
    "capacity_lines",
    "default_algs",
    "parse_error_budget",
    "parse_slo",
    "rate_unit",
    "run_capacity",
    "search",
    "table_headers",
    "table_rows",
    "write_capacity_outputs",
]

PERCENTILES = tuple(LATENCY_PERCENTILES)
DEFAULT_ALGS = ("HS256", "ES256")  # on the embedded target
_SLO = re.compile(r"^(p\d+(?:[._]\d+)?)\s*=\s*([0-9]*\.?[0-9]+)\s*(us|µs|ms|s)$")
_UNIT_US = {"us": 1.0, "µs": 1.0, "ms": 1_000.0, "s": 1_000_000.0}
# Narrowing stops once the bracket is this narrow (relative to the rate that met): finer than a
# busy machine's step-to-step noise would be a false precision.
NARROW_ENOUGH = 0.05
KEPT_TOKENS = "tokens"  # beside a service's fleet file: its devices' tokens between steps
# The fleet's first tokens come in unjudged runs before the first step: at most this many, each
# device asking one request per LOGIN_PERIOD_S meanwhile (the open model needs some rate).
LOGIN_ROUNDS = 5
# A generator process's devices log in at most this many at once in those rounds: all at once, a
# server that shares its core among them (threads) finishes none before it has done nearly all,
# and a round's stop abandons every one (the server still works them through).
LOGIN_CONCURRENCY = 8
LOGIN_PERIOD_S = 10.0


@dataclass(frozen=True)
class Objective:
    """A latency objective on the corrected latency: ``percentile`` (``p99``) at most
    ``limit_us``; ``text`` as the user gave it."""

    percentile: str
    limit_us: float
    text: str


def parse_slo(text: str) -> Objective:
    """``p99=50ms`` (also ``p50``, ``p90``, ``p95``, ``p99.9``; ``us``, ``ms``, ``s``)."""
    found = _SLO.match(text.strip())
    if found is None:
        raise CapacityError(f"--slo {text!r}: say PERCENTILE=LIMIT, as p99=50ms or p99.9=200ms")
    name, number, unit = found.groups()
    percentile = name.replace(".", "_")
    if percentile not in PERCENTILES:
        raise CapacityError(
            f"--slo {text!r}: the percentile is one of {', '.join(PERCENTILES).replace('_', '.')}"
        )
    limit_us = float(number) * _UNIT_US[unit]
    if limit_us <= 0:
        raise CapacityError(f"--slo {text!r}: the limit must be above 0")
    return Objective(percentile, limit_us, text.strip())


def default_algs(
    target_values: list[str], profile_values: list[str], admin_key: str | None,
    env: Mapping[str, str],
) -> list[str]:  # fmt: skip
    """``--algs`` when not given: the embedded target's HS256 and ES256; with ``--target``, the
    algorithms named as ``ALG=URL`` and the one a bare URL's tokens carry (one token fetched
    through its profile): searching an algorithm the API does not use measures nothing."""
    if not target_values:
        return list(DEFAULT_ALGS)
    from sim.probe import ProbeConfig, ProbeError, token_alg_of
    from sim.profiles import ProfileError, load_profile

    algs = [alg for alg, _ in map(split_per_alg, target_values) if alg is not None]
    bare = [url for alg, url in map(split_per_alg, target_values) if alg is None]
    if bare:
        name = next((v for a, v in map(split_per_alg, profile_values) if a is None), "fleetbench")
        try:
            profile = load_profile(name, env)
            alg = token_alg_of(ProbeConfig(profile, bare[0], admin_key))
        except (ProbeError, ProfileError) as e:
            raise CapacityError(f"cannot tell the algorithm of {bare[0]}'s tokens: {e}") from e
        if alg not in ALGORITHMS:
            raise CapacityError(
                f"{bare[0]}'s tokens carry alg {alg[:16]!r}, not one fleetbench signs with:"
                " name the algorithm with --algs"
            )
        algs += [alg] if alg not in algs else []
    return algs


def parse_error_budget(text: str) -> float:
    """``0.1%`` or ``0.001``: the share of requests allowed not to be ``ok``."""
    body = text.strip()
    scale = 100.0 if body.endswith("%") else 1.0
    try:
        value = float(body.rstrip("%")) / scale
    except ValueError as e:
        raise CapacityError(f"--error-budget {text!r}: say a share, as 0.1% or 0.001") from e
    if not 0.0 <= value < 1.0:
        raise CapacityError(f"--error-budget {text!r}: between 0% and 100% (not 100%)")
    return value


@dataclass(frozen=True)
class CapacityConfig:
    """The search: algorithms, the objective and error budget, the load of each step, and
    ``targets`` per algorithm (none: a fresh embedded target per step, as compare)."""

    algs: list[str]
    objective: Objective
    error_budget: float = 0.001
    devices: int = 50
    step_duration_s: float = 10.0
    # Each step first runs this long unjudged: the fleet's first token calls (a costly login
    # each, on some APIs) would otherwise queue ahead of the first measured requests.
    warmup_s: float = 2.0
    start_rate_rps: float = 100.0
    raise_steps: int = 10  # at most this many doublings from the start rate
    narrow_steps: int = 4  # at most this many bisection steps
    interval_s: float = 60.0  # the real fleet's reporting interval: devices = rate x interval
    endpoint: str | None = None
    workers: int = 1
    # Over remote ``fleetbench worker --stay`` processes: each step is a ``run --master`` they
    # join (sim.run.distributed), the step's rate split by their shares of the fleet.
    master: bool = False
    bind: str = "127.0.0.1:5557"
    expect_workers: int = 0
    worker_wait_s: int = 60
    pin: bool = True
    # The cores the load generator runs on (--generator-cpus): a --target on this host shares
    # the machine, and unpinned the generator shares its cores too.
    generator_cpus: set[int] | None = None
    results: Path = Path("results")
    log: Callable[[str], None] = field(default=lambda message: None, repr=False)
    targets: Mapping[str, AlgTarget] = field(default_factory=dict)
    admin_key: str | None = field(default=None, repr=False)
    # At the knee on the embedded target: the independent client's word (see second_opinion).
    second_opinion: bool = True
    # "mqtt": MQTT devices (sim.sweep.compare.EndToEndLoad's two fields, the same meaning).
    transport: Transport = "http"
    mqtt_session: MqttSessions = "per-reading"

    @property
    def rate_of(self) -> RateOf:
        """What one unit of the searched rate is (capacity.json's ``rate_of``)."""
        if self.transport != "mqtt":
            return "requests"
        return "connects" if self.mqtt_session == "per-reading" else "publishes"

    def target(self, alg: str) -> AlgTarget:
        return self.targets.get(alg, AlgTarget())

    def run_config(
        self, alg: str, rate_rps: float, index: int, fleet: Path | None = None
    ) -> RunConfig:
        """Step ``index`` (from 1) of ``alg``'s search: an open-model verification run
        (``fleet``: the devices of every step against one service)."""
        from sim.run.config import RunConfig

        target = self.target(alg)
        mqtt = self.transport == "mqtt"
        return RunConfig(
            target=target.url,
            fleet=fleet,
            admin_key=self.admin_key if target.url else None,
            profile=target.profile,
            devices=self.devices,
            alg="secret",  # the device credential only matters for issuance
            token_alg=alg,
            scenarios={"verification": 1},
            endpoint=self.endpoint or (None if target.url or mqtt else EMBEDDED_ENDPOINT),
            transport=self.transport,
            mqtt_port=target.mqtt_port,
            mqtt_session=self.mqtt_session if mqtt else "held",
            rate_rps=rate_rps,
            duration_s=self.warmup_s + self.step_duration_s,
            warmup_s=self.warmup_s,
            workers=self.workers,
            master=self.master,
            bind=self.bind,
            expect_workers=self.expect_workers,
            worker_wait_s=self.worker_wait_s,
            # One service's steps share its fleet and the tokens its devices hold: a step logs
            # in only the devices whose token is gone, not the whole fleet again.
            kept_tokens=str(fleet.parent / KEPT_TOKENS) if fleet else None,
            results=self.results / f"{alg}-step{index:02d}-{rate_rps:g}rps",
            pin=self.pin,
            generator_cpus=self.generator_cpus,
            log=self.log,
        )

    def check(self) -> None:
        """Every step's run checked before any is measured: each is a one-line error."""
        if self.raise_steps < 1:
            raise CapacityError("--max-steps must be at least 1")
        if self.narrow_steps < 0:
            raise CapacityError("--narrow-steps must be 0 or more")
        if self.interval_s <= 0:
            raise CapacityError("--interval-s must be above 0")
        for alg in self.algs:
            check_alg_run(alg, self.run_config(alg, self.start_rate_rps, 1), CapacityError)

    def parameters(self) -> CapacityParameters:
        found: CapacityParameters = {
            "slo": self.objective.text,
            "percentile": self.objective.percentile,
            "limit_us": self.objective.limit_us,
            "error_budget": self.error_budget,
            "devices": self.devices,
            "step_duration_s": self.step_duration_s,
            "start_rate_rps": self.start_rate_rps,
            "raise_steps": self.raise_steps,
            "narrow_steps": self.narrow_steps,
            "interval_s": self.interval_s,
            "endpoint": recorded_endpoint(self.endpoint, self.transport, self.targets),
            "transport": self.transport,
            "rate_of": self.rate_of,
        }
        if self.transport == "mqtt":
            found["mqtt_session"] = self.mqtt_session
        return found


def judge(
    summary: Summary, objective: Objective, error_budget: float, phase: StepPhase
) -> CapacityStep:
    """One step's figures from its run's summary, and whether it met the objective."""
    account = summary.get("open_model")
    if account is None:
        raise CapacityError("a capacity step ran without the open model (no open_model section)")
    corrected, service = account["corrected_latency_us"], account["service_latency_us"]
    # The warm-up's requests were sent, not judged: its errors are the fleet's first seconds.
    judged = [r for r in summary["requests"] if r["scenario"] != WARMUP_SCENARIO]
    requests = sum(r["count"] for r in judged)
    good = sum(
        r["outcomes"].get("ok", 0) + r["outcomes"].get("rejected_as_expected", 0) for r in judged
    )
    errors = max(0, requests - good)
    error_ratio = errors / requests if requests else 1.0
    at_objective = cast(Mapping[str, float], corrected).get(objective.percentile)
    limit = account["limit"]
    # Readings acknowledged that the target does not hold (MQTT's PUBACK, HTTP's 202): the
    # exact account broke, and no rate at which it breaks is a capacity.
    lost = summary["telemetry"].get("lost", 0)
    verdict: StepVerdict = "met"
    # "both": the target was saturated too, so a break there is the target's as well: judged on
    # its figures (the line says the generator was busy); "generator" alone ends the search.
    if lost:
        verdict = "lost"  # first: whoever was the limit, the target broke the account
    elif limit == "generator":
        verdict = "generator"
    elif at_objective is None or requests == 0:
        verdict = "no_answers"
    elif error_ratio > error_budget:
        verdict = "errors"
    elif at_objective > objective.limit_us:
        verdict = "latency"
    elif _held_back(account["asked_requests"], account["sent_requests"], summary):
        verdict = "shortfall"  # requests never sent have no latency: the target did not take R
    met = verdict == "met" or (
        verdict == "generator"
        and at_objective is not None
        and at_objective <= objective.limit_us
        and error_ratio <= error_budget
        and not lost
    )
    step: CapacityStep = {
        "phase": phase,
        "rate_rps": account["rate_rps"],
        "sent_rps": account["sent_rps"],
        "shortfall": account["shortfall"],
        "objective_us": at_objective,
        "corrected_p50_us": corrected.get("p50"),
        "corrected_p99_us": corrected.get("p99"),
        "service_p99_us": service.get("p99"),
        "requests": requests,
        "errors": errors,
        "error_ratio": round(error_ratio, 6),
        "lost": lost,
        "limit": limit,
        "met": met,
        "verdict": verdict,
        "results": summary["run"].get("results"),
    }
    cluster = summary.get("cluster")
    if cluster is not None:
        step["workers"] = [
            {
                "id": w["id"],
                "host": w["host"],
                "devices": w["devices"],
                "sent": w.get("scheduled_sends", 0),
                "requests": w["requests"],
                "saturated": w["saturated"],
                "lagging": w.get("lagging", False),
            }
            for w in cluster["workers"]
        ]
    return step


def _held_back(asked: float, sent: int, summary: Summary) -> bool:
    """The fleet sent short of what it was asked by more than the load account allows, and by
    more than one request per device: each device may miss its last slot at the stop, which in
    a short step at a low rate is several per cent of the asked count on its own."""
    missing = asked - sent
    devices = max(1, summary["load"]["devices_ready"])
    return missing > MAX_SHORTFALL * asked and missing > devices


def search(
    measure: Callable[[float, StepPhase], CapacityStep],
    start_rate_rps: float,
    raise_steps: int,
    narrow_steps: int,
) -> list[CapacityStep]:
    """The steps of one search, in the order run: doubling from the start rate while the
    objective holds, then bisection between the highest rate that met it and the lowest that
    broke it. A step the generator limited ends the search."""
    steps: list[CapacityStep] = []
    met_rate: float | None = None
    broke_rate: float | None = None
    rate = start_rate_rps
    for _ in range(raise_steps):
        step = measure(rate, "raise")
        steps.append(step)
        if step["verdict"] == "generator":
            return steps
        if not step["met"]:
            broke_rate = rate
            break
        met_rate = rate
        rate *= 2
    if met_rate is None or broke_rate is None:
        return steps  # the start rate broke it, or the doublings ran out while it held
    for _ in range(narrow_steps):
        if (broke_rate - met_rate) / met_rate <= NARROW_ENOUGH:
            break
        rate = (met_rate + broke_rate) / 2
        step = measure(rate, "narrow")
        steps.append(step)
        if step["verdict"] == "generator":
            return steps
        if step["met"]:
            met_rate = rate
        else:
            broke_rate = rate
    return steps


def outcome(steps: list[CapacityStep], interval_s: float) -> CapacityAlgorithm:
    """One algorithm's result from its steps: the highest rate that met, the knee above it."""
    met = [s for s in steps if s["met"]]
    best = max(met, key=lambda s: s["rate_rps"]) if met else None
    max_rate = best["rate_rps"] if best else None
    above = [s["rate_rps"] for s in steps if not s["met"] and s["verdict"] != "generator"]
    above = [r for r in above if max_rate is None or r > max_rate]
    generator = any(s["verdict"] == "generator" for s in steps)
    knee = min(above) if above else None
    entry: CapacityAlgorithm = {
        "max_rate": max_rate,
        "p99_us_at_max": best["corrected_p99_us"] if best else None,
        "objective_us_at_max": best["objective_us"] if best else None,
        "knee_rps": knee,
        "devices_at_interval": int(max_rate * interval_s) if max_rate is not None else None,
        "generator_limited": generator,
        "floor": generator or (best is not None and knee is None),
        "steps": steps,
        "second_opinion": None,
    }
    return entry


def _measure(
    config: CapacityConfig, alg: str, fleet: Path | None
) -> Callable[[float, StepPhase], CapacityStep]:
    from sim.run.runner import run_benchmark

    count = 0

    def measure(rate_rps: float, phase: StepPhase) -> CapacityStep:
        nonlocal count
        count += 1
        rate_rps = round(rate_rps, 1)
        config.log(f"{alg}: step {count} ({phase}) at {rate_rps:g} {_UNITS[config.rate_of]}")
        summary = run_benchmark(config.run_config(alg, rate_rps, count, fleet))
        if summary["run"]["interrupted"]:
            raise Interrupted("interrupted")
        # A step of another algorithm's tokens would report a figure for one the API never used.
        check_token_algs(summary, alg, config.target(alg).url, CapacityError)
        step = judge(summary, config.objective, config.error_budget, phase)
        config.log(f"{alg}: {step_line(step, config.objective, _UNITS[config.rate_of])}")
        for worker in step.get("workers", []):
            if worker["saturated"] or worker["lagging"]:
                states = {"saturated": worker["saturated"], "lagging": worker["lagging"]}
                why = " and ".join(name for name, on in states.items() if on)
                config.log(
                    f"warning: {alg}: worker {worker['id']} ({worker['host']}, {worker['devices']}"
                    f" devices) was {why}: its devices' latency measures the worker (add one)"
                )
        longest_s = setup_s(summary)
        if not step["met"] and longest_s > config.warmup_s:
            config.log(
                f"warning: {alg}: the fleet's first tokens took up to {longest_s:,.1f} s, longer"
                f" than the {config.warmup_s:g} s warm-up: the step judged its own logins"
                " (raise --warmup)"
            )
        return step

    return measure


def setup_s(summary: Summary) -> float:
    """The longest a device waited for its first token in a step's run (0: none asked)."""
    rows = [r for r in summary["requests"] if r["scenario"] == SETUP_SCENARIO]
    return max((float(r["latency_us"].get("max") or 0) / 1e6 for r in rows), default=0.0)


def step_line(step: CapacityStep, objective: Objective, unit: str = "req/s") -> str:
    value = step["objective_us"]
    shown = "-" if value is None else f"{value / 1000:,.1f} ms"
    return (
        f"{_rate(step['rate_rps'])} {unit} asked, {step['sent_rps']:,.0f} sent:"
        f" {objective.percentile.replace('_', '.')} corrected {shown},"
        f" errors {step['error_ratio'] * 100:.2f} % -> {step['verdict']}"
    )


def second_opinion(config: CapacityConfig, alg: str, rate_rps: float) -> SecondOpinion:
    """The independent open-model client (:mod:`sim.run.openprobe`) at ``rate_rps`` on a fresh
    embedded target, pinned as the steps are, with as many connections as the steps had devices.

    A search step measures what Locust saw, and Locust's own work adds to the latency it reports
    (an HS256 search on this machine broke 50 ms at 2,500 req/s where this client saw 12 ms):
    the load account can only call the generator the limit when its CPU or its send schedule
    shows it, not when its answers merely wait their turn in it."""
    from sim.run.embedded import EmbeddedTarget
    from sim.run.openprobe import probe

    target_cpus, client_cpus = split_cores(config.pin)
    percentile = LATENCY_PERCENTILES[cast(PercentileName, config.objective.percentile)]
    config.log(f"{alg}: second opinion at {_rate(rate_rps)} req/s (asyncio client, no Locust)")
    with EmbeddedTarget(alg, cpus=target_cpus) as target:
        token = target.device_token("capacity-second-opinion", secrets.token_urlsafe(32))
        with running_on(client_cpus):
            found = probe(
                target.port, EMBEDDED_PATH, token, rate_rps, config.devices,
                config.step_duration_s, percentile=percentile,
            )  # fmt: skip
    met = found.at_percentile_us <= config.objective.limit_us and found.other == 0
    return {
        "rate_rps": rate_rps,
        "connections": config.devices,
        "duration_s": config.step_duration_s,
        "sent": found.sent,
        "ok": found.ok,
        "objective_us": found.at_percentile_us,
        "corrected_p99_us": found.corrected_p99_us,
        "service_p99_us": found.service_p99_us,
        "broken_by": "generator" if met else "target",
    }


def _asks_second_opinion(config: CapacityConfig, alg: str, entry: CapacityAlgorithm) -> bool:
    """On our embedded target's data endpoint, where a broken step is Locust's word alone."""
    return (
        config.second_opinion
        and config.transport == "http"  # the asyncio client speaks HTTP only
        and config.target(alg).url is None
        and (config.endpoint or EMBEDDED_ENDPOINT) == EMBEDDED_ENDPOINT
        and entry["knee_rps"] is not None
        and not entry["generator_limited"]
        and any(
            s["verdict"] == "latency" for s in entry["steps"] if s["rate_rps"] == entry["knee_rps"]
        )
    )


def _fleet_of(config: CapacityConfig, alg: str, scratch: Path) -> Path | None:
    """One fleet per service, made and registered once: a step with new devices of the same
    ids would be refused by an API that keeps the first step's credentials."""
    from sim.run.runner import fleet_file

    if config.target(alg).url is None:
        return None  # a fresh embedded target per step
    for other in config.algs:  # algorithms that share a service share its fleet
        if config.target(other) == config.target(alg) and (scratch / other).exists():
            return scratch / other / "fleet.json"
    folder = scratch / alg
    folder.mkdir()
    (folder / KEPT_TOKENS).mkdir(mode=0o700)  # bearer tokens: the user's only
    return fleet_file(config.run_config(alg, config.start_rate_rps, 1), folder)


def _log_in(config: CapacityConfig, alg: str, fleet: Path) -> int:
    """Before the first step on a service's own fleet: unjudged runs at a token rate (each device
    one request per ``LOGIN_PERIOD_S``) until every device holds a token kept for the steps, at
    most ``LOGIN_ROUNDS``, each twice as long as the last, with at most ``LOGIN_CONCURRENCY``
    logins at once per generator process. A device still logging in when a round stops tries
    again in the next. A login burst (a password hash per call on some APIs) then falls in no
    step; the number of rounds."""
    from sim.device.kept_tokens import kept_devices
    from sim.run.runner import run_benchmark

    folder = str(fleet.parent / KEPT_TOKENS)
    started = time.monotonic()
    rounds = 0
    while kept_devices(folder) < config.devices and rounds < LOGIN_ROUNDS:
        rounds += 1
        config.log(f"{alg}: the fleet's tokens, round {rounds} (not judged)")
        run = config.run_config(alg, config.devices / LOGIN_PERIOD_S, 0, fleet)
        run = dataclasses.replace(
            run,
            duration_s=run.duration_s * 2 ** (rounds - 1),
            setup_concurrency=LOGIN_CONCURRENCY,
            results=config.results / f"{alg}-logins{rounds}",
        )
        if run_benchmark(run)["run"]["interrupted"]:
            raise Interrupted("interrupted")
    held = kept_devices(folder)
    config.log(
        f"{alg}: {held} of {config.devices} devices hold a token"
        f" ({rounds} unjudged rounds, {time.monotonic() - started:,.0f} s)"
    )
    return rounds


def _keeps_tokens_here(config: CapacityConfig) -> bool:
    """Every generator process writes to this host's folder: not over remote hosts."""
    if not config.master:
        return True
    host = config.bind.rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "::1", "localhost")


def _search_alg(config: CapacityConfig, alg: str, fleet: Path | None) -> CapacityAlgorithm:
    rounds = _log_in(config, alg, fleet) if fleet and _keeps_tokens_here(config) else 0
    steps = search(
        _measure(config, alg, fleet),
        config.start_rate_rps,
        config.raise_steps,
        config.narrow_steps,
    )
    entry = outcome(steps, config.interval_s)
    if fleet is not None:
        entry["login_rounds"] = rounds
    if _asks_second_opinion(config, alg, entry):
        opinion = second_opinion(config, alg, cast(float, entry["knee_rps"]))
        entry["second_opinion"] = opinion
        if opinion["broken_by"] == "generator":
            entry["generator_limited"] = entry["floor"] = True
    return entry


@contextlib.contextmanager
def _generators(config: CapacityConfig) -> Iterator[CapacityConfig]:
    """The search's config as its steps run it. ``--workers N`` on this host: N ``fleetbench
    worker --stay`` processes on the load cores, joining each step's master on loopback, so each
    step's account names every worker (its sends, its requests, a saturated or lagging one) as
    over remote workers, rather than Locust's own worker processes, which report no share."""
    if config.workers <= 1 or config.master:
        yield config
        return
    from sim.run.worker import local_workers

    load_cpus = config.generator_cpus or split_cores(config.pin)[1]
    with local_workers(config.workers, load_cpus, config.results / "workers") as bind:
        yield dataclasses.replace(
            config, master=True, bind=bind, expect_workers=config.workers, workers=1
        )


def run_capacity(config: CapacityConfig) -> CapacityFile:
    """Search every algorithm in turn; the capacity.json document."""
    config.check()
    started = time.time()
    algorithms: dict[str, CapacityAlgorithm] = {}
    with (
        tempfile.TemporaryDirectory(prefix="fleetbench-capacity-") as scratch,
        _generators(config) as steps,
    ):
        for alg in config.algs:
            algorithms[alg] = _search_alg(steps, alg, _fleet_of(config, alg, Path(scratch)))
    targets: dict[str, CompareTarget] = {}
    for alg in config.algs:
        target = config.target(alg)
        targets[alg] = {
            "url": target.url,
            "embedded": target.url is None,
            "profile": target.profile,
        }
        if target.mqtt_port is not None:
            targets[alg]["mqtt_port"] = target.mqtt_port
    return {
        "schema": CAPACITY_SCHEMA,
        "machine": {"model": cpu_model(), "count": os.cpu_count()},
        "versions": versions(),
        "parameters": config.parameters(),
        "targets": targets,
        "started_at": started,
        "duration_s": time.time() - started,
        "algorithms": algorithms,
    }


def _rate(value: float | None) -> str:
    """A rate as people read it: ``1,600``, and ``87.5`` where bisection left a half."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 1000 or float(value).is_integer() else f"{value:,.1f}"


def table_rows(result: CapacityFile) -> list[tuple[str, ...]]:
    """Per algorithm: max rate, the objective's percentile and p99 there, the knee, devices."""
    interval = result["parameters"]["interval_s"]
    rows: list[tuple[str, ...]] = []
    for alg, entry in result["algorithms"].items():
        at_max = entry["objective_us_at_max"]
        p99 = entry["p99_us_at_max"]
        max_rate = _rate(entry["max_rate"])
        if entry["floor"] and entry["max_rate"] is not None:
            max_rate = f">= {max_rate}"
        rows.append(
            (
                alg,
                max_rate,
                "-" if at_max is None else f"{at_max / 1000:,.2f}",
                "-" if p99 is None else f"{p99 / 1000:,.2f}",
                _rate(entry["knee_rps"]),
                _rate(entry["devices_at_interval"]) + f" @ {interval:g} s",
                str(len(entry["steps"])),
            )
        )
    return rows


TABLE_HEADERS = ("alg", "max req/s", "objective ms", "p99 ms", "knee req/s", "devices", "steps")
# The searched rate's unit by capacity.json's rate_of (absent in files from before MQTT: requests).
_UNITS: dict[RateOf, str] = {
    "requests": "req/s",
    "connects": "CONNECTs/s",
    "publishes": "PUBLISHes/s",
}


def rate_unit(result: CapacityFile) -> str:
    """``req/s``, or over MQTT ``CONNECTs/s`` or ``PUBLISHes/s``: what the search's rate counts."""
    return _UNITS[result["parameters"].get("rate_of", "requests")]


def table_headers(result: CapacityFile) -> tuple[str, ...]:
    unit = rate_unit(result)
    return tuple(h.replace("req/s", unit) for h in TABLE_HEADERS)


def capacity_lines(result: CapacityFile) -> list[str]:
    """One plain sentence per algorithm, and the generator warning where it applies."""
    slo = result["parameters"]["slo"]
    budget = result["parameters"]["error_budget"] * 100
    interval = result["parameters"]["interval_s"]
    percentile_name = result["parameters"]["percentile"].replace("_", ".")
    unit = rate_unit(result)
    lines = []
    for alg, entry in result["algorithms"].items():
        if entry["max_rate"] is None:
            first = entry["steps"][0] if entry["steps"] else None
            why = first["verdict"] if first else "no step ran"
            lines.append(
                f"{alg}: even the start rate broke {slo} (error budget {budget:g} %): {why}"
            )
        else:
            floor = "at least " if entry["floor"] else ""
            lines.append(
                f"{alg}: {floor}{_rate(entry['max_rate'])} {unit} met {slo} (error budget"
                f" {budget:g} %): {entry['devices_at_interval']:,} devices reporting every"
                f" {interval:g} s"
                + (f"; broke at {_rate(entry['knee_rps'])} {unit}" if entry["knee_rps"] else "")
            )
        both = [s["rate_rps"] for s in entry["steps"] if s["limit"] == "both"]
        if both:
            lines.append(
                f"{alg}: at {_rate(min(both))} {unit} the generator was saturated as well as the"
                " target: the figures there are bounded by both"
            )
        opinion = entry["second_opinion"]
        if opinion is not None:
            verdict = (
                "met it there: the search's break was the generator's, not the target's"
                if opinion["broken_by"] == "generator"
                else "broke it there too: the target's tail, not the generator's"
            )
            lines.append(
                f"{alg}: second opinion at {_rate(opinion['rate_rps'])} req/s (asyncio client, no"
                f" Locust): {percentile_name} corrected {opinion['objective_us'] / 1000:,.1f} ms;"
                f" it {verdict}"
            )
        if entry["generator_limited"]:
            lines.append(
                f"warning: {alg}: the load generator, not the target, was the limit: the figure"
                " is a floor set by the generator, not the target's capacity (try --workers)"
            )
        elif entry["max_rate"] is not None and entry["knee_rps"] is None:
            lines.append(
                f"{alg}: the objective still held at the last rate tried: a floor (raise"
                " --max-steps or --start-rate)"
            )
    return lines


def found_for_all(result: CapacityFile) -> bool:
    return all(e["max_rate"] is not None for e in result["algorithms"].values())


def write_capacity_outputs(result: CapacityFile, folder: Path) -> dict[str, Path]:
    """capacity.json and report.html (latency against offered rate per algorithm)."""
    from sim.output.report import write_capacity_report

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "capacity.json", "html": folder / "report.html"}
    write_artefact(result, paths["json"])
    write_capacity_report(result, paths["html"], table_rows(result), capacity_lines(result))
    return paths
