"""A target whose token endpoint resets a share of its connections (TCP RST, no HTTP answer).

A minimal HTTP/1.1 server on asyncio, because an ASGI app cannot drop its connection without
answering. Everything else answers like a permissive target: the admin API registers anything,
tokens are unsigned-but-well-formed JWTs, telemetry is accepted. Used to prove that a device
whose token request gets no answer records a ``transport_error``, backs off and carries on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping

MAX_BODY_BYTES = 1 << 20


def _b64(obj: Mapping[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _token(device_id: str) -> str:
    now = int(time.time())
    header = {"alg": "HS256", "typ": "at+jwt", "kid": "k1"}
    claims = {"sub": device_id, "iat": now, "exp": now + 3600}
    return f"{_b64(header)}.{_b64(claims)}.c2lnbmF0dXJl"


class ResettingTarget:
    """Serve on a free loopback port in a thread; ``reset_share`` of token requests are reset."""

    def __init__(self, reset_share: float, seed: int = 9) -> None:
        self.reset_share = reset_share
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                length = min(int(headers.get("content-length", "0")), MAX_BODY_BYTES)
                body = await reader.readexactly(length) if length else b""
                if path == "/auth/token" and self.rng.random() < self.reset_share:
                    self.counts["token_reset"] += 1
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()  # RST: the client gets no answer at all
                    return
                status, answer = self._answer(method, path, body)
                payload = json.dumps(answer).encode()
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _answer(self, method: str, path: str, body: bytes) -> tuple[int, object]:
        if path == "/healthz":
            return 200, {"status": "ok"}
        if path == "/admin/devices" and method == "POST":
            return 201, {"created": len(json.loads(body)["devices"])}
        if path == "/auth/token":
            self.counts["token_ok"] += 1
            form = dict(part.split("=", 1) for part in body.decode().split("&") if "=" in part)
            token = _token(form.get("client_id", "device"))
            return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
        if path.startswith("/devices/") and path.endswith("/telemetry"):
            self.counts["telemetry"] += 1
            return 202, {"accepted": True}
        return 404, {"error": "not_found"}

    def start(self) -> ResettingTarget:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop
        )
        self._server = started.result(timeout=10)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        # Closing each connection ends its handler normally (a cancelled handler makes asyncio
        # log an error from its stream callback).
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        await asyncio.wait(tasks, timeout=5) if tasks else None

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@contextlib.contextmanager
def serve_resetting_target(reset_share: float) -> Iterator[ResettingTarget]:
    target = ResettingTarget(reset_share).start()
    try:
        yield target
    finally:
        target.stop()
