"""wrk2 as the constant-rate reference for ``fleetbench capacity``: its highest constant rate that
meets the same objective against the same running service.

wrk2 (github giltene/wrk2) is a C load tool that sends at a constant rate (``-R``) and records
each request's latency from the time it was meant to be sent (coordinated-omission
correction), as our open model does. It is in no package registry: build it from source and
name the binary (``--wrk2 PATH``); it is never part of this repository.

Each step is one wrk2 run (one thread, one connection per device of the capacity search): its
first ``10 s + 5 ms`` per connection are wrk2's calibration, after which it resets its
histograms, so a step runs that long plus the step's duration. A step meets the objective as
capacity's do: its corrected latency at the objective's percentile within the limit, and its share
of answers that are not 2xx/3xx or socket errors within the error budget. A send wrk2 could not make
on time is timed from when it was due, so a service that did not take the rate shows in that
latency; its requests per second (over the whole run, calibration included: a little under the
rate even when it kept up) are reported, not judged. The search is capacity's own
(:func:`sim.sweep.capacity.search`): doubling from the start rate, then bisection of the bracket.

The bearer token travels in a Lua script (``wrk.headers``) in a private temporary file, not on
the command line where other users' ``ps`` would show it.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sim.artefacts.capacity_file import CapacityAlgorithm, CapacityStep, StepPhase, StepVerdict
from sim.sweep.capacity import Objective, outcome, search

__all__ = ["CALIBRATION_S", "Wrk2Error", "Wrk2Run", "parse_wrk2", "wrk2_search", "wrk2_step"]

CALIBRATION_S = 10.0
CALIBRATION_PER_CONNECTION_S = 0.005
_REQUESTS = re.compile(r"^\s*(\d+) requests in ", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.M)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
# The detailed spectrum's rows: value (ms), percentile (a fraction), count, 1/(1-percentile).
_SPECTRUM_ROW = re.compile(r"^\s*([0-9.]+)\s+([0-9.]+)\s+(\d+)\s+(?:[0-9.]+|inf)\s*$", re.M)
_RECORDED = "Recorded Latency"


class Wrk2Error(RuntimeError):
    """wrk2 could not run, or printed nothing to read."""


@dataclass(frozen=True)
class Wrk2Run:
    """What one wrk2 run printed: requests, requests per second over the whole run, answers
    that were errors, and the corrected latency spectrum after calibration (percentile as a
    fraction -> microseconds)."""

    requests: int
    rps: float
    errors: int
    spectrum: tuple[tuple[float, float], ...]

    def at_percentile_us(self, percentile: float) -> float | None:
        """The corrected latency at ``percentile`` (99.0 for p99)."""
        wanted = percentile / 100.0
        return next((us for fraction, us in self.spectrum if fraction >= wanted - 1e-9), None)


def parse_wrk2(text: str) -> Wrk2Run:
    """One wrk2 run's output (``--latency``, without ``-U``)."""
    requests, rps = _REQUESTS.search(text), _RPS.search(text)
    if requests is None or rps is None:
        raise Wrk2Error(f"wrk2 printed no totals: {text.strip()[-200:]}")
    errors = sum(int(n) for n in (_NON_2XX.findall(text) or ["0"]))
    socket = _SOCKET.search(text)
    if socket is not None:
        errors += sum(int(n) for n in socket.groups())
    recorded = text[text.find(_RECORDED) :] if _RECORDED in text else ""
    spectrum = tuple(
        (float(fraction), float(value_ms) * 1000.0)
        for value_ms, fraction, _ in (m.groups()[:3] for m in _SPECTRUM_ROW.finditer(recorded))
    )
    return Wrk2Run(int(requests.group(1)), float(rps.group(1)), errors, spectrum)


def _lua_header(folder: Path, name: str, value: str) -> Path:
    """A wrk script that sets one request header; readable by the user only."""
    if "]==]" in value or "]==]" in name:
        raise Wrk2Error("the header cannot be written into a wrk script")
    path = folder / "header.lua"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"wrk.headers[ [==[{name}]==] ] = [==[{value}]==]\n")
    return path


def wrk2_step(
    binary: Path, url: str, header: tuple[str, str], rate_rps: float, *, connections: int,
    duration_s: float, objective: Objective, error_budget: float, phase: StepPhase,
    cpus: set[int] | None = None,
) -> CapacityStep:  # fmt: skip
    """One constant-rate wrk2 run at ``rate_rps`` on ``url``, judged as a capacity step."""
    total_s = CALIBRATION_S + CALIBRATION_PER_CONNECTION_S * connections + duration_s
    with tempfile.TemporaryDirectory(prefix="fleetbench-wrk2-") as folder:
        script = _lua_header(Path(folder), *header)
        command = [
            str(binary), "-t1", f"-c{connections}", f"-d{round(total_s)}s",
            f"-R{max(1, round(rate_rps))}", "--latency", "-s", str(script), url,
        ]  # fmt: skip

        def pin() -> None:
            if cpus:
                os.sched_setaffinity(0, cpus)

        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=total_s + 60,
                preexec_fn=pin, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as e:
            raise Wrk2Error(f"wrk2 did not run: {e}") from e
    if done.returncode != 0:
        raise Wrk2Error(f"wrk2 exited {done.returncode}: {(done.stderr or done.stdout)[-200:]}")
    run = parse_wrk2(done.stdout)
    percentile = float(objective.percentile[1:].replace("_", "."))
    at_objective = run.at_percentile_us(percentile)
    error_ratio = run.errors / run.requests if run.requests else 1.0
    met = False
    verdict: StepVerdict
    if at_objective is None or not run.requests:
        verdict = "no_answers"
    elif error_ratio > error_budget:
        verdict = "errors"
    elif at_objective > objective.limit_us:
        verdict = "latency"
    else:
        verdict, met = "met", True
    return {
        "phase": phase,
        "rate_rps": rate_rps,
        "sent_rps": run.rps,
        "shortfall": round(max(0.0, 1 - run.rps / rate_rps), 4),
        "objective_us": at_objective,
        "corrected_p50_us": run.at_percentile_us(50.0),
        "corrected_p99_us": run.at_percentile_us(99.0),
        "service_p99_us": None,  # wrk2 prints its uncorrected figures only with -U
        "requests": run.requests,
        "errors": run.errors,
        "error_ratio": round(error_ratio, 6),
        "limit": None,
        "met": met,
        "verdict": verdict,
        "results": None,
    }


def wrk2_search(
    binary: Path, url: str, header: tuple[str, str], *, connections: int, duration_s: float,
    objective: Objective, error_budget: float, start_rate_rps: float, raise_steps: int,
    narrow_steps: int, cpus: set[int] | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> CapacityAlgorithm:  # fmt: skip
    """wrk2's highest constant rate meeting ``objective`` on ``url``, searched as capacity
    searches (its steps, the knee above it)."""

    def measure(rate_rps: float, phase: StepPhase) -> CapacityStep:
        rate_rps = round(rate_rps, 1)
        step = wrk2_step(
            binary, url, header, rate_rps, connections=connections, duration_s=duration_s,
            objective=objective, error_budget=error_budget, phase=phase, cpus=cpus,
        )  # fmt: skip
        shown = step["objective_us"]
        log(
            f"wrk2: {rate_rps:,.1f} req/s asked, {step['sent_rps']:,.0f} sent:"
            f" {objective.percentile.replace('_', '.')} corrected"
            f" {'-' if shown is None else f'{shown / 1000:,.1f} ms'} -> {step['verdict']}"
        )
        return step

    steps = search(measure, start_rate_rps, raise_steps, narrow_steps)
    return outcome(steps, 60.0)
