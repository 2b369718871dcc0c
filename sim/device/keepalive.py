"""A device's steady-state request as wrk sends it: bytes built once per distinct request, written
to the device's kept-alive connection, and an answer read for only what the account needs (the
status, ``WWW-Authenticate`` and the body's length; the body itself is counted and dropped).

The connection is the device's own one from its Locust client's pool, held between these
requests and handed back before any other request of the device (a token call), so a device
still holds one connection. The answer is the API's, so hostile input: its head is capped at
``MAX_HEAD_BYTES``, its body at ``DEVICE_BODY_BYTES``, the whole exchange at the device's
network timeout, nothing is followed (a redirect is only a status), and anything not read as
one HTTP/1.x answer is an
:class:`~sim.errors.AnswerUnreadable` (a transport error to the caller), after which the
connection is dropped, as it is whenever its framing is in doubt.

A service may close the connection after every answer (Django under werkzeug's server does;
gunicorn's sync workers too). The device then opens its next connection while it waits for its
next send (:meth:`KeptConnection.ready`), as wrk2 reconnects at once, rather than at that send:
otherwise each request's latency held the service's accept of a new connection (a thread to
start, behind every busy one), which wrk2's requests never wait for (issue 26).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gevent
from gevent import select

from sim.errors import AnswerUnreadable
from sim.untrusted import DEVICE_BODY_BYTES

__all__ = ["IDLE_CHECK_S", "MAX_HEAD_BYTES", "READY_WITHIN_S", "Answer", "KeptConnection"]

MAX_HEAD_BYTES = 64 * 1024  # status line and headers; far above any API's answer head
MAX_CHUNK_LINE_BYTES = 4096
READ_BYTES = 64 * 1024
# A held connection idle this long is checked for a close by the server before it is written to
# (a select, as the client library does before every request); at load rates it is never idle.
IDLE_CHECK_S = 0.5
# A device whose next send is due within this long holds a connection ready for it (ready()); a
# device sending less often connects at its send, as a real fleet's sparse reports do.
READY_WITHIN_S = 1.0
# How often the watchdog looks for exchanges past their deadline (see _Watchdog).
WATCH_EVERY_S = 0.25
# RFC 9110 section 9.2.2: only these are sent again when a reused connection turns out closed.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_CRLF = b"\r\n"
_END_OF_HEAD = b"\r\n\r\n"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    www_authenticate: str | None
    body_bytes: int


class _Closed(AnswerUnreadable):
    """The connection ended before a complete answer."""

    def __init__(self, nothing_read: bool) -> None:
        super().__init__("the connection closed before a complete answer")
        self.nothing_read = nothing_read


def _head_fields(head: bytes) -> tuple[int, bool, dict[bytes, bytes]]:
    """Status, whether the connection stays open, and the headers that matter (lower-cased
    names; a repeated ``WWW-Authenticate`` joined, as one list-valued field)."""
    lines = head.split(_CRLF)
    status_line = lines[0]
    if not status_line.startswith(b"HTTP/1.") or len(status_line) < 12:
        raise AnswerUnreadable("the answer does not start with an HTTP/1.x status line")
    code = status_line[9:12]
    if not code.isdigit() or status_line[12:13] not in (b"", b" "):
        raise AnswerUnreadable("the answer's status is not three digits")
    fields: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            raise AnswerUnreadable("an answer header without a colon")
        name = name.strip().lower()
        if name in (b"content-length", b"transfer-encoding", b"connection", b"www-authenticate"):
            value = value.strip()
            known = fields.get(name)
            if known is not None and name == b"content-length" and known != value:
                raise AnswerUnreadable("the answer has two different Content-Length values")
            fields[name] = value if known is None or known == value else known + b", " + value
    connection = fields.get(b"connection", b"").lower()
    keep_alive = b"close" not in connection and (
        status_line[7:8] != b"0" or b"keep-alive" in connection
    )
    return int(code), keep_alive, fields


class _Watchdog:
    """Ends the exchanges that passed their deadline by closing their connection (the waiting
    read then fails): one timer for the process, where a socket timeout arms one for every read
    that waits (5 % of the generator's samples at 6,000 req/s)."""

    def __init__(self) -> None:
        self.due: dict[KeptConnection, float] = {}
        self._greenlet: gevent.Greenlet[[], None] | None = None

    def watch(self, connection: KeptConnection, deadline_s: float) -> None:
        self.due[connection] = deadline_s
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while self.due:
            gevent.sleep(WATCH_EVERY_S)
            now_s = time.perf_counter()
            for connection, deadline_s in list(self.due.items()):
                if now_s >= deadline_s:
                    connection.expire()


_WATCHDOG = _Watchdog()


class KeptConnection:
    """One device's connection, taken from its client's pool (``pool``: a geventhttpclient
    ``ConnectionPool``) for the lean requests and given back by :meth:`release`."""

    def __init__(self, pool: Any, timeout_s: float) -> None:
        self._pool = pool
        self._timeout_s = timeout_s
        self._sock: Any = None
        self._buffer = bytearray()
        self._used_s = 0.0
        self._received = 0  # bytes read for the answer in hand
        self._expired = False

    @property
    def held(self) -> bool:
        return self._sock is not None

    def ready(self) -> None:
        """Hold an open connection for the next request, if the device holds none (the service
        closed the last one after its answer, or it waits in the client's pool). A connection
        that cannot be opened is left to the next request, which meets the failure and counts it.
        A detached one (no pool: an MQTT device's, which sends its readings on its session) holds
        none and readies none."""
        if self._sock is not None or self._pool is None:
            return
        try:
            sock = self._pool.get_socket()  # a pooled (alive) connection, else a fresh one
        except (OSError, RuntimeError):  # refused, timed out, unresolvable: said at the send
            return
        sock.settimeout(None)  # the watchdog holds the deadline
        self._sock, self._used_s = sock, time.perf_counter()

    def release(self) -> None:
        """Hand the connection back to the pool (before the device's client uses it)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.settimeout(self._timeout_s)  # the client's own requests time out by it
            self._pool.return_socket(sock)

    def expire(self) -> None:
        """Past the deadline (the watchdog): close the socket under the waiting exchange."""
        if self._sock is not None:
            self._expired = True
            self._sock.close()

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        self._buffer.clear()
        if sock is not None:
            self._pool.release_socket(sock)  # closes it and frees the pool's slot

    def _take(self) -> Any:
        if self._sock is not None and time.perf_counter() - self._used_s >= IDLE_CHECK_S:
            readable, _, _ = select.select([self._sock], [], [], 0.0)
            if readable:  # an idle keep-alive connection has nothing to say: closed, or garbage
                self._drop()
        if self._sock is None:
            self._sock = self._pool.get_socket()  # a fresh or pooled (alive) connection
            self._sock.settimeout(None)  # the watchdog holds the deadline
            return self._sock, False
        return self._sock, True

    def exchange(self, method: str, request: bytes) -> Answer:
        """Send ``request`` (a whole HTTP/1.1 request) and read its answer, within the timeout.
        Raises :class:`AnswerUnreadable` or ``OSError`` when no answer could be read."""
        deadline_s = time.perf_counter() + self._timeout_s
        _WATCHDOG.watch(self, deadline_s)
        try:
            return self._exchange(method, request, deadline_s)
        finally:
            del _WATCHDOG.due[self]

    def _exchange(self, method: str, request: bytes, deadline_s: float) -> Answer:
        while True:
            sock, reused = self._take()
            self._received = 0
            try:
                try:
                    sent = sock.send(request)  # one write: sendall arms a timer each time
                    if sent < len(request):
                        sock.sendall(request[sent:])
                    answer, keep_alive = self._read(sock, method, deadline_s)
                except (ConnectionResetError, BrokenPipeError) as e:
                    raise _Closed(nothing_read=self._received == 0) from e
            except _Closed as e:
                self._drop()
                if reused and e.nothing_read and method in IDEMPOTENT_METHODS:
                    continue  # the server had closed it while idle: never processed; once more
                raise
            except BaseException as e:
                self._drop()  # mid-answer (or killed): its framing is lost
                if self._expired:
                    self._expired = False
                    raise AnswerUnreadable("no complete answer within the network timeout") from e
                raise
            self._used_s = time.perf_counter()
            if not keep_alive or self._buffer:  # closing, or bytes beyond the answer
                self._drop()
            return answer

    def _fill(self, sock: Any, deadline_s: float) -> int:
        """Read what the connection has (waiting for it); 0 at its end."""
        remaining_s = deadline_s - time.perf_counter()
        if remaining_s <= 0:
            raise AnswerUnreadable("no complete answer within the network timeout")
        data = sock.recv(READ_BYTES)
        if not data:
            return 0
        self._buffer += data
        self._received += len(data)
        return len(data)

    def _read(self, sock: Any, method: str, deadline_s: float) -> tuple[Answer, bool]:
        buffer = self._buffer
        while True:  # interim 1xx answers come before the final one
            read_any = bool(buffer)
            while (end := buffer.find(_END_OF_HEAD)) < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise AnswerUnreadable(f"the answer's head is over {MAX_HEAD_BYTES} bytes")
                if not self._fill(sock, deadline_s):
                    raise _Closed(nothing_read=not read_any)
                read_any = True
            if end > MAX_HEAD_BYTES:
                raise AnswerUnreadable(f"the answer's head is over {MAX_HEAD_BYTES} bytes")
            status, keep_alive, fields = _head_fields(bytes(buffer[:end]))
            del buffer[: end + 4]
            if status == 101:
                raise AnswerUnreadable("the answer switches protocols")
            if not 100 <= status < 200:
                break
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            length = 0
        elif b"transfer-encoding" in fields:
            if not fields[b"transfer-encoding"].lower().endswith(b"chunked"):
                raise AnswerUnreadable("the answer's transfer coding is not chunked")
            length = self._chunked(sock, deadline_s)
        elif b"content-length" in fields:
            text = fields[b"content-length"]
            if not text.isdigit():
                raise AnswerUnreadable("the answer's Content-Length is not a number")
            length = int(text)
            _within_cap(length)
            self._skip(sock, length, deadline_s)
        else:  # delimited by the close: read to the end, then the connection is gone
            length = self._to_close(sock, deadline_s)
            keep_alive = False
        found = fields.get(b"www-authenticate")
        challenge = found.decode("latin-1") if found is not None else None
        return Answer(status, challenge, length), keep_alive

    def _skip(self, sock: Any, length: int, deadline_s: float) -> None:
        """Drop the next ``length`` bytes of the connection (the body is never kept)."""
        buffer = self._buffer
        while len(buffer) < length:
            length -= len(buffer)
            buffer.clear()
            if not self._fill(sock, deadline_s):
                raise _Closed(nothing_read=False)
        del buffer[:length]

    def _line(self, sock: Any, deadline_s: float) -> bytes:
        buffer = self._buffer
        while (end := buffer.find(_CRLF)) < 0:
            if len(buffer) > MAX_CHUNK_LINE_BYTES:
                raise AnswerUnreadable("a chunk-size line is too long")
            if not self._fill(sock, deadline_s):
                raise _Closed(nothing_read=False)
        line = bytes(buffer[:end])
        del buffer[: end + 2]
        return line

    def _chunked(self, sock: Any, deadline_s: float) -> int:
        length = 0
        while True:
            size_text = self._line(sock, deadline_s).split(b";")[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise AnswerUnreadable("a chunk size is not a hex number") from None
            if size < 0:
                raise AnswerUnreadable("a chunk size is negative")
            if size == 0:
                while self._line(sock, deadline_s):  # trailers, up to the empty line
                    pass
                return length
            _within_cap(length + size)
            self._skip(sock, size, deadline_s)
            if self._line(sock, deadline_s):
                raise AnswerUnreadable("a chunk does not end with CRLF")
            length += size

    def _to_close(self, sock: Any, deadline_s: float) -> int:
        length = len(self._buffer)
        self._buffer.clear()
        while read := self._fill(sock, deadline_s):
            length += read
            _within_cap(length)
            self._buffer.clear()
        return length


def _within_cap(length: int) -> None:
    """A body past the device's cap is not read on (dropped unread bytes still cost the wire and
    the clock): the answer is unreadable and the connection dropped."""
    if length > DEVICE_BODY_BYTES:
        raise AnswerUnreadable(f"the answer's body is over {DEVICE_BODY_BYTES} bytes")
