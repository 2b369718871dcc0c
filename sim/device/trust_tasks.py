"""The device's side of the trust scenarios: ``rotation-storm`` (:mod:`sim.account.rotation`)
marks the keys a device's tokens are signed by, ``revocation`` (:mod:`sim.account.revocation`)
has the revoked devices keep presenting their token and judges each answer against the revoke
calls' journal."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

from sim.account.revocation import TOKEN_ASKED, TOKEN_ISSUED, Journal
from sim.account.rotation import HELD, OK, REFUSED_VALID, token_kid
from sim.device.run_state import MEASUREMENTS, run_config
from sim.device.storm_tasks import StormDevice
from sim.device.tokens import HeldToken
from sim.outcomes import Outcome
from sim.profiles.http import judge_answer

__all__ = ["TrustDevice"]

THROTTLED = 429


@cache
def _journal(path: str) -> Journal:
    """This process's reader of the revoke calls' journal (one per process, read as it grows)."""
    return Journal(Path(path))


@cache
def _revoked(devices: tuple[str, ...]) -> frozenset[str]:
    return frozenset(devices)


class TrustDevice(StormDevice):
    """The trust half of a :class:`sim.users.FleetDevice`."""

    _kid_of: tuple[str, str] = ("", "")  # (token, its kid): parsed once per token
    _asked_when_revoked = False  # revocation: asked the token call once since its revocation

    def _token_kid(self, held: HeldToken) -> str:
        if self._kid_of[0] != held.token:
            self._kid_of = (held.token, token_kid(held.token))
        return self._kid_of[1]

    def rotation_storm(self) -> None:
        """The steady state (verification), renewing proactively as it does, with each token's
        key marked: first held, first accepted; a valid token refused is counted by its key."""
        MEASUREMENTS.counters["runs verification"] += 1
        held = self.held("verification", proactive=True)
        if held is None:
            return
        kid = self._token_kid(held)
        self._mark(HELD + kid, time.time())
        outcome, _ = self.use_held("verification", held)
        if outcome == "ok":
            self._mark(OK + kid, time.time())
        elif outcome in ("rejected_as_expected", "refused_valid"):
            if outcome == "refused_valid":
                MEASUREMENTS.counters[REFUSED_VALID + kid] += 1
            self.tokens.pop("verification", None)  # renew before the next reading

    def revoked_journal(self) -> Journal | None:
        """--scenario revocation: the revoke calls' journal if the run revokes this device;
        past the bound, once, the token call must refuse it too (a token: accepted_invalid)."""
        config = run_config()
        if self.device.id not in _revoked(tuple(config.revoked_devices)):
            return None
        MEASUREMENTS.counters["runs revocation"] += 1
        journal = _journal(config.revocation_journal or "")
        bound_s = config.revocation_bound_s or 0.0
        revoked_at = journal.refresh().answered.get(self.device.id)
        if (
            revoked_at is not None
            and not self._asked_when_revoked
            and not self.profile.minted
            and time.time() > revoked_at + bound_s
        ):
            self._asked_when_revoked = True
            self.fetch_token(self._grant(), "revocation", revoked=True)
            MEASUREMENTS.counters[TOKEN_ASKED] += 1
            if self.last_token_outcome == "accepted_invalid":
                MEASUREMENTS.counters[TOKEN_ISSUED] += 1
        return journal

    def revocation_judge(
        self, journal: Journal, held: HeldToken, started: float
    ) -> Callable[[int, str], Outcome]:
        """How a revoked device's request with its token is judged, against the journal: an
        acceptance past the bound is a bad credential accepted, a refusal once the revocation
        was under way is expected; each one while the token is unexpired is a probe."""
        device = self.device.id
        config = run_config()
        bound_s = config.revocation_bound_s or 0.0

        def judge(status: int, reason: str) -> Outcome:
            answered = time.time()
            journal.refresh()
            sent, answered_at = journal.sent.get(device), journal.answered.get(device)
            accepted = 200 <= status < 300
            # A refusal of the token: a 4xx, but not 429 (that refuses the rate, not the token).
            refused = 400 <= status < 500 and status != THROTTLED
            # A probe: accepted or refused once the revocation was under way, token unexpired.
            if sent is not None and (accepted or refused) and answered < held.exp:
                MEASUREMENTS.revocation[device].append(
                    [started, answered, 1.0 if accepted else 0.0]
                )
            if accepted and answered_at is not None and started > answered_at + bound_s:
                return "accepted_invalid"
            if refused and sent is not None and answered >= sent:
                return "rejected_as_expected"  # refused once its revocation was under way
            return judge_answer(
                self.profile, status, reason, exp=held.exp, now=answered,
                leeway_s=config.leeway_s,
            )  # fmt: skip

        return judge

    def revocation(self) -> None:
        """A device the run does not revoke: the steady state. A revoked one: its token, on a new
        connection each time, judged against the journal of the revoke calls."""
        journal = self.revoked_journal()
        if journal is None:
            self.verification()  # type: ignore[attr-defined]  # FleetDevice's task
            return
        device = self.device.id
        if journal.sent.get(device) is None:
            held = self.held("verification", proactive=True)  # not yet revoked: renews as usual
        else:
            held = self.tokens.get("verification")
            if held is None or time.time() >= held.exp:
                return  # revoked: it is issued no new token, and has no live one to present
        if held is None:
            return
        judge = self.revocation_judge(journal, held, time.time())
        # A new connection per request, so the kernel spreads them over the API's processes.
        outcome, _ = self.call(
            "revocation", held.token, device, judge, reading=True, close_connection=True
        )
        if outcome == "refused_valid":
            self.tokens.pop("verification", None)  # not yet revoked: renew as it would
