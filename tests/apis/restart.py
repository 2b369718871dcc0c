"""Start, restart and stop a test API served by uvicorn on a fixed loopback port, as a user's
service manager would: the ``--outage-cmd`` of the storm tests.

``python -m tests.apis.restart start|restart|stop PIDFILE PORT APP``: ``start`` runs
``uvicorn APP`` detached and returns once it answers; ``restart`` stops the process in PIDFILE,
waits until the port refuses connections, then starts it again; ``stop`` ends it. Every wait is
bounded (20 s).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 20.0


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait(port: int, up: bool) -> None:
    deadline = time.monotonic() + WAIT_S
    while _answers(port) != up:
        if time.monotonic() > deadline:
            raise SystemExit(f"port {port} still {'closed' if up else 'open'} after {WAIT_S:g} s")
        time.sleep(0.05)


def start(pidfile: Path, port: int, app: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    pidfile.write_text(str(process.pid))
    _wait(port, up=True)


def stop(pidfile: Path, port: int) -> None:
    try:
        os.kill(int(pidfile.read_text()), signal.SIGTERM)
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return
    _wait(port, up=False)


def main(argv: list[str]) -> int:
    action, pidfile, port, app = argv[0], Path(argv[1]), int(argv[2]), argv[3]
    if action in ("restart", "stop"):
        stop(pidfile, port)
    if action in ("start", "restart"):
        start(pidfile, port, app)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
