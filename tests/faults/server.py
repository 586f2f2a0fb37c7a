"""A raw-socket loopback HTTP/1.1 server that misbehaves on purpose, one fault per request.

``LoopbackServer`` (ai_lib_sync.testing) writes well-formed HTTP; faults need bytes it cannot
write: headers dripped a byte at a time, a reset before the status line, a body shorter than its
Content-Length, a stream kept open after its terminator, a keep-alive connection dropped behind
the client's back. Each request is answered by a *plan*: a function that gets the socket and the
well-formed answer to the request, and writes whatever it likes; it returns whether the connection stays open.
Every plan is bounded in time (``MAX_FAULT_SECONDS``), so a client that fails to give up still
ends the test instead of hanging it.
"""

from __future__ import annotations

import gzip
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ai_lib_sync.testing import RecordedRequest

MAX_FAULT_SECONDS = 6.0  # a slow plan stops writing after this, whatever it was asked to do

Plan = Callable[[socket.socket, "Wire"], bool]


@dataclass
class Wire:
    """A whole HTTP answer: what a provider would send when nothing goes wrong."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def head(self, *, length: bool = True, chunked: bool = False, extra: dict[str, str] | None = None) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Status')}"]
        headers = {k.lower(): v for k, v in {**self.headers, **(extra or {})}.items()}
        if chunked:
            headers["transfer-encoding"] = "chunked"
        elif length:
            headers.setdefault("content-length", str(len(self.body)))
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_REASONS = {200: "OK", 429: "Too Many Requests", 502: "Bad Gateway", 503: "Service Unavailable"}


class FaultServer:
    """Accepts connections on 127.0.0.1 and answers request *n* with ``plans[n]`` (the last plan
    repeats, so a retried request meets the same fault). ``answer(request)`` gives the
    well-formed reply a plan distorts."""

    def __init__(self, answer: Callable[[RecordedRequest], Wire]) -> None:
        self.answer = answer
        self.plans: list[Plan] = [ok()]
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._open: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self._listener.settimeout(0.05)
        self._thread = threading.Thread(target=self._accept, name="fault-server", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def script(self, *plans: Plan) -> FaultServer:
        with self._lock:
            self.plans = list(plans)
            self.requests.clear()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            _close(sock)

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                self._open.add(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        reader = sock.makefile("rb")
        try:
            while not self._stop.is_set():
                request = _read_request(reader)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                    plan = self.plans.pop(0) if len(self.plans) > 1 else self.plans[0]
                if not plan(sock, self.answer(request)):
                    return
        except OSError:
            return
        finally:
            reader.close()
            with self._lock:
                self._open.discard(sock)
            _close(sock)


def _read_request(reader: Any) -> RecordedRequest | None:
    line = reader.readline(65537)
    if not line:
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        header = reader.readline(65537)
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = reader.read(int(headers.get("content-length") or 0))
    split = urlsplit(target)
    return RecordedRequest(method, split.path, parse_qs(split.query), headers, body)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN (SO_LINGER 0): the peer's next read gets ECONNRESET."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


def _drip(sock: socket.socket, data: bytes, every: float, size: int = 1) -> None:
    ends = time.monotonic() + MAX_FAULT_SECONDS
    for position in range(0, len(data), size):
        if time.monotonic() > ends:
            return
        sock.sendall(data[position:position + size])
        time.sleep(every)


# --- plans ------------------------------------------------------------------------------------
# Each returns a Plan: it gets the socket and ``server.answer(request)``, the reply to distort.


def ok(chunk_size: int | None = None) -> Plan:
    """The answer as is: Content-Length, or chunked in ``chunk_size`` pieces."""

    def plan(sock: socket.socket, wire: Wire) -> bool:
        if chunk_size is None:
            sock.sendall(wire.head() + wire.body)
            return True
        pieces = [wire.body[i:i + chunk_size] for i in range(0, len(wire.body), chunk_size)]
        sock.sendall(wire.head(chunked=True) + b"".join(_chunk(p) for p in pieces) + b"0\r\n\r\n")
        return True

    return plan


def replace_body(body: bytes | Callable[[bytes], bytes], status: int | None = None,
                 headers: dict[str, str] | None = None) -> Plan:
    """The answer with another body (or a function of it), status or headers; chunked."""

    def plan(sock: socket.socket, wire: Wire) -> bool:
        data = body(wire.body) if callable(body) else body
        new = Wire(status or wire.status, {**wire.headers, **(headers or {})}, data)
        return ok(4096)(sock, new)

    return plan


def cut_at(position: Callable[[bytes], int]) -> Plan:
    """Send the headers (chunked) and the body up to ``position(body)``, then drop the connection."""

    def plan(sock: socket.socket, wire: Wire) -> bool:
        sock.sendall(wire.head(chunked=True) + _chunk(wire.body[:position(wire.body)]))
        time.sleep(0.02)
        _close(sock)
        return False

    return plan


def short_body() -> Plan:
    """Content-Length of the whole body, then half of it, then FIN."""

    def plan(sock: socket.socket, wire: Wire) -> bool:
        sock.sendall(wire.head() + wire.body[:len(wire.body) // 2])
        time.sleep(0.02)
        _close(sock)
        return False

    return plan


def drip_body(every: float = 0.05) -> Plan:
    def plan(sock: socket.socket, wire: Wire) -> bool:
        sock.sendall(wire.head())
        _drip(sock, wire.body, every)
        return False

    return plan


def drip_headers(every: float = 0.05) -> Plan:
    """The status line and headers one byte at a time (padded with a long harmless header)."""

    def plan(sock: socket.socket, wire: Wire) -> bool:
        _drip(sock, wire.head(extra={"x-padding": "p" * 400}), every)
        sock.sendall(wire.body)
        return False

    return plan


def headers_then_nothing() -> Plan:
    def plan(sock: socket.socket, wire: Wire) -> bool:
        sock.sendall(wire.head(chunked=True))
        time.sleep(MAX_FAULT_SECONDS)
        return False

    return plan


def stall(keepalive: bytes, every: float = 0.1) -> Plan:
    """Headers, then only keep-alive bytes (SSE comments, blank NDJSON lines) for a long time."""

    def plan(sock: socket.socket, wire: Wire) -> bool:
        sock.sendall(wire.head(chunked=True))
        ends = time.monotonic() + MAX_FAULT_SECONDS
        while time.monotonic() < ends:
            sock.sendall(_chunk(keepalive))
            time.sleep(every)
        return False

    return plan


def hold_open_after_body() -> Plan:
    """The whole stream, terminator event included, then neither the last chunk nor a close:
    a slow proxy keeping the connection."""

    def plan(sock: socket.socket, wire: Wire) -> bool:
        sock.sendall(wire.head(chunked=True) + _chunk(wire.body))
        time.sleep(MAX_FAULT_SECONDS)
        return False

    return plan


def gzipped(length: bool = True) -> Plan:
    """The body gzip-encoded, with Content-Length or read to close."""

    def plan(sock: socket.socket, wire: Wire) -> bool:
        data = gzip.compress(wire.body)
        new = Wire(wire.status, {**wire.headers, "Content-Encoding": "gzip"}, data)
        sock.sendall(new.head(length=length, extra=None if length else {"connection": "close"}) + data)
        return length

    return plan


def close_after() -> Plan:
    """Answer correctly, keep-alive implied, then close the connection silently (llama.cpp)."""

    def plan(sock: socket.socket, wire: Wire) -> bool:
        sock.sendall(wire.head() + wire.body)
        time.sleep(0.05)
        return False

    return plan


def reset_before_headers() -> Plan:
    def plan(sock: socket.socket, wire: Wire) -> bool:
        _reset(sock)
        return False

    return plan


def status(code: int, body: bytes | dict | str = b"", headers: dict[str, str] | None = None) -> Plan:
    """A fixed reply, whatever was asked (a proxy's HTML 502, a 429 storm)."""
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
    data = body.encode() if isinstance(body, str) else body

    def plan(sock: socket.socket, wire: Wire) -> bool:
        sock.sendall(Wire(code, dict(headers or {}), data).head() + data)
        return True

    return plan


def http_date(offset: float = 0.0) -> str:
    return formatdate(time.time() + offset, usegmt=True)


def frames_end(body: bytes, framing: str, marker: bytes) -> int:
    """The byte offset just after the frame that contains ``marker``."""
    at = body.index(marker)
    if framing == "ndjson":
        return body.index(b"\n", at) + 1
    if framing == "sse":
        ends = [body.find(sep, at) + len(sep) for sep in (b"\n\n", b"\r\n\r\n", b"\r\r") if body.find(sep, at) >= 0]
        return min(ends)
    position = 0  # AWS event-stream: walk the messages by their total length
    while position <= at:
        (total,) = struct.unpack_from(">I", body, position)
        position += total
    return position


def concat(pieces: Iterable[bytes]) -> bytes:
    return b"".join(pieces)
