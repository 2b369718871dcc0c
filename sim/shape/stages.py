"""Load stages (``--stages "30s:100,60s:1000,30s:0"``): the load as a function of time.

Each step is ``DURATION:TARGET``: over ``DURATION`` the load ramps linearly from the previous
step's target (the first from 0) to ``TARGET``, as k6's stages do; a constant stage repeats the
target (``10s:100,50s:100``). A target is a number of **devices** reporting (closed model, each at
``--interval``), or with an ``r`` suffix a fleet-wide **rate** in requests per second (the open
model, ``sim.shape.schedule``); one run's steps are all of one kind. Durations take Locust's own
form (``30``, ``30s``, ``2m``, ``1h30m``), whole seconds.

Why not Locust's ``LoadTestShape``: it starts and kills users to follow the shape, and a device
killed mid-request loses its answer from the account, while one started again needs an identity
the fleet no longer has free. So the whole fleet starts once, and the stages decide how many of
its devices report (device ``i`` reports while the target is above ``i``) or at what rate.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from sim.errors import ConfigError

__all__ = ["Stage", "StageKind", "Stages", "parse_stages"]

StageKind = Literal["devices", "rate"]


@dataclass(frozen=True)
class Stage:
    duration_s: float
    target: float  # devices, or requests per second fleet-wide


@dataclass(frozen=True)
class Stages:
    """The steps, and the load they ask for at any second from the test's start."""

    kind: StageKind
    steps: tuple[Stage, ...]
    text: str = ""

    @property
    def total_s(self) -> float:
        return sum(step.duration_s for step in self.steps)

    @property
    def peak(self) -> float:
        return max(step.target for step in self.steps)

    def spans(self) -> list[tuple[float, float, float, float]]:
        """(start s, end s, from, to) of each step, from the test's start."""
        spans, start, before = [], 0.0, 0.0
        for step in self.steps:
            spans.append((start, start + step.duration_s, before, step.target))
            start += step.duration_s
            before = step.target
        return spans

    def value_at(self, t_s: float) -> float:
        """The load asked for ``t_s`` seconds after the start (0 before, the last after)."""
        if t_s <= 0:
            return 0.0
        for start, end, before, after in self.spans():
            if t_s < end:
                return before + (after - before) * (t_s - start) / (end - start)
        return self.steps[-1].target

    def cumulative(self, t_s: float) -> float:
        """The integral of the load from the start to ``t_s`` (requests, for a rate)."""
        total = 0.0
        for start, end, before, after in self.spans():
            if t_s <= start:
                break
            upto = min(t_s, end)
            reached = before + (after - before) * (upto - start) / (end - start)
            total += (upto - start) * (before + reached) / 2
        if t_s > self.total_s:
            total += (t_s - self.total_s) * self.steps[-1].target
        return total

    def time_of_cumulative(self, amount: float) -> float | None:
        """When the integral of the load reaches ``amount``; None if it never does within the
        stages (the run ends first)."""
        if amount <= 0:
            return 0.0
        done = 0.0
        for start, end, before, after in self.spans():
            duration = end - start
            area = duration * (before + after) / 2
            if done + area >= amount:
                need = amount - done
                slope = (after - before) / duration
                if abs(slope) < 1e-12:
                    return start + need / before
                # before * x + slope * x^2 / 2 = need, the root within the step
                x = (-before + math.sqrt(max(0.0, before * before + 2 * slope * need))) / slope
                return start + min(max(x, 0.0), duration)
            done += area
        return None

    def first_above(self, level: float, after_s: float) -> float | None:
        """The first moment at or after ``after_s`` when the load is above ``level`` (when
        device number ``level`` starts to report); None if it never is again."""
        if self.value_at(after_s) > level:
            return after_s
        for start, end, before, after in self.spans():
            if end <= after_s or after <= level:
                continue
            # rising through level within this step (before <= level < after)
            crossing = start + (level - before) / (after - before) * (end - start)
            return max(crossing, after_s) + 1e-6
        return None


# Locust's run-time form (``locust.util.timespan``), read here without importing Locust: the
# orchestrator must not be monkey-patched by gevent.
_TIMESPAN = re.compile(r"(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?")


def _duration(text: str) -> float:
    found = _TIMESPAN.fullmatch(text)
    if text.isdigit():
        value = int(text)
    elif found and any(found.groupdict().values()):
        parts = {k: int(v or 0) for k, v in found.groupdict().items()}
        value = parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
    else:
        raise ConfigError(f"--stages: not a duration: {text!r} (whole seconds: 30, 30s, 2m, 1h30m)")
    if value < 1:
        raise ConfigError(f"--stages: a step lasts at least 1 second, not {text!r}")
    return float(value)


def parse_stages(text: str) -> Stages:
    """``"30s:100,60s:1000,30s:0"`` (devices) or ``"30s:200r,60s:2000r"`` (rates)."""
    steps: list[Stage] = []
    kinds: set[StageKind] = set()
    for part in (p.strip() for p in text.split(",")):
        when, colon, target = part.partition(":")
        if not colon or not when.strip() or not target.strip():
            raise ConfigError(
                f"--stages: {part!r} is not DURATION:TARGET (say 30s:100 or 30s:500r)"
            )
        target = target.strip()
        kind: StageKind = "rate" if target.endswith("r") else "devices"
        number = target.removesuffix("r")
        try:
            value = float(number) if kind == "rate" else int(number)
        except ValueError as e:
            what = "a rate such as 500r" if kind == "rate" else "a whole number of devices"
            raise ConfigError(f"--stages: {target!r} is not {what}") from e
        if value < 0 or not math.isfinite(value):
            raise ConfigError(f"--stages: {target!r} must be 0 or more")
        kinds.add(kind)
        steps.append(Stage(_duration(when.strip()), float(value)))
    if len(kinds) > 1:
        raise ConfigError("--stages: all steps are devices (30s:100) or all rates (30s:500r)")
    stages = Stages(kinds.pop(), tuple(steps), text)
    if stages.peak <= 0:
        raise ConfigError("--stages: every target is 0: nothing would be sent")
    return stages
