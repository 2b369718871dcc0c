"""Typed settings, read once from flags with ``TARGET_*`` environment variables as defaults."""

from __future__ import annotations

import argparse
import math
import os
import secrets
import stat
import sys
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, NoReturn, get_args

from cryptography.exceptions import UnsupportedAlgorithm
from jwt.exceptions import InvalidKeyError
from starlette.datastructures import Secret

from target.jose.algorithms import ALG_NAMES, ALGORITHMS, MIN_HMAC_SECRET_BYTES, AlgName
from target.store.keys import load_signing_key_file

__all__ = ["AdminKeyFileError", "LogLevel", "Settings", "parse_settings", "resolve_admin_key"]

LogLevel = Literal["critical", "error", "warning", "info", "debug"]
TelemetryAck = Literal["commit", "receipt"]


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    alg: AlgName = "ES256"
    db: str = "target.db"
    admin_key: Secret | None = None
    issuer: str = "urn:fleetbench:target"
    audience: str = "urn:fleetbench:api"
    # Where clients reach this target (behind a proxy, say); the URLs in the RFC 8414 metadata.
    public_url: str | None = None
    token_ttl: int = 3600
    leeway: int = 10
    signing_key: Path | None = None
    key_grace: int | None = None  # seconds; None means token_ttl + leeway
    verify_cache: int = 0
    workers: int = 1
    log_level: LogLevel = "warning"
    access_log: bool = False
    # "commit": a 202 means the reading is committed (group commit, synchronous=FULL);
    # "receipt": answered on receipt, written within 0.1 s (the old, non-durable behaviour).
    telemetry_ack: TelemetryAck = "commit"
    # The MQTT listener (target/mqtt/), off unless a port is given; 0 picks a free one.
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int | None = None
    mqtt_max_connections: int = 20000
    mqtt_max_packet: int = 32 * 1024
    mqtt_connect_timeout: float = 10.0  # s from a connection's open to its CONNECT

    @property
    def key_grace_s(self) -> int:
        return self.token_ttl + self.leeway if self.key_grace is None else self.key_grace

    def to_env(self) -> dict[str, str]:
        """These settings as ``TARGET_*`` variables, to hand to worker processes."""
        env = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None:
                env[f"TARGET_{field.name.upper()}"] = str(value)
        return env


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one readable line, not a usage dump
        self.exit(2, f"target: error: {message}\n")


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return value


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < math.inf:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0-65535, not {value}")
    return value


def _bool(text: str) -> bool:
    return text.lower() in {"1", "true", "yes", "on"}


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = _Parser(prog="python -m target", description="The fleetbench reference device API.")
    p.add_argument("--host", default=env("TARGET_HOST", "127.0.0.1"))
    p.add_argument("--port", type=_port, default=env("TARGET_PORT", "8000"))
    p.add_argument("--alg", choices=ALG_NAMES, default=env("TARGET_ALG", "ES256"))
    p.add_argument("--db", default=env("TARGET_DB", "target.db"), help="SQLite file or :memory:")
    p.add_argument(
        "--admin-key",
        default=env("TARGET_ADMIN_KEY"),
        help="admin bearer key (prefer TARGET_ADMIN_KEY: flags show in ps); generated if absent",
    )
    p.add_argument("--issuer", default=env("TARGET_ISSUER", "urn:fleetbench:target"))
    p.add_argument("--audience", default=env("TARGET_AUDIENCE", "urn:fleetbench:api"))
    p.add_argument(
        "--public-url",
        default=env("TARGET_PUBLIC_URL"),
        help="base URL clients use (for the metadata's endpoint URLs); default: the issuer if it"
        " is an http(s) URL, else the address the server listens on",
    )
    p.add_argument("--token-ttl", type=_positive, default=env("TARGET_TOKEN_TTL", "3600"))
    p.add_argument("--leeway", type=_non_negative, default=env("TARGET_LEEWAY", "10"))
    p.add_argument("--signing-key", type=Path, default=env("TARGET_SIGNING_KEY"))
    p.add_argument("--key-grace", type=_non_negative, default=env("TARGET_KEY_GRACE"))
    p.add_argument("--verify-cache", type=_non_negative, default=env("TARGET_VERIFY_CACHE", "0"))
    p.add_argument("--workers", type=_positive, default=env("TARGET_WORKERS", "1"))
    p.add_argument(
        "--log-level", choices=get_args(LogLevel), default=env("TARGET_LOG_LEVEL", "warning")
    )
    p.add_argument(
        "--access-log", action="store_true", default=_bool(env("TARGET_ACCESS_LOG", "false"))
    )
    p.add_argument(
        "--telemetry-ack",
        choices=get_args(TelemetryAck),
        default=env("TARGET_TELEMETRY_ACK", "commit"),
        help="answer 202 once the reading is committed (durable), or on receipt (not durable)",
    )
    p.add_argument("--mqtt-host", default=env("TARGET_MQTT_HOST", "127.0.0.1"))
    p.add_argument(
        "--mqtt-port",
        type=_port,
        default=env("TARGET_MQTT_PORT"),
        help="also serve MQTT 3.1.1 on this port (0: any free one); off by default",
    )
    p.add_argument(
        "--mqtt-max-connections",
        type=_positive,
        default=env("TARGET_MQTT_MAX_CONNECTIONS", "20000"),
        help="MQTT connections held at once; one more is closed at once",
    )
    p.add_argument(
        "--mqtt-max-packet",
        type=_positive,
        default=env("TARGET_MQTT_MAX_PACKET", str(32 * 1024)),
        help="bytes: the largest MQTT payload or field read; a larger one closes the connection",
    )
    p.add_argument(
        "--mqtt-connect-timeout",
        type=_positive_seconds,
        default=env("TARGET_MQTT_CONNECT_TIMEOUT", "10"),
        help="s a new MQTT connection has to send its CONNECT; then it is closed",
    )
    return p


def _check_signing_key(parser: argparse.ArgumentParser, path: Path, alg: AlgName) -> None:
    """Refuse an unusable key file with one line, before the server starts and fails on it."""
    if not path.is_file():
        parser.error(f"--signing-key {path}: no such file")
    try:
        load_signing_key_file(path, alg)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm, InvalidKeyError):
        # Our own words, not the exception's: a message about key material stays out of output.
        wanted = (
            f"at least {MIN_HMAC_SECRET_BYTES} secret bytes"
            if ALGORITHMS[alg].symmetric
            else f"an unencrypted PEM {alg} private key"
        )
        parser.error(f"--signing-key {path}: not a usable {alg} key (needs {wanted})")


def parse_settings(argv: list[str] | None = None) -> Settings:
    parser = build_parser()
    args = parser.parse_args(argv)
    values: dict[str, Any] = vars(args)
    if values["leeway"] > 300:
        parser.error("--leeway must be at most 300 seconds")
    if values["workers"] > 1 and values["db"] == ":memory:":
        parser.error("--workers > 1 needs a database file, not :memory:")
    if values["mqtt_port"] is not None and values["workers"] > 1:
        parser.error("--mqtt-port needs --workers 1 (one process holds the MQTT sessions)")
    if values["public_url"] is not None:
        if not values["public_url"].startswith(("http://", "https://")):
            parser.error("--public-url must start with http:// or https://")
        values["public_url"] = values["public_url"].rstrip("/")
    if values["signing_key"] is not None:
        _check_signing_key(parser, values["signing_key"], values["alg"])
    if values["admin_key"] is not None:
        if len(values["admin_key"]) < MIN_ADMIN_KEY_CHARS:
            parser.error(f"--admin-key must be at least {MIN_ADMIN_KEY_CHARS} characters")
        values["admin_key"] = Secret(values["admin_key"])
    return Settings(**values)


def settings_from_env() -> Settings:
    """Settings from ``TARGET_*`` alone, as a worker process sees them."""
    return parse_settings([])


class AdminKeyFileError(ValueError):
    """The stored admin key file cannot be trusted (too short, or readable by others)."""


MIN_ADMIN_KEY_CHARS = 16


def _read_admin_key_file(path: Path) -> str:
    """The key in an existing file, refused if anyone but its owner may read or write it, or if
    it is shorter than a key given by flag may be (an empty file opened the admin API)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise AdminKeyFileError(
            f"admin key file {path} has mode {mode:04o}; make it 0600 (chmod 600) or remove it"
        )
    key = path.read_text(errors="replace").strip()
    if len(key) < MIN_ADMIN_KEY_CHARS:
        raise AdminKeyFileError(
            f"admin key file {path} holds fewer than {MIN_ADMIN_KEY_CHARS} characters;"
            " remove it to have a new key generated"
        )
    return key


def _write_admin_key_file(path: Path, key: str) -> str:
    """Create ``path`` holding ``key`` atomically: a crash leaves either no file or the whole
    key, never an empty one. If another process made it first, its key is the one used."""
    fd, temporary = tempfile.mkstemp(prefix=".admin-key-", dir=path.parent)  # 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temporary, path)  # fails if the name exists: never replaces a key in use
        except FileExistsError:
            return _read_admin_key_file(path)
    finally:
        os.unlink(temporary)
    return key


def resolve_admin_key(settings: Settings) -> tuple[Settings, Path | None]:
    """Settings with an admin key; a generated key goes to a 0600 file whose path is returned.

    Raises :class:`AdminKeyFileError` for an existing file that is short or not private.
    """
    if settings.admin_key is not None:
        return settings, None
    if settings.db == ":memory:":
        path = Path(tempfile.mkdtemp(prefix="fleetbench-target-")) / "admin-key"
    else:
        path = Path(settings.db + ".admin-key")
    if path.exists():
        key = _read_admin_key_file(path)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Hex, not base64url: a key starting with '-' would read as a flag in `--admin-key KEY`.
        key = _write_admin_key_file(path, secrets.token_hex(32))
    print(f"target: admin key in {path}", file=sys.stderr)
    return Settings(**{**settings.__dict__, "admin_key": Secret(key)}), path
