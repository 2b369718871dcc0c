"""A raw HTTP/1.1 server whose answers are scripted by the request path, hostile ones included,
for the kept connection's reader (``python -m tests.sim.scripted_http PORT``).

``/healthz``: 200; ``/conn``: 200 whose body is as many bytes as this connection's number (1
for the first accepted, 2 for the second, ...), so a client can tell whether it reused a
connection; ``/chunked``: a chunked body of 3 + 4 bytes with a trailer; ``/to-close``: a body
delimited by the close; ``/close-after``: a keep-alive 200, then the server closes the
connection; ``/redirect``: 302 to ``/conn``; ``/huge-head``: headers without end; ``/drip``: one
byte of the head every 0.2 s; ``/silent``: nothing for 5 s; ``/garbage``: not HTTP;
``/challenge``: 401 with two ``WWW-Authenticate``.
"""

from __future__ import annotations

import itertools
import socket
import socketserver
import sys
import time

_connections = itertools.count(1)


def _answer(status: str, body: bytes = b"", extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


class Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        number = next(_connections)
        sock: socket.socket = self.request
        pending = b""
        while True:
            while b"\r\n\r\n" not in pending:
                data = sock.recv(65536)
                if not data:
                    return
                pending += data
            head, _, pending = pending.partition(b"\r\n\r\n")
            path = head.split(b" ")[1].decode()
            if not self.answer(sock, path, number):
                return

    def answer(self, sock: socket.socket, path: str, number: int) -> bool:
        """Write the scripted answer; whether the connection stays open."""
        if path == "/healthz":
            sock.sendall(_answer("200 OK", b"ok"))
        elif path == "/conn":
            sock.sendall(_answer("200 OK", b"x" * number))
        elif path == "/chunked":
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3;ext=1\r\nabc\r\n4\r\ndefg\r\n0\r\nX-Trailer: t\r\n\r\n"
            )
        elif path == "/to-close":
            sock.sendall(b"HTTP/1.1 200 OK\r\n\r\n" + b"y" * 5000)
            return False
        elif path == "/close-after":
            sock.sendall(_answer("200 OK", b"ok"))
            return False
        elif path == "/redirect":
            sock.sendall(_answer("302 Found", extra="Location: /conn\r\n"))
        elif path == "/huge-head":
            sock.sendall(b"HTTP/1.1 200 OK\r\n")
            for _ in range(200):
                sock.sendall(b"X-Filler: " + b"z" * 1000 + b"\r\n")
            return False
        elif path == "/drip":
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                sock.sendall(bytes([byte]))
                time.sleep(0.2)
        elif path == "/silent":
            time.sleep(5)
            return False
        elif path == "/garbage":
            sock.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")
            return False
        elif path == "/challenge":
            sock.sendall(
                _answer(
                    "401 Unauthorized",
                    b"{}",
                    'WWW-Authenticate: Bearer error="invalid_token", '
                    'error_description="expired: token expired"\r\n'
                    'WWW-Authenticate: Basic realm="other"\r\n',
                )
            )
        else:
            sock.sendall(_answer("404 Not Found"))
        return True


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    with Server(("127.0.0.1", int(sys.argv[1])), Handler) as server:
        server.serve_forever()
