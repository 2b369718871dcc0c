"""``--scenario revocation``: K % of the fleet revoked mid-run, and how long the API keeps
accepting their tokens.

The orchestrator picks the devices before the run (spread over the fleet) and, mid-run, revokes
them one by one through the API (our admin API, or the profile's ``[revoke]`` call), writing each
call's moments to a journal file: a ``sent`` line before the call, an ``answered`` line after it.
The devices (:mod:`sim.device.trust_tasks`) read the journal as they judge: a revoked device keeps
presenting the token it held (what the holder of a stolen token does), each request on a new
connection so the requests spread over the API's processes; a refusal once its revoke call was
sent is expected, and an acceptance of a request that started later than the call's answer plus
the API's stated bound is ``accepted_invalid``. Each such device also logs its requests
(``Measurements.revocation``), from which :func:`revocation_section` works out, per device, the
time from the revoke call's answer until the API stopped accepting its token.

This module never imports Locust or gevent.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sim.account.measure import Measurements, new_histogram, new_second_histogram, percentiles
from sim.account.rotation import seconds_text
from sim.artefacts.summary_file import Revocation
from sim.errors import SimError
from sim.fleet.client import TargetClient
from sim.profiles.http import render
from sim.profiles.model import Revoke

__all__ = [
    "DEFAULT_REVOKE_PERCENT",
    "REVOKE_AT_SHARE",
    "TOKEN_ASKED",
    "TOKEN_ISSUED",
    "Journal",
    "Revoker",
    "pick_revoked",
    "revocation_failures",
    "revocation_line",
    "revocation_section",
]

# The devices are revoked this share of --duration after Locust's test starts.
REVOKE_AT_SHARE = 0.4
DEFAULT_REVOKE_PERCENT = 10.0
REVOCATION_MIN_DURATION_S = 6
_PERCENT_P99 = 99.0
# Counters: each revoked device asks the token call once past the bound; a token is issued.
TOKEN_ASKED, TOKEN_ISSUED = "revocation token_requests", "revocation tokens_issued"


def pick_revoked(device_ids: list[str], percent: float) -> list[str]:
    """``percent`` of the fleet (at least one device), spread evenly over it: the Locust
    processes claim devices interleaved, so every process holds some of them."""
    count = min(len(device_ids), max(1, math.ceil(len(device_ids) * percent / 100)))
    step = len(device_ids) / count
    return [device_ids[int(i * step)] for i in range(count)]


@dataclass
class Journal:
    """The revoke calls' moments by device, read from the journal file as it grows (a line is
    written whole by one ``write``; a partial last line waits for the next read)."""

    path: Path
    sent: dict[str, float] = field(default_factory=dict)
    answered: dict[str, float] = field(default_factory=dict)
    _offset: int = 0
    _size: int = -1

    def refresh(self) -> Journal:
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return self
        if size == self._size:
            return self
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read(size - self._offset)
        complete = chunk.rfind(b"\n") + 1
        for line in chunk[:complete].splitlines():
            entry = json.loads(line)
            moments = self.sent if entry["event"] == "sent" else self.answered
            moments[str(entry["device"])] = float(entry["t"])
        self._offset += complete
        self._size = self._offset
        return self


class Revoker:
    """The revoke calls, one device after another, each noted in the journal before it is sent
    and after it is answered."""

    def __init__(
        self, client: TargetClient, spec: Revoke, devices: list[str], journal: Path
    ) -> None:
        self._client = client
        self._spec = spec
        self._devices = devices
        self._journal = journal
        self.call_us: list[float] = []
        self.first_answered_at: float | None = None

    def _note(self, event: str, device: str, moment: float) -> None:
        line = json.dumps({"event": event, "device": device, "t": moment}) + "\n"
        fd = os.open(self._journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())  # one write: a reader sees the line whole or not at all
        finally:
            os.close(fd)

    def __call__(self, stop: threading.Event) -> None:
        for device in self._devices:
            if stop.is_set():
                return
            path = str(render(self._spec.path, {"device_id": device}))
            sent = time.time()
            self._note("sent", device, sent)
            response = self._client.request(self._spec.method, path, admin=True)
            answered = time.time()
            if response.status_code not in self._spec.ok:
                raise SimError(
                    f"revocation: {self._spec.method} {self._spec.path} answered "
                    f"{response.status_code}, not {self._spec.ok}"
                )
            self._note("answered", device, answered)
            self.call_us.append((answered - sent) * 1_000_000)
            if self.first_answered_at is None:
                self.first_answered_at = answered


def revocation_section(
    measurements: Measurements,
    journal: Journal,
    *,
    devices: int,
    bound_s: float,
    via: str,
    call_us: list[float],
) -> Revocation:
    """Per revoked device, from its requests after its revoke call was answered: the time until
    the last one still accepted was answered (0 when none was), and the acceptances that started
    past the bound."""
    journal.refresh()
    refuse = new_second_histogram()
    probes = refused = accepted = late = 0
    devices_refused = devices_late = 0
    time_to_refuse_max: float | None = None
    for device, revoked_at in journal.answered.items():
        after = [r for r in measurements.revocation.get(device, []) if r[0] > revoked_at]
        probes += len(after)
        accepted_rows = [r for r in after if r[2]]
        accepted += len(accepted_rows)
        refused += len(after) - len(accepted_rows)
        device_late = sum(1 for r in accepted_rows if r[0] > revoked_at + bound_s)
        late += device_late
        devices_late += device_late > 0
        if len(accepted_rows) == len(after):
            continue  # never seen refused: no time to refuse to give
        devices_refused += 1
        still = max((r[1] for r in accepted_rows), default=revoked_at) - revoked_at
        refuse.record_value(max(1, round(still * 1_000_000)))
        time_to_refuse_max = max(time_to_refuse_max or 0.0, round(still, 6))
    tokens_issued = measurements.counters.get(TOKEN_ISSUED, 0)
    calls = new_histogram()
    for us in call_us:
        calls.record_value(max(1, round(us)))
    to_refuse = percentiles(refuse)
    # A device refused at once is recorded as 1 µs, the floor of the histogram's scale.
    p99_s = refuse.get_value_at_percentile(_PERCENT_P99) / 1_000_000 if refuse.total_count else 0
    within = refuse.total_count > 0 and p99_s <= bound_s + 1e-6
    return {
        "via": via,
        "bound_s": bound_s,
        "devices": devices,
        "revoked_at": min(journal.answered.values(), default=None),
        "revoke_call_us": percentiles(calls),
        "probes": probes,
        "refused": refused,
        "accepted": accepted,
        "late_acceptances": late,
        "devices_refused": devices_refused,
        "devices_late": devices_late,
        "time_to_refuse_us": to_refuse,
        "time_to_refuse_max_s": time_to_refuse_max,
        "token_requests": measurements.counters.get(TOKEN_ASKED, 0),
        "tokens_issued": tokens_issued,
        "passed": late == 0 and tokens_issued == 0 and devices_refused == devices and within,
    }


def revocation_failures(section: Revocation) -> list[str]:
    """The verdict's failure lines for a revocation run that did not prove its bound."""
    failures = []
    if section["late_acceptances"]:
        failures.append(
            f"revocation: {section['late_acceptances']} requests of {section['devices_late']} "
            f"revoked devices accepted more than {section['bound_s']:g} s after the revocation"
        )
    if section["tokens_issued"]:
        failures.append(
            f"revocation: the token call issued {section['tokens_issued']} tokens to revoked "
            "devices"
        )
    if section["devices_refused"] < section["devices"]:
        failures.append(
            f"revocation: {section['devices'] - section['devices_refused']} of "
            f"{section['devices']} revoked devices were never seen refused"
        )
    elif not section["passed"]:
        failures.append(
            f"revocation: p99 time to refuse {section['time_to_refuse_us'].get('p99', 0) / 1e6:.3f}"
            f" s is over the bound of {section['bound_s']:g} s"
        )
    return failures


def revocation_line(section: Revocation) -> str:
    """One line for the table."""
    refuse = section["time_to_refuse_us"]

    def us(value: float | None) -> str:
        return seconds_text(None if value is None else value / 1e6, 3)

    return (
        f"revocation ({section['via']}): {section['devices']} devices revoked, "
        f"{section['devices_refused']} seen refused; time to refuse p50 "
        f"{us(refuse.get('p50'))}, p99 {us(refuse.get('p99'))}, max {us(refuse.get('max'))} "
        f"(bound {section['bound_s']:g} s); "
        f"{section['probes']} requests after revocation, {section['accepted']} accepted, "
        f"{section['late_acceptances']} late; tokens issued to revoked devices "
        f"{section['tokens_issued']}/{section['token_requests']}"
    )
