"""The trust scenarios and storms on any API: short real runs (real uvicorn, real Locust), on our
target with 2 worker processes, and on deliberately broken targets that must fail."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from sim.account.revocation import Journal, pick_revoked
from sim.account.storms import Storm
from sim.artefacts.codec import read_summary
from sim.artefacts.summary_file import RotationStorm, Summary
from sim.errors import ConfigError
from sim.profiles import ProfileError, load_profile
from sim.run.config import RunConfig
from sim.run.embedded import EmbeddedTarget, free_port
from sim.run.runner import run_benchmark
from tests.commands import REPO, fleetbench
from tests.sim.conftest import serve_broken_target

DEVICES = 12
LAX_PROFILE = str(REPO / "tests/apis/lax/profile.toml")  # a foreign API's: no rotate, no revoke


def _run(tmp_path: Path, storm: Storm, **options: Any) -> Summary:
    options.setdefault("devices", DEVICES)
    options.setdefault("interval_s", 0.2)
    return run_benchmark(
        RunConfig(results=tmp_path / "results", scenarios={"verification": 1}, storm=storm,
                  **options)
    )  # fmt: skip


@pytest.mark.slow
def test_rotation_storm_on_two_workers_refuses_no_valid_token(tmp_path: Path) -> None:
    summary = _run(
        tmp_path, "rotation-storm", target_workers=2, token_alg="ES256", alg="secret",
        token_ttl=4, leeway=1, duration_s=12,
    )  # fmt: skip
    storms = summary.get("storms")
    assert storms is not None and "rotation" in storms
    storm = storms["rotation"]
    assert storm["via"] == "admin"
    assert storm["rotated_at"] is not None and storm["started_at"] is not None
    assert len(storm["old_kids"]) == 1 and len(storm["new_kids"]) == 1
    assert storm["old_kids"] != storm["new_kids"]
    assert storm["grace_s"] == 5  # the target's default: token TTL + leeway
    # Every device came to hold a token by the new key, within the run.
    assert storm["devices"] == storm["devices_renewed"] == DEVICES
    assert storm["time_to_all_new_s"] is not None
    assert 0 < storm["time_to_all_new_s"] < summary["run"]["elapsed_s"]
    assert storm["first_new_key_accepted_s"] is not None
    assert storm["first_new_key_accepted_s"] <= storm["time_to_all_new_s"]
    # ES256 publishes its keys: the JWKS was watched and listed the new kid.
    assert storm["jwks"] == "/.well-known/jwks.json"
    assert storm["jwks_new_kid_s"] is not None
    # The probe device was issued a new-key token after the rotation, and it was accepted.
    assert storm["probed"]
    assert storm["new_key_issued_s"] is not None and storm["new_key_accepted_s"] is not None
    assert storm["new_key_accepted_s"] >= storm["new_key_issued_s"] >= 0
    # The goal: no valid token refused, through the grace period and across both workers.
    assert storm["refused_valid"] == storm["refused_valid_old_key"] == 0
    assert summary["outcomes"]["refused_valid"] == summary["outcomes"]["accepted_invalid"] == 0
    assert summary["run"]["parameters"].get("target_workers") == 2
    assert summary["verdict"]["passed"], summary["verdict"]["failures"]
    assert read_summary(tmp_path / "results" / "summary.json").get("storms") == storms
    html = (tmp_path / "results" / "report.html").read_text()
    assert 'data-figure="storms.rotation.refused_valid_old_key" data-value="0"' in html


def _rotation_on(tmp_path: Path, app: str, **options: Any) -> tuple[RotationStorm, Summary]:
    """A rotation storm on one of tests/sim/trust_target.py's APIs: its section and summary."""
    with serve_broken_target(f"tests.sim.trust_target:{app}") as url:
        if "rotate_cmd" in options:
            options["rotate_cmd"] = options["rotate_cmd"].format(url=url)
        summary = _run(
            tmp_path, "rotation-storm", target=url, admin_key="unused-here", alg="secret",
            duration_s=12, **options,
        )  # fmt: skip
    storms = summary.get("storms")
    assert storms is not None
    return storms["rotation"], summary


@pytest.mark.slow
def test_a_target_that_drops_old_keys_fails_the_rotation_storm(tmp_path: Path) -> None:
    storm, summary = _rotation_on(tmp_path, "drops_old_keys")
    assert storm["via"] == "profile"
    assert storm["jwks"] is None  # this API publishes none
    # Every held token was refused at the rotation: valid tokens by the old key.
    assert storm["refused_valid_old_key"] > 0
    assert storm["refused_valid_new_key"] == 0
    assert summary["outcomes"]["refused_valid"] >= storm["refused_valid_old_key"]
    assert not summary["verdict"]["passed"]
    assert any("by the old key" in f for f in summary["verdict"]["failures"])


@pytest.mark.slow
def test_rotate_cmd_rotates_a_foreign_api_and_its_grace_holds(tmp_path: Path) -> None:
    """--rotate-cmd: the user's own command rotates the key (here a POST by a one-line script);
    this API keeps the old key verifying, so no valid token is refused."""
    command = (
        f'{sys.executable} -c "import requests; '
        "requests.post('{url}/admin/keys/rotate', timeout=10).raise_for_status()\""
    )
    storm, summary = _rotation_on(tmp_path, "app", rotate_cmd=command)
    assert storm["via"] == "command"
    assert storm["grace_s"] is None  # a command says nothing about it
    assert len(storm["old_kids"]) == 1 and len(storm["new_kids"]) == 1  # told apart by the marks
    assert storm["devices_renewed"] == storm["devices"] == DEVICES  # 4 s tokens, renewed
    assert storm["refused_valid"] == 0
    assert summary["verdict"]["passed"], summary["verdict"]["failures"]
    assert "rotate_cmd" not in summary["run"]["parameters"]


@pytest.mark.slow
def test_a_rotate_cmd_that_rotates_nothing_fails(tmp_path: Path) -> None:
    storm, summary = _rotation_on(tmp_path, "app", rotate_cmd="true")
    assert storm["via"] == "command" and storm["rotated_at"] is not None
    assert storm["new_kids"] == [] and storm["devices_renewed"] == 0
    assert storm["probed"] and storm["new_key_issued_s"] is None
    assert not summary["verdict"]["passed"]
    assert any("no token by a new key" in f for f in summary["verdict"]["failures"])


@pytest.mark.slow
def test_a_target_late_to_accept_the_new_key_shows_it(tmp_path: Path) -> None:
    """The token call signs with the new key at once; the API accepts it 2 s later (a JWKS
    cache): the probe's issued and accepted moments show the gap."""
    storm, summary = _rotation_on(tmp_path, "late_new_keys")
    assert storm["probed"]
    issued, accepted = storm["new_key_issued_s"], storm["new_key_accepted_s"]
    assert issued is not None and accepted is not None
    assert accepted >= 2.0 > issued  # the API's 2 s delay, by construction
    assert storm["refused_valid_old_key"] == 0
    # Devices renewing within those 2 s (each renews every 2-3.2 s) were refused their new-key
    # tokens: the run fails.
    assert storm["refused_valid_new_key"] > 0
    assert not summary["verdict"]["passed"]
    assert any("by the new key refused" in f for f in summary["verdict"]["failures"])


@pytest.mark.slow
def test_revocation_on_two_workers_is_within_the_bound(tmp_path: Path) -> None:
    result = fleetbench(
        "run", "--scenario", "revocation", "--target-workers", "2", "--devices", "20",
        "--revoke-percent", "20", "--alg", "secret", "--token-alg", "HS256", "--duration", "8",
        "--interval", "0.2", "--quiet", "--results", str(tmp_path / "r"),
        timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = read_summary(tmp_path / "r" / "summary.json")
    section = summary.get("revocation")
    assert section is not None
    assert section["via"] == "admin"
    assert section["bound_s"] == 0  # our profile's: refused by every worker once answered
    assert section["devices"] == 4 and section["devices_refused"] == 4
    assert section["revoke_call_us"]["count"] == 4
    # The revoked devices kept presenting their tokens: refused every time after revocation.
    assert section["probes"] > 4 * 3
    assert section["refused"] == section["probes"]
    assert section["accepted"] == section["late_acceptances"] == section["devices_late"] == 0
    # Each revoked device asked for a new token once, past the bound, and was refused.
    assert section["token_requests"] == 4 and section["tokens_issued"] == 0
    refuse = section["time_to_refuse_us"]
    assert refuse["count"] == 4
    assert refuse.get("p99", 0) <= section["bound_s"] * 1_000_000 + 1  # 1 µs: the scale's floor
    assert section["passed"]
    outcomes = summary["outcomes"]
    assert outcomes["accepted_invalid"] == outcomes["refused_valid"] == 0
    assert outcomes["rejected_as_expected"] >= section["probes"] + section["token_requests"]
    assert summary["run"]["parameters"].get("revoke_percent") == 20
    assert "revocation (admin): 4 devices revoked, 4 seen refused" in result.stdout
    html = (tmp_path / "r" / "report.html").read_text()
    assert 'data-figure="revocation.late_acceptances" data-value="0"' in html


@pytest.mark.slow
def test_a_target_that_forgets_revocations_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRUST_TTL_S", "60")  # the revoked devices' tokens live through the run
    with serve_broken_target("tests.sim.trust_target:forgets_revocations") as url:
        summary = _run(
            tmp_path, "revocation", target=url, admin_key="unused-here", alg="secret",
            duration_s=8, revoke_percent=25,
        )  # fmt: skip
    section = summary.get("revocation")
    assert section is not None
    assert section["devices"] == 3
    assert section["devices_refused"] == 0  # never refused: the revokes were forgotten
    assert section["late_acceptances"] == section["accepted"] == section["probes"] > 0
    assert section["devices_late"] == 3
    assert not section["passed"]
    # It issued them new tokens too.
    assert section["token_requests"] == section["tokens_issued"] == 3
    # Each acceptance after the bound is a bad credential accepted, live in the account too.
    assert summary["outcomes"]["accepted_invalid"] == section["late_acceptances"] + 3
    assert not summary["verdict"]["passed"]
    failures = " | ".join(summary["verdict"]["failures"])
    assert "accepted more than 0 s after the revocation" in failures
    assert "never seen refused" in failures
    assert "issued 3 tokens to revoked devices" in failures


@pytest.mark.slow
def test_revoked_devices_come_on_new_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests spread over an API's processes only on new connections: each request of a
    revoked device comes on its own, the other devices keep theirs."""
    monkeypatch.setenv("TRUST_TTL_S", "60")
    with serve_broken_target("tests.sim.trust_target:app") as url:
        summary = _run(
            tmp_path, "revocation", target=url, admin_key="unused-here", alg="secret",
            duration_s=6, devices=8, revoke_percent=25,
        )  # fmt: skip
        connections: dict[str, int] = requests.get(f"{url}/debug/connections", timeout=5).json()
    section = summary.get("revocation")
    assert section is not None and section["passed"]
    revoked = set(pick_revoked(sorted(connections), 25))
    assert len(revoked) == 2
    for device, count in connections.items():
        if device in revoked:
            assert count > 10, (device, count)  # one a request, 5 a second for 6 s
        else:
            assert count == 1, (device, count)


def test_the_journal_reads_whole_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "revocations.jsonl"
    journal = Journal(path)
    assert journal.refresh().sent == {}  # no file yet
    path.write_text('{"event": "sent", "device": "d1", "t": 1.5}\n{"event": "answ')
    journal.refresh()
    assert journal.sent == {"d1": 1.5} and journal.answered == {}
    with open(path, "a") as f:
        f.write('ered", "device": "d1", "t": 2.5}\n')
    assert journal.refresh().answered == {"d1": 2.5}


def test_revoked_devices_are_spread_over_the_fleet() -> None:
    ids = [f"d{i:02d}" for i in range(20)]
    assert pick_revoked(ids, 10) == ["d00", "d10"]
    assert pick_revoked(ids, 1) == ["d00"]  # at least one
    assert len(pick_revoked(ids, 100)) == 20


@pytest.fixture
def restartable_lax_api(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The lax API (tests/apis/lax) on a fixed port, and the command that restarts it."""
    port = free_port()
    pidfile = tmp_path / "lax.pid"
    script = [sys.executable, "-m", "tests.apis.restart"]
    app = "tests.apis.lax.app:app"
    subprocess.run([*script, "start", str(pidfile), str(port), app], cwd=REPO, check=True,
                   timeout=30)  # fmt: skip
    restart = " ".join([*script, "restart", str(pidfile), str(port), app])
    try:
        yield f"http://127.0.0.1:{port}", restart
    finally:
        subprocess.run([*script, "stop", str(pidfile), str(port), app], cwd=REPO, timeout=30)


@pytest.mark.slow
def test_outage_cmd_runs_the_reconnect_storm_on_a_foreign_api(
    restartable_lax_api: tuple[str, str], tmp_path: Path
) -> None:
    url, restart = restartable_lax_api
    summary = _run(
        tmp_path, "reconnect-storm", target=url, profile=LAX_PROFILE,
        outage_cmd=restart, duration_s=12, interval_s=0.1,
    )  # fmt: skip
    storms = summary.get("storms")
    assert storms is not None and "reconnect" in storms
    storm = storms["reconnect"]
    assert storm["down_at"] is not None and storm["up_at"] is not None
    assert storm["outage_s"] is not None and storm["outage_s"] > 0
    # Cut off while it was down, and every one back to ok once it answered again.
    assert storm["devices"] > 0
    assert storm["devices_recovered"] == storm["devices"]
    assert storm["time_to_recover_s"] is not None
    assert storm["acknowledged_lost"] is None  # no /admin/stats on this API to count against
    assert summary["outcomes"]["transport_error"] > 0
    assert summary["server"]["available"] is False
    assert "outage_cmd" not in summary["run"]["parameters"]  # the command is never published
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5):
        pass  # the API is up again after the run


@pytest.mark.slow
def test_a_failing_outage_cmd_fails_the_run(tmp_path: Path) -> None:
    with serve_broken_target() as url:
        summary = _run(
            tmp_path, "reconnect-storm", target=url, admin_key="unused-here", alg="secret",
            outage_cmd=f"{sys.executable} -c 'raise SystemExit(3)'", duration_s=12,
        )  # fmt: skip
    assert not summary["verdict"]["passed"]
    assert "--outage-cmd: the command exited 3" in summary["verdict"]["failures"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"target": "http://127.0.0.1:9", "admin_key": "k", "storm": "reconnect-storm"},
         "needs --outage-cmd"),
        ({"outage_cmd": "true", "storm": "reconnect-storm"}, "--outage-cmd is the outage of a"),
        ({"target": "http://127.0.0.1:9", "admin_key": "k", "outage_cmd": "true"},
         "--outage-cmd is the outage of a"),
        ({"rotate_cmd": "true", "storm": "rotation-storm"}, "--rotate-cmd rotates the key of a"),
        ({"target": "http://127.0.0.1:9", "storm": "rotation-storm", "rotate_cmd": "true",
          "profile": LAX_PROFILE, "duration_s": 5}, "make --duration at least 12 s"),
        ({"target": "http://127.0.0.1:9", "storm": "rotation-storm", "profile": LAX_PROFILE},
         "has no [rotate] call"),
        ({"target": "http://127.0.0.1:9", "storm": "revocation", "profile": LAX_PROFILE},
         "has no [revoke] call"),
        ({"target": "http://127.0.0.1:9", "admin_key": "k", "target_workers": 2},
         "--target-workers sets the embedded"),
        ({"storm": "revocation", "revoke_percent": 0.0}, "--revoke-percent must be above 0"),
        ({"storm": "revocation", "duration_s": 4}, "at least 6 s"),
        ({"target": "http://127.0.0.1:9", "admin_key": "k", "storm": "reconnect-storm",
          "outage_cmd": "'unterminated"}, "--outage-cmd: cannot split the command"),
        ({"target": "http://127.0.0.1:9", "admin_key": "k", "storm": "rotation-storm",
          "rotate_cmd": " "},
         "--rotate-cmd: the command is empty"),
    ],
)  # fmt: skip
def test_a_trust_run_it_cannot_do_is_refused(options: dict[str, Any], message: str) -> None:
    options.setdefault("duration_s", 20)
    config = RunConfig(scenarios={"verification": 1}, **options)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        config.check()


@pytest.mark.slow
def test_cli_trust_errors_are_one_line_and_exit_2() -> None:
    result = fleetbench(
        "run", "--scenario", "reconnect-storm", "--target", "http://127.0.0.1:9",
        "--admin-key", "k" * 32, "--duration", "20",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "needs --outage-cmd" in result.stderr


@pytest.mark.slow
def test_new_connections_reach_both_workers_of_our_target() -> None:
    """What the revocation scenario relies on: the embedded target's worker processes share
    the listening socket, so new connections (a revoked device's requests) reach each of them."""
    with EmbeddedTarget("HS256", workers=2) as target:
        assert target.pid is not None
        held: list[socket.socket] = []
        serving: set[int] = set()
        try:
            # Kept open, so each process still holds what it accepted. The target answers once one
            # process serves; on a busy machine the second may still be starting, so connections
            # are opened in rounds (at most 400) until both have accepted some.
            while len(serving) < 2 and len(held) < 400:
                for _ in range(20):
                    conn = socket.create_connection(("127.0.0.1", target.port), timeout=10)
                    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    assert conn.recv(64).startswith(b"HTTP/1.1 200")
                    held.append(conn)
                serving = {
                    process.pid
                    for process in psutil.Process(target.pid).children(recursive=True)
                    for c in process.net_connections(kind="tcp")
                    if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == target.port
                }
        finally:
            for conn in held:
                conn.close()
    assert len(serving) == 2


def test_a_profile_revoke_bound_must_be_a_sane_number(tmp_path: Path) -> None:
    text = Path(LAX_PROFILE).read_text() + '\n[revoke]\npath = "/r/{device_id}"\nbound_s = -1\n'
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=r"p\.toml:\d+: revoke\.bound_s must be 0 or more"):
        load_profile(str(path), {})
    path.write_text(text.replace("bound_s = -1", "bound_s = 2.5"))
    revoke = load_profile(str(path), {}).revoke
    assert revoke is not None and revoke.bound_s == 2.5 and revoke.method == "POST"
