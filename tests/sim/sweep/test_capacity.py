"""``fleetbench capacity``: the search over open-model rates against real targets, its exit codes,
its one-line refusals, and ``capacity.json`` against its type."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sim.artefacts.capacity_file import CapacityFile, CapacityStep, StepPhase
from sim.artefacts.codec import read_capacity
from sim.errors import CapacityError
from sim.screenshot import open_report
from sim.sweep.capacity import Objective, outcome, parse_error_budget, parse_slo, search
from tests.commands import fleetbench, fleetbench_here
from tests.sim.conftest import serve_broken_target

# The slow target answers every request after SLOW_S: a device (one connection) serves at most
# 1 / SLOW_S requests per second, so SLOW_DEVICES devices hold SLOW_DEVICES / SLOW_S req/s at
# most (100), and above that the open model's corrected latency grows with the queue.
SLOW_S = 0.05
SLOW_DEVICES = 5
SLOW_CAPACITY_RPS = SLOW_DEVICES / SLOW_S
# The search starts at half that: 50, 100, then 200 breaks, and one bisection (150) narrows it.
SLOW_START_RPS = SLOW_CAPACITY_RPS / 2


browser = pytest.mark.browser  # skipped without chromium (tests/conftest.py)


@pytest.fixture(scope="module")
def slow_api() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLEETBENCH_SLOW_S", str(SLOW_S))
        with serve_broken_target("tests.sim.slow_target:app") as url:
            yield url


def _capacity(tmp_path: Path, *args: str) -> tuple[int, CapacityFile, str]:
    results = tmp_path / "capacity"
    done = fleetbench("capacity", *args, "--results", str(results), "--quiet", timeout=240)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    path = results / "capacity.json"
    result = read_capacity(path)
    assert result == json.loads(path.read_text())  # msgspec keeps only typed keys: none dropped
    assert "capacity-latency" in (results / "report.html").read_text()
    return done.returncode, result, done.stdout


def _doubling(steps: list[CapacityStep], start: float) -> None:
    raised = [s["rate_rps"] for s in steps if s["phase"] == "raise"]
    assert raised == [start * 2**i for i in range(len(raised))]


@pytest.mark.slow
def test_the_embedded_hs256_target_has_a_rate_that_meets_the_objective(tmp_path: Path) -> None:
    code, result, stdout = _capacity(
        tmp_path, "--algs", "HS256", "--slo", "p99=50ms", "--devices", "10",
        "--step-duration", "2", "--start-rate", "50", "--max-steps", "3", "--narrow-steps", "1",
        "--interval-s", "30",
    )  # fmt: skip
    assert code == 0, stdout
    entry = result["algorithms"]["HS256"]
    steps = entry["steps"]
    _doubling(steps, 50.0)
    assert entry["max_rate"] is not None and entry["max_rate"] >= 50
    best = next(s for s in steps if s["rate_rps"] == entry["max_rate"])
    assert best["met"] and best["objective_us"] is not None and best["objective_us"] <= 50_000
    assert entry["p99_us_at_max"] == best["corrected_p99_us"]
    assert entry["devices_at_interval"] == int(entry["max_rate"] * 30)
    assert all(s["results"] and Path(s["results"], "summary.json").is_file() for s in steps)
    if entry["knee_rps"] is not None:  # the objective broke above the max: that step says so
        knee = next(s for s in steps if s["rate_rps"] == entry["knee_rps"])
        assert not knee["met"] and entry["knee_rps"] > entry["max_rate"]
    else:  # or the generator was the limit, or it held to the last rate: a floor either way
        assert entry["floor"]
        assert entry["generator_limited"] == ("warning:" in stdout)
    assert "HS256" in stdout and "req/s met p99=50ms" in stdout


@pytest.fixture(scope="module")
def slow_search(
    slow_api: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[int, CapacityFile, str, Path]:
    """One search over the slow API, shared by the tests that read its result and its report."""
    folder = tmp_path_factory.mktemp("slow-search")
    code, result, stdout = _capacity(
        folder, "--algs", "HS256", "--target", slow_api, "--admin-key", "unused-here",
        "--slo", "p99=250ms", "--devices", str(SLOW_DEVICES), "--step-duration", "3",
        "--start-rate", str(SLOW_START_RPS), "--max-steps", "5", "--narrow-steps", "1",
        "--warmup", "1",  # its logins answer at once: no queue of first tokens to wait out
    )  # fmt: skip
    return code, result, stdout, folder / "capacity"


def test_a_slow_api_is_bracketed_and_narrowed_to_its_capacity(
    slow_api: str, slow_search: tuple[int, CapacityFile, str, Path]
) -> None:
    code, result, stdout, _ = slow_search
    assert code == 0, stdout
    entry = result["algorithms"]["HS256"]
    steps = entry["steps"]
    _doubling(steps, SLOW_START_RPS)
    by_rate = {s["rate_rps"]: s for s in steps}
    # 50 req/s is half the 100 it can hold; 200 is twice that.
    assert entry["max_rate"] is not None
    assert SLOW_START_RPS <= entry["max_rate"] < 2 * SLOW_CAPACITY_RPS
    assert by_rate[entry["max_rate"]]["met"]
    if entry["knee_rps"] is not None:
        assert entry["max_rate"] < entry["knee_rps"] <= 2 * SLOW_CAPACITY_RPS
        assert not by_rate[entry["knee_rps"]]["met"]
        assert by_rate[entry["knee_rps"]]["verdict"] in ("latency", "shortfall")
    if entry["generator_limited"]:  # the load account's call on a busy machine: the search ends
        assert steps[-1]["verdict"] == "generator" and entry["floor"] and "warning:" in stdout
    else:  # the bracket was found and narrowed
        assert entry["knee_rps"] is not None and not entry["floor"]
        assert any(s["phase"] == "narrow" for s in steps)
    assert result["targets"]["HS256"] == {
        "url": slow_api,
        "embedded": False,
        "profile": "fleetbench",
    }
    assert entry["second_opinion"] is None  # only on our embedded target's data endpoint


@pytest.mark.slow
def test_a_latency_break_on_the_embedded_target_gets_a_second_opinion(tmp_path: Path) -> None:
    # 1 ms at p99 from the intended send breaks at any rate on this machine: the start rate is the
    # knee, and the asyncio client (no Locust) is asked the same question at that rate.
    code, result, stdout = _capacity(
        tmp_path, "--algs", "HS256", "--slo", "p99=1ms", "--devices", "5",
        "--step-duration", "2", "--start-rate", "40", "--max-steps", "2", "--narrow-steps", "0",
    )  # fmt: skip
    entry = result["algorithms"]["HS256"]
    knee = next(s for s in entry["steps"] if s["rate_rps"] == entry["knee_rps"])
    assert knee["verdict"] == "latency", knee
    opinion = entry["second_opinion"]
    assert opinion is not None, entry
    assert opinion["rate_rps"] == entry["knee_rps"] and opinion["connections"] == 5
    # It sent the rate asked for its whole duration: 40 req/s for 2 s, +-1 per connection.
    assert abs(opinion["sent"] - entry["knee_rps"] * 2) <= 5 and opinion["ok"] == opinion["sent"]
    met = opinion["objective_us"] <= 1_000
    assert opinion["broken_by"] == ("generator" if met else "target"), opinion
    assert entry["generator_limited"] == met and (entry["floor"] or not met)
    assert f"second opinion at {entry['knee_rps']:g} req/s" in stdout
    assert ("the search's break was the generator's" in stdout) == met
    assert code == (0 if entry["max_rate"] is not None else 1)


@browser
def test_the_report_draws_latency_against_rate_per_step(
    slow_search: tuple[int, CapacityFile, str, Path],
) -> None:
    _, result, _, folder = slow_search
    check = open_report(folder / "report.html", folder / "report.png")
    assert check.console_errors == []
    assert [url for url in check.requests if not url.startswith("file://")] == []
    [chart] = check.charts
    steps = [s for s in result["algorithms"]["HS256"]["steps"] if s["objective_us"] is not None]
    assert chart["id"] == "capacity-latency" and chart["drawn"]
    assert chart["traces"] == 2  # HS256 and the objective line
    assert chart["points"] == len(steps) + 2
    for word in ("True", "False", "None", "nan"):
        assert f" {word} " not in f" {check.text} ".replace("\n", " "), word
    assert "p99=250ms" in check.title


def test_a_slow_api_breaks_a_tight_objective_at_the_start_rate(
    slow_api: str, tmp_path: Path
) -> None:
    # Every answer takes 50 ms: p99 under 20 ms cannot be met at any rate.
    code, result, stdout = _capacity(
        tmp_path, "--algs", "HS256", "--target", slow_api, "--admin-key", "unused-here",
        "--slo", "p99=20ms", "--devices", str(SLOW_DEVICES), "--step-duration", "2",
        "--start-rate", "10",
    )  # fmt: skip
    assert code == 1, stdout
    entry = result["algorithms"]["HS256"]
    assert entry["max_rate"] is None and entry["devices_at_interval"] is None
    [step] = entry["steps"]  # the search stops at the start rate
    assert step["objective_us"] is not None and step["objective_us"] > 20_000 and not step["met"]
    # The load account may call a 2 s run's generator busy (its start-up is a third of the
    # samples); then the warning says so, and no rate was found either way.
    assert step["verdict"] in ("latency", "generator")
    assert entry["generator_limited"] == (step["verdict"] == "generator")
    assert "even the start rate broke p99=20ms" in stdout


@pytest.mark.slow
def test_a_service_out_of_its_error_budget_breaks_at_the_start_rate(tmp_path: Path) -> None:
    # One request in 10 is a 503: fast answers, but 10 % errors against a 1 % budget.
    with serve_broken_target("tests.sim.erring_target:app") as url:
        code, result, stdout = _capacity(
            tmp_path, "--algs", "HS256", "--target", url, "--admin-key", "unused-here",
            "--slo", "p99=1s", "--error-budget", "1%", "--devices", "5", "--step-duration", "2",
            "--start-rate", "20",
        )  # fmt: skip
    assert code == 1, stdout
    [step] = result["algorithms"]["HS256"]["steps"]
    assert not step["met"] and 0.05 < step["error_ratio"] < 0.15, step
    assert step["verdict"] in ("errors", "generator")  # generator: see the tight-objective test
    assert result["parameters"]["error_budget"] == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slo", "p99"], "--slo 'p99': say PERCENTILE=LIMIT"),
        (["--slo", "p42=5ms"], "the percentile is one of"),
        (["--slo", "p99=50parsecs"], "say PERCENTILE=LIMIT"),
        (["--error-budget", "lots"], "--error-budget 'lots': say a share"),
        (["--error-budget", "150%"], "between 0% and 100%"),
        (["--algs", "HS999"], "unknown algorithm 'HS999'"),
        (["--algs", "ES256", "--target", "HS256=http://127.0.0.1:9"], "HS256 is not in --algs"),
        (["--start-rate", "0"], "--start-rate: must be a number above 0"),
        (["--algs", "HS256", "--narrow-steps", "-1"], "--narrow-steps must be 0 or more"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = fleetbench_here("capacity", *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2 and "Traceback" not in done.stderr


def test_a_refused_command_line_makes_no_results_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    done = fleetbench_here("capacity", "--algs", "HS256", "--narrow-steps", "-1")
    assert done.returncode == 2 and "--narrow-steps must be 0 or more" in done.stderr
    assert not (tmp_path / "results").exists()


def test_parse_slo_and_error_budget() -> None:
    assert parse_slo("p99=50ms") == Objective("p99", 50_000.0, "p99=50ms")
    assert parse_slo("p99.9=1.5s").limit_us == 1_500_000.0
    assert parse_slo("p50=800us").percentile == "p50"
    assert parse_error_budget("0.1%") == pytest.approx(0.001)
    assert parse_error_budget("0") == 0.0
    with pytest.raises(CapacityError):
        parse_slo("p99=0ms")


def _synthetic(
    capacity_rps: float, generator_rps: float = float("inf")
) -> tuple[list[float], Callable[[float, StepPhase], CapacityStep]]:
    """A service whose latency is 1 ms below ``capacity_rps`` and 1 s above it, for the search
    order alone (the real runs are above)."""
    asked: list[float] = []

    def measure(rate: float, phase: StepPhase) -> CapacityStep:
        asked.append(rate)
        latency = 1_000.0 if rate <= capacity_rps else 1_000_000.0
        generator = rate > generator_rps
        met = latency <= 50_000
        return {
            "phase": phase, "rate_rps": rate, "sent_rps": rate, "shortfall": 0.0,
            "objective_us": latency, "corrected_p50_us": latency, "corrected_p99_us": latency,
            "service_p99_us": latency, "requests": 100, "errors": 0, "error_ratio": 0.0,
            "limit": "generator" if generator else None, "met": met,
            "verdict": "generator" if generator else ("met" if met else "latency"),
            "results": None,
        }  # fmt: skip

    return asked, measure


def test_search_doubles_then_bisects_within_its_bounds() -> None:
    asked, measure = _synthetic(capacity_rps=700)
    steps = search(measure, 100, raise_steps=10, narrow_steps=3)
    assert asked == [100, 200, 400, 800, 600, 700, 750]
    entry = outcome(steps, interval_s=60)
    assert entry["max_rate"] == 700 and entry["knee_rps"] == 750
    assert entry["devices_at_interval"] == 42_000 and not entry["floor"]


def test_search_stops_at_a_generator_limit_and_says_floor() -> None:
    asked, measure = _synthetic(capacity_rps=10_000, generator_rps=300)
    steps = search(measure, 100, raise_steps=10, narrow_steps=3)
    assert asked == [100, 200, 400]
    entry = outcome(steps, interval_s=60)
    assert entry["max_rate"] == 400 and entry["generator_limited"] and entry["floor"]
    assert entry["knee_rps"] is None
