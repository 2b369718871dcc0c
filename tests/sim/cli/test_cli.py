"""``fleetbench`` as a user runs it: one-line errors, exit codes, signals, a broken target."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from sim.fleet.model import make_fleet, save_fleet
from sim.run.embedded import free_port
from tests.commands import fleetbench, fleetbench_here
from tests.conftest import StartTarget

REPO = Path(__file__).resolve().parents[3]


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_run_that_cannot_start_leaves_no_results_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    dead = f"http://127.0.0.1:{free_port()}"
    assert "cannot reach" in one_line_error(
        fleetbench_here("run", "--target", dead, "--admin-key", "k")
    )
    assert not any((tmp_path / "results").iterdir())


def test_bad_input_is_one_line_and_exit_2(start_target: StartTarget, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    assert "cannot reach" in one_line_error(
        fleetbench_here("run", "--target", dead, "--admin-key", "k")
    )
    assert "unknown scenario" in one_line_error(fleetbench_here("run", "--scenario", "chaos"))
    assert "--duration" in one_line_error(fleetbench_here("run", "--duration", "soon"))
    assert "--devices" in one_line_error(fleetbench_here("run", "--devices", "0"))
    target = start_target("HS256")
    wrong_key = fleetbench_here("provision", "--target", target.url, "--admin-key", "x" * 20,
                           "--devices", "2", "--out", str(tmp_path / "f.json"))  # fmt: skip
    assert "refused the admin key" in one_line_error(wrong_key)
    fleet = make_fleet(2, "ES256")
    save_fleet(fleet, tmp_path / "fleet.json")
    other = make_fleet(1, "ES256").devices[0]
    entry = {**other.registration(), "id": fleet.devices[0].id}
    import requests

    requests.post(
        f"{target.url}/admin/devices",
        json={"devices": [entry]},
        headers={"Authorization": f"Bearer {target.admin_key}"},
        timeout=10,
    )
    mismatch = fleetbench_here("run", "--target", target.url, "--admin-key", target.admin_key,
                          "--fleet", str(tmp_path / "fleet.json"))  # fmt: skip
    assert "fleet file does not match the target" in one_line_error(mismatch)
    assert "not found" in one_line_error(
        fleetbench_here("run", "--fleet", str(tmp_path / "no.json"))
    )


def test_provision_writes_a_reusable_fleet(start_target: StartTarget, tmp_path: Path) -> None:
    target = start_target("HS256")
    out = tmp_path / "fleet.json"
    args = ("--target", target.url, "--admin-key", target.admin_key)
    made = fleetbench("provision", *args, "--devices", "5", "--alg", "EdDSA", "--out", str(out))
    assert made.returncode == 0, made.stderr
    assert "5 registered" in made.stdout
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    again = fleetbench("provision", *args, "--fleet", str(out))
    assert again.returncode == 0 and "5 already known" in again.stdout


def test_a_target_that_accepts_forged_tokens_fails_the_run(
    broken_target: str, tmp_path: Path
) -> None:
    result = fleetbench(
        "run", "--target", broken_target, "--admin-key", "anything-goes-here",
        "--scenario", "rejection", "--bad-ratio", "1", "--devices", "4", "--duration", "4",
        "--interval", "0.1", "--results", str(tmp_path / "r"), "--quiet",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["outcomes"]["accepted_invalid"] > 0
    assert not summary["verdict"]["passed"]
    assert "accepted_invalid" in summary["verdict"]["failures"][0]
    assert not summary["server"]["available"]
    assert summary["server"]["reason"] == "/metrics not available"
    assert "FAIL" in result.stdout


@pytest.mark.slow
def test_sigterm_stops_everything_and_writes_a_partial_summary(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "sim", "run", "--devices", "4", "--duration", "60",
         "--interval", "0.2", "--results", str(tmp_path / "r"), "--quiet"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        me = psutil.Process(process.pid)
        deadline = time.monotonic() + 25
        children: list[psutil.Process] = []
        while time.monotonic() < deadline:  # wait for target and Locust to be up and sending
            children = me.children(recursive=True)
            if len(children) >= 2 and (tmp_path / "r" / "locust.log").exists():
                break
            time.sleep(0.2)
        time.sleep(3)
        children = me.children(recursive=True)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=40)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["run"]["interrupted"] is True
    assert summary["totals"]["requests"] > 0
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


def test_duration_is_parsed_as_locust_parses_run_time() -> None:
    """Regression: ``--duration 2.5`` ran 2 s and ``1h30m`` was refused."""
    from sim.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["run", "--duration", "1h30m"]).duration == 5400
    assert parser.parse_args(["run", "--duration", "45"]).duration == 45
    assert parser.parse_args(["smoke", "--duration", "2m"]).duration == 120
    assert "whole seconds" in one_line_error(fleetbench_here("run", "--duration", "2.5"))
    assert "--duration" in one_line_error(fleetbench_here("smoke", "--duration", "0"))


def test_provision_help_says_what_target_does() -> None:
    """Regression: it said --target defaults to "start our own"; provision only writes the file."""
    shown = fleetbench_here("provision", "--help")
    assert shown.returncode == 0
    text = " ".join(shown.stdout.split())
    assert "start our own" not in text
    assert "default: only write the file" in text


@pytest.mark.slow
def test_a_run_shows_progress_and_a_table_that_fits_80_columns(tmp_path: Path) -> None:
    result = fleetbench(
        "run", "--devices", "5", "--duration", "7", "--interval", "0.2",
        "--results", str(tmp_path / "r"),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # Not a terminal: each step and the live figures as plain lines.
    assert "fleetbench: keys (ES256): 5/5" in "\n".join(lines)
    assert any(line.startswith("fleetbench: register: 5/5") for line in lines)
    live = [line for line in lines if " req/s, p50 " in line]
    assert live, result.stdout
    assert "/7 s: " in live[0] and "generator CPU" in live[0]

    from rich.console import Console

    from sim.output.table import print_summary

    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    console = Console(width=80, record=True, force_terminal=False)
    print_summary(summary, console)
    shown = console.export_text().splitlines()
    assert max(len(line) for line in shown) <= 80
    assert not any("…" in line for line in shown)  # nothing cut short
    # One line per row: its scenario, count and percentiles side by side.
    for row in summary["requests"]:
        latency = row["latency_us"]
        figures = [str(row["count"]), *(f"{latency[p]:.0f}" for p in ("p50", "p99", "max"))]
        assert any(
            line.split()[0] == row["scenario"] and set(figures) <= set(line.split())
            for line in shown
            if line.strip()
        ), row


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--transport", "mqtt", "--mqtt-port", "70000"],
        ["attack", "--transport", "mqtt", "--mqtt-port", "0"],
        ["run", "--metrics-port", "65536"],
    ],
)
def test_a_port_out_of_range_is_one_line(args: list[str]) -> None:
    assert f"argument {args[-2]}: must be" in one_line_error(fleetbench_here(*args))
