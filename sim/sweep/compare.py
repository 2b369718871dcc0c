"""Signing algorithms side by side, in process (micro) and end to end (``fleetbench compare``).

Runs are interleaved (A B A B ...) and repeated, so drift on a noisy machine does not favour one
algorithm; each figure is the median over the repeats, with its spread (min and max).

The micro figures are always local: this machine's cryptography under our own verifier
(``target/``). The end-to-end rounds run against a fresh embedded target per algorithm, or
against each algorithm's own ``--target`` (a service runs one algorithm per deployment) through
its ``--profile``: a team's own service.

Over MQTT (``--transport mqtt``) each round is a ``fleetbench run --transport mqtt`` whose
devices, by default, open a session per reading (CONNECT with the token, PUBLISH at QoS 1,
DISCONNECT): every reading costs one CONNECT's token check, so the auth cost (the ``mqtt
connect`` row, CONNECT to CONNACK) is measured over as many CONNECTs as readings, beside the
steady cost (``mqtt publish``, PUBLISH to PUBACK) and the broker's own verify time.
"""

from __future__ import annotations

import os
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from sim.account.mqtt import CONNECT_ROW, PUBLISH_ROW
from sim.artefacts.codec import write_artefact
from sim.artefacts.compare_file import (
    COMPARE_SCHEMA,
    CompareAccount,
    CompareAlgorithm,
    CompareFile,
    CompareParameters,
    CompareTarget,
    Spread,
    figure_of,
)
from sim.artefacts.summary_file import RequestRow, Summary
from sim.errors import CompareError, ConfigError, Interrupted, SimError
from sim.profiles.mqtt_settings import MqttSessions, Transport
from sim.run.machine import cpu_model, versions
from sim.shape.scenarios import Endpoint
from target.costs import micro_benchmark
from target.jose.algorithms import ALG_NAMES, ALGORITHMS

if TYPE_CHECKING:
    from sim.run.config import RunConfig

__all__ = [
    "MICRO_FIGURES",
    "MQTT_FIGURES",
    "AlgTarget",
    "CompareConfig",
    "CompareError",
    "EndToEndLoad",
    "account_lines",
    "add_round_account",
    "capacity_lines",
    "check_alg_run",
    "check_token_algs",
    "new_account",
    "parse_algs",
    "parse_per_alg",
    "recorded_endpoint",
    "run_compare",
    "split_per_alg",
    "table_rows",
    "targets_of",
    "write_compare_outputs",
]

MICRO_FIGURES = ("sign_us", "verify_us", "raw_verify_us", "cached_verify_us", "token_bytes")
E2E_FIGURES = ("e2e_rps", "e2e_p50_us", "e2e_p99_us", "server_verify_us", "generator_cpu_percent")
# Over MQTT: CONNECT to CONNACK (the broker's auth), PUBLISH to PUBACK (storing a reading).
MQTT_FIGURES = (
    "mqtt_connect_per_s",
    "mqtt_connect_p50_us",
    "mqtt_connect_p99_us",
    "mqtt_publish_per_s",
    "mqtt_publish_p50_us",
    "mqtt_publish_p99_us",
    "server_verify_us",
    "generator_cpu_percent",
)
_MQTT_ROWS = {"mqtt_connect": CONNECT_ROW, "mqtt_publish": PUBLISH_ROW}
CAPACITY_RATES_PER_S = (10_000, 100_000)
# The seed's minimal protected endpoint: the least work beside auth.
EMBEDDED_ENDPOINT: Endpoint = "data"
# ``ALG=VALUE`` in --target/--profile: an algorithm name, then the value (a bare value: every alg).
_PER_ALG = re.compile(r"^([A-Za-z][A-Za-z0-9]*)=(.+)$")


@dataclass(frozen=True)
class EndToEndLoad:
    """The verification load every algorithm's end-to-end round runs: ``devices`` devices, one
    ``fleetbench run`` each round, against the algorithm's target. ``endpoint`` None: ``data``
    on the embedded target, the profile's ``default_endpoint`` (else all) on a ``--target``."""

    devices: int = 50
    duration_s: float = 8.0
    interval_s: float = 0.0
    endpoint: str | None = None
    pin: bool = True  # the embedded target and Locust on cores of their own
    # "mqtt": the devices publish over MQTT (to the embedded target's broker, or the broker of
    # each --target at its mqtt_port), a session per reading unless mqtt_session says held.
    transport: Transport = "http"
    mqtt_session: MqttSessions = "per-reading"


@dataclass(frozen=True)
class AlgTarget:
    """Where one algorithm's end-to-end rounds run: a service signing with it (``url``), spoken
    to through ``profile``, its broker on ``mqtt_port`` of the URL's host (with ``--transport
    mqtt``); ``url`` None: a fresh embedded target signing with it."""

    url: str | None = None
    profile: str = "fleetbench"
    mqtt_port: int | None = None


@dataclass(frozen=True)
class CompareConfig:
    """The algorithms (the first is the baseline), the rounds, and the end-to-end load if any
    (None: in-process figures only), whose runs keep their results under ``results``;
    ``targets`` per algorithm (none: the embedded target for each)."""

    algs: list[str]
    repeat: int = 3
    micro_budget_s: float = 0.25
    end_to_end: EndToEndLoad | None = None
    results: Path = Path("results")
    log: Callable[[str], None] = field(default=lambda message: None, repr=False)
    targets: Mapping[str, AlgTarget] = field(default_factory=dict)
    admin_key: str | None = field(default=None, repr=False)  # for profiles that register by it

    def target(self, alg: str) -> AlgTarget:
        return self.targets.get(alg, AlgTarget())

    def parameters(self) -> CompareParameters:
        """What was measured how, for compare.json and its report."""
        found: CompareParameters = {"micro_budget_s": self.micro_budget_s}
        if self.end_to_end is not None:
            load = self.end_to_end
            found["devices"] = load.devices
            found["duration_s"] = load.duration_s
            found["interval_s"] = load.interval_s
            found["endpoint"] = recorded_endpoint(load.endpoint, load.transport, self.targets)
            found["transport"] = load.transport
            if load.transport == "mqtt":
                found["mqtt_session"] = load.mqtt_session
        return found

    def run_config(self, alg: str, round_index: int, fleet: Path | None = None) -> RunConfig:
        """The ``fleetbench run`` of ``alg``'s end-to-end round ``round_index`` (from 1), with
        ``fleet`` (None: a new one)."""
        from sim.run.config import RunConfig

        load = self.end_to_end or EndToEndLoad()
        target = self.target(alg)
        mqtt = load.transport == "mqtt"
        return RunConfig(
            target=target.url,
            fleet=fleet,
            admin_key=self.admin_key if target.url else None,
            profile=target.profile,
            devices=load.devices,
            alg="secret",  # the device credential only matters for issuance
            token_alg=alg,
            scenarios={"verification": 1},
            endpoint=load.endpoint or (None if target.url or mqtt else EMBEDDED_ENDPOINT),
            interval_s=load.interval_s,
            duration_s=load.duration_s,
            results=self.results / f"e2e-{alg}-{round_index}",
            pin=load.pin,
            log=self.log,
            transport=load.transport,
            mqtt_port=target.mqtt_port,
            mqtt_session=load.mqtt_session if mqtt else "held",
        )

    def check(self) -> None:
        """Every round's run checked before any is measured: each is a one-line error."""
        if self.end_to_end is None:
            if self.targets:
                raise CompareError("--target is for the end-to-end rounds: drop --micro-only")
            return
        for alg in self.algs:
            check_alg_run(alg, self.run_config(alg, 1), CompareError)


def recorded_endpoint(
    endpoint: str | None, transport: Transport, targets: Mapping[str, AlgTarget]
) -> str | None:
    """The endpoint the runs drive as compare.json and capacity.json record it: the one given,
    else over MQTT the telemetry topic's, else ours on the embedded target (None: each
    --target's profile's own)."""
    if endpoint or transport == "mqtt":
        return endpoint or "telemetry"
    return None if targets else EMBEDDED_ENDPOINT


def check_alg_run(alg: str, config: RunConfig, error: type[SimError]) -> None:
    """One algorithm's run checked before anything is measured (compare, capacity): its own
    one-line error, naming the algorithm, or a minted-token profile of another algorithm."""
    try:
        config.check()
    except ConfigError as e:
        raise error(f"{alg}: {e}") from e
    profile = config.loaded_profile
    if profile.minted and profile.token.alg != alg:
        raise error(
            f"profile {profile.name} mints {profile.token.alg} tokens, not {alg}:"
            f" give {alg} a profile of its own (--profile {alg}=NAME|FILE)"
        )


def check_token_algs(summary: Summary, alg: str, url: str | None, error: type[SimError]) -> None:
    """The tokens the service honoured must be the algorithm it stands for (compare,
    capacity): else one line naming what it signs with."""
    rows = [r for r in summary["requests"] if r["scenario"] == "verification"]
    signed = {r["alg"] for r in rows if r["outcomes"].get("ok")} - {alg, "opaque"}
    if signed:
        raise error(
            f"{url or 'the embedded target'} (--target {alg}=...) answered with"
            f" {', '.join(sorted(signed))} tokens, not {alg}: name its algorithm in --algs"
        )


def parse_algs(text: str) -> list[str]:
    """``HS256,ES256`` -> a checked list; unknown or unavailable names are a one-line error."""
    algs = [name.strip() for name in text.split(",") if name.strip()]
    if not algs:
        raise CompareError(f"--algs is empty; choose from {', '.join(ALG_NAMES)}")
    for name in algs:
        if name not in ALGORITHMS:
            raise CompareError(f"unknown algorithm {name!r}; choose from {', '.join(ALG_NAMES)}")
        try:
            ALGORITHMS[name].generate()
        except Exception as e:  # cryptography raises UnsupportedAlgorithm and others
            raise CompareError(
                f"{name} is not available with the installed cryptography ({type(e).__name__});"
                f" choose from {', '.join(ALG_NAMES)}"
            ) from e
    if len(set(algs)) != len(algs):
        raise CompareError("--algs names an algorithm twice")
    return algs


def split_per_alg(text: str) -> tuple[str | None, str]:
    """``ALG=VALUE`` -> (ALG, VALUE); a bare ``VALUE`` -> (None, VALUE)."""
    found = _PER_ALG.match(text)
    return (found.group(1), found.group(2)) if found else (None, text)


def parse_per_alg(values: list[str], algs: list[str], option: str) -> dict[str, str]:
    """``--target``/``--profile`` values, ``ALG=VALUE`` or a bare ``VALUE`` (every algorithm
    not named), as the value per algorithm of ``algs``; algorithms given none are left out."""
    named: dict[str, str] = {}
    bare: str | None = None
    for text in values:
        found = _PER_ALG.match(text)
        if found is None:
            if bare is not None:
                raise CompareError(f"{option} is given twice without ALG=: name the algorithm")
            bare = text
            continue
        alg, value = found.groups()
        if alg not in algs:
            raise CompareError(
                f"{option} {alg}=...: {alg} is not in --algs ({', '.join(algs)})"
                if alg in ALGORITHMS
                else f"{option} {alg}=...: unknown algorithm {alg!r}; choose from {', '.join(algs)}"
            )
        if alg in named:
            raise CompareError(f"{option} names {alg} twice")
        named[alg] = value
    if bare is not None:
        named = {alg: named.get(alg, bare) for alg in algs}
    return named


def targets_of(
    algs: list[str],
    target_values: list[str],
    profile_values: list[str],
    mqtt_port_values: list[str] | None = None,
) -> dict[str, AlgTarget]:
    """Each algorithm's target, profile and broker port from the command line's values; none:
    embedded."""
    urls = parse_per_alg(target_values, algs, "--target")
    profiles = parse_per_alg(profile_values, algs, "--profile")
    ports = {
        alg: _port(text)
        for alg, text in parse_per_alg(mqtt_port_values or [], algs, "--mqtt-port").items()
    }
    if not urls:
        if any(name != "fleetbench" for name in profiles.values()):
            raise CompareError("--profile describes the API at --target: give --target URL")
        if ports:
            raise CompareError(
                "--mqtt-port names a --target's broker: the embedded one has its own"
            )
        return {}
    missing = [alg for alg in algs if alg not in urls]
    if missing:
        raise CompareError(
            f"--target gives no URL for {', '.join(missing)}: one ALG=URL per algorithm,"
            " or a bare URL for all"
        )
    return {
        alg: AlgTarget(urls[alg], profiles.get(alg, "fleetbench"), ports.get(alg)) for alg in algs
    }


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise CompareError(f"--mqtt-port {text[:16]!r}: a port number, 1 to 65535")
    return int(text)


def _end_to_end(
    config: CompareConfig, scratch: Path, accounts: dict[str, CompareAccount]
) -> Callable[[str], dict[str, float | bool]]:
    """One ``fleetbench run`` per call: ``alg``'s target (a fresh embedded one, or its own), the
    same verification load every time, each run's results in its own folder. A service of one's
    own keeps its devices between rounds: one fleet per service (in ``scratch``), made in its
    first round and registered again (already known) in the others. Over MQTT each round's
    telemetry account is added to ``accounts`` (its algorithm's)."""
    from sim.run.runner import fleet_file, run_benchmark

    rounds: dict[str, int] = {}
    fleets: dict[AlgTarget, Path] = {}  # one per service, should two algorithms share one

    def run(alg: str) -> dict[str, float | bool]:
        rounds[alg] = rounds.get(alg, 0) + 1
        target = config.target(alg)
        if target.url is not None and target not in fleets:
            folder = scratch / str(len(fleets))
            folder.mkdir()
            fleets[target] = fleet_file(config.run_config(alg, 1), folder)
        summary = run_benchmark(config.run_config(alg, rounds[alg], fleets.get(target)))
        if summary["run"]["interrupted"]:
            raise Interrupted("interrupted")
        if not summary["verdict"]["passed"]:
            raise CompareError(
                f"the {alg} run failed its own verdict: {'; '.join(summary['verdict']['failures'])}"
            )
        rows = [r for r in summary["requests"] if r["scenario"] == "verification"]
        if not rows:
            raise CompareError(f"the {alg} run made no verification requests")
        check_token_algs(summary, alg, config.target(alg).url, CompareError)
        processes = summary["generator"].get("processes", [])
        figures: dict[str, float | bool] = {
            "generator_cpu_percent": max((p["cpu_percent_mean"] for p in processes), default=0.0),
            "generator_saturated": bool(summary["generator"].get("saturated")),
        }
        if config.end_to_end is not None and config.end_to_end.transport == "mqtt":
            figures.update(_mqtt_figures(alg, rows))
            add_round_account(accounts.setdefault(alg, new_account()), summary)
        else:
            row = max(rows, key=lambda r: r["count"])
            figures["e2e_rps"] = row["rps"]
            figures["e2e_p50_us"] = row["latency_us"]["p50"]
            figures["e2e_p99_us"] = row["latency_us"]["p99"]
        # The server's own verify time where its profile names a histogram: else not there
        # (not available), never zero. One without an alg label is named by the tokens' alg.
        verify = summary["server"].get("verify", {})
        cost = verify.get(alg) or (next(iter(verify.values())) if len(verify) == 1 else None)
        if cost is not None:
            figures["server_verify_us"] = cost["mean_us"]
        return figures

    return run


def _mqtt_figures(alg: str, rows: list[RequestRow]) -> dict[str, float | bool]:
    """The MQTT round's figures: each row's rate and latency (an empty row: a one-line error)."""
    figures: dict[str, float | bool] = {}
    for prefix, name in _MQTT_ROWS.items():
        row = next((r for r in rows if r["endpoint"] == name), None)
        if row is None or not row["count"]:
            raise CompareError(f"the {alg} run made no {name} exchanges")
        figures[f"{prefix}_per_s"] = row["rps"]
        figures[f"{prefix}_p50_us"] = row["latency_us"]["p50"]
        figures[f"{prefix}_p99_us"] = row["latency_us"]["p99"]
    return figures


def new_account() -> CompareAccount:
    return {
        "rounds": 0, "sent": 0, "acknowledged": 0, "received": 0, "unacknowledged": 0,
        "lost": 0, "available": True, "exact": True,
    }  # fmt: skip


def add_round_account(account: CompareAccount, summary: Summary) -> None:
    """One round's telemetry account into its algorithm's. ``received``: distinct readings the
    target holds. Exact while every round's readings add up: each acknowledged one held (none
    lost; the run's verdict already fails on a lost one), and each held one sent; what the stop
    cut off is either held without its PUBACK (``unacknowledged``) or never arrived. A broker
    without a count of its own leaves it not exact: it cannot be shown."""
    telemetry = summary["telemetry"]
    received = telemetry.get("distinct", telemetry.get("received"))
    account["rounds"] += 1
    account["sent"] += telemetry["sent"]
    account["acknowledged"] += telemetry["acknowledged"]
    account["received"] += received or 0
    account["unacknowledged"] += telemetry.get("unacknowledged", 0)
    account["lost"] += telemetry.get("lost", 0)
    account["available"] = account["available"] and telemetry["available"] and received is not None
    account["exact"] = account["exact"] and (
        account["available"]
        and received is not None
        and not telemetry.get("lost")
        and telemetry["acknowledged"] + telemetry.get("unacknowledged", 0) == received
        and received <= telemetry["sent"]
    )


def _summarise(values: list[float]) -> Spread:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _entry(
    medians: dict[str, float], spread: dict[str, Spread], ratios: dict[str, float]
) -> CompareAlgorithm:
    """One algorithm's figures as compare.json keeps them (end-to-end ones where measured)."""
    entry: CompareAlgorithm = {
        "sign_us": medians["sign_us"],
        "verify_us": medians["verify_us"],
        "raw_verify_us": medians["raw_verify_us"],
        "cached_verify_us": medians["cached_verify_us"],
        "token_bytes": int(medians["token_bytes"]),
        "spread": spread,
        "capacity_cores": {
            f"{rate}_verifies_per_s": rate * medians["verify_us"] / 1e6
            for rate in CAPACITY_RATES_PER_S
        },
        "ratio_to_baseline": ratios,
    }
    if "naive_verify_us" in medians:
        entry["naive_verify_us"] = medians["naive_verify_us"]
    if "e2e_rps" in medians:
        entry["e2e_rps"] = medians["e2e_rps"]
        entry["e2e_p50_us"] = medians["e2e_p50_us"]
        entry["e2e_p99_us"] = medians["e2e_p99_us"]
    named = cast(dict[str, float], entry)  # the figure lists are data (figure_of)
    for name in MQTT_FIGURES:
        if name.startswith("mqtt_") and name in medians:
            named[name] = medians[name]
    if "generator_cpu_percent" in medians:
        entry["generator_cpu_percent"] = medians["generator_cpu_percent"]
    if "server_verify_us" in medians:
        entry["server_verify_us"] = medians["server_verify_us"]
    return entry


def _target_facts(config: CompareConfig, alg: str) -> CompareTarget:
    target = config.target(alg)
    facts: CompareTarget = {
        "url": target.url,
        "embedded": target.url is None,
        "profile": target.profile,
    }
    if target.mqtt_port is not None:
        facts["mqtt_port"] = target.mqtt_port
    return facts


def _rounds(
    config: CompareConfig,
    end_to_end: Callable[[str], dict[str, float | bool]] | None,
    samples: dict[str, dict[str, list[float]]],
    saturated: dict[str, bool],
) -> None:
    """Every round, algorithms interleaved: each figure's value per round into ``samples``."""
    for round_index in range(config.repeat):
        for alg in config.algs:
            config.log(f"round {round_index + 1}/{config.repeat}: {alg} micro (local)")
            figures: dict[str, float | bool] = dict(micro_benchmark(alg, config.micro_budget_s))
            if end_to_end is not None:
                config.log(f"round {round_index + 1}/{config.repeat}: {alg} end to end")
                figures.update(end_to_end(alg))
            saturated[alg] |= bool(figures.pop("generator_saturated", False))
            for name, value in figures.items():
                samples[alg].setdefault(name, []).append(float(value))


def run_compare(config: CompareConfig) -> CompareFile:
    """Measure every algorithm ``repeat`` times, interleaved; the compare.json document."""
    config.check()
    samples: dict[str, dict[str, list[float]]] = {alg: {} for alg in config.algs}
    saturated: dict[str, bool] = dict.fromkeys(config.algs, False)
    accounts: dict[str, CompareAccount] = {}
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="fleetbench-compare-") as scratch:
        end_to_end = (
            None if config.end_to_end is None else _end_to_end(config, Path(scratch), accounts)
        )
        _rounds(config, end_to_end, samples, saturated)
    baseline = config.algs[0]
    medians = {
        alg: {name: statistics.median(values) for name, values in figures.items()}
        for alg, figures in samples.items()
    }
    algorithms: dict[str, CompareAlgorithm] = {}
    for alg, values_of in samples.items():
        entry = _entry(
            medians[alg],
            {name: _summarise(values) for name, values in values_of.items()},
            {
                name: value / medians[baseline][name]
                for name, value in medians[alg].items()
                if medians[baseline].get(name)
            },
        )
        if config.end_to_end is not None:
            entry["generator_saturated"] = saturated[alg]
        if alg in accounts:
            entry["telemetry"] = accounts[alg]
        algorithms[alg] = entry
    # The same machine and versions facts a run's summary.json carries, for the report's header.
    result: CompareFile = {
        "schema": COMPARE_SCHEMA,
        "machine": {"model": cpu_model(), "count": os.cpu_count()},
        "versions": versions(),
        "parameters": config.parameters(),
        "baseline": baseline,
        "repeat": config.repeat,
        "interleaved": True,
        "end_to_end": config.end_to_end is not None,
        "micro_scope": "local",
        "started_at": started,
        "duration_s": time.time() - started,
        "algorithms": algorithms,
    }
    if config.end_to_end is not None:
        result["targets"] = {alg: _target_facts(config, alg) for alg in config.algs}
    return result


def table_rows(result: CompareFile) -> list[tuple[str, ...]]:
    """Rows for the side-by-side table: figure, then each algorithm's median and ratio. Against
    ``--target`` services the micro figures say ``(local)``: they are this machine's, not theirs."""
    algs = list(result["algorithms"])
    baseline = result["baseline"]
    names = list(MICRO_FIGURES) + (list(end_to_end_figures(result)) if result["end_to_end"] else [])
    local = _on_targets(result)
    rows = []
    for name in names:
        cells = [f"{name} (local)" if local and name in MICRO_FIGURES else name]
        for alg in algs:
            entry = result["algorithms"][alg]
            if name not in entry:
                cells.append("-")
                continue
            value = figure_of(entry, name)
            spread = entry["spread"].get(name)
            text = f"{value:,.1f}" if name != "token_bytes" else f"{int(value)}"
            if spread and result["repeat"] > 1 and name != "token_bytes":
                text += f" ({spread['min']:,.1f}-{spread['max']:,.1f})"
            ratio = entry["ratio_to_baseline"].get(name)
            if alg != baseline and ratio:
                text += f" {ratio:.2f}x"
            cells.append(text)
        rows.append(tuple(cells))
    return rows


def end_to_end_figures(result: CompareFile) -> tuple[str, ...]:
    """The end-to-end figures of the rounds' transport."""
    return MQTT_FIGURES if result["parameters"].get("transport") == "mqtt" else E2E_FIGURES


def account_lines(result: CompareFile) -> list[str]:
    """Over MQTT, each algorithm's telemetry account over its rounds."""
    lines = []
    for alg, entry in result["algorithms"].items():
        account = entry.get("telemetry")
        if account is None:
            continue
        rounds = f"{account['rounds']} round{'s' * (account['rounds'] != 1)}"
        if not account["available"]:
            lines.append(
                f"{alg}: readings over {rounds}: sent {account['sent']:,}, acknowledged"
                f" {account['acknowledged']:,}; the target's own count is not available"
                " (its profile has no [stats]): the account cannot be shown exact"
            )
            continue
        cut = account["sent"] - account["received"]
        lines.append(
            f"{alg}: readings over {rounds}: sent {account['sent']:,},"
            f" acknowledged {account['acknowledged']:,}, received {account['received']:,}"
            f" ({account['unacknowledged']:,} held whose PUBACK the stop cut off, {cut:,} cut off"
            f" before the broker), lost {account['lost']:,}: "
            + ("exact" if account["exact"] else "NOT exact (see each round's summary)")
        )
    return lines


def _on_targets(result: CompareFile) -> bool:
    """True when the end-to-end rounds ran against ``--target`` services, not the embedded one."""
    return any(not t["embedded"] for t in result.get("targets", {}).values())


def capacity_lines(result: CompareFile) -> list[str]:
    baseline = result["baseline"]
    base = result["algorithms"][baseline]
    verify = "local verify" if _on_targets(result) else "verify"
    lines = []
    for alg, entry in result["algorithms"].items():
        cores = entry["capacity_cores"]
        line = (
            f"{alg}: {verify} {entry['verify_us']:.1f} µs -> "
            f"{cores['10000_verifies_per_s']:.2f} cores for 10,000 tokens/s, "
            f"{cores['100000_verifies_per_s']:.1f} cores for 100,000 tokens/s"
        )
        if alg != baseline:
            line += f"; verify costs {entry['verify_us'] / base['verify_us']:.1f}x {baseline}"
        lines.append(line)
    return lines


def write_compare_outputs(result: CompareFile, folder: Path) -> dict[str, Path]:
    """compare.json and report.html (charts with spread, the table, capacity) in ``folder``."""
    from sim.output.report import write_compare_report

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "compare.json", "html": folder / "report.html"}
    write_artefact(result, paths["json"])
    lines = capacity_lines(result) + account_lines(result)
    write_compare_report(result, paths["html"], table_rows(result), lines)
    return paths
