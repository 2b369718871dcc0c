"""``fleetbench attack`` against real servers: our target refuses every case as documented and
keeps serving; a weak target (tests/sim/weak_target.py) is caught for each of its weaknesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from sim.attack import attack_target
from sim.cli import main
from sim.corpus import CASES, TOKEN_CASES
from sim.run.embedded import EmbeddedTarget, free_port

REPO = Path(__file__).resolve().parents[3]
WEAK_ADMIN_KEY = "weak-admin-key-0123456789"

StartWeak = Callable[[str], str]


@pytest.mark.slow
@pytest.mark.parametrize("alg", ["HS256", "ES256", "EdDSA"])
def test_our_target_refuses_every_case_as_documented(alg: str) -> None:
    with EmbeddedTarget(alg) as target:
        report = attack_target(target.url, target.admin_key, embedded=True)
        stats = requests.get(
            f"{target.url}/admin/stats",
            headers={"Authorization": f"Bearer {target.admin_key}"},
            timeout=10,
        )
        assert stats.status_code == 200  # the admin side is still up too
    assert report.token_alg == alg
    expected_count = len(CASES) + len(TOKEN_CASES) + (alg == "HS256")
    assert len(report.results) == expected_count
    wrong = [(r.name, r.expected, r.got) for r in report.results if r.verdict != "refused"]
    assert wrong == []
    assert report.listener_requests == 0
    assert report.still_serving
    assert report.failures(strict=True) == []
    families = {r.family for r in report.results}
    assert {"format", "algorithm", "signature", "key_header", "claims", "size"} <= families
    assert "token_endpoint" in families and (alg != "HS256" or "secret_strength" in families)


@pytest.mark.slow
def test_cli_json_and_results_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["attack", "--algs", "ES256", "--json", "--results", str(tmp_path)])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    assert printed["schema"] == "fleetbench.attack/1" and printed["passed"]
    assert (
        json.loads((tmp_path / "attack.json").read_text())["runs"][0]["counts"]
        == (printed["runs"][0]["counts"])
    )
    run = printed["runs"][0]
    assert run["token_alg"] == "ES256" and run["counts"]["accepted"] == 0
    assert {"name", "expected", "got", "verdict"} <= set(run["cases"][0])


@pytest.mark.slow
def test_cli_verdict_lines_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["attack", "--algs", "EdDSA", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ok   alg_none " in out and "expected 401 malformed|signature" in out
    assert "PASS EdDSA" in out and " 0 accepted" in out


def test_cli_bad_options_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["attack", "--algs", "HS999"]) == 2
    assert main(["attack", "--target", "http://127.0.0.1:9", "--algs", "ES256"]) == 2
    assert main(["attack", "--target", "http://127.0.0.1:9"]) == 2  # no admin key
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("fleetbench: error: ") for e in errors)


@pytest.fixture
def start_weak() -> Iterator[StartWeak]:
    """Start tests/sim/weak_target.py in a mode, under real uvicorn on a loopback port."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(mode: str) -> str:
        port = free_port()
        env = {**os.environ, "WEAK_TARGET_MODE": mode, "WEAK_TARGET_ADMIN_KEY": WEAK_ADMIN_KEY}
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "tests.sim.weak_target:app",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return url
            except requests.RequestException:
                time.sleep(0.1)
        raise AssertionError("weak target did not start")

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


def _attack(url: str, tmp_path: Path) -> tuple[int, dict[str, str]]:
    code = main(
        ["attack", "--target", url, "--admin-key", WEAK_ADMIN_KEY, "--quiet",
         "--results", str(tmp_path)]
    )  # fmt: skip
    body = json.loads((tmp_path / "attack.json").read_text())
    return code, {case["name"]: case["verdict"] for case in body["runs"][0]["cases"]}


def test_a_weak_hmac_secret_is_caught(start_weak: StartWeak, tmp_path: Path) -> None:
    code, verdicts = _attack(start_weak("secret"), tmp_path)
    assert code == 1
    assert verdicts["weak_hmac_secret"] == "weak_secret"
    assert "accepted" not in verdicts.values()  # its verification is otherwise sound


def test_alg_none_acceptance_is_caught(start_weak: StartWeak, tmp_path: Path) -> None:
    code, verdicts = _attack(start_weak("alg_none"), tmp_path)
    assert code == 1
    accepted = {name for name, verdict in verdicts.items() if verdict == "accepted"}
    assert {"alg_none", "alg_None", "alg_NONE", "alg_nOnE"} <= accepted
    assert verdicts["weak_hmac_secret"] == "refused"


def test_a_followed_jku_is_caught(start_weak: StartWeak, tmp_path: Path) -> None:
    code, verdicts = _attack(start_weak("jku"), tmp_path)
    assert code == 1
    assert verdicts["jku"] == "fetched"
    body = json.loads((tmp_path / "attack.json").read_text())
    assert body["runs"][0]["listener_requests"] >= 1
