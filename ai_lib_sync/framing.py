"""Stream framing: byte chunks in, ``(event_name, data)`` frames out.

SSE events are cut here and their fields parsed by sseclient-py (our one SSE field parser);
NDJSON is split here; the AWS binary event-stream is decoded by ``eventstream``. These are pure
generators over an iterable of bytes, so tests can feed them chunks split at any byte.

Two properties every framer keeps, because a server controls the bytes:

- **Linear cost.** A large event split into many small chunks is collected in a list and
  joined once, and each chunk is searched only for boundaries it can complete, so a 4 MB
  event costs the same at 512-byte chunks as at 64 KB chunks.
- **Typed failures.** Bytes that are not UTF-8 raise ``StreamInterruptedError`` (the stream
  is corrupt), never ``UnicodeDecodeError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sseclient import SSEClient

from .errors import StreamInterruptedError


def sse_frames(chunks: Iterable[bytes]) -> Iterator[tuple[str | None, str]]:
    """SSE events as ``(event name, data)``; an event without a name is ``"message"``."""
    try:
        for event in _EventParser(_sse_blocks(chunks)).events():
            yield event.event, event.data
    except UnicodeDecodeError as exc:
        raise StreamInterruptedError(f"the stream is not valid UTF-8 ({exc.reason} at byte {exc.start} "
                                     "of an event)") from None


def _sse_blocks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Whole SSE events (``b"...\\n\\n"``), line endings normalised to LF.

    The SSE specification allows CRLF, LF and CR line endings, mixed freely within one stream
    (a line may end in LF and the blank line after it in CRLF). sseclient-py only recognises a
    blank line written in the same ending as the line before it, so two events could merge;
    normalising first gives it only LF. A CR at the end of one chunk may be the first half of
    a CRLF, so the LF that starts the next chunk is then dropped.
    """
    pieces: list[bytes] = []  # the current, incomplete event (normalised)
    ends_with_lf = False  # whether the normalised bytes so far end in LF
    after_cr = False
    for chunk in chunks:
        if after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        if b"\r" in chunk:
            after_cr = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        else:
            after_cr = False
        if not chunk:
            continue
        start = 0
        if ends_with_lf and chunk[0:1] == b"\n":  # a blank line straddling two chunks
            pieces.append(b"\n\n")
            yield b"".join(pieces)
            pieces = []
            start = 1
        while True:
            boundary = chunk.find(b"\n\n", start)
            if boundary < 0:
                break
            pieces.append(chunk[start:boundary + 2])
            yield b"".join(pieces)
            pieces = []
            start = boundary + 2
        rest = chunk[start:]
        if rest:
            pieces.append(rest)
            ends_with_lf = rest.endswith(b"\n")
        else:
            ends_with_lf = False
    if pieces:
        yield b"".join(pieces)  # a last event without its blank line is still dispatched


class _EventParser(SSEClient):
    """sseclient-py's field parser over events already cut by ``_sse_blocks``.

    ``SSEClient._read`` would re-cut them by concatenating one line at a time (quadratic for
    an event of many lines) and by its own, ending-sensitive rule; our source yields whole
    events, so reading is passing them on.
    """

    def _read(self) -> Iterator[bytes]:
        return iter(self._event_source)


def ndjson_frames(chunks: Iterable[bytes]) -> Iterator[tuple[str | None, str]]:
    """One frame per non-blank line (``event`` is None); CRLF line endings are fine."""
    pieces: list[bytes] = []  # the current, incomplete line
    for chunk in chunks:
        if b"\n" not in chunk:
            if chunk:
                pieces.append(chunk)
            continue
        pieces.append(chunk)
        *lines, rest = b"".join(pieces).split(b"\n")
        pieces = [rest] if rest else []
        for line in lines:
            line = line.strip()
            if line:
                yield None, _utf8(line)
    tail = b"".join(pieces).strip()
    if tail:
        yield None, _utf8(tail)


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StreamInterruptedError(f"the stream is not valid UTF-8 ({exc.reason} at byte {exc.start} "
                                     "of a line)") from None


def aws_eventstream_frames(chunks: Iterable[bytes]) -> Iterator[tuple[str | None, Any]]:
    from .eventstream import decode_frames

    yield from decode_frames(chunks)


FRAMERS = {"sse": sse_frames, "ndjson": ndjson_frames, "aws_eventstream": aws_eventstream_frames}
