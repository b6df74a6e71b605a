"""A lean HTTP/1.1 keep-alive client on gevent sockets: one pre-rendered request in, (status, body length) out.

Locust's FastHttpSession builds a URL, headers, a JSON body, a response object and a context
manager for every request, and checks each pooled socket with a select() before use: most of the
load generator's CPU per request. The open loop only needs to send bytes it rendered in advance
and learn the status, so this client does only that:

- connections are kept alive and reused, most recently used first (LIFO keeps the pool small);
  one that sat idle longer than `idle_seconds` is closed instead of reused, well before the
  server's own keep-alive timeout (aiohttp's default is 75 s), so a request is not sent on a
  connection the server is closing;
- exactly one attempt per request: no retry, ever (a retry would be a second, unrecorded send);
- the response is read to its end (Content-Length, chunked, or until the server closes) and
  dropped; only its status and body length are kept.

Errors propagate as exceptions (a refused connection as ConnectionRefusedError, a connection
closed before the whole response as ConnectionResetError, a malformed response as
`ResponseError`); the caller's deadline (a gevent.Timeout) interrupts a request anywhere, and a
socket interrupted mid-request is closed, never reused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit

from gevent import socket

IDLE_SECONDS = 15.0
_HEAD_END = b"\r\n\r\n"
_RECV = 65536


class ResponseError(Exception):
    """The server's answer is not an HTTP/1.x response this client can read."""


class KeepAliveClient:
    def __init__(self, base_url: str, idle_seconds: float = IDLE_SECONDS) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the load generator sends plain http:// only, got {base_url!r}")
        port = parts.port or 80
        self.base_url = base_url.rstrip("/")
        self.host_header = parts.netloc
        family, kind, proto, _, address = socket.getaddrinfo(parts.hostname, port, 0, socket.SOCK_STREAM)[0]
        self._family, self._kind, self._proto, self._address = family, kind, proto, address
        self._idle: list[tuple[socket.socket, float]] = []
        self._idle_seconds = idle_seconds
        self.connections_opened = 0

    def _connect(self) -> socket.socket:
        sock = socket.socket(self._family, self._kind, self._proto)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect(self._address)
        except BaseException:
            sock.close()
            raise
        self.connections_opened += 1
        return sock

    def request(self, payload: bytes) -> tuple[int, int]:
        """Send one rendered request; (status, body bytes). Raises on any failure (see the module doc)."""
        idle = self._idle
        sock = None
        now = time.monotonic()
        while idle:
            sock, since = idle.pop()
            if now - since < self._idle_seconds:
                break
            sock.close()
            sock = None
        if sock is None:
            sock = self._connect()
        reusable = False
        try:
            sent = sock.send(payload)  # a small request fits the socket buffer: one call, no sendall loop
            if sent < len(payload):
                sock.sendall(payload[sent:])
            status, length, reusable = _read_response(sock)
        finally:
            if reusable:
                idle.append((sock, time.monotonic()))
            else:
                sock.close()
        return status, length

    def close(self) -> None:
        while self._idle:
            self._idle.pop()[0].close()


def _first_recv(sock: socket.socket) -> bytes:
    """The first bytes of the answer. It is never there yet when the request has just been sent, so
    wait until the socket is readable and then read the OS socket (gevent's private `_wait` and
    `_sock`, checked once at import): `sock.recv` would first try, fail with EAGAIN (a system call
    and a Python exception per request), and only then wait."""
    sock._wait(sock._read_event)
    try:
        data: bytes = sock._sock.recv(_RECV)
    except BlockingIOError:  # readable, then not (cannot happen on a TCP socket; be safe)
        data = sock.recv(_RECV)
    return data


def _gevent_has_private_wait() -> bool:
    s = socket.socket()
    try:
        return callable(getattr(s, "_wait", None)) and hasattr(s, "_read_event") and hasattr(s, "_sock")
    finally:
        s.close()


_recv_first: Callable[[socket.socket], bytes] = (
    _first_recv if _gevent_has_private_wait() else lambda sock: sock.recv(_RECV)
)


def _read_response(sock: socket.socket) -> tuple[int, int, bool]:
    """(status, body length, connection reusable) of one response, read to its end."""
    data = _recv_first(sock)
    while True:
        if not data:
            raise ConnectionResetError("connection closed before the response")
        end = data.find(_HEAD_END)
        if end >= 0:
            break
        if len(data) > 65536:
            raise ResponseError("response head over 64 KiB")
        more = sock.recv(_RECV)
        if not more:
            raise ConnectionResetError("connection closed inside the response head")
        data += more
    if data[:7] != b"HTTP/1." or len(data) < 12:
        raise ResponseError(f"not an HTTP/1.x status line: {data[:40]!r}")
    try:
        status = int(data[9:12])
    except ValueError:
        raise ResponseError(f"bad status line: {data[:40]!r}") from None
    head = data[:end].lower()
    body = len(data) - end - 4
    reusable = data[5:8] == b"1.1" and b"\r\nconnection: close" not in head
    if status < 200 or status in (204, 304):
        if status < 200:
            raise ResponseError(f"unexpected informational response {status}")
        return status, 0, reusable
    at = head.find(b"\r\ncontent-length:")
    if at >= 0:
        stop = head.find(b"\r\n", at + 2)
        try:
            length = int(head[at + 17 : stop if stop >= 0 else len(head)])
        except ValueError:
            raise ResponseError("bad Content-Length") from None
        while body < length:
            more = sock.recv(_RECV)
            if not more:
                raise ConnectionResetError(f"connection closed after {body} of {length} body bytes")
            body += len(more)
        if body > length:
            raise ResponseError(f"{body - length} bytes past the body")
        return status, length, reusable
    if b"\r\ntransfer-encoding: chunked" in head:
        tail = data[end + 4 :]
        while not tail.endswith(b"0\r\n\r\n"):
            more = sock.recv(_RECV)
            if not more:
                raise ConnectionResetError("connection closed inside a chunked body")
            tail += more
        return status, len(tail), reusable
    # Neither: the body runs until the server closes the connection.
    while more := sock.recv(_RECV):
        body += len(more)
    return status, body, False
