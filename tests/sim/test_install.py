"""An ordinary install, as a new user makes it: the wheel, a fresh virtual environment, a run
from an empty folder. Regression: the wheel lacked the locustfile (it pointed into the
repository), so ``fleetbench run`` failed with "Locust wrote no measurements"."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns(".venv", ".git", "build", "results", "*.egg-info", "__pycache__",
                              ".mypy_cache", ".ruff_cache", ".pytest_cache",
                              "node_modules")  # fmt: skip


def _run(command: list[str], cwd: Path, timeout_s: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env = {k: v for k, v in env.items() if not k.startswith("FLEETBENCH_")}
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.wheel
@pytest.mark.timeout(900)  # pip installs every dependency into the fresh environment
def test_the_built_wheel_runs_from_an_empty_folder(tmp_path: Path) -> None:
    source = tmp_path / "source"  # building writes build/ into the tree: not into ours
    shutil.copytree(REPO, source, ignore=SKIP)
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        tmp_path, 240,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("fleetbench-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, 120)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], tmp_path, 600)
    empty = tmp_path / "empty"
    empty.mkdir()
    _run(
        [str(venv / "bin" / "fleetbench"), "run", "--duration", "3", "--devices", "5",
         "--results", "out", "--quiet"],
        empty, 180,
    )  # fmt: skip
    summary = json.loads((empty / "out" / "summary.json").read_text())
    assert summary["verdict"]["passed"], summary["verdict"]
    assert summary["totals"]["requests"] > 0
    # The installed package ran, not this checkout.
    assert str(REPO) not in (empty / "out" / "locust.log").read_text()
    # The shipped profiles are package data: addressable by name once installed.
    _run(
        ["env", "JWT_SECRET=only-for-this-test", str(venv / "bin" / "fleetbench"), "provision",
         "--profile", "seed-express",
         "--devices", "2", "--out", "seed.json"],
        empty, 60,
    )  # fmt: skip
    ids = [d["id"] for d in json.loads((empty / "seed.json").read_text())["devices"]]
    assert ids == ["device-00000", "device-00001"]
