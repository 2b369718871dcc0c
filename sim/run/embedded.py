"""The embedded target: our reference API started as a child process on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import requests

from sim.errors import TargetStartError, TargetUnusable
from sim.processes import pin_to
from target.jose.vocabulary import client_credentials_form

__all__ = ["EmbeddedTarget", "TargetStartError", "free_port"]


# Linux's range for the local ends of outgoing connections (and for bind to port 0).
EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PICKED_PORT = 10_000  # below it sit most well-known services' ports


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing is bound to, for a server about to start on it.

    Picked at random below the kernel's ephemeral range where there is room: a port the kernel
    hands out (port 0) and we release goes back into that range, where any outgoing connection
    (a load test opens thousands) may take it as its local end before the server binds it, and
    the server then fails with "address already in use"."""
    with contextlib.suppress(OSError, ValueError):
        lowest_ephemeral = int(EPHEMERAL_PORTS.read_text().split()[0])
        for _ in range(50):
            port = secrets.SystemRandom().randrange(LOWEST_PICKED_PORT, lowest_ephemeral)
            with socket.socket() as sock, contextlib.suppress(OSError):
                sock.bind((host, port))
                return port
    with socket.socket() as sock:
        sock.bind((host, 0))
        picked: int = sock.getsockname()[1]
        return picked


class EmbeddedTarget:
    """``python -m target`` on 127.0.0.1 with a temporary database, stopped on exit.

    ``cpus`` pins the server to those cores (Linux), so a load generator on the other cores does not
    compete with it. ``mqtt=True`` also serves MQTT on ``mqtt_port`` (127.0.0.1, listening once
    :meth:`start` returns; docs/target-api.md, "MQTT"). Extra flags go straight to
    ``python -m target``.
    """

    def __init__(
        self,
        alg: str = "ES256",
        *,
        cpus: set[int] | None = None,
        db: str | None = None,
        startup_timeout_s: float = 20.0,
        mqtt: bool = False,
        **flags: object,
    ) -> None:
        self.alg = alg
        self.cpus = cpus
        # Chosen here, like the HTTP port, so a restart comes back on the same one.
        self._mqtt_port: int | None = free_port() if mqtt else None
        # Hex: a key starting with '-' would read as a flag in `--admin-key KEY`.
        self.admin_key = secrets.token_hex(32)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._tmp = tempfile.mkdtemp(prefix="fleetbench-embedded-")
        self.db = db or str(Path(self._tmp) / "target.db")
        self._flags = flags
        self._startup_timeout_s = startup_timeout_s
        self._log = Path(self._tmp) / "target.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def mqtt_port(self) -> int:
        """The MQTT port on 127.0.0.1 (made with ``mqtt=True``; listening once started)."""
        if self._mqtt_port is None:
            raise TargetUnusable("the embedded target was made without mqtt=True")
        return self._mqtt_port

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "target",
            "--port",
            str(self.port),
            "--alg",
            self.alg,
            "--db",
            self.db,
        ]
        if self._mqtt_port is not None:
            cmd += ["--mqtt-port", str(self._mqtt_port)]
        for name, value in self._flags.items():
            if value is None or value is False:
                continue
            cmd.append("--" + name.replace("_", "-"))
            if value is not True:
                cmd.append(str(value))
        return cmd

    def start(self) -> EmbeddedTarget:
        env = {**os.environ, "TARGET_ADMIN_KEY": self.admin_key}  # never on the command line
        with open(self._log, "ab") as log:  # a restart (reconnect storm) keeps the first log
            self.process = subprocess.Popen(
                self.command(), env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        pin_to(self.process.pid, self.cpus)
        deadline = time.monotonic() + self._startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TargetStartError(f"target exited at start: {self.log_tail()}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise TargetStartError(f"target not answering after {self._startup_timeout_s:.0f} s")

    def device_token(self, device_id: str, secret: str) -> str:
        """Register one secret device and return an access token for it (client_credentials)."""
        registered = requests.post(
            f"{self.url}/admin/devices",
            json={"devices": [{"id": device_id, "secret": secret}]},
            headers={"Authorization": f"Bearer {self.admin_key}"},
            timeout=10,
        )
        if registered.status_code != 201:
            raise TargetUnusable(
                f"POST /admin/devices answered {registered.status_code}: "
                + registered.text[:200].replace("\n", " ")
            )
        response = requests.post(
            f"{self.url}/auth/token",
            data=client_credentials_form(device_id, secret),
            timeout=10,
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self._log.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _end_process(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def restart(self, down_s: float = 0.0) -> tuple[float, float]:
        """Stop the server (SIGTERM: it answers what it holds and writes pending telemetry) and,
        ``down_s`` later, start it again on the same port and database: the reconnect storm's
        outage. Returns when it went down and when it answered again (Unix s)."""
        down_at = time.time()
        self._end_process()
        time.sleep(down_s)
        self.start()
        return down_at, time.time()

    def stop(self) -> None:
        self._end_process()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> EmbeddedTarget:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
