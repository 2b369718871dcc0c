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

from sim.embedded import free_port
from sim.fleet import make_fleet, save_fleet
from tests.conftest import StartTarget

REPO = Path(__file__).resolve().parents[2]


def fleetbench(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    return subprocess.run(
        [sys.executable, "-m", "sim", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_bad_input_is_one_line_and_exit_2(start_target: StartTarget, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    assert "cannot reach" in one_line_error(fleetbench("run", "--target", dead, "--admin-key", "k"))
    assert "unknown scenario" in one_line_error(fleetbench("run", "--scenario", "chaos"))
    assert "--duration" in one_line_error(fleetbench("run", "--duration", "soon"))
    assert "--devices" in one_line_error(fleetbench("run", "--devices", "0"))
    target = start_target("HS256")
    wrong_key = fleetbench("provision", "--target", target.url, "--admin-key", "x" * 20,
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
    mismatch = fleetbench("run", "--target", target.url, "--admin-key", target.admin_key,
                          "--fleet", str(tmp_path / "fleet.json"))  # fmt: skip
    assert "fleet file does not match the target" in one_line_error(mismatch)
    assert "not found" in one_line_error(fleetbench("run", "--fleet", str(tmp_path / "no.json")))


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
    assert summary["server"] == {"available": False}
    assert "FAIL" in result.stdout


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
