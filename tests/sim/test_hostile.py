"""fleetbench against a hostile API (``tests/sim/hostile_target.py``) on loopback: its answers
(bodies, headers, token contents, metadata, /metrics, redirects) must not own the terminal, the
CI page, the JUnit file, the memory or the clock of the machine that runs it (issue 30)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sim.artefacts.summary_file import Summary
from sim.output.charts import run_charts
from sim.untrusted import AnswerRefused, fetch
from tests.sim.conftest import serve_broken_target
from tests.sim.hostile_target import BIG_BYTES, ESCAPES

pytestmark = pytest.mark.slow  # every test starts the hostile API and the fleetbench command

REPO = Path(__file__).resolve().parents[2]
ADMIN_KEY = "hostile-admin-key-0123456789"
# What a run at a short, small scale against the hostile API looks like.
SHORT_RUN = ("--devices", "3", "--duration", "2", "--interval", "0.2", "--quiet")


@contextlib.contextmanager
def serve_hostile(
    monkeypatch: pytest.MonkeyPatch, *attacks: str, app: str = "app", **env: str
) -> Iterator[str]:
    """URL of the hostile API making ``attacks`` (its module docstring lists them)."""
    monkeypatch.setenv("HOSTILE", ",".join(attacks))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with serve_broken_target(f"tests.sim.hostile_target:{app}") as url:
        yield url


def fleetbench(*args: str, timeout_s: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it; ``timeout_s`` bounds a command that would hang on old code."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBENCH_")}
    return subprocess.run(
        [sys.executable, "-m", "sim", *args], cwd=REPO,
        env={**clean, "COLUMNS": "200", "FLEETBENCH_ADMIN_KEY": ADMIN_KEY, **env},
        capture_output=True, text=True, timeout=timeout_s,
    )  # fmt: skip


def short_run(
    url: str, folder: Path, *args: str, timeout_s: float = 120
) -> tuple[subprocess.CompletedProcess[str], Summary]:
    """A short verification run against ``url`` (``args`` added), said in one line at most if it
    went wrong; its summary.json."""
    result = fleetbench("run", "--target", url, "--scenario", "verification", *SHORT_RUN, *args,
                        "--results", str(folder / "r"), timeout_s=timeout_s)  # fmt: skip
    one_line_error(result)
    summary: Summary = json.loads((folder / "r" / "summary.json").read_text())
    return result, summary


def one_line_error(result: subprocess.CompletedProcess[str]) -> None:
    """Whatever went wrong was said in one line at most, never as a traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) <= 1, result.stderr


# Our contract, devices with secrets (so probe and attack can use it), one endpoint whose name
# is a link.
PROFILE = """\
name = "hostile"

[devices]
credentials = "secret"

[token.form]
grant_type = "client_credentials"
client_id = "{device_id}"
client_secret = "{secret}"

[[endpoints]]
name = '<a href="https://evil.example/">data</a>'
path = "/api/data"

[refusals]
read = "rfc6750"
"""
API_KEY = "api-key-value-never-shown"


@pytest.fixture
def profile(tmp_path: Path) -> str:
    path = tmp_path / "hostile.toml"
    path.write_text(PROFILE)
    return str(path)


def no_escapes(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text, repr(text[-2000:])


# -- 4: API bytes never reach the terminal -------------------------------------------------------


def test_probe_prints_no_escape_sequence_from_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    with serve_hostile(monkeypatch, "ansi-401") as url:
        result = fleetbench("probe", "--profile", "fleetbench", "--target", url,
                            "--expiry-wait", "0")  # fmt: skip
    one_line_error(result)
    no_escapes(result.stdout + result.stderr)
    assert "refused PASS everything" in result.stdout  # the body's words, as plain text


def test_attack_prints_no_escape_sequence_from_a_token_header(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, profile: str
) -> None:
    with serve_hostile(monkeypatch, HOSTILE_ALG="HS256" + ESCAPES) as url:
        result = fleetbench("attack", "--target", url, "--profile", profile,
                            "--results", str(tmp_path / "a"), "--quiet")  # fmt: skip
    one_line_error(result)
    no_escapes(result.stdout + result.stderr)
    assert result.returncode == 2  # no algorithm to name: the attack stops, in one line


def test_run_with_markup_in_the_token_alg_ends_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with serve_hostile(monkeypatch, HOSTILE_ALG="HS256[/x]") as url:
        result, summary = short_run(url, tmp_path)
    assert "MarkupError" not in result.stderr
    # Refused where it entered: no row carries the API's text as an algorithm.
    assert all(row["alg"] != "HS256[/x]" for row in summary["requests"])


# -- 2: what a profile reads from the environment -------------------------------------------------


def test_probe_names_the_variables_a_profile_reads_never_their_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A credential from the environment, sent in the token call's form.
    profile = tmp_path / "hostile.toml"
    profile.write_text(
        PROFILE.replace("[[endpoints]]", 'api_key = "${HOSTILE_API_KEY}"\n\n[[endpoints]]')
    )
    with serve_hostile(monkeypatch) as url:
        result = fleetbench("probe", "--profile", str(profile), "--target", url,
                            "--expiry-wait", "0", HOSTILE_API_KEY=API_KEY)  # fmt: skip
    assert "reads environment variables: HOSTILE_API_KEY" in result.stdout, result.stdout
    assert API_KEY not in result.stdout + result.stderr


# -- 7: names are text in the charts ------------------------------------------------------------


def test_an_endpoint_name_draws_no_link_in_the_charts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, profile: str
) -> None:
    with serve_hostile(monkeypatch) as url:
        _, summary = short_run(url, tmp_path, "--profile", profile)
    names = [row["endpoint"] for row in summary["requests"]]
    assert '<a href="https://evil.example/">data</a>' in names  # the profile's name, kept
    # What Plotly draws (the titles above the charts are Jinja2's, autoescaped).
    drawn = json.dumps([chart["data"] for chart in run_charts(summary)])
    assert "<a" not in drawn and "&lt;a href" in drawn


# -- 3: the API cannot write into the CI page or break JUnit ------------------------------------

INJECTED = (
    'HS256 | x |\n\n## fleetbench smoke: PASS\n\n<img src="https://evil.example/i.png"> '
    "[download the fixed build](https://evil.example/build.zip)<details>"
)


def test_smoke_pages_hold_no_markdown_or_control_character_from_the_api(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with serve_hostile(
        monkeypatch, HOSTILE_METADATA_ALG=INJECTED, HOSTILE_ALG="HS256\u0001"
    ) as url:
        result = fleetbench("smoke", "--target", url, "--devices", "3", "--duration", "2",
                            "--results", str(tmp_path / "s"), "--quiet")  # fmt: skip
    one_line_error(result)
    no_escapes(result.stdout)
    markdown = (tmp_path / "s" / "summary.md").read_text()
    assert markdown.count("## fleetbench smoke") == 1, markdown
    for injected in ("<img", "](https://evil", "<details>", "\u0001"):
        assert injected not in markdown, markdown
    ET.parse(tmp_path / "s" / "junit.xml")  # parseable: no character XML cannot hold


# -- 5: bounded reads ---------------------------------------------------------------------------


def _sent(url: str) -> int:
    sent: int = requests.get(f"{url}/sent", timeout=5).json()["sent"]
    return sent


def test_probe_reads_only_the_start_of_a_huge_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    with serve_hostile(monkeypatch, "big-401") as url:
        result = fleetbench("probe", "--profile", "fleetbench", "--target", url,
                            "--expiry-wait", "0")  # fmt: skip
        sent = _sent(url)
    one_line_error(result)
    # Each refusal streams 64 MiB; the probe stops at its excerpt cap (plus socket buffers).
    assert sent < BIG_BYTES // 2, sent


def test_probe_gives_up_on_a_dripping_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    with serve_hostile(monkeypatch, "drip-401") as url:
        # Unfixed, each of the probe's steps waits out the whole 60 s drip.
        result = fleetbench("probe", "--profile", "fleetbench", "--target", url,
                            "--expiry-wait", "0", timeout_s=100)  # fmt: skip
    one_line_error(result)
    assert "did not finish its answer" in result.stdout + result.stderr


def test_deeply_nested_json_from_the_token_call_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with serve_hostile(monkeypatch, "deep-token") as url:
        result = fleetbench("probe", "--profile", "fleetbench", "--target", url)
    one_line_error(result)
    assert "RecursionError" not in result.stdout + result.stderr
    assert result.returncode in (1, 2)


def test_a_run_against_a_dripping_metrics_finishes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with serve_hostile(monkeypatch, "drip-metrics") as url:
        # Unfixed, the run's /metrics reads wait out the whole 60 s drip, three times over.
        _, summary = short_run(url, tmp_path, "--duration", "3", timeout_s=100)
    assert summary["server"]["available"] is False
    assert summary["outcomes"]["ok"] > 0


def test_a_huge_metrics_is_not_read_whole(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with serve_hostile(monkeypatch, "big-metrics") as url:
        short_run(url, tmp_path)
        sent = _sent(url)
    # /metrics is read at least twice (before and after): unfixed, 128 MiB or more.
    assert sent < BIG_BYTES, sent


def test_compressed_answers_are_read_inflated_and_capped_inflated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with serve_hostile(monkeypatch, "gzip") as url, requests.Session() as session:
        answer = fetch(session, "POST", f"{url}/auth/token", timeout_s=10, data={"client_id": "d"})
        assert answer.headers["content-encoding"] == "gzip"
        assert answer.json()["token_type"] == "Bearer"
    with (
        serve_hostile(monkeypatch, "bomb-metrics") as url,
        requests.Session() as session,
        pytest.raises(AnswerRefused, match="more than 4096 KiB"),
    ):
        fetch(session, "GET", f"{url}/metrics", timeout_s=10)


def test_devices_do_not_read_a_huge_answer_whole(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with serve_hostile(monkeypatch, "big-200") as url:
        _, summary = short_run(url, tmp_path)
        sent = _sent(url)
    answered = sum(
        row["count"]
        for row in summary["requests"]
        if row["scenario"] == "verification" and not row["endpoint"].startswith("token ")
    )
    assert answered > 0
    # Each answer is 64 MiB: the devices stop at their cap (plus what the sockets buffer).
    assert sent < answered * BIG_BYTES // 4, (sent, answered)
    assert summary["outcomes"]["ok"] == summary["phases"]["setup"]["outcomes"]["ok"]


# -- 6: no redirect is followed -----------------------------------------------------------------


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A second server, on another port, counting every request that reaches it."""
    with serve_hostile(monkeypatch, app="sink_app") as url:
        yield url


def _seen(url: str) -> int:
    seen: int = requests.get(f"{url}/seen", timeout=5).json()["seen"]
    return seen


def test_devices_do_not_resend_credentials_on_a_token_redirect(
    monkeypatch: pytest.MonkeyPatch, sink: str, tmp_path: Path
) -> None:
    with serve_hostile(monkeypatch, "redirect-token", HOSTILE_SINK=sink) as url:
        result, _ = short_run(url, tmp_path)
    assert _seen(sink) == 0
    assert result.returncode == 1  # no device ever held a token


def test_provisioning_does_not_resend_secrets_on_a_redirect(
    monkeypatch: pytest.MonkeyPatch, sink: str, tmp_path: Path
) -> None:
    with serve_hostile(monkeypatch, "redirect-admin", HOSTILE_SINK=sink) as url:
        result = fleetbench("provision", "--target", url, "--devices", "3",
                            "--out", str(tmp_path / "fleet.json"))  # fmt: skip
    one_line_error(result)
    assert _seen(sink) == 0
    assert result.returncode == 2
    assert "307" in result.stderr


# -- 8: every protected request failed -----------------------------------------------------------


def test_a_run_where_no_protected_request_succeeded_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with serve_hostile(monkeypatch, "redirect-data") as url:
        result, summary = short_run(url, tmp_path)
    assert summary["verdict"]["label"] == "FAIL", summary["verdict"]
    assert result.returncode == 1
