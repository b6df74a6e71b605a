"""A lean HTTP/1.1 keep-alive client driven by the event loop's callbacks: a rendered request in,
(status, body length, when the answer arrived) or an error out, handed to a callback. No greenlet
per request.

Why callbacks: a greenlet per request costs gevent's machinery on top of the request (a switch into
the greenlet, a libev timer for its deadline, a switch to the hub to wait for the answer and one
back). Here, as in `wrk`, the request is written from the caller, its answer parsed when it is read,
and the deadlines of all requests checked by one periodic timer while any is in flight (a deadline
ends its request up to 50 ms late): requests start in order with the same timeout, so their
deadlines are in order too, and a deque holds them. Against HAProxy answering at once on the
development VM: 0.073 -> 0.051 ms of CPU per request at 4,000/s.

Why batched reads: on a VM, every wakeup from a sleep costs a process tens of microseconds of CPU
whatever it then does (loadtests/README.md, "Wakeups, not requests"), and an open loop that wakes
for each answer pays one per request. The client's connections sit in an epoll set of its own, and
`poll()` reads every answer that has come in. Unbatched, the loop calls it as soon as one has (one
watcher on that set); batched, the owner calls it when it wakes anyway (the driver: at most every
`--wake-interval`, to start the arrivals due) and the deadline timer does while requests are in
flight, so the answers of many requests cost one wakeup. Reading late does not move a latency: each
answer's time is the kernel's receive timestamp of its last bytes (SO_TIMESTAMPNS), not the time
the client got to it.

- connections are kept alive and reused, most recently used first (LIFO keeps the pool small);
  one that sat idle longer than `idle_seconds` is closed instead of reused, well before the
  server's own keep-alive timeout (aiohttp's default is 75 s), and one the server closes while
  idle is dropped when next polled (it reads as the end of the stream);
- exactly one attempt per request: no retry, ever (a retry would be a second, unrecorded send);
- the response is read to its end (Content-Length, chunked, or until the server closes) and
  dropped; only its status and body length are kept.

Errors reach the callback as exceptions without a traceback (nothing for the cyclic collector):
a refused connection as ConnectionRefusedError, a connection closed before the whole response as
ConnectionResetError, a malformed response as `ResponseError`, a deadline as `gevent.Timeout`,
`cancel_all`'s own. A connection whose request failed is closed, never reused.
"""

from __future__ import annotations

import _socket
import errno
import logging
import os
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import gevent
from gevent import monkey

log = logging.getLogger(__name__)

IDLE_SECONDS = 15.0
_HEAD_END = b"\r\n\r\n"
_RECV = 65536
_MAX_HEAD = 65536
_READ, _WRITE = 1, 2  # libev's EV_READ, EV_WRITE
# Locust monkey-patches `select` (no epoll there then) and `socket` (gevent's class, which wraps every
# call in Python to block cooperatively). This client never blocks: it takes the originals.
_Epoll: type[select.epoll] = monkey.get_original("select", "epoll")
_EPOLLIN: int = monkey.get_original("select", "EPOLLIN")
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Python names it on some builds only; Linux's value
_TIMESPEC = struct.Struct("@ll")  # struct timespec: tv_sec, tv_nsec (two C longs)
_STAMP_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)

# The answer to one request: (token, status, body length, error, ended_ns). status is None when
# error is set; ended_ns is Unix nanoseconds: when the answer's last bytes reached this host's
# socket (the kernel's stamp), or when the error was seen.
Done = Callable[[Any, "int | None", int, "BaseException | None", int], None]

# Where a response stands: its head not complete yet; a body of known length; a chunked body; a body
# that ends when the server closes.
_HEAD, _LENGTH, _CHUNKED, _UNTIL_CLOSE = range(4)


class ResponseError(Exception):
    """The server's answer is not an HTTP/1.x response this client can read."""


class _Connection:
    __slots__ = (
        "buf", "connected", "done", "idle_since", "length", "need", "pending", "received_ns", "reusable",
        "serial", "sock", "state", "status", "token", "writer",
    )  # fmt: skip

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.writer: Any = None  # a libev io watcher, while a connect or a write waits
        self.pending = b""  # request bytes not yet written (connect in progress, or a full buffer)
        self.token: Any = None
        self.done: Done | None = None  # set while a request is in flight
        self.serial = 0  # which request: a deadline of an earlier one must not hit a later one
        self.buf = b""
        self.state = _HEAD
        self.status = 0
        self.need = 0  # body bytes still to come (_LENGTH), or body bytes so far (_UNTIL_CLOSE)
        self.length = 0  # the body's length, once known
        self.reusable = False
        self.idle_since = 0.0
        self.connected = False
        self.received_ns = 0  # the kernel's receive stamp of the last bytes read


class KeepAliveClient:
    def __init__(
        self, base_url: str, *, timeout: float, idle_seconds: float = IDLE_SECONDS, batched: bool = False
    ) -> None:
        """`timeout`: seconds from a request's send to its deadline (a `gevent.Timeout` to its callback).
        `batched`: answers are read when the owner calls `poll()` (and by the deadline timer), not as
        soon as they come."""
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the load generator sends plain http:// only, got {base_url!r}")
        port = parts.port or 80
        self.base_url = base_url.rstrip("/")
        self.host_header = parts.netloc
        family, kind, proto, _, address = socket.getaddrinfo(parts.hostname, port, 0, socket.SOCK_STREAM)[0]
        self._family, self._kind, self._proto, self._address = family, kind, proto, address
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._open: dict[int, _Connection] = {}  # by file descriptor: what the epoll set reports
        self._poller = _Epoll()
        self.batched = batched
        self._idle_seconds = idle_seconds
        self._timeout = timeout
        self._deadlines: deque[tuple[float, _Connection, int]] = deque()
        self._loop = gevent.get_hub().loop
        # The deadline check, every `check` seconds while a request is in flight (stopped when none is:
        # no wakeups of its own in between), so a deadline ends its request up to `check` late.
        check = min(0.05, timeout / 4)
        self._deadline_timer = self._loop.timer(check, check)
        self._expired = gevent.Timeout(timeout)  # one instance: its constructor makes a libev timer
        self._watch: Any = None
        if not batched:
            self._watch = self._loop.io(self._poller.fileno(), _READ)
            self._watch.start(self.poll)
        self.connections_opened = 0

    @property
    def in_flight(self) -> int:
        return len(self._busy)

    def send(self, payload: bytes, token: Any, done: Done) -> None:
        """Write one rendered request; `done(token, status, length, error, ended_ns)` is called exactly once: from
        the event loop, or before `send` returns when the request fails at once (a refused connection,
        a write on a connection the server closed), or from `cancel_all`/`close`. Never blocks."""
        if self._poller.closed:  # a request after close() (a stop racing the schedule) fails, loudly
            _call(done, token, None, 0, ConnectionAbortedError("client closed"), time.time_ns())
            return
        conn = self._take()
        if conn is None:
            try:
                conn = self._connect()
            except OSError as exc:
                _call(done, token, None, 0, exc.with_traceback(None), time.time_ns())
                return
        conn.token, conn.done = token, done
        conn.serial += 1
        if not self._busy:
            self._deadline_timer.start(self._expire)
        self._busy.add(conn)
        self._deadlines.append((time.monotonic() + self._timeout, conn, conn.serial))
        if conn.connected:
            self._write(conn, payload)
        else:
            conn.pending = payload  # written once the connection is up (_writable)

    def cancel_all(self, error: BaseException) -> int:
        """End every request in flight with `error` (their connections are closed); how many there were."""
        busy = list(self._busy)
        for conn in busy:
            self._fail(conn, error)
        return len(busy)

    def poll(self) -> None:
        """Read every answer that has come in, and notice idle connections the server closed. After
        close() there is nothing to read (a batched owner may wake once more)."""
        if self._poller.closed:
            return
        open_ = self._open
        for fd, _ in self._poller.poll(0):
            conn = open_.get(fd)
            if conn is None:  # dropped by an earlier answer's callback
                continue
            try:
                self._readable(conn)
            except Exception as exc:  # a surprise costs its connection, never the reading of all others
                log.exception("loadgen: reading an answer failed")
                self._read_failed(conn, exc.with_traceback(None))

    def close(self) -> None:
        self.cancel_all(ConnectionAbortedError("client closed"))
        while self._idle:
            self._drop(self._idle.pop())
        if self._watch is not None:
            self._watch.stop()
            self._watch.close()
        self._poller.close()
        self._deadline_timer.close()
        self._expired.close()

    # ---- connections -------------------------------------------------------------------------

    def _take(self) -> _Connection | None:
        idle = self._idle
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if now - conn.idle_since < self._idle_seconds:
                return conn
            self._drop(conn)
        return None

    def _connect(self) -> _Connection:
        sock = _socket.socket(self._family, self._kind, self._proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            code = sock.connect_ex(self._address)
            if code not in (0, errno.EINPROGRESS):
                raise _os_error(code)
        except BaseException:
            sock.close()
            raise
        self.connections_opened += 1
        conn = _Connection(sock)
        fd = sock.fileno()
        self._poller.register(fd, _EPOLLIN)
        self._open[fd] = conn
        if code == 0:
            conn.connected = True
        else:
            conn.writer = self._loop.io(sock.fileno(), _WRITE)
            conn.writer.start(self._writable, conn)
        return conn

    def _drop(self, conn: _Connection) -> None:
        if conn.writer is not None:
            conn.writer.stop()
            conn.writer.close()
            conn.writer = None  # the watcher held the connection (its args): no cycle left
        fd = conn.sock.fileno()
        if self._open.pop(fd, None) is conn:
            self._poller.unregister(fd)
        conn.sock.close()

    # ---- one request ----------------------------------------------------------------------------

    def _write(self, conn: _Connection, data: bytes) -> None:
        try:
            sent = conn.sock.send(data)  # a small request fits the socket buffer: one call
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._fail(conn, exc.with_traceback(None))
            return
        if sent < len(data):
            conn.pending = data[sent:]
            if conn.writer is None:
                conn.writer = self._loop.io(conn.sock.fileno(), _WRITE)
            conn.writer.start(self._writable, conn)

    def _writable(self, conn: _Connection) -> None:
        if conn.done is None:  # the request ended meanwhile: nothing more to write
            conn.writer.stop()
            return
        if not conn.connected:
            code = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self._fail(conn, _os_error(code))
                return
            conn.connected = True
        conn.writer.stop()
        data, conn.pending = conn.pending, b""
        if data:
            self._write(conn, data)

    def _readable(self, conn: _Connection) -> None:
        try:
            data, stamps, _, _ = conn.sock.recvmsg(_RECV, _STAMP_SPACE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._read_failed(conn, exc.with_traceback(None))
            return
        if conn.done is None:  # idle: the server closed it (or spoke out of turn)
            self._discard_idle(conn)
            return
        conn.received_ns = _stamp_ns(stamps)
        try:
            finished = self._parse(conn, data)
        except (ResponseError, ConnectionResetError) as exc:
            self._fail(conn, exc.with_traceback(None))
            return
        if finished:
            self._succeed(conn)

    def _parse(self, conn: _Connection, data: bytes) -> bool:
        """Take in what was read; True once the response is complete."""
        state = conn.state
        if state == _HEAD:
            buf = conn.buf + data if conn.buf else data
            if not data:
                raise ConnectionResetError(
                    "connection closed inside the response head" if buf else "connection closed before the response"
                )
            end = buf.find(_HEAD_END)
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    raise ResponseError("response head over 64 KiB")
                conn.buf = buf
                return False
            conn.buf = b""
            return self._head(conn, buf, end)
        if state == _LENGTH:
            if not data:
                raise ConnectionResetError(
                    f"connection closed after {conn.length - conn.need} of {conn.length} body bytes"
                )
            conn.need -= len(data)
            if conn.need < 0:
                raise ResponseError(f"{-conn.need} bytes past the body")
            return conn.need == 0
        if state == _CHUNKED:
            if not data:
                raise ConnectionResetError("connection closed inside a chunked body")
            conn.buf += data
            return conn.buf.endswith(b"0\r\n\r\n")
        # _UNTIL_CLOSE
        conn.need += len(data)
        return not data

    def _head(self, conn: _Connection, data: bytes, end: int) -> bool:
        if data[:7] != b"HTTP/1." or len(data) < 12:
            raise ResponseError(f"not an HTTP/1.x status line: {data[:40]!r}")
        try:
            status = int(data[9:12])
        except ValueError:
            raise ResponseError(f"bad status line: {data[:40]!r}") from None
        head = data[:end].lower()
        body = len(data) - end - 4
        conn.status = status
        conn.reusable = data[5:8] == b"1.1" and b"\r\nconnection: close" not in head
        if status < 200:
            raise ResponseError(f"unexpected informational response {status}")
        if status in (204, 304):
            conn.length = 0
            return True
        at = head.find(b"\r\ncontent-length:")
        if at >= 0:
            stop = head.find(b"\r\n", at + 2)
            try:
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            except ValueError:
                raise ResponseError("bad Content-Length") from None
            if body > length:
                raise ResponseError(f"{body - length} bytes past the body")
            conn.state, conn.need, conn.length = _LENGTH, length - body, length
            return body == length
        if b"\r\ntransfer-encoding: chunked" in head:
            conn.state, conn.buf = _CHUNKED, data[end + 4 :]
            return conn.buf.endswith(b"0\r\n\r\n")
        conn.state, conn.need, conn.reusable = _UNTIL_CLOSE, body, False
        return False

    def _succeed(self, conn: _Connection) -> None:
        token, done, status = conn.token, conn.done, conn.status
        state = conn.state
        length = len(conn.buf) if state == _CHUNKED else conn.need if state == _UNTIL_CLOSE else conn.length
        # An answer that came before the whole request was written leaves the connection mid-request.
        reusable = conn.reusable and not conn.pending
        self._release(conn)
        if reusable:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            self._drop(conn)
        if done is not None:
            _call(done, token, status, length, None, conn.received_ns)

    def _fail(self, conn: _Connection, error: BaseException) -> None:
        token, done = conn.token, conn.done
        self._release(conn)
        self._drop(conn)
        if done is not None:
            _call(done, token, None, 0, error, time.time_ns())

    def _release(self, conn: _Connection) -> None:
        """The connection carries no request any more."""
        conn.token = conn.done = None
        conn.buf, conn.pending, conn.state = b"", b"", _HEAD
        if conn.writer is not None:
            conn.writer.stop()
        busy = self._busy
        busy.discard(conn)
        if not busy:
            self._deadlines.clear()  # none of them can hit anything now
            self._deadline_timer.stop()

    def _read_failed(self, conn: _Connection, error: BaseException) -> None:
        """Reading from `conn` failed: an idle connection is dropped, one carrying a request fails it."""
        if conn.done is None:
            self._discard_idle(conn)
        else:
            self._fail(conn, error)

    def _discard_idle(self, conn: _Connection) -> None:
        if conn in self._idle:
            self._idle.remove(conn)
        self._drop(conn)

    def _expire(self) -> None:
        """The periodic deadline check: every request past its deadline ends with a Timeout, unless its
        answer is already here (read first: libev may run this timer before the epoll set's watcher)."""
        self.poll()
        deadlines = self._deadlines
        now = time.monotonic()
        while deadlines and deadlines[0][0] <= now:
            _, conn, serial = deadlines.popleft()
            if conn.done is not None and conn.serial == serial:
                self._fail(conn, self._expired)


def _stamp_ns(stamps: list[tuple[int, int, bytes]]) -> int:
    """Unix ns of the kernel's receive stamp among recvmsg's ancillary data; the time now without one
    (the end of the stream carries none)."""
    for level, kind, data in stamps:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanos = _TIMESPEC.unpack_from(data)
            return int(seconds) * 1_000_000_000 + int(nanos)
    return time.time_ns()


def _call(done: Done, token: Any, status: int | None, length: int, error: BaseException | None, ended_ns: int) -> None:
    """The caller's callback, run from the loop: an exception of its own must not reach libev, which
    would stop the watcher that ran it (the epoll set's: no answer read any more)."""
    try:
        done(token, status, length, error, ended_ns)
    except Exception:
        log.exception("loadgen: the callback of a finished request failed")


def _os_error(code: int) -> OSError:
    return OSError(code, os.strerror(code))  # OSError(ECONNREFUSED, ...) is a ConnectionRefusedError
