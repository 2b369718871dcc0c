"""Settings and the command line: one readable line for every bad flag, a generated admin key kept
in a private file and never printed, private database files, ``TARGET_*`` variables."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from sim.run.embedded import free_port
from target.settings import parse_settings
from tests.target.helpers import TIMEOUT_S, generate_key, pem, wait_until

REPO = Path(__file__).resolve().parents[2]


def _clean_env() -> dict[str, str]:
    """This environment without any ``TARGET_*`` variable, so only the flags given count."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TARGET_")}


def _run(*flags: str, timeout_s: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "target", *flags],
        cwd=REPO,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def _refused(monkeypatch: pytest.MonkeyPatch, *flags: str) -> subprocess.CompletedProcess[str]:
    """``python -m target FLAGS`` up to its settings, in this process: what the start refuses before
    it serves (``main`` parses the settings first). A flag accepted here would start a server, so it
    fails the test instead; an exception other than the parser's exit is the traceback a user would
    see, and fails it too."""
    for name in os.environ:
        if name.startswith("TARGET_"):
            monkeypatch.delenv(name)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as refused:
        parse_settings(list(flags))
    code = refused.value.code if isinstance(refused.value.code, int) else 1
    return subprocess.CompletedProcess(
        ["python", "-m", "target", *flags], code, "", stderr.getvalue()
    )


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("target: error: "), lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    for word in words:
        assert word in lines[0]


@pytest.fixture
def key_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "short-hmac": os.urandom(31),
        "garbage-pem": b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
        "rsa-pem": pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "ed25519-pem": pem(generate_key("EdDSA")),
        "empty": b"",
    }
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(data)
    return paths


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--port", "notanumber"], ["--port"]),
        (["--port", "70000"], ["--port"]),
        (["--alg", "XX256"], ["--alg", "XX256"]),
        (["--alg", "none"], ["--alg"]),
        (["--token-ttl", "0"], ["--token-ttl"]),
        (["--leeway", "-1"], ["--leeway"]),
        (["--leeway", "301"], ["--leeway"]),
        (["--workers", "0"], ["--workers"]),
        (["--log-level", "loud"], ["--log-level"]),
        (["--no-such-flag"], ["--no-such-flag"]),
        (["--admin-key", "short"], ["--admin-key"]),
        (["--signing-key", "/no/such/file"], ["--signing-key", "no such file"]),
        (["--workers", "2", "--db", ":memory:"], ["--workers"]),
        (["--mqtt-port", "70000"], ["--mqtt-port"]),
        (["--mqtt-max-packet", "0"], ["--mqtt-max-packet"]),
        (["--mqtt-connect-timeout", "0"], ["--mqtt-connect-timeout"]),
        (["--mqtt-connect-timeout", "nan"], ["--mqtt-connect-timeout"]),
        (["--workers", "2", "--db", "t.db", "--mqtt-port", "1883"], ["--mqtt-port", "--workers 1"]),
    ],
    ids=lambda value: "-".join(value).strip("-") if isinstance(value, list) else "",
)
def test_a_bad_flag_is_one_line_on_stderr(
    flags: list[str], words: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _assert_one_line_error(_refused(monkeypatch, "--db", ":memory:", *flags), *words)


@pytest.mark.parametrize(
    ("alg", "key_file"),
    [
        ("HS256", "short-hmac"),
        ("HS512", "empty"),
        ("ES256", "garbage-pem"),
        ("ES256", "rsa-pem"),
        ("RS256", "ed25519-pem"),
        ("EdDSA", "short-hmac"),
    ],
)
def test_an_unusable_signing_key_is_one_line_on_stderr(
    key_files: dict[str, Path], alg: str, key_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: these crashed at start with a traceback from inside the app factory."""
    flags = ("--db", ":memory:", "--alg", alg, "--signing-key", str(key_files[key_file]))
    result = _refused(monkeypatch, *flags)
    _assert_one_line_error(result, "--signing-key", alg)
    # Nothing of the key file's content appears.
    content = key_files[key_file].read_bytes()
    if len(content) > 8:
        assert content.hex()[:16] not in result.stderr
        assert "not a key" not in result.stderr


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[Path, Path, int]]:
    """``python -m target`` with no admin key given; yields (db, output file, port)."""
    db, output, port = tmp_path / "fleet.db", tmp_path / "output.txt", free_port()
    with open(output, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "target", "--port", str(port), "--db", str(db)],
            cwd=REPO,
            env=_clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}/healthz"

        def up() -> bool:
            assert process.poll() is None, output.read_text()
            try:
                return requests.get(url, timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        assert wait_until(up, 20.0, 0.05)
        yield db, output, port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def test_a_generated_admin_key_is_written_0600_and_never_printed(
    own_server: tuple[Path, Path, int],
) -> None:
    db, output, port = own_server
    key_file = Path(f"{db}.admin-key")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 32
    printed = output.read_text()
    assert str(key_file) in printed  # where to find it is said...
    assert key not in printed  # ...the key itself is not
    # The key in the file is the one the server checks.
    url = f"http://127.0.0.1:{port}/admin/stats"
    assert requests.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=TIMEOUT_S).ok
    wrong = {"Authorization": f"Bearer {secrets.token_urlsafe(32)}"}
    assert requests.get(url, headers=wrong, timeout=TIMEOUT_S).status_code == 401


def test_the_database_files_are_private(own_server: tuple[Path, Path, int]) -> None:
    db, _, port = own_server
    # Write something so the WAL holds data too.
    key = Path(f"{db}.admin-key").read_text().strip()
    requests.post(
        f"http://127.0.0.1:{port}/admin/devices",
        json={"devices": [{"id": "d1", "secret": secrets.token_urlsafe(24)}]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=TIMEOUT_S,
    ).raise_for_status()
    files = [p for p in db.parent.iterdir() if p.name.startswith(db.name)]
    assert db in files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


@pytest.mark.slow
def test_an_existing_admin_key_file_is_reused(tmp_path: Path) -> None:
    db = tmp_path / "fleet.db"
    key = secrets.token_urlsafe(32)
    key_file = Path(f"{db}.admin-key")
    key_file.write_text(key + "\n")
    os.chmod(key_file, 0o600)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "target", "--port", str(port), "--db", str(db)],
        cwd=REPO,
        env=_clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/admin/stats"

        def answers() -> bool:
            try:
                return requests.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=1).ok
            except requests.ConnectionError:
                return False

        assert wait_until(answers, 20.0, 0.05)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert key.encode() not in stderr
    assert key_file.read_text().strip() == key


def test_flags_override_target_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("TARGET_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TARGET_TOKEN_TTL", "120")
    monkeypatch.setenv("TARGET_ALG", "EdDSA")
    monkeypatch.setenv("TARGET_ADMIN_KEY", "from-the-environment-0123456789")
    settings = parse_settings(["--alg", "RS256"])
    assert settings.token_ttl == 120
    assert settings.alg == "RS256"
    assert settings.admin_key is not None
    assert str(settings.admin_key) == "from-the-environment-0123456789"
    assert "from-the-environment" not in repr(settings)  # a Secret hides its value


def test_settings_survive_the_trip_to_worker_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers rebuild settings from ``TARGET_*``; every field must come back the same."""
    for name in [n for n in os.environ if n.startswith("TARGET_")]:
        monkeypatch.delenv(name)
    original = parse_settings(
        [
            "--alg",
            "PS256",
            "--port",
            "9999",
            "--db",
            "x.db",
            "--token-ttl",
            "60",
            "--leeway",
            "0",
            "--key-grace",
            "5",
            "--verify-cache",
            "10",
            "--workers",
            "3",
            "--issuer",
            "urn:i",
            "--audience",
            "urn:a",
            "--admin-key",
            "k" * 20,
            "--log-level",
            "info",
            "--access-log",
        ]
    )
    for name, value in original.to_env().items():
        monkeypatch.setenv(name, value)
    rebuilt = parse_settings([])
    assert rebuilt.__dict__.keys() == original.__dict__.keys()
    for name, value in original.__dict__.items():
        assert str(getattr(rebuilt, name)) == str(value), name


def test_key_grace_defaults_to_token_lifetime_plus_leeway(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("TARGET_")]:
        monkeypatch.delenv(name)
    assert parse_settings(["--token-ttl", "100", "--leeway", "7"]).key_grace_s == 107
    assert parse_settings(["--key-grace", "0"]).key_grace_s == 0


@pytest.mark.slow
def test_a_valid_start_says_where_it_listens() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "target", "--port", str(port), "--db", ":memory:", "--alg", "EdDSA"],
        cwd=REPO,
        env={**_clean_env(), "TARGET_ADMIN_KEY": "k" * 32},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/healthz"

        def up() -> bool:
            try:
                return requests.get(url, timeout=1).ok
            except requests.ConnectionError:
                return False

        assert wait_until(up, 20.0, 0.05)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)
    assert f"EdDSA tokens on http://127.0.0.1:{port}" in stderr.decode()
    assert b"k" * 32 not in stdout + stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("content", "mode", "words"),
    [
        ("", 0o600, ["fewer than 16"]),
        ("\n", 0o600, ["fewer than 16"]),
        ("short-key\n", 0o600, ["fewer than 16"]),
        (secrets.token_urlsafe(32) + "\n", 0o644, ["mode 0644"]),
        (secrets.token_urlsafe(32) + "\n", 0o660, ["mode 0660"]),
    ],
    ids=["empty", "blank", "short", "world-readable", "group-writable"],
)
def test_an_untrustworthy_admin_key_file_stops_the_start(
    tmp_path: Path, content: str, mode: int, words: list[str]
) -> None:
    """Issue 10 item 3: an empty key file (what a crash between creating and writing it left)
    was read as the key "", and ``Authorization: Bearer `` then opened the admin API."""
    db = tmp_path / "fleet.db"
    key_file = Path(f"{db}.admin-key")
    key_file.write_text(content)
    os.chmod(key_file, mode)
    result = _run("--port", str(free_port()), "--db", str(db))
    _assert_one_line_error(result, "admin key file", *words)
    assert content.strip() == "" or content.strip() not in result.stderr


def test_the_admin_key_file_is_written_whole_and_leaves_nothing_else(tmp_path: Path) -> None:
    from target.settings import Settings, resolve_admin_key

    settings, path = resolve_admin_key(Settings(db=str(tmp_path / "fleet.db")))
    assert path is not None and settings.admin_key is not None
    assert path.read_text() == f"{settings.admin_key}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleet.db.admin-key"]
    again, _ = resolve_admin_key(Settings(db=str(tmp_path / "fleet.db")))
    assert str(again.admin_key) == str(settings.admin_key)


def test_generated_admin_keys_can_follow_the_admin_key_flag(tmp_path: Path) -> None:
    """A key starting with '-' would be read as a flag by `fleetbench ... --admin-key KEY`.

    With base64url keys one in 64 did; 300 keys would have shown one with 99 % odds.
    (``sim.run.embedded`` makes its keys the same way.)
    """
    from target.settings import Settings, resolve_admin_key

    generated = [
        str(resolve_admin_key(Settings(db=str(tmp_path / f"{n}.db")))[0].admin_key)
        for n in range(300)
    ]
    assert not [key for key in generated if key.startswith("-")]
    assert all(len(key) >= 32 for key in generated)
