"""A fast loopback fake provider for benchmarks (stdlib asyncio, one process, one thread).

It speaks just enough HTTP/1.1 (keep-alive, Content-Length request bodies, no pipelining)
and two wire formats: OpenAI chat completions (``POST .../chat/completions``) and Anthropic
Messages (``POST .../messages``). Every response goes out in one ``write`` (a stream is one
pre-encoded chunked body, one HTTP chunk per SSE event), sockets use ``TCP_NODELAY``.

Behaviour is chosen per run by a path segment, so every client library can be pointed at it
with nothing but a base URL::

    http://127.0.0.1:PORT/b/key=r3ai,delay=0.05,n=20000,fail=429,fails=2,retry_after=1/v1

``key`` names the run (connections and requests are counted per key: a connection belongs to
the key of its first request); ``delay`` holds each response that many seconds; ``n`` is the
number of content deltas in a stream; the first ``fails`` requests of the key get status
``fail`` with ``Retry-After: retry_after``. ``p429`` and ``p500`` are probabilities of a random
429 (with ``Retry-After: retry_after``, default 1) or 500 on any request (seeded per key by
``seed``, so a run is repeatable); ``poison`` is the fraction of request bodies (chosen by a
hash of the body, so retries of the same item fail too) that always get a 500.
``GET /_stats/KEY`` answers the counts as JSON (``limited``/``errors``: 429s/500s served).
``rpm`` and ``tpm`` enforce a rolling limit per key, as an account's: a request that would put
more than ``rpm * window / 60`` requests, or ``tpm * window / 60`` tokens (each answer's
``total_tokens``), into the last ``window`` seconds (default 60) gets a 429 whose
``Retry-After`` is when the oldest counted request leaves the window.

Run it as ``python -m benchmarks.fake_server``: it prints ``PORT <n>`` and serves until its
standard input closes or ``--max-seconds`` pass, so it never outlives the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import socket
import sys
import threading
import time
import zlib
from collections import defaultdict
from functools import lru_cache
from typing import Any

MODEL = "gpt-4o"
CONTENT = "Hello from the benchmark server."
DELTA = " tok{}"  # streamed content deltas: " tok0", " tok1", ... (peers reject repeated chunks)
_STREAM_FLAG = re.compile(rb'"stream"\s*:\s*true')


def _head(status: int, reason: str, content_type: str, extra: str = "", length: int | None = None) -> bytes:
    framing = f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n{framing}"
            f"x-request-id: req_bench\r\n{extra}\r\n").encode()


def _json_response(status: int, reason: str, payload: Any, extra: str = "") -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return _head(status, reason, "application/json", extra, len(body)) + body


def _chunked(events: list[bytes]) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(event), event) for event in events]
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


USAGE = {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}


@lru_cache(maxsize=16)
def openai_response(stream_len: int | None) -> bytes:
    base = {"id": "chatcmpl-bench", "created": 1700000000, "model": MODEL, "system_fingerprint": "fp_bench"}
    if stream_len is None:
        return _json_response(200, "OK", {
            **base, "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": CONTENT, "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": USAGE})
    chunk = {**base, "object": "chat.completion.chunk"}

    def event(choices: list, **more: Any) -> bytes:
        return b"data: " + json.dumps({**chunk, "choices": choices, **more}, separators=(",", ":")).encode() + b"\n\n"

    head, _, tail = event([{"index": 0, "delta": {"content": "\0"}, "logprobs": None, "finish_reason": None}]).partition(b"\\u0000")
    events = [event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}])]
    events += [head + DELTA.format(i).encode() + tail for i in range(stream_len)]
    events.append(event([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]))
    events.append(event([], usage={**USAGE, "completion_tokens": stream_len, "total_tokens": 9 + stream_len}))
    events.append(b"data: [DONE]\n\n")
    return _head(200, "OK", "text/event-stream", "Cache-Control: no-cache\r\n") + _chunked(events)


@lru_cache(maxsize=16)
def anthropic_response(stream_len: int | None) -> bytes:
    message = {"id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
               "stop_sequence": None}
    if stream_len is None:
        return _json_response(200, "OK", {
            **message, "content": [{"type": "text", "text": CONTENT}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 9, "output_tokens": 6}})

    def event(name: str, payload: dict) -> bytes:
        return b"event: %s\ndata: %s\n\n" % (name.encode(), json.dumps(payload, separators=(",", ":")).encode())

    head, _, tail = event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                  "delta": {"type": "text_delta", "text": "\0"}}).partition(b"\\u0000")
    events = [
        event("message_start", {"type": "message_start", "message": {
            **message, "content": [], "stop_reason": None, "usage": {"input_tokens": 9, "output_tokens": 1}}}),
        event("content_block_start", {"type": "content_block_start", "index": 0,
                                      "content_block": {"type": "text", "text": ""}}),
        event("ping", {"type": "ping"}),
        *(head + DELTA.format(i).encode() + tail for i in range(stream_len)),
        event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                "usage": {"output_tokens": stream_len}}),
        event("message_stop", {"type": "message_stop"}),
    ]
    return _head(200, "OK", "text/event-stream", "Cache-Control: no-cache\r\n") + _chunked(events)


@lru_cache(maxsize=16)
def error_response(status: int, retry_after: str, anthropic: bool) -> bytes:
    if status >= 500:
        payload: dict = ({"type": "error", "error": {"type": "api_error", "message": "Internal error (benchmark)"}}
                         if anthropic else {"error": {"message": "The server had an error (benchmark)",
                                                      "type": "server_error", "param": None, "code": None}})
    elif anthropic:
        payload = {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limited (benchmark)"}}
    else:
        payload = {"error": {"message": "Rate limit reached for requests (benchmark)", "type": "requests",
                             "param": None, "code": "rate_limit_exceeded"}}
    extra = f"Retry-After: {retry_after}\r\n" if retry_after else ""
    return _json_response(status, "Too Many Requests" if status == 429 else "Error", payload, extra)


NOT_FOUND = _json_response(404, "Not Found", {"error": {"message": "no such route", "type": "invalid_request_error"}})


@lru_cache(maxsize=4096)
def parse_options(segment: str) -> dict[str, str]:
    options = {}
    for item in segment.split(","):
        name, _, value = item.partition("=")
        options[name] = value
    return options


class Counters:
    def __init__(self) -> None:
        self.accepted = 0
        self.connections: dict[str, int] = defaultdict(int)
        self.requests: dict[str, int] = defaultdict(int)
        self.limited: dict[str, int] = defaultdict(int)
        self.errors: dict[str, int] = defaultdict(int)
        self.random: dict[str, random.Random] = {}
        self.windows: dict[str, Any] = {}  # key -> deque of arrival times of accepted requests


COUNTERS = Counters()


class HttpProtocol(asyncio.Protocol):
    __slots__ = ("transport", "buffer", "key", "loop")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.key: str | None = None
        self.loop = asyncio.get_running_loop()
        COUNTERS.accepted += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            lowered = head.lower()
            at = lowered.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = lowered.find(b"\r\n", at + 2)
                length = int(lowered[at + 17: stop if stop >= 0 else None])
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4: end + 4 + length]
            self.buffer = self.buffer[end + 4 + length:]
            request_line = head[: head.find(b"\r\n")] if b"\r\n" in head else head
            method, _, rest = request_line.partition(b" ")
            path = rest.rpartition(b" ")[0].decode("latin-1")
            self.handle(method, path, body)

    def handle(self, method: bytes, path: str, body: bytes) -> None:
        path = path.split("?", 1)[0]
        if path.startswith("/_stats/"):
            key = path[8:]
            self.transport.write(_json_response(200, "OK", {
                "accepted": COUNTERS.accepted, "connections": COUNTERS.connections.get(key, 0),
                "requests": COUNTERS.requests.get(key, 0), "limited": COUNTERS.limited.get(key, 0),
                "errors": COUNTERS.errors.get(key, 0)}))
            return
        options: dict[str, str] = {}
        if path.startswith("/b/"):
            segment, _, path = path[3:].partition("/")
            options = parse_options(segment)
        key = options.get("key", "")
        if self.key is None:
            self.key = key
            COUNTERS.connections[key] += 1
        COUNTERS.requests[key] += 1
        seen = COUNTERS.requests[key]
        anthropic = path.endswith("/messages")
        if method != b"POST" or not (anthropic or path.endswith("/chat/completions")):
            self.transport.write(NOT_FOUND)
            return
        status = self.failure(key, options, body, seen)
        wait = self.rolling_limit(key, options) if not status and ("rpm" in options or "tpm" in options) else None
        if wait is not None:
            COUNTERS.limited[key] += 1
            response = error_response(429, f"{wait:.3f}", anthropic)
        elif status:
            scripted = bool(options.get("fail")) and seen <= int(options.get("fails", "1"))
            retry_after = options.get("retry_after", "" if scripted else "1")
            response = error_response(status, retry_after if scripted or status == 429 else "", anthropic)
            (COUNTERS.limited if status == 429 else COUNTERS.errors)[key] += 1
        else:
            stream_len = int(options.get("n", "100")) if _STREAM_FLAG.search(body) else None
            response = anthropic_response(stream_len) if anthropic else openai_response(stream_len)
        delay = float(options.get("delay", "0") or 0)
        if delay > 0:
            self.loop.call_later(delay, self._write, response)
        else:
            self.transport.write(response)

    @staticmethod
    def failure(key: str, options: dict[str, str], body: bytes, seen: int) -> int:
        """The error status this request gets, or 0."""
        if options.get("fail") and seen <= int(options.get("fails", "1")):
            return int(options["fail"])
        poison = float(options.get("poison", 0) or 0)
        if poison and zlib.crc32(body) % 10_000 < poison * 10_000:
            return 500
        p429, p500 = float(options.get("p429", 0) or 0), float(options.get("p500", 0) or 0)
        if p429 or p500:
            rng = COUNTERS.random.get(key)
            if rng is None:
                rng = COUNTERS.random[key] = random.Random(f"{key}:{options.get('seed', '0')}")
            draw = rng.random()
            if draw < p429:
                return 429
            if draw < p429 + p500:
                return 500
        return 0

    @staticmethod
    def rolling_limit(key: str, options: dict[str, str]) -> float | None:
        """Seconds until this key's rolling window has room (a 429), or None (counted, served)."""
        from collections import deque

        window = float(options.get("window", "60"))
        max_requests = float(options.get("rpm", "inf")) * window / 60
        per_request = USAGE["total_tokens"]
        max_requests = min(max_requests, float(options.get("tpm", "inf")) * window / 60 / per_request)
        now = time.monotonic()
        log = COUNTERS.windows.setdefault(key, deque())
        while log and log[0] <= now - window:
            log.popleft()
        if len(log) + 1 > max_requests:
            return max(0.001, log[0] + window - now)
        log.append(now)
        return None

    def _write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)


async def serve(port: int, max_seconds: float, ready: Any) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(HttpProtocol, "127.0.0.1", port, backlog=1024, reuse_address=True)
    ready(server.sockets[0].getsockname()[1])
    stop = asyncio.Event()
    loop.call_later(max_seconds, stop.set)

    def watch_stdin() -> None:  # the parent closing our stdin (or dying) stops us
        try:
            sys.stdin.buffer.read()
        finally:
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    args = parser.parse_args(argv)

    def ready(port: int) -> None:
        print(f"PORT {port}", flush=True)

    asyncio.run(serve(args.port, args.max_seconds, ready))


# --- used by the runner ------------------------------------------------------------------


class ServerProcess:
    """The fake provider in its own process, so its CPU never counts as the client's."""

    def __init__(self, max_seconds: float = 3600.0) -> None:
        import os
        import subprocess

        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.fake_server", "--max-seconds", str(max_seconds)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=root)
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            self.close()
            raise RuntimeError(f"the fake server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.root = f"http://127.0.0.1:{self.port}"

    def url(self, **options: Any) -> str:
        """The base URL of one run (append ``/v1`` for OpenAI-style clients)."""
        return f"{self.root}/b/" + ",".join(f"{name}={value}" for name, value in options.items())

    def stats(self, key: str) -> dict[str, int]:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(f"GET /_stats/{key} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            data = b""
            while b"}" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data.split(b"\r\n\r\n", 1)[1])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=5)
            except Exception:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def measure_capacity(port: int, calls: int = 2000, stream_len: int = 20000) -> dict[str, float]:
    """The server's own speed, seen by a raw socket client: requests/s over one keep-alive
    connection, and deltas/s of one stream read whole. Both must dwarf any client's rate."""
    import time

    body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
    request = (b"POST /b/key=_capacity/v1/chat/completions HTTP/1.1\r\nHost: bench\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        expected = len(openai_response(None))
        stream_body = b'{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}'
        stream_request = (b"POST /b/key=_capacity,n=%d/v1/chat/completions HTTP/1.1\r\nHost: bench\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (stream_len, len(stream_body), stream_body))
        stream_expected = len(openai_response(stream_len))
        for message, size in ((request, expected), (stream_request, stream_expected)):  # warm the caches
            sock.sendall(message)
            got = 0
            while got < size:
                got += len(sock.recv(1 << 20))
        started = time.perf_counter()
        for _ in range(calls):
            sock.sendall(request)
            got = 0
            while got < expected:
                got += len(sock.recv(65536))
        per_call = (time.perf_counter() - started) / calls
        sock.sendall(stream_request)
        started = time.perf_counter()
        got = 0
        while got < stream_expected:
            got += len(sock.recv(1 << 20))
        stream_seconds = time.perf_counter() - started
    return {"requests_per_s": 1 / per_call, "round_trip_us": per_call * 1e6,
            "stream_deltas_per_s": stream_len / stream_seconds}


if __name__ == "__main__":
    main()
