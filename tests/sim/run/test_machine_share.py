"""A loopback ``--target`` shares this machine with the generator: the run records the
generator's cores, says when it was not kept apart, and ``--generator-cpus`` pins it (issue 26
item 6)."""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.run.machine_share import available_cpus, on_this_machine, parse_cpus
from tests.apis.serve import serve_listening
from tests.commands import fleetbench


@pytest.fixture  # per test: a second fleet of the same ids could not log in
def loopback_api() -> Iterator[str]:
    env = {**os.environ, "JWT_SECRET": secrets.token_hex(32)}
    with serve_listening([sys.executable, "-m", "tests.apis.flask_jwt.app", "0"], env) as url:
        yield url


def _run(url: str, folder: Path, *more: str) -> tuple[str, dict[str, object]]:
    done = fleetbench(
        "run", "--profile", "flask-jwt-extended", "--target", url, "--devices", "2",
        "--duration", "2", "--interval", "0.5", "--results", str(folder), *more,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    cpu: dict[str, object] = json.loads((folder / "summary.json").read_text())["run"]["cpu"]
    return done.stdout, cpu


@pytest.mark.slow
def test_an_unpinned_generator_beside_a_loopback_target_is_named(
    loopback_api: str, tmp_path: Path
) -> None:
    stdout, cpu = _run(loopback_api, tmp_path / "r")
    assert cpu["generator_cpus"] == sorted(available_cpus())
    assert "is on this machine and the generator was not pinned" in str(cpu["shares_machine"])
    assert "warning: the target (127.0.0.1) is on this machine" in stdout


@pytest.mark.slow
@pytest.mark.skipif(len(available_cpus()) < 2, reason="needs two cores to give one away")
def test_generator_cpus_pins_the_generator(loopback_api: str, tmp_path: Path) -> None:
    last = max(available_cpus())
    stdout, cpu = _run(loopback_api, tmp_path / "r", "--generator-cpus", str(last))
    assert cpu["generator_cpus"] == [last] and cpu["shares_machine"] is None
    assert "is on this machine" not in stdout


@pytest.mark.slow
def test_bad_generator_cpus_are_one_line() -> None:
    done = fleetbench("run", "--generator-cpus", "9999")
    assert done.returncode == 2
    assert "argument --generator-cpus: '9999': core 9999 is not one this machine" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_loopback_hosts_and_core_lists() -> None:
    assert on_this_machine("http://127.0.0.1:8000") and on_this_machine("http://[::1]:80")
    assert on_this_machine("http://localhost:3000/")
    assert not on_this_machine("http://10.0.0.5:8000") and not on_this_machine("http://api.example")
    first = min(available_cpus())
    assert parse_cpus(f"{first}") == {first}
    with pytest.raises(ValueError, match="say cores as"):
        parse_cpus("one")
