"""A device's access tokens: fetched from the profile's token call or minted by the device,
held per scenario, renewed proactively or on expiry, and backed off after failures."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import gevent
import jwt

from sim.account.offered import paced
from sim.device.calls import DeviceRequests
from sim.device.run_state import MEASUREMENTS, signing_key
from sim.outcomes import Outcome, judge_forged
from sim.profiles.http import (
    TokenAnswer,
    judge_answer,
    mint_token,
    read_token,
    refresh_request,
    token_request,
)
from sim.shape.scenarios import Scenario
from sim.untrusted import parse_json

__all__ = ["RETRIED_OUTCOMES", "HeldToken", "TokenHolder", "retry_after_s"]

_ERROR_CODE = re.compile(r"^[a-z_]{1,40}$")  # an RFC 6749 error code, as the API may name one

ASSERTION_LIFETIME_S = 300
# Proactive refresh happens at a random point in this share of a token's lifetime, so a fleet
# does not renew in lockstep.
PROACTIVE_WINDOW = (0.5, 0.8)
# A token request that got no answer or a 5xx is retried after a jittered, growing pause.
RETRIED_OUTCOMES: frozenset[Outcome] = frozenset({"transport_error", "server_error"})
BACKOFF_BASE_S = 0.2
BACKOFF_CAP_S = 5.0
# The longest Retry-After honoured: a run is minutes long, a longer wait is the run's end.
RETRY_AFTER_CAP_S = 120.0


def retry_after_s(response: Any) -> float | None:
    """A Retry-After header's wait in seconds (delay-seconds or an HTTP-date), else None."""
    value = (response.headers or {}).get("Retry-After") if response.status_code else None
    if not value:
        return None
    value = str(value).strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


@dataclass
class HeldToken:
    token: str
    alg: str
    exp: float
    refresh_at: float
    refresh_token: str | None = field(default=None, repr=False)


class TokenHolder(DeviceRequests):
    """The token half of a :class:`sim.device.user.FleetDevice`: one access token per scenario."""

    key: Any  # the device's own private key (RFC 7523 assertions), or None
    issuer: str
    tokens: dict[Scenario, HeldToken]
    token_failures: int
    last_token_outcome: Outcome
    retry_after_s: float | None = None  # what the last 429/503 token answer asked to wait

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

    def _mint_held(self, scenario: str) -> HeldToken:
        """A token this device signs itself (the profile's claims and key): no request, timed
        into ``mint_us``; the expiry scenario's live ``short_ttl_s``."""
        spec = self.profile.token
        ttl = spec.short_ttl_s if scenario == "expiry" else self.config.minted_ttl_s or spec.ttl_s
        started = time.perf_counter()
        token = mint_token(self.profile, signing_key(), self._values(ttl=ttl))
        MEASUREMENTS.record_mint(spec.alg, (time.perf_counter() - started) * 1_000_000)
        now = time.time()
        return self._hold(TokenAnswer(token, now + ttl, now, spec.alg))

    def fetch_token(
        self,
        grant: str,
        scenario: str,
        refresh_of: HeldToken | None = None,
        *,
        revoked: bool = False,
    ) -> HeldToken | None:
        """One token request by ``grant`` (client_credentials or jwt-bearer), or the profile's
        refresh call with ``refresh_of``'s refresh token, judged and timed; ``revoked``: the
        device was revoked, so a token issued is a bad credential accepted."""
        self._start(paced=paced(f"token {grant}", scenario))  # the issuance task's own request
        assertion = grant == "jwt-bearer"
        if refresh_of is not None:
            values = self._values(refresh_token=refresh_of.refresh_token)
            request = refresh_request(self.profile, values)
            endpoint = "token refresh"
        else:
            values = self._values(assertion=self._mint_assertion() if assertion else "")
            request = token_request(self.profile, values, assertion=assertion)
            endpoint = self._token_row(grant)
        self.kept.release()  # the client's request takes the same connection
        with self.client.request(
            request.method,
            request.path,
            name=f"{scenario} {endpoint}",
            data=request.body.decode() if request.body else None,
            headers=request.headers,
            catch_response=True,
            allow_redirects=False,  # the profile's headers stay on the target
        ) as response:
            status = response.status_code or 0
            outcome = judge_forged(status) if revoked else self._judge_issuance(status)
            held = None
            if outcome == "ok":
                try:
                    body = parse_json(response.content or b"")
                except (ValueError, TypeError):
                    body = None
                answer = read_token(
                    self.profile,
                    response.headers,
                    body,
                    time.time(),
                    refreshed=refresh_of is not None,
                )
                if answer is None:
                    outcome = "refused_valid"  # a 200 without a usable token is no token
                else:
                    held = self._hold(answer)
                    if held.refresh_token is None and refresh_of is not None:
                        held.refresh_token = refresh_of.refresh_token  # not rotated: keep it
            # RFC 9110 10.2.3: a 429 or 503 may say when to come back; --backoff waits that long.
            self.retry_after_s = retry_after_s(response) if status in (429, 503) else None
            reason = "" if outcome == "ok" else self._token_error(response)
            self._settle(response, endpoint, scenario, outcome, status, reason)
        self.last_token_outcome = outcome
        return held

    def _token_row(self, grant: str) -> str:
        """The token call's row, named for what the profile's call is: an RFC 7523 assertion,
        an OAuth client-credentials grant, or else a login (a password call is no "token cc")."""
        if grant == "jwt-bearer":
            return "token jwt-bearer"
        body = self.profile.token.form or self.profile.token.json or {}
        return "token client_credentials" if body.get("grant_type") == grant else "token login"

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
        due = iat + share * (exp - iat)
        return HeldToken(answer.token, answer.alg, exp, due, answer.refresh_token)

    @staticmethod
    def _token_error(response: Any) -> str:
        if not response.status_code:
            return "connection"  # no answer at all: there is no body to read
        try:
            error = parse_json(response.content or b"").get("error", "")
        except (ValueError, AttributeError, TypeError):
            return ""
        # The API's word becomes a reason in summary.json and the terminal: an error code only.
        return error if isinstance(error, str) and _ERROR_CODE.match(error) else ""

    def _grant(self) -> str:
        return "jwt-bearer" if self.key is not None else "client_credentials"

    def tokens_for(
        self, scenario: Scenario, recorded_as: str, refresh_of: HeldToken | None = None
    ) -> HeldToken | None:
        """A fresh token for ``scenario`` (by the refresh call when ``refresh_of`` holds a
        refresh token and the profile has one; refused there, by the token call); after a
        failure that is not a refusal, back off."""
        if self.profile.minted:
            self.tokens[scenario] = self._mint_held(scenario)
            return self.tokens[scenario]
        held = None
        refreshing = bool(refresh_of and refresh_of.refresh_token and self.profile.token.refresh)
        if refreshing:
            held = self.fetch_token(self._grant(), recorded_as, refresh_of)
        # A refused refresh falls back to the token call at once; an unanswered one backs off.
        if held is None and not (refreshing and self.last_token_outcome in RETRIED_OUTCOMES):
            held = self.fetch_token(self._grant(), recorded_as)
        if held is not None:
            self.tokens[scenario] = held
            if self.token_failures:
                MEASUREMENTS.device_sets["token_recovered"].add(self.device.id)
                self.token_failures = 0
        else:
            self.tokens.pop(scenario, None)
            # --backoff: a refused token call (429, say) backs off too, not only a failed one.
            if self.last_token_outcome in RETRIED_OUTCOMES or self.config.backoff:
                self._back_off()
        return held

    def _back_off(self) -> None:
        """Wait before the next token request: exponential with full jitter, capped, so a fleet
        that lost its token endpoint neither dies nor comes back in one synchronised wave."""
        self.token_failures += 1
        MEASUREMENTS.device_sets["token_failed"].add(self.device.id)
        ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (self.token_failures - 1))
        delay_s = self.rng.uniform(0, ceiling)
        if self.config.backoff and self.retry_after_s is not None:
            # Not before the API said, and still jittered so the fleet does not return at once.
            delay_s += min(self.retry_after_s, RETRY_AFTER_CAP_S)
        MEASUREMENTS.counters["token_retries"] += 1
        MEASUREMENTS.counters["token_backoff_ms"] += round(delay_s * 1000)
        gevent.sleep(delay_s)
        if self.schedule is not None:
            self.schedule.answered(time.perf_counter())  # backing off is not the generator's lag

    def held(self, scenario: Scenario, *, proactive: bool) -> HeldToken | None:
        """The scenario's token, renewed first if it is missing or (``proactive``) due."""
        held = self.tokens.get(scenario)
        if held is None or (proactive and time.time() >= held.refresh_at):
            if held is not None and scenario == "expiry":
                MEASUREMENTS.counters["refreshes"] += 1
            held = self.tokens_for(scenario, scenario, refresh_of=held)
        return held

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
