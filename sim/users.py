"""The virtual device under load: one Locust ``FastHttpUser`` per device of the fleet.

Each user claims its own device, parses that device's key once in ``on_start``, holds one access
token per scenario, and judges every answer into the outcome account (:mod:`sim.outcomes`).
How it talks to the API (token call or minted tokens, presentation, endpoints, refusal classes)
comes from the run's target profile (:mod:`sim.profiles`); ``fleetbench`` is our own target's.
Assertion and token minting is timed on its own line (``MINT``), never inside a request's latency.
"""

from __future__ import annotations

import csv
import fcntl
import json
import logging
import math
import os
import random
import resource
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import gevent
import jwt
import requests
from geventhttpclient.url import URL
from locust import FastHttpUser, constant_pacing, events
from locust.exception import CatchResponseError, StopUser
from locust.runners import MasterRunner, WorkerRunner

from sim.config import SimConfig
from sim.corpus import Case, ForgeContext, cases_for
from sim.fleet import Device, Fleet, load_fleet
from sim.measure import Measurements
from sim.outcomes import Outcome, judge_forged
from sim.profiles import Profile, load_profile
from sim.profiles.http import (
    Request,
    TokenAnswer,
    classify,
    endpoint_request,
    judge_answer,
    mint_token,
    read_token,
    token_request,
)
from sim.profiles.model import Endpoint
from sim.scenarios import Scenario

__all__ = ["FleetDevice", "configure"]

log = logging.getLogger("fleetbench")

DEFAULT_ISSUER = "urn:fleetbench:target"
ASSERTION_LIFETIME_S = 300
# Proactive refresh happens at a random point in this share of a token's lifetime, so a fleet
# does not renew in lockstep.
PROACTIVE_WINDOW = (0.5, 0.8)

# A token request that got no answer or a 5xx is retried after a jittered, growing pause.
RETRIED_OUTCOMES: frozenset[Outcome] = frozenset({"transport_error", "server_error"})
BACKOFF_BASE_S = 0.2
BACKOFF_CAP_S = 5.0
SETUP_ATTEMPTS = 3
# How often the master writes the live figures that ``fleetbench run`` prints as progress.
PROGRESS_INTERVAL_S = 1.0

MEASUREMENTS = Measurements()
_state: dict[str, Any] = {"claimed": 0}


@dataclass
class HeldToken:
    token: str
    alg: str
    exp: float
    refresh_at: float


@cache
def _config() -> SimConfig:
    return SimConfig.from_env()


@cache
def _profile() -> Profile:
    """The run's profile; ``${VAR}`` from this process's environment (secrets stay there)."""
    return load_profile(_config().profile, os.environ)


@cache
def _signing_key() -> Any:
    """The key minted tokens are signed with: the shared secret, or the private key file's."""
    token = _profile().token
    if token.private_key_file:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        return load_pem_private_key(Path(token.private_key_file).read_bytes(), password=None)
    return token.secret


@cache
def _fleet() -> Fleet:
    return load_fleet(Path(_config().fleet))


def _issuer(host: str) -> str:
    config = _config()
    if config.issuer:
        return config.issuer
    if "issuer" not in _state:
        try:
            url = host.rstrip("/") + "/.well-known/oauth-authorization-server"
            _state["issuer"] = requests.get(url, timeout=10).json()["issuer"]
        except (requests.RequestException, ValueError, KeyError, TypeError):
            _state["issuer"] = DEFAULT_ISSUER
    issuer: str = _state["issuer"]
    return issuer


def _claim_index(environment: Any) -> int:
    """The next unclaimed device: a counter shared by every process of the run through a locked
    file, or, standalone, this process's counter interleaved with the other workers'."""
    claim_file = _config().claim_file
    if claim_file:
        with open(claim_file, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            index = int(f.read().strip() or 0)
            f.seek(0)
            f.truncate()
            f.write(str(index + 1))
            return index
    runner = environment.runner
    workers = int(os.environ.get("FLEETBENCH_WORKERS", "1"))
    offset = max(getattr(runner, "worker_index", 0), 0) if isinstance(runner, WorkerRunner) else 0
    index = offset + _state["claimed"] * workers
    _state["claimed"] += 1
    return int(index)


class FleetDevice(FastHttpUser):
    """One device of the fleet: its own credential, its own tokens, its own connection."""

    concurrency = 1
    connection_timeout = 10.0
    network_timeout = 30.0
    wait_time = constant_pacing(1.0)

    device: Device
    device_index: int

    def on_start(self) -> None:
        fleet = _fleet()
        index = _claim_index(self.environment)
        if index >= len(fleet):
            MEASUREMENTS.counters["users_without_device"] += 1
            raise StopUser()
        self.device_index = index
        self.device = fleet.devices[index]
        self.other_device_id = fleet.devices[(index + 1) % len(fleet)].id
        self.profile = _profile()
        self.key = self.device.private_key() if self.device.private_pem else None
        if self.profile.token.assertion_form is None:
            self.key = None  # the profile's token call takes no device-signed assertion
        # The HTTPClient behind self.client: the same pool, so still one connection per device.
        self._http = self.client.client.clientpool.get_client(URL(self.host or ""))
        self.config = _config()
        self.issuer = _issuer(self.host or "") if self.key is not None else DEFAULT_ISSUER
        self.endpoints = self._endpoints()
        refusals = self.profile.refusals
        self.reads_body = any(
            r is not None and r.body is not None
            for r in (refusals.missing, refusals.expired, refusals.invalid, refusals.forbidden)
        )
        self.rng = random.Random()
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
        for scenario in self.config.scenarios:
            if scenario == "issuance":
                continue
            if self.profile.minted:
                self.tokens[scenario] = self._mint_held(scenario)
                continue
            for _ in range(SETUP_ATTEMPTS):
                if self.tokens_for(scenario, "setup") is not None:
                    break
                if self.last_token_outcome not in RETRIED_OUTCOMES:
                    break  # refused: retrying the same credential would be refused again
            # Still without a token: the scenario's task asks again, backing off as here.
        MEASUREMENTS.device_ready(time.time() - started)  # from here: one report per interval
        # Devices spawned together would otherwise report in lockstep, every one in the same
        # instant each interval: a burst that measures queueing, not the target.
        gevent.sleep(self.rng.uniform(0, self.config.interval_s))
        # constant_pacing counts from the user's creation, so without this only the first report
        # was spread: every later one fell back into the spawn second's lockstep (issue 16).
        self._cp_last_run = time.perf_counter()

    def _start(self) -> None:
        """Count a request as it starts. Once the run is stopping a device sends nothing new:
        Locust kills its users one by one, and a request sent meanwhile is cut off unanswered."""
        if _state.get("stopping"):
            raise StopUser()
        MEASUREMENTS.request_started()

    # -- tokens ---------------------------------------------------------------------------------

    def _mint_assertion(self) -> str:
        alg = self.device.alg or "ES256"
        started = time.perf_counter()
        now = int(time.time())
        claims = {
            "iss": self.device.id,
            "sub": self.device.id,
            "aud": self.issuer,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_S,
            "jti": secrets.token_urlsafe(16),
        }
        key: Any = self.key
        assertion = jwt.encode(claims, key, algorithm=alg)
        # Timed into mint_us only: as a Locust "request" it inflated Locust's request totals.
        MEASUREMENTS.record_mint(alg, (time.perf_counter() - started) * 1_000_000)
        return assertion

    def _values(self, **more: Any) -> dict[str, Any]:
        """What the profile's templates may name, for this device now."""
        now = time.time()
        return {
            "device_id": self.device.id,
            "other_device_id": self.other_device_id,
            "secret": self.device.secret,
            "n": self.device_index,
            "now": int(now),
            "ts": now,
            "ttl": self.profile.token.ttl_s,
            **more,
        }

    def _mint_held(self, scenario: str) -> HeldToken:
        """A token this device signs itself (the profile's claims and key): no request, timed
        into ``mint_us``; the expiry scenario's live ``short_ttl_s``."""
        spec = self.profile.token
        ttl = spec.short_ttl_s if scenario == "expiry" else spec.ttl_s
        started = time.perf_counter()
        token = mint_token(self.profile, _signing_key(), self._values(ttl=ttl))
        MEASUREMENTS.record_mint(spec.alg, (time.perf_counter() - started) * 1_000_000)
        now = time.time()
        return self._hold(TokenAnswer(token, now + ttl, now, spec.alg))

    def fetch_token(self, grant: str, scenario: str) -> HeldToken | None:
        """One token request by ``grant`` (client_credentials or jwt-bearer), judged and timed."""
        self._start()
        assertion = grant == "jwt-bearer"
        values = self._values(assertion=self._mint_assertion() if assertion else "")
        request = token_request(self.profile, values, assertion=assertion)
        endpoint = f"token {grant}"
        with self.client.request(
            request.method,
            request.path,
            name=f"{scenario} {endpoint}",
            data=request.body.decode() if request.body else None,
            headers=request.headers,
            catch_response=True,
        ) as response:
            status = response.status_code or 0
            outcome = self._judge_issuance(status)
            held = None
            if outcome == "ok":
                try:
                    body = response.json()
                except (ValueError, TypeError):
                    body = None
                answer = read_token(self.profile, response.headers, body, time.time())
                if answer is None:
                    outcome = "refused_valid"  # a 200 without a usable token is no token
                else:
                    held = self._hold(answer)
            reason = "" if outcome == "ok" else self._token_error(response)
            self._settle(response, endpoint, scenario, outcome, status, reason)
        self.last_token_outcome = outcome
        return held

    def _judge_issuance(self, status: int) -> Outcome:
        """A token request with the device's genuine credential."""
        if status == 0:
            return "transport_error"
        if status >= 500:
            return "server_error"
        return "ok" if status in self.profile.token.ok else "refused_valid"

    def _hold(self, answer: TokenAnswer) -> HeldToken:
        self.token_alg = answer.alg
        share = self.rng.uniform(*PROACTIVE_WINDOW)
        exp, iat = answer.exp, answer.iat
        return HeldToken(answer.token, answer.alg, exp, iat + share * (exp - iat))

    @staticmethod
    def _token_error(response: Any) -> str:
        if not response.status_code:
            return "connection"  # no answer at all: there is no body to read
        try:
            return str(response.json().get("error", ""))[:40]
        except (ValueError, AttributeError, TypeError):
            return ""

    def _grant(self) -> str:
        return "jwt-bearer" if self.key is not None else "client_credentials"

    def tokens_for(self, scenario: Scenario, recorded_as: str) -> HeldToken | None:
        """A fresh token for ``scenario``; after a failure that is not a refusal, back off."""
        if self.profile.minted:
            self.tokens[scenario] = self._mint_held(scenario)
            return self.tokens[scenario]
        held = self.fetch_token(self._grant(), recorded_as)
        if held is not None:
            self.tokens[scenario] = held
            if self.token_failures:
                MEASUREMENTS.device_sets["token_recovered"].add(self.device.id)
                self.token_failures = 0
        else:
            self.tokens.pop(scenario, None)
            if self.last_token_outcome in RETRIED_OUTCOMES:
                self._back_off()
        return held

    def _back_off(self) -> None:
        """Wait before the next token request: exponential with full jitter, capped, so a fleet
        that lost its token endpoint neither dies nor comes back in one synchronised wave."""
        self.token_failures += 1
        MEASUREMENTS.device_sets["token_failed"].add(self.device.id)
        ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (self.token_failures - 1))
        delay_s = self.rng.uniform(0, ceiling)
        MEASUREMENTS.counters["token_retries"] += 1
        MEASUREMENTS.counters["token_backoff_ms"] += round(delay_s * 1000)
        gevent.sleep(delay_s)

    def held(self, scenario: Scenario, *, proactive: bool) -> HeldToken | None:
        """The scenario's token, renewed first if it is missing or (``proactive``) due."""
        held = self.tokens.get(scenario)
        if held is None or (proactive and time.time() >= held.refresh_at):
            if held is not None and scenario == "expiry":
                MEASUREMENTS.counters["refreshes"] += 1
            held = self.tokens_for(scenario, scenario)
        return held

    # -- resource requests ----------------------------------------------------------------------

    def _endpoints(self) -> tuple[Endpoint, ...]:
        """The endpoints this run calls: the one ``--endpoint`` names if the profile has it
        (our target's telemetry/config/data), else all of the profile's, by weight."""
        chosen = self.profile.endpoint(self.config.endpoint)
        if chosen is not None:
            return (chosen,)
        return tuple(e for e in self.profile.endpoints for _ in range(e.weight))

    def _request(
        self, endpoint: Endpoint, token: str | None, authorization: str | None, values: Any
    ) -> Request:
        """The endpoint's request carrying ``token`` the profile's way, or a forged credential
        (``authorization``, written for a Bearer header) adapted to the profile's header."""
        request = endpoint_request(self.profile, endpoint, values, token)
        if authorization is None:
            return request
        present = self.profile.present
        if present.query is None and present.format == "Bearer {token}":
            headers = {**request.headers, present.header: authorization}
            return Request(request.method, request.path, headers, request.body)
        forged = authorization.removeprefix("Bearer ")
        return endpoint_request(self.profile, endpoint, values, forged)

    def call(
        self,
        scenario: str,
        token: str | None,
        device_id: str,
        judge: Callable[[int, str], Outcome],
        *,
        reading: bool,
        lean: bool = False,
        authorization: str | None = None,
    ) -> tuple[Outcome, str]:
        """One request to an endpoint of the profile carrying ``token`` (or a forged
        ``authorization``, or nothing); ``reading`` sends the device's next seq."""
        self._start()
        spec = self.endpoints[0] if len(self.endpoints) == 1 else self.rng.choice(self.endpoints)
        endpoint = spec.name
        seq = self.seq + 1 if reading else 0
        values = self._values(seq=seq, device_id=device_id)
        request = self._request(spec, token, authorization, values)
        sends_seq = spec.body is not None and "{seq}" in json.dumps(spec.body)
        if reading and sends_seq:
            MEASUREMENTS.telemetry[self.device.id][0] += 1
        body = request.body if sends_seq or spec.body is not None else None
        if lean and self.profile.refusals.read == "rfc6750":
            return self._call_lean(
                request.method,
                request.path,
                scenario,
                endpoint,
                request.headers,
                body,
                judge,
                reading and sends_seq,
            )
        with self.client.request(
            request.method,
            request.path,
            name=f"{scenario} {endpoint}",
            headers=request.headers,
            data=body.decode() if body else None,
            catch_response=True,
        ) as response:
            status = response.status_code or 0
            text = (response.text or "") if status and self.reads_body else ""
            reason = classify(self.profile, status, response.headers if status else {}, text)
            outcome = judge(status, reason)
            if reading and sends_seq and status in spec.ok:
                self.seq += 1
                MEASUREMENTS.telemetry[self.device.id][1] += 1
            self._settle(response, endpoint, scenario, outcome, status, reason)
        return outcome, reason

    def _call_lean(
        self,
        method: str,
        path: str,
        scenario: str,
        endpoint: str,
        headers: dict[str, str],
        body: bytes | None,
        judge: Callable[[int, str], Outcome],
        reading: bool,
    ) -> tuple[Outcome, str]:
        """The steady-state request on the session's own connection, without FastHttpSession's
        per-request wrapping (redirects, cookies, response objects): about a third of the
        generator's CPU per request, which decides how close one core of Locust gets to wrk.
        Timing, judging and Locust's statistics are the same as on the ``catch_response`` path."""
        payload = body
        status, www_authenticate, length, error = 0, None, 0, None
        started = time.perf_counter()
        try:
            response = self._http.request(method, path, body=payload, headers=headers)
            try:
                length = len(response.read())
            finally:
                response.release()
            status = response.status_code
            found = response.get("www-authenticate")
            www_authenticate = found if isinstance(found, str) else None
        except Exception as e:  # any failure to get an answer is a transport error
            error = e
        latency_ms = (time.perf_counter() - started) * 1000
        challenge = {"www-authenticate": www_authenticate} if www_authenticate else {}
        reason = classify(self.profile, status, challenge)
        outcome = judge(status, reason)
        if reading and status == 202:
            self.seq += 1
            MEASUREMENTS.telemetry[self.device.id][1] += 1
        MEASUREMENTS.record(
            endpoint,
            scenario,
            self.token_alg,
            outcome,
            latency_ms * 1000,
            status=status,
            reason=reason,
        )
        failed = outcome not in ("ok", "rejected_as_expected")
        self.environment.events.request.fire(
            request_type=method,
            name=f"{scenario} {endpoint}",
            response_time=latency_ms,
            response_length=length,
            exception=(error or CatchResponseError(outcome)) if failed else None,
            context={},
        )
        return outcome, reason

    def _settle(
        self,
        response: Any,
        endpoint: str,
        scenario: str,
        outcome: Outcome,
        status: int,
        reason: str,
    ) -> None:
        latency_us = response.request_meta["response_time"] * 1000
        alg = self.token_alg
        MEASUREMENTS.record(
            endpoint, scenario, alg, outcome, latency_us, status=status, reason=reason
        )
        if outcome in ("ok", "rejected_as_expected"):
            response.success()
        else:
            response.failure(outcome)

    def use_held(self, scenario: Scenario, held: HeldToken) -> tuple[Outcome, str]:
        leeway = self.config.leeway_s

        def judge(status: int, reason: str) -> Outcome:
            now = time.time()
            return judge_answer(
                self.profile, status, reason, exp=held.exp, now=now, leeway_s=leeway
            )

        return self.call(
            scenario,
            held.token,
            self.device.id,
            judge,
            reading=True,
            # The steady state takes the lean path; expected refusals (expiry) keep catch_response.
            lean=scenario == "verification",
        )

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
            self.tokens.pop("verification", None)  # renew before the next reading

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
            renewed = self.tokens_for("expiry", "expiry")
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
                matched = status == case.expected_status and reason in case.expected_reasons
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


def _raise_open_files_limit() -> None:
    """Each device holds its own connection: 10,000 devices need more than 1,024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


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
    """Every ``PROGRESS_INTERVAL_S``: the account so far, for the orchestrator's progress line."""
    while True:
        gevent.sleep(PROGRESS_INTERVAL_S)
        MEASUREMENTS.write_progress(path, started=started.get("started"))


def _on_init(environment: Any, **_: Any) -> None:
    _raise_open_files_limit()
    runner = environment.runner
    started: dict[str, float] = {}
    progress: list[gevent.Greenlet] = []

    def on_test_start(**_: Any) -> None:
        # Each test start (the web UI's Start after Stop, too) hands the devices out afresh and
        # starts a fresh account; a headless run starts once.
        _state["claimed"] = 0
        MEASUREMENTS.reset()
        started.clear()
        started["started"] = time.time()
        _state["stopping"] = False  # the web UI starts again after a stop
        claim_file = _config().claim_file
        if claim_file and not isinstance(runner, WorkerRunner):
            # The master resets before it tells any worker to spawn.
            Path(claim_file).write_text("0")
        progress_file = _config().progress
        if progress_file and not isinstance(runner, WorkerRunner) and not progress:
            progress.append(gevent.spawn(_progress_writer, Path(progress_file), started))

    def on_test_stopping(**_: Any) -> None:
        _state["stopping"] = True
        started["stopped"] = time.time()  # the end of the load: nothing new after it
        # What was waiting for an answer when the stop began, before Locust kills the users.
        MEASUREMENTS.counters["in_flight_when_stopping"] += MEASUREMENTS.waiting

    def on_test_stop(**_: Any) -> None:
        started.setdefault("stopped", time.time())

    def on_report_to_master(data: dict[str, Any], **_: Any) -> None:
        data["fleetbench"] = MEASUREMENTS.take_wire()

    def on_worker_report(data: dict[str, Any], **_: Any) -> None:
        if "fleetbench" in data:
            MEASUREMENTS.merge_wire(data["fleetbench"])

    def on_quit(**_: Any) -> None:
        for greenlet in progress:
            greenlet.kill(block=False)
        if isinstance(runner, WorkerRunner):
            return
        _write_locust_csv(environment)
        raw = _config().raw
        if raw:
            MEASUREMENTS.write(
                Path(raw),
                started=started.get("started"),
                stopped=started.get("stopped", time.time()),
                workers=getattr(runner, "worker_index_max", 0)
                if isinstance(runner, MasterRunner)
                else 0,
            )

    environment.events.test_start.add_listener(on_test_start)
    environment.events.test_stop.add_listener(on_test_stop)
    environment.events.test_stopping.add_listener(on_test_stopping)
    environment.events.report_to_master.add_listener(on_report_to_master)
    environment.events.worker_report.add_listener(on_worker_report)
    environment.events.quit.add_listener(on_quit)


def scenario_tasks(weights: dict[Scenario, int]) -> list[Callable[[FleetDevice], None]]:
    """Locust's own form of weighted tasks: a list with each task repeated by its weight
    (reduced by their common divisor). A dict set after the class exists is not weighted:
    every runner rebuilds ``tasks`` from its keys (``Environment._filter_tasks_by_tags``)."""
    divisor = math.gcd(*weights.values())
    return [
        SCENARIO_TASKS[name] for name, weight in weights.items() for _ in range(weight // divisor)
    ]


def configure(config: SimConfig | None = None) -> type[FleetDevice]:
    """Set the device's task weights and pacing from the run configuration, and hook the
    measurement into Locust's events. Call once, from the locustfile."""
    config = config or _config()
    tasks: list[Any] = scenario_tasks(config.scenarios)
    FleetDevice.tasks = tasks
    FleetDevice.wait_time = constant_pacing(config.interval_s)
    events.init.add_listener(_on_init)  # type: ignore[no-untyped-call]
    return FleetDevice
