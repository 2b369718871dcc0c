"""``via = "file"``: the API knows its devices already; ``--devices N`` takes the first N of the
file and refuses more than it holds (issue 26 item 4)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sim.profiles import ProfileError, load_profile
from tests.apis.serve import serve_listening

REPO = Path(__file__).resolve().parents[3]
SHIPPED = (REPO / "sim/profiles/builtin/flask-jwt-extended.toml").read_text()


@pytest.fixture
def known_devices(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The flask-jwt API with 6 users registered beforehand, and a profile naming their file."""
    env = {**os.environ, "JWT_SECRET": secrets.token_hex(32)}
    with serve_listening([sys.executable, "-m", "tests.apis.flask_jwt.app", "0"], env) as url:
        rows = ["id,secret"]
        for n in range(6):
            password = secrets.token_hex(8)
            body = {"username": f"meter-{n}", "password": password}
            assert requests.post(f"{url}/register", json=body, timeout=10).status_code == 201
            rows.append(f"meter-{n},{password}")
        (tmp_path / "devices.csv").write_text("\n".join(rows) + "\n")
        start = SHIPPED.index("[provision]")
        end = SHIPPED.index("[token]")
        profile = tmp_path / "api.toml"
        profile.write_text(
            SHIPPED[:start]
            + f'[provision]\nvia = "file"\nfile = "{tmp_path / "devices.csv"}"\n\n'
            + SHIPPED[end:]
        )
        yield url, profile


def _run(url: str, profile: Path, folder: Path, *more: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    return subprocess.run(
        [sys.executable, "-m", "sim", "run", "--profile", str(profile), "--target", url,
         "--duration", "3", "--interval", "0.5", "--results", str(folder), *more],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.slow
def test_devices_takes_the_first_n_of_the_file(
    known_devices: tuple[str, Path], tmp_path: Path
) -> None:
    url, profile = known_devices
    result = _run(url, profile, tmp_path / "r", "--devices", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["run"]["fleet"]["devices"] == summary["totals"]["devices"] == 2
    result = _run(url, profile, tmp_path / "r2", "--devices", "7")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "fleetbench: error: --devices 7 is more than the devices file holds (6):"
        " give --devices 6 or fewer"
    ]


@pytest.mark.parametrize("via", ["file", "none"])
def test_keys_left_over_under_a_call_free_provision_are_refused(tmp_path: Path, via: str) -> None:
    text = SHIPPED.replace(
        'via = "call"', f'via = "{via}"\nfile = "d.csv"' if via == "file" else f'via = "{via}"'
    )
    path = tmp_path / "api.toml"
    path.write_text(text)
    line = text.splitlines().index('method = "POST"') + 1
    with pytest.raises(ProfileError) as caught:
        load_profile(str(path), {})
    assert str(caught.value) == (
        f"{path}:{line}: provision.method is not used with via = '{via}'"
        " (the devices are not registered by a call)"
    )
