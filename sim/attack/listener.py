"""The loopback listener a ``jku``/``x5u`` case names: a careful target never calls it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import serialization

from sim.corpus import stranger_certificate, stranger_jwks

__all__ = ["Listener", "listening"]


class Listener(ThreadingHTTPServer):
    """Counts every request; serves the attacker's keys at ``/jwks.json`` and ``/cert.pem``."""

    daemon_threads = True

    def __init__(self, alg: str) -> None:
        super().__init__(("127.0.0.1", 0), _ListenerHandler)
        self.requests: list[str] = []
        self.lock = threading.Lock()
        # What a hostile key URL serves: the attacker's keys, so a target that follows the URL
        # would also accept the forgery (and the fetch itself is what we report).
        cert = stranger_certificate(alg).public_bytes(serialization.Encoding.PEM)
        self.bodies = {"/jwks.json": json.dumps(stranger_jwks(alg)).encode(), "/cert.pem": cert}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self) -> int:
        with self.lock:
            return len(self.requests)


class _ListenerHandler(BaseHTTPRequestHandler):
    server: Listener

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests.append(self.path)
        body = self.server.bodies.get(self.path.split("?")[0], b"")
        self.send_response(200 if body else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def listening(alg: str) -> Iterator[Listener]:
    listener = Listener(alg)
    thread = threading.Thread(target=listener.serve_forever, name="attack-listener", daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        listener.shutdown()
        listener.server_close()
        thread.join(timeout=5)
