"""The device's side of a storm (:mod:`sim.account.storms`): the expiry-storm and reconnect-storm
tasks, and the marks each device records once (expiry: its storm token's ``exp``, its refusal, its
first ``ok`` after it; reconnect: its first failed request, its first ``ok`` after it)."""

from __future__ import annotations

import time

import gevent

from sim.account.storms import (
    MARK_BACK,
    MARK_CUT,
    MARK_EXP,
    MARK_OK,
    MARK_REFUSED,
    RECONNECT_TOKEN_SCENARIO,
    STORM_TOKEN_SCENARIO,
)
from sim.device.run_state import MEASUREMENTS
from sim.device.tokens import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    RETRIED_OUTCOMES,
    HeldToken,
    TokenHolder,
)

__all__ = ["STORM_TOKEN_ATTEMPTS", "StormDevice"]

# With --backoff a device in the storm asks for its new token up to this many times in one
# reading's turn, pausing (jittered, growing) between them; without, once per reading.
STORM_TOKEN_ATTEMPTS = 6


class StormDevice(TokenHolder):
    """The storm half of a :class:`sim.device.user.FleetDevice`."""

    storm_marks: dict[str, float]
    answer_failures: int = 0  # readings in a row answered 5xx/429 or not at all (--backoff)

    def _marks(self) -> dict[str, float]:
        """This device's storm marks, made on first use (``on_start`` is
        :mod:`sim.device.user`')."""
        try:
            return self.storm_marks
        except AttributeError:
            self.storm_marks = {}
            return self.storm_marks

    def _mark(self, name: str, moment: float) -> None:
        marks = self._marks()
        if name not in marks:
            marks[name] = moment
            MEASUREMENTS.storm_marks[self.device.id][name] = moment

    def _in_storm(self) -> bool:
        marks = self._marks()
        return MARK_REFUSED in marks and MARK_OK not in marks

    def _storm_token(self) -> HeldToken | None:
        """A new token; recorded as the storm's burst while the device is in it."""
        recorded_as = STORM_TOKEN_SCENARIO if self._in_storm() else "expiry"
        attempts = STORM_TOKEN_ATTEMPTS if self.config.backoff else 1
        for _ in range(attempts):
            held = self.tokens_for("expiry", recorded_as)  # backs off after a failure
            if held is not None:
                return held
        return None

    def _answer_back_off(self) -> None:
        """--backoff: after a 5xx (503), no answer or a refused valid token (429), wait before
        the next reading, exponential with full jitter, like a failed token call."""
        self.answer_failures += 1
        ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (self.answer_failures - 1))
        gevent.sleep(self.rng.uniform(0, ceiling))

    def expiry_storm(self) -> None:
        """The expiry task, marking the device's way through the storm of its first token."""
        MEASUREMENTS.counters["runs expiry"] += 1
        MEASUREMENTS.device_sets["expiry"].add(self.device.id)
        held = self.tokens.get("expiry") or self._storm_token()
        if held is None:
            return
        self._mark(MARK_EXP, held.exp)  # the first token held: the one fetched with the fleet
        outcome, _ = self.use_held("expiry", held)
        if outcome == "rejected_as_expected":
            MEASUREMENTS.counters["expirations"] += 1
            MEASUREMENTS.device_sets["expired"].add(self.device.id)
            MEASUREMENTS.counters["refreshes"] += 1
            self._mark(MARK_REFUSED, time.time())
            renewed = self._storm_token()
            if renewed is None:
                return
            outcome, _ = self.use_held("expiry", renewed)
            if outcome == "ok":
                MEASUREMENTS.device_sets["recovered"].add(self.device.id)
        if outcome == "ok":
            self.answer_failures = 0
            if self._in_storm():
                self._mark(MARK_OK, time.time())
            return
        if outcome == "refused_valid":
            self.tokens.pop("expiry", None)
        if self.config.backoff and outcome in ("refused_valid", "server_error", "transport_error"):
            self._answer_back_off()

    def _cut_off(self) -> bool:
        marks = self._marks()
        return MARK_CUT in marks and MARK_BACK not in marks

    def reconnect_storm(self) -> None:
        """The steady state (verification), through one outage of the target: a device whose
        request fails drops its token and re-authenticates before its next reading, as a device
        that lost its connection does; marked when cut off and when first ``ok`` again."""
        MEASUREMENTS.counters["runs verification"] += 1
        held = self.tokens.get("verification")
        if held is None:
            recorded_as = RECONNECT_TOKEN_SCENARIO if self._cut_off() else "verification"
            attempts = STORM_TOKEN_ATTEMPTS if self.config.backoff else 1
            for _ in range(attempts):
                held = self.tokens_for("verification", recorded_as)  # backs off after a failure
                if held is not None:
                    break
            if held is None:
                if self.last_token_outcome in RETRIED_OUTCOMES:
                    self._mark(MARK_CUT, time.time())  # no answer from the token endpoint either
                return
        outcome, _ = self.use_held("verification", held)
        if outcome == "ok":
            self.answer_failures = 0
            if self._cut_off():
                self._mark(MARK_BACK, time.time())
            return
        self.tokens.pop("verification", None)  # re-authenticate before the next reading
        if outcome in ("server_error", "transport_error"):
            self._mark(MARK_CUT, time.time())
        if self.config.backoff and outcome in ("refused_valid", "server_error", "transport_error"):
            self._answer_back_off()
