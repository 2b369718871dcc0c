"""The open model's send schedule (``--rate``): one device's intended send times, and how late
each request went out.

With ``--rate R`` each of a fleet's ``D`` devices sends ``R / D`` requests per second on its own
clock, from a random phase within one period: its k-th request's *intended* send time is
``first + k / (R / D)``, whether or not the target has answered the last one. A device holds one
connection (as wrk2 holds a schedule per connection), so a request whose time comes while the
last answer is still awaited goes out the moment that answer arrives, and a device behind its
schedule sends back to back until it has caught up. Latency is then measured twice: *corrected*
from the intended send time to the answer (a stalled target shows as latency, not as load that
quietly went missing: coordinated omission, in Gil Tene's words) and *service time* from the
actual send.

The lag of a send (actual minus intended) has two parts: waiting for the device's previous
answer (the target's doing), and the rest: from the later of the intended time and the moment
the device was free, to the send. That rest is the generator's own scheduling delay (a busy event
loop, a process short of CPU); ``generator_lag_s`` reports it apart, so a run can say when the
generator, not the target, was the limit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from sim.shape.stages import Stages

__all__ = ["SendSchedule", "StagedSchedule", "is_open_model", "open_pacing"]


def is_open_model(rate_rps: float | None, stages: Stages | None) -> bool:
    """The open model's rule, for both sides of a run: ``--rate``, or rate stages (``30s:500r``),
    puts each device on its own schedule; otherwise each reports every ``--interval``."""
    return rate_rps is not None or (stages is not None and stages.kind == "rate")


# The longest a device sleeps at once: past the end of a rate stage at 0 it has no next send, and
# the run's stop ends the sleep.
LONGEST_WAIT_S = 1e6


@dataclass
class SendSchedule:
    """One device's schedule. Times are ``time.perf_counter()`` seconds."""

    period_s: float
    first_s: float  # the first intended send (the device's start plus its random phase)
    slot: int = 0  # the slot the device's current task serves
    consumed: bool = False  # whether the current slot's request has gone out
    free_s: float = field(default_factory=time.perf_counter)  # when the last answer came

    @property
    def intended_s(self) -> float:
        return self.first_s + self.slot * self.period_s

    def next_wait_s(self, now_s: float) -> float:
        """After a task: move to the next slot and return how long to sleep until it (0 when
        the device is behind its schedule)."""
        self.slot += 1
        self.consumed = False
        return min(max(0.0, self.intended_s - now_s), LONGEST_WAIT_S)

    def send(self, now_s: float) -> tuple[float, float] | None:
        """The current slot's request goes out now: its lag behind the intended time and the
        generator's share of that lag, in seconds; None when the slot was already served (a
        second request in the same task: a renewal, a retry)."""
        if self.consumed:
            return None
        self.consumed = True
        intended = self.intended_s
        lag = max(0.0, now_s - intended)
        generator_lag = max(0.0, now_s - max(intended, self.free_s))
        return lag, generator_lag

    def answered(self, now_s: float) -> None:
        """An answer (or a failure to get one) came: the device is free to send again."""
        self.free_s = now_s


class StagedSchedule(SendSchedule):
    """A schedule whose fleet-wide rate follows rate stages (``--stages 30s:500r,...``): the
    device's k-th send is due when the stages have asked the fleet for ``(k + phase) * devices``
    requests, so each device keeps its share of a changing rate, still from a random phase."""

    def __init__(
        self, stages: Stages, devices: int, origin_s: float, phase: float, now_s: float
    ) -> None:
        super().__init__(period_s=0.0, first_s=origin_s, free_s=now_s)
        self.stages, self.devices, self.phase = stages, devices, phase
        # The first slot due from now: none owed for the time before the device was ready.
        owed = stages.cumulative(now_s - origin_s) / devices - phase
        self.slot = max(0, math.ceil(owed))

    @property
    def intended_s(self) -> float:
        at = self.stages.time_of_cumulative((self.slot + self.phase) * self.devices)
        return math.inf if at is None else self.first_s + at


def open_pacing(user: Any) -> float:
    """Locust ``wait_time`` of the open model: sleep until the device's next intended send."""
    schedule: SendSchedule = user.schedule  # set in on_start, before the first task
    return schedule.next_wait_s(time.perf_counter())
