"""AWS binary event-stream decoding (``application/vnd.amazon.eventstream``), pure Python.

Spec: https://docs.aws.amazon.com/transcribe/latest/dg/event-stream.html. Each message is
``total length u32 | headers length u32 | prelude CRC32 u32 | headers | payload | message CRC32
u32`` (big-endian); the prelude CRC covers the first 8 bytes, the message CRC every byte before
it. Both CRCs are verified: a mismatch or a stream that ends inside a message raises
``StreamInterruptedError``, since we can no longer trust where the next message starts.

Frames handed to the stream decoder (the ``framing`` contract):

- ``:message-type: event`` -> ``(":event-type" value, payload)``, the payload parsed as JSON
  (``{}`` when empty) unless ``:content-type`` says it is not JSON (then raw bytes);
- ``:message-type: exception`` -> ``(EXCEPTION, {"type": ":exception-type" value,
  "message": payload["message"], "body": payload text})``;
- ``:message-type: error`` -> ``(EXCEPTION, {"type": ":error-code", "message":
  ":error-message", "body": ""})``.

Exceptions are passed on, not raised here, because classifying them is the dialect's job (the
same rules as HTTP error bodies). ``EXCEPTION`` starts with ``:``, which no event type can.
"""

from __future__ import annotations

import json
import struct
import uuid
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import StreamInterruptedError

EXCEPTION = ":exception"
PRELUDE_LENGTH = 12  # total length, headers length, prelude CRC
OVERHEAD = 16  # prelude + message CRC
MAX_MESSAGE_LENGTH = 16 * 1024 * 1024  # a sanity bound; real messages are a few hundred bytes

_FIXED = {2: ">b", 3: ">h", 4: ">i", 5: ">q", 8: ">q"}  # byte, short, integer, long, timestamp(ms)


@dataclass(frozen=True)
class Message:
    headers: dict[str, Any]
    payload: bytes


def iter_messages(chunks: Iterable[bytes]) -> Iterator[Message]:
    """Whole, CRC-checked messages from byte chunks split anywhere."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= PRELUDE_LENGTH:
            total, headers_length, prelude_crc = struct.unpack_from(">III", buffer)
            if zlib.crc32(buffer[:8]) != prelude_crc:
                raise StreamInterruptedError("event-stream prelude CRC mismatch: the stream is corrupt")
            if total < OVERHEAD or total > MAX_MESSAGE_LENGTH or headers_length > total - OVERHEAD:
                raise StreamInterruptedError(
                    f"event-stream message with impossible lengths (total {total}, headers {headers_length})")
            if len(buffer) < total:
                break
            message = bytes(buffer[:total])
            del buffer[:total]
            (message_crc,) = struct.unpack_from(">I", message, total - 4)
            if zlib.crc32(message[:-4]) != message_crc:
                raise StreamInterruptedError("event-stream message CRC mismatch: the stream is corrupt")
            headers_end = PRELUDE_LENGTH + headers_length
            yield Message(parse_headers(message[PRELUDE_LENGTH:headers_end]), message[headers_end:-4])
    if buffer:
        raise StreamInterruptedError(
            f"the stream ended inside an event-stream message ({len(buffer)} bytes left over)")


def parse_headers(data: bytes) -> dict[str, Any]:
    """Header block -> {name: value}; all ten value types of the spec are understood."""
    headers: dict[str, Any] = {}
    position = 0
    try:
        while position < len(data):
            name_length = data[position]
            name = data[position + 1:position + 1 + name_length].decode("utf-8")
            position += 1 + name_length
            value_type = data[position]
            position += 1
            value: Any
            if value_type in (0, 1):
                value = value_type == 0
            elif value_type in _FIXED:
                fmt = _FIXED[value_type]
                (value,) = struct.unpack_from(fmt, data, position)
                position += struct.calcsize(fmt)
            elif value_type in (6, 7):
                (length,) = struct.unpack_from(">H", data, position)
                raw = data[position + 2:position + 2 + length]
                if len(raw) != length:
                    raise IndexError
                value = raw.decode("utf-8") if value_type == 7 else bytes(raw)
                position += 2 + length
            elif value_type == 9:
                raw = data[position:position + 16]
                value = uuid.UUID(bytes=bytes(raw))
                position += 16
            else:
                raise StreamInterruptedError(f"event-stream header {name!r} has unknown value type {value_type}")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError, ValueError):
        raise StreamInterruptedError("event-stream headers are malformed") from None
    return headers


def _payload(message: Message) -> Any:
    content_type = str(message.headers.get(":content-type", "application/json"))
    if "json" not in content_type:
        return message.payload
    if not message.payload:
        return {}
    try:
        return json.loads(message.payload)
    except (ValueError, RecursionError):
        raise StreamInterruptedError(
            f"event-stream payload is not JSON: {message.payload[:200]!r}") from None


def decode_frames(chunks: Iterable[bytes]) -> Iterator[tuple[str | None, Any]]:
    """``(event type, payload)`` frames; exceptions as ``(EXCEPTION, {type, message, body})``."""
    for message in iter_messages(chunks):
        headers = message.headers
        kind = headers.get(":message-type", "event")
        if kind == "event":
            yield headers.get(":event-type"), _payload(message)
        elif kind == "exception":
            body = message.payload.decode("utf-8", "replace")
            try:
                parsed = json.loads(body) if body else {}
            except ValueError:
                parsed = {}
            text = (parsed.get("message") or parsed.get("Message")) if isinstance(parsed, dict) else None
            yield EXCEPTION, {"type": _text(headers.get(":exception-type")), "message": _text(text) or body,
                              "body": body}
        elif kind == "error":
            yield EXCEPTION, {"type": _text(headers.get(":error-code")),
                              "message": _text(headers.get(":error-message")) or "", "body": ""}


def _text(value: Any) -> str | None:
    """Header values and JSON fields are typed by the sender; the decoder gets text or None."""
    if value is None or isinstance(value, str):
        return value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
