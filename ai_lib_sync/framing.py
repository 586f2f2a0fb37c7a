"""Stream framing: byte chunks in, ``(event_name, data)`` frames out.

SSE goes through sseclient-py (our one SSE parser); NDJSON is split here; the AWS binary
event-stream is decoded by ``eventstream``. These are pure generators over an iterable of
bytes, so tests can feed them chunks split at any byte.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any


def sse_frames(chunks: Iterable[bytes]) -> Iterator[tuple[str | None, str]]:
    from sseclient import SSEClient

    client = SSEClient(_ReadableChunks(chunks))
    for event in client.events():
        yield event.event, event.data


def ndjson_frames(chunks: Iterable[bytes]) -> Iterator[tuple[str | None, str]]:
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        if b"\n" not in chunk:
            continue
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            line = line.strip()
            if line:
                yield None, line.decode("utf-8")
    if buffer.strip():
        yield None, buffer.strip().decode("utf-8")


def aws_eventstream_frames(chunks: Iterable[bytes]) -> Iterator[tuple[str | None, Any]]:
    from .eventstream import decode_frames

    yield from decode_frames(chunks)


FRAMERS = {"sse": sse_frames, "ndjson": ndjson_frames, "aws_eventstream": aws_eventstream_frames}


class _ReadableChunks:
    """sseclient-py iterates its source and calls ``close()``; give it both."""

    __slots__ = ("_chunks",)

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close:
            close()
