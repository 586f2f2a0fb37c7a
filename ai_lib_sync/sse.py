"""Server-sent events for browsers: a ``ChatStream`` as the bytes an ``EventSource`` reads.

Framework-free, so the Django and Flask integrations (and any other WSGI app) share one
encoder. The wire format (fixed in SPEC.md):

- ``event: delta`` / ``data: {"text": "..."}`` per content delta;
- ``event: thinking`` / ``data: {"text": "..."}`` per reasoning delta, when the model sends any;
- ``event: tool_call`` / ``data: {"index", "id", "name", "arguments", "arguments_raw"}`` per
  completed tool call;
- ``event: done`` / ``data: {"finish_reason", "usage": {...}, "stats": {...}}`` at the end;
- ``event: error`` / ``data: {"kind", "message", "partial_content"}`` when the stream fails, so
  the page is told instead of seeing the answer stop;
- lines starting with ``:`` are heartbeats, which browsers ignore and proxies count as traffic.

Heartbeats while the provider is silent need someone to wait on a clock while the stream's
reader is blocked. The encoder runs a small reader thread that is the only one iterating the
stream and hands events over a queue; the response thread waits on that queue for at most one
heartbeat interval and writes a comment when nothing came. The response thread touches the
stream only through ``ChatStream.close()``, which is made to be called from another thread.
A silent provider is still bounded by the client's ``stream_idle_timeout``, which ends the
stream with an ``error`` event. With ``heartbeat=None`` there is no thread and no comment.

Whatever way the response ends (the last event, an error, the WSGI server's ``close()`` after
a client hung up, ``GeneratorExit``), the encoder closes the ``ChatStream`` in ``finally``, so
the provider stops generating at once. Upstream errors arrive after the response headers
were sent, so they travel as ``event: error`` in a 200 response, never as an HTTP status.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import threading
import traceback
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .errors import AiLibError, ConfigurationError

if TYPE_CHECKING:
    from .client import ChatStream
    from .types import CallStats, ChatResponse, StreamEvent

logger = logging.getLogger(__name__)

HEADERS: Mapping[str, str] = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass each event through instead of buffering the body
}
# Well under the 60 s read timeout that nginx, ELB and most proxies default to.
DEFAULT_HEARTBEAT = 15.0
HEARTBEAT_COMMENT = "keep-alive"


def format_event(name: str, data: Mapping[str, Any]) -> bytes:
    """One SSE message. JSON escapes newlines, so ``data`` is always a single line."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {name}\ndata: {payload}\n\n".encode()


def format_comment(text: str = HEARTBEAT_COMMENT) -> bytes:
    """A comment message (``: text``): ignored by ``EventSource``, keeps proxies from timing out."""
    lines = text.splitlines() or [""]
    return "".join(f": {line}\n" for line in lines).encode() + b"\n"


def summary(response: ChatResponse, stats: CallStats | None) -> dict[str, Any]:
    """How a finished answer ended: the ``done`` event's data, also handy for JSON views."""
    return {
        "finish_reason": response.finish_reason,
        "usage": dataclasses.asdict(response.usage),
        "stats": dataclasses.asdict(stats) if stats is not None else {},
    }


def encode(stream: ChatStream, *, heartbeat: float | None = DEFAULT_HEARTBEAT) -> Iterator[bytes]:
    """The SSE bytes of ``stream``, one ``bytes`` per message, ready to be a WSGI body.

    ``heartbeat`` is the longest silence (seconds) before a comment line is written; ``None``
    writes none and reads the stream in the calling thread. The iterator closes ``stream``
    however it ends: exhausted, failed, ``close()``d (what WSGI servers do), or dropped.
    """
    if heartbeat is not None and (isinstance(heartbeat, bool) or not isinstance(heartbeat, (int, float))
                                  or not heartbeat > 0):
        stream.close()
        raise ConfigurationError(f"heartbeat must be a number of seconds > 0 or None, got {heartbeat!r}")
    return _Body(stream, _messages(stream, None if heartbeat is None else float(heartbeat)))


class _Body:
    """The encoder's iterator. ``close()`` also closes the stream when iteration never began,
    which a generator's own ``close()`` would not (its ``finally`` has not been entered yet)."""

    __slots__ = ("_stream", "_messages")

    def __init__(self, stream: ChatStream, messages: Iterator[bytes]) -> None:
        self._stream = stream
        self._messages = messages

    def __iter__(self) -> _Body:
        return self

    def __next__(self) -> bytes:
        return next(self._messages)

    def close(self) -> None:
        try:
            self._messages.close()  # type: ignore[attr-defined]
        finally:
            self._stream.close()


def _messages(stream: ChatStream, heartbeat: float | None) -> Iterator[bytes]:
    seen: list[str] = []
    try:
        source = iter(stream) if heartbeat is None else _with_heartbeats(stream, heartbeat)
        try:
            for item in source:
                if item is None:
                    yield format_comment()
                    continue
                message = _message(item, seen)
                if message is not None:
                    yield message
            last = format_event("done", summary(stream.final_response(), stream.stats))
        except AiLibError as error:
            partial = error.partial_content if error.partial_content is not None else "".join(seen)
            last = _error(error.kind, error.message, partial)
        except Exception as exc:  # a bug below us; its text may hold anything, so only its type
            where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
            logger.error("the stream failed with %s at %s", type(exc).__name__,
                         f"{where.filename}:{where.lineno}" if where else "?")
            last = _error("server_error", f"the stream failed unexpectedly ({type(exc).__name__})",
                          "".join(seen))
        stream.close()  # release the provider connection before the last write to a slow client
        yield last
    finally:
        stream.close()


def _error(kind: str, message: str, partial_content: str) -> bytes:
    return format_event("error", {"kind": kind, "message": message, "partial_content": partial_content})


def _message(event: StreamEvent, seen: list[str]) -> bytes | None:
    kind = event.kind
    if kind == "content_delta":
        text = event.text  # type: ignore[attr-defined]
        if not text:
            return None
        seen.append(text)
        return format_event("delta", {"text": text})
    if kind == "thinking_delta":
        text = event.text  # type: ignore[attr-defined]
        return format_event("thinking", {"text": text}) if text else None
    if kind == "tool_call_ended":
        call = event.tool_call  # type: ignore[attr-defined]
        return format_event("tool_call", {"index": event.index, "id": call.id,  # type: ignore[attr-defined]
                                          "name": call.name, "arguments": call.arguments,
                                          "arguments_raw": call.arguments_raw})
    return None  # started/argument fragments, usage and finish are summed up in "done"


_END = object()


def _with_heartbeats(stream: ChatStream, interval: float) -> Iterator[StreamEvent | None]:
    """The stream's events, with ``None`` after every ``interval`` seconds without one.

    Only the reader thread iterates the stream; an error there is re-raised here. The queue is
    unbounded so the reader never blocks on it and always ends once the stream is closed.
    """
    handoff: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def read() -> None:
        try:
            for event in stream:
                handoff.put(event)
            handoff.put(_END)
        except BaseException as exc:  # handed to the response thread, which decides
            handoff.put(exc)

    threading.Thread(target=read, name="ai-lib-sync-sse-reader", daemon=True).start()
    while True:
        try:
            item = handoff.get(timeout=interval)
        except queue.Empty:
            yield None
            continue
        if item is _END:
            return
        if isinstance(item, BaseException):
            raise item
        yield item
