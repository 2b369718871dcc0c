"""A device's requests to the protected endpoints: built through the profile, sent on the
device's own connection, timed, classified and judged into the outcome account."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

from locust.exception import CatchResponseError, StopUser

from sim.account.measure import KEPT_CONNECTION, WARMUP_SCENARIO
from sim.device.keepalive import READY_WITHIN_S, KeptConnection
from sim.device.run_state import MEASUREMENTS, STATE
from sim.device.settings import SimConfig
from sim.fleet.model import Device
from sim.outcomes import Outcome
from sim.profiles import Profile
from sim.profiles.http import Request, classify, endpoint_request, per_request
from sim.profiles.model import Endpoint
from sim.shape.schedule import SendSchedule
from sim.untrusted import DEVICE_BODY_BYTES, AnswerRefused

__all__ = ["DeviceRequests"]

_CLIENT_ONLY_HEADERS = frozenset({"transfer-encoding", "expect"})


class DeviceRequests:
    """The request half of a :class:`sim.device.user.FleetDevice` (a Locust user)."""

    client: Any
    environment: Any
    device: Device
    device_index: int
    other_device_id: str
    profile: Profile
    config: SimConfig
    rng: random.Random
    endpoints: tuple[Endpoint, ...]
    reads_body: bool
    lean_ok: bool
    token_alg: str
    seq: int
    _http: Any
    kept: KeptConnection  # the lean path's hold on the device's connection (sim.device.keepalive)
    # The last request, what it was built from, and whether it is the same for the next one
    # built from the same; the lean path's bytes on the wire for the request they were built for.
    _request_of: tuple[Any, ...] | None = None
    _last_request: Request | None = None
    _request_fixed = False
    _wire_for: Request | None = None
    _wire: bytes = b""
    schedule: SendSchedule | None = None  # the open model's (--rate); None: the closed model
    _lag_s: float | None = None  # how late the request in flight went out, open model only

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

    def _start(self, paced: bool = True) -> None:
        """Count a request as it starts. Once the run is stopping a device sends nothing new:
        Locust kills its users one by one, and a request sent meanwhile is cut off unanswered.
        In the open model the paced request of a task serves its slot of the schedule: how late
        it goes out is kept for its corrected latency."""
        if STATE.get("stopping"):
            raise StopUser()
        MEASUREMENTS.request_started()
        self._lag_s = None
        if paced and self.schedule is not None:
            sent = self.schedule.send(time.perf_counter())
            if sent is not None:
                self._lag_s = sent[0]
                MEASUREMENTS.record_send(sent[0] * 1_000_000, sent[1] * 1_000_000)

    def ready_for(self, wait_s: float) -> float:
        """Before a wait of ``wait_s`` for the next send (due within ``READY_WITHIN_S``): a
        connection opened now if the device holds none (:meth:`KeptConnection.ready`); the wait
        left after opening it."""
        if wait_s > READY_WITHIN_S or self.kept.held:
            return wait_s
        began_s = time.perf_counter()
        self.kept.ready()
        now_s = time.perf_counter()
        if self.schedule is not None:
            self.schedule.answered(now_s)  # a connect past the send's time: the target's wait
        return max(0.0, wait_s - (now_s - began_s))

    def _warming(self) -> bool:
        """Whether the request just started was meant to go out in the run's warm-up (by its
        intended send time in the open model): then it is not judged."""
        origin = STATE.get("origin_perf_s")
        if not self.config.warmup_s or origin is None:
            return False
        intended_s = time.perf_counter() - (self._lag_s or 0.0)
        return intended_s < float(origin) + self.config.warmup_s

    def _answered(self, latency_us: float) -> float | None:
        """The device is free again; the corrected latency of the answered request (from its
        intended send time) when it served a slot of the open model's schedule, else None."""
        if self.schedule is None:
            return None
        self.schedule.answered(time.perf_counter())
        lag_s, self._lag_s = self._lag_s, None
        return None if lag_s is None else latency_us + lag_s * 1_000_000

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
        close_connection: bool = False,
    ) -> tuple[Outcome, str]:
        """One request to an endpoint of the profile carrying ``token`` (or a forged
        ``authorization``, or nothing); ``reading`` sends the device's next seq;
        ``close_connection``: on a connection of its own, closed after the answer."""
        self._start()
        if self._warming():
            scenario, self._lag_s = WARMUP_SCENARIO, None  # sent and counted, not judged
        spec = self.endpoints[0] if len(self.endpoints) == 1 else self.rng.choice(self.endpoints)
        endpoint = spec.name
        request = self._request_for(spec, token, authorization, device_id, reading)
        if close_connection:
            lean = False
            request = Request(
                request.method, request.path, {**request.headers, "Connection": "close"},
                request.body,
            )  # fmt: skip
        sends_seq = spec.body is not None and "{seq}" in json.dumps(spec.body)
        if reading and sends_seq:
            MEASUREMENTS.telemetry[self.device.id][0] += 1
        body = request.body if sends_seq or spec.body is not None else None
        if lean and self.lean_ok:
            return self._call_lean(request, scenario, endpoint, body, judge, reading and sends_seq)
        self.kept.release()  # the client's request takes the same connection
        with self.client.request(
            request.method,
            request.path,
            name=f"{scenario} {endpoint}",
            headers=request.headers,
            data=body.decode() if body else None,
            catch_response=True,
            allow_redirects=False,  # the profile's headers stay on the target
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
        request: Request,
        scenario: str,
        endpoint: str,
        body: bytes | None,
        judge: Callable[[int, str], Outcome],
        reading: bool,
    ) -> tuple[Outcome, str]:
        """The steady-state request on the device's own connection, without FastHttpSession's
        per-request wrapping (redirects, cookies, response objects), and where it can be without
        the client library's either: the request's bytes built once and written to the kept
        connection, the answer read for its status, challenge and length
        (:mod:`sim.device.keepalive`; half of the open model's generator CPU was the library's
        per-request work).
        Timing, judging and Locust's statistics are the same as on the ``catch_response`` path."""
        method, path, headers = request.method, request.path, request.headers
        status, www_authenticate, length, error = 0, None, 0, None
        started = time.perf_counter()
        try:
            wire = self._lean_wire(request, body)
            if wire is not None:
                answer = self.kept.exchange(method, wire)
                status, www_authenticate = answer.status, answer.www_authenticate
                length = answer.body_bytes
                MEASUREMENTS.counters[KEPT_CONNECTION] += 1
            else:
                self.kept.release()  # the client's request takes the same connection
                response = self._http.request(method, path, body=body, headers=headers)
                try:
                    # One read up to the cap (it returns early when the answer ends): a longer
                    # answer is not read on; release() then closes the half-read connection.
                    length = len(response.read(DEVICE_BODY_BYTES + 1))
                    if length > DEVICE_BODY_BYTES:
                        raise AnswerRefused(f"answered more than {DEVICE_BODY_BYTES} bytes")
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
        self.record_exchange(
            method, endpoint, scenario, outcome, latency_ms, status, reason, length, error
        )
        return outcome, reason

    def record_exchange(
        self,
        request_type: str,
        endpoint: str,
        scenario: str,
        outcome: Outcome,
        latency_ms: float,
        status: int,
        reason: str,
        length: int,
        error: Exception | None = None,
    ) -> None:
        """One exchange timed without Locust's client (the lean path, MQTT's): into the
        account and into Locust's statistics as its ``request_type``."""
        latency_us = latency_ms * 1000
        MEASUREMENTS.record(
            endpoint, scenario, self.token_alg, outcome, latency_us, status=status,
            reason=reason, corrected_us=self._answered(latency_us),
        )  # fmt: skip
        failed = outcome not in ("ok", "rejected_as_expected")
        self.environment.events.request.fire(
            request_type=request_type,
            name=f"{scenario} {endpoint}",
            response_time=latency_ms,
            response_length=length,
            exception=(error or CatchResponseError(outcome)) if failed else None,
            context={},
        )

    def _request_for(
        self,
        spec: Endpoint,
        token: str | None,
        authorization: str | None,
        device_id: str,
        reading: bool,
    ) -> Request:
        """The request, built through the profile only when what it is built from changed or
        its endpoint names a value that changes per request (a seq, a time, a body)."""
        built_of = (spec, token, authorization, device_id)
        last = self._last_request
        if last is not None and self._request_fixed and built_of == self._request_of:
            return last
        values = self._values(seq=self.seq + 1 if reading else 0, device_id=device_id)
        request = self._request(spec, token, authorization, values)
        self._request_of, self._last_request = built_of, request
        self._request_fixed = spec.body is None and not per_request(spec.path)
        return request

    def _lean_wire(self, request: Request, body: bytes | None) -> bytes | None:
        """The request as the client library writes it, built again only for a new request (a
        renewed token, a new seq); None for what the kept connection does not send (a body sent
        in chunks or after ``100 Continue``): the client sends those."""
        if request is not self._wire_for:
            if any(name.lower() in _CLIENT_ONLY_HEADERS for name in request.headers):
                return None
            head = self._http._build_request(
                request.method, request.path, body=body or b"", headers=request.headers
            )
            self._wire_for, self._wire = request, head.encode("latin-1") + (body or b"")
        return self._wire

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
            endpoint,
            scenario,
            alg,
            outcome,
            latency_us,
            status=status,
            reason=reason,
            corrected_us=self._answered(latency_us),
        )
        if outcome in ("ok", "rejected_as_expected"):
            response.success()
        else:
            response.failure(outcome)
