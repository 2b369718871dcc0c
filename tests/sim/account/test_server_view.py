"""The server's own verify time beside client latency, read from the histogram a profile's
``[metrics] verify_time`` names, against a real flask-jwt-extended API (tests/apis/flask_jwt,
whose ``/metrics`` exports ``api_verify_seconds``, a histogram without labels)."""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apis.flask_jwt import metrics_profile
from tests.apis.serve import serve_listening
from tests.commands import fleetbench


@pytest.fixture
def es256_api() -> Iterator[str]:
    env = {**os.environ, "JWT_SECRET": secrets.token_hex(32), "JWT_ALG": "ES256"}
    with serve_listening([sys.executable, "-m", "tests.apis.flask_jwt.app", "0"], env) as url:
        yield url


def _run(url: str, profile: str, folder: Path) -> dict[str, Any]:
    done = fleetbench(
        "run", "--profile", profile, "--target", url, "--devices", "3", "--duration", "3",
        "--interval", "0.1", "--results", str(folder), "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary: dict[str, Any] = json.loads((folder / "summary.json").read_text())
    return summary


def test_a_foreign_apis_verify_histogram_gives_the_server_verify_time(
    es256_api: str, tmp_path: Path
) -> None:
    summary = _run(es256_api, str(metrics_profile(tmp_path)), tmp_path / "run")
    server = summary["server"]
    assert server["available"] and server["verify_metric"] == "api_verify_seconds"
    # The histogram has no alg label: it is named by the tokens' algorithm.
    assert list(server["verify"]) == ["ES256"], server
    served = sum(
        row["count"]
        for row in summary["requests"]
        if row["endpoint"] == "protected" and row["scenario"] == "verification"
    )
    # Every /protected request the API timed; a request cut off at the stop may be timed only.
    assert served <= server["verify"]["ES256"]["count"] <= served + 3
    assert server["verify"]["ES256"]["mean_us"] > 0
    report = (tmp_path / "run" / "report.html").read_text()
    assert 'id="verify"' in report and "api_verify_seconds" in report


def test_without_verify_time_the_figure_is_not_available_not_zero(
    es256_api: str, tmp_path: Path
) -> None:
    # The shipped profile names no histogram, though this API has /metrics.
    summary = _run(es256_api, "flask-jwt-extended", tmp_path / "run")
    server = summary["server"]
    assert server == {
        "available": False,
        "reason": "the profile names no [metrics] verify_time",
    }
    report = (tmp_path / "run" / "report.html").read_text()
    assert "Not available: the profile names no [metrics] verify_time" in report
