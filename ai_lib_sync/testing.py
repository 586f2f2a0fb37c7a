"""A real HTTP/1.1 server on loopback, for tests and for the embedded offline provider.

``LoopbackServer`` records every request and answers from a script (``enqueue``) or a
handler; replies can be delayed, chunked, trickled, or cut off mid-body, which is what
streaming, timeout and fault tests need. ``echo_server()`` starts one that speaks the OpenAI
chat wire format and echoes the last user message: the ``mock/echo`` provider uses it so
the whole stack (client -> dialect -> HTTP -> SSE) runs with no key and no network.

``AiFake`` (from ``ai_lib_sync.fakes.scripted``, importable from here) stands in for every
provider family at once and points every client of the process at itself: the pytest
fixture ``ai_fake`` (``ai_lib_sync.integrations.pytest_plugin``) wraps it, and
``with AiFake() as fake:`` does the same in unittest or Django's test runner.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def __repr__(self) -> str:
        # Headers that carry keys are shown by name only: a repr ends up in test reports.
        shown = {name: ("***" if name in _KEY_HEADERS else value) for name, value in self.headers.items()}
        query = {name: (["***"] if name in _KEY_PARAMS else value) for name, value in self.query.items()}
        return (f"{type(self).__name__}({self.method} {self.path}, query={query}, headers={shown}, "
                f"body={len(self.body)} bytes)")


_KEY_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "x-goog-api-key", "x-amz-security-token",
                          "proxy-authorization", "cookie"})
_KEY_PARAMS = frozenset({"key", "api_key", "api-key", "access_token"})


@dataclass
class Reply:
    """One scripted answer. ``chunks`` makes a chunked body written piece by piece;
    ``cut_after`` drops the connection after that many chunks (no terminating chunk)."""

    status: int = 200
    body: bytes | str | dict | list | None = None
    headers: dict[str, str] = field(default_factory=dict)
    chunks: Iterable[bytes | str] | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    cut_after: int | None = None

    @classmethod
    def sse(cls, events: Iterable[dict | str], done: bool = True, **kwargs: Any) -> Reply:
        """An OpenAI-style SSE body: one ``data:`` frame per event, then ``[DONE]``."""
        frames = [f"data: {event if isinstance(event, str) else json.dumps(event)}\n\n" for event in events]
        if done:
            frames.append("data: [DONE]\n\n")
        headers = {"Content-Type": "text/event-stream", **kwargs.pop("headers", {})}
        return cls(chunks=frames, headers=headers, **kwargs)


Handler = Callable[[RecordedRequest], Reply]


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a pool of 64 workers connecting at once
    # then gets connection resets. Real servers accept far more.
    request_queue_size = 256


class LoopbackServer:
    def __init__(self, handler: Handler | None = None, host: str = "127.0.0.1") -> None:
        self.handler = handler
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        owner = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with owner._lock:
                    owner.connections += 1

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                split = urlsplit(self.path)
                recorded = RecordedRequest(self.command, split.path, parse_qs(split.query),
                                           {k.lower(): v for k, v in self.headers.items()}, body)
                with owner._lock:
                    owner.requests.append(recorded)
                    reply = owner._script.popleft() if owner._script else None
                if reply is None:
                    reply = owner.handler(recorded) if owner.handler else Reply(404, {"error": "no reply scripted"})
                owner._write(self, reply)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self._server = _Server((host, 0), _Handler)
        self._server.daemon_threads = True
        # A client that hangs up early is normal in fault tests, not worth a traceback.
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="loopback-server", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "") -> str:
        return self.base_url + path

    def enqueue(self, *replies: Reply) -> LoopbackServer:
        with self._lock:
            self._script.extend(replies)
        return self

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _write(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        if reply.delay:
            time.sleep(reply.delay)
        try:
            handler.send_response(reply.status)
            headers = {k.lower(): v for k, v in reply.headers.items()}
            if reply.chunks is None:
                body = reply.body
                if isinstance(body, (dict, list)):
                    body = json.dumps(body).encode()
                    headers.setdefault("content-type", "application/json")
                elif isinstance(body, str):
                    body = body.encode()
                body = body or b""
                headers["content-length"] = str(len(body))
                for name, value in headers.items():
                    handler.send_header(name, value)
                handler.end_headers()
                handler.wfile.write(body)
                handler.wfile.flush()
                return
            headers["transfer-encoding"] = "chunked"
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.flush()
            for count, chunk in enumerate(reply.chunks):
                if reply.cut_after is not None and count >= reply.cut_after:
                    handler.close_connection = True
                    handler.connection.shutdown(socket.SHUT_RDWR)
                    return
                data = chunk.encode() if isinstance(chunk, str) else chunk
                if data:
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    handler.wfile.flush()
                if reply.chunk_delay:
                    time.sleep(reply.chunk_delay)
            if reply.cut_after is not None:
                handler.close_connection = True
                handler.connection.shutdown(socket.SHUT_RDWR)
                return
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            handler.close_connection = True


# --- the embedded offline provider ---------------------------------------------------------


def _last_user_text(payload: dict[str, Any]) -> str:
    for message in reversed(payload.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
            return content or ""
    return ""


def openai_echo(request: RecordedRequest) -> Reply:
    """Answer an OpenAI chat request by echoing the last user message, streamed or not."""
    try:
        payload = request.json or {}
    except ValueError:
        return Reply(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
    if not payload.get("messages"):
        return Reply(400, {"error": {"message": "'messages' is required", "type": "invalid_request_error"}})
    words = f"Echo: {_last_user_text(payload)}".split(" ")
    limit = payload.get("max_tokens") or payload.get("max_completion_tokens")
    finish = "stop"
    if limit and len(words) > limit:
        words, finish = words[:limit], "length"
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in payload["messages"])
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words),
             "total_tokens": prompt_tokens + len(words)}
    model = payload.get("model", "echo")
    base = {"id": "chatcmpl-echo", "created": int(time.time()), "model": model}
    if not payload.get("stream"):
        return Reply(200, {**base, "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": " ".join(words)}, "finish_reason": finish}],
            "usage": usage})
    chunk = {**base, "object": "chat.completion.chunk"}
    events: list[dict[str, Any]] = [{**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    for position, word in enumerate(words):
        text = word if position == 0 else " " + word
        events.append({**chunk, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})
    events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if (payload.get("stream_options") or {}).get("include_usage"):
        events.append({**chunk, "choices": [], "usage": usage})
    return Reply.sse(events, chunk_delay=0.01)


def echo_server() -> LoopbackServer:
    """Factory named by the ``mock`` manifest (``embedded:ai_lib_sync.testing:echo_server``).
    The offline provider keeps only its last 1,000 requests: a million-prompt run through it
    must stay in flat memory."""
    server = LoopbackServer(openai_echo)
    server.requests = deque(maxlen=1000)  # type: ignore[assignment]
    return server


def __getattr__(name: str) -> Any:
    # AiFake lives with the wire fakes; imported on first use so the echo provider stays light.
    if name in ("AiFake", "FakeRequest"):
        from .fakes import scripted

        return getattr(scripted, name)
    if name == "REDACTED_KEY":
        from .fakes.redirect import REDACTED_KEY

        return REDACTED_KEY
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
