"""The AWS binary event-stream decoder, against messages built here from the spec
(https://docs.aws.amazon.com/transcribe/latest/dg/event-stream.html) with zlib.crc32."""

from __future__ import annotations

import json
import struct
import uuid
import zlib
from typing import Any

import pytest

from ai_lib_sync.errors import StreamInterruptedError
from ai_lib_sync.eventstream import EXCEPTION, Message, decode_frames, iter_messages
from tests.helpers import awkward_chunks

# --- the encoder (test side) --------------------------------------------------------------


def encode_header(name: str, value: Any, value_type: int | None = None) -> bytes:
    """One header; the value type is inferred (str -> 7, bool -> 0/1, bytes -> 6, UUID -> 9)
    unless given (2 byte, 3 short, 4 integer, 5 long, 8 timestamp)."""
    raw_name = name.encode()
    out = struct.pack(">B", len(raw_name)) + raw_name
    if value_type is None:
        if isinstance(value, bool):
            value_type = 0 if value else 1
        elif isinstance(value, str):
            value_type = 7
        elif isinstance(value, bytes):
            value_type = 6
        elif isinstance(value, uuid.UUID):
            value_type = 9
        else:
            raise TypeError(f"give the value type of {name!r}")
    out += struct.pack(">B", value_type)
    if value_type in (0, 1):
        return out
    fixed = {2: ">b", 3: ">h", 4: ">i", 5: ">q", 8: ">q"}
    if value_type in fixed:
        return out + struct.pack(fixed[value_type], value)
    if value_type in (6, 7):
        data = value.encode() if isinstance(value, str) else value
        return out + struct.pack(">H", len(data)) + data
    return out + value.bytes  # 9: UUID


def encode_message(headers: list[tuple] | dict[str, Any], payload: bytes = b"") -> bytes:
    """A whole message; headers as a dict or as (name, value[, value type]) tuples."""
    items = headers.items() if isinstance(headers, dict) else headers
    header_bytes = b"".join(encode_header(*item) for item in items)
    total = 16 + len(header_bytes) + len(payload)
    prelude = struct.pack(">II", total, len(header_bytes))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + header_bytes + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    """A Bedrock-style event message, headers as the service sends them."""
    return encode_message({":event-type": event_type, ":content-type": "application/json",
                           ":message-type": "event"}, json.dumps(payload).encode())


def exception(exception_type: str, message: str) -> bytes:
    return encode_message({":exception-type": exception_type, ":content-type": "application/json",
                           ":message-type": "exception"}, json.dumps({"message": message}).encode())


STREAM = (event("messageStart", {"role": "assistant"})
          + event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Grüße 🎵"}})
          + event("messageStop", {"stopReason": "end_turn"}))
EXPECTED = [("messageStart", {"role": "assistant"}),
            ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Grüße 🎵"}}),
            ("messageStop", {"stopReason": "end_turn"})]


# --- tests -------------------------------------------------------------------------------


def test_empty_message_has_the_spec_overhead_and_crcs():
    data = encode_message({}, b"")
    assert len(data) == 16
    assert list(iter_messages([data])) == [Message({}, b"")]


def test_every_header_value_type_round_trips():
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    headers = [("t", True), ("f", False), ("b", -5, 2), ("s", -300, 3), ("i", 70000, 4),
               ("l", 2 ** 40, 5), ("bin", b"\x00\x01"), ("str", "héllo"), ("ts", 1700000000000, 8),
               ("id", ident)]
    (message,) = iter_messages([encode_message(headers, b"payload")])
    assert message.headers == {"t": True, "f": False, "b": -5, "s": -300, "i": 70000, "l": 2 ** 40,
                               "bin": b"\x00\x01", "str": "héllo", "ts": 1700000000000, "id": ident}
    assert message.payload == b"payload"


def test_test_encoder_agrees_with_botocores_parser():
    """The fixtures' encoder is checked against an independent implementation of the spec."""
    eventstream = pytest.importorskip("botocore.eventstream", reason="botocore not installed")
    buffer = eventstream.EventStreamBuffer()
    buffer.add_data(STREAM + exception("throttlingException", "slow down"))
    messages = list(buffer)
    assert [m.headers[":event-type"] for m in messages[:3]] == ["messageStart", "contentBlockDelta", "messageStop"]
    assert json.loads(messages[1].payload) == EXPECTED[1][1]
    assert messages[3].headers[":exception-type"] == "throttlingException"


def test_frames_whole_and_at_every_split_point():
    assert list(decode_frames([STREAM])) == EXPECTED
    assert list(decode_frames(awkward_chunks(STREAM))) == EXPECTED
    assert list(decode_frames([bytes([b]) for b in STREAM])) == EXPECTED
    for cut in range(1, len(STREAM)):
        assert list(decode_frames([STREAM[:cut], STREAM[cut:]])) == EXPECTED, cut


def test_exception_and_error_messages_become_exception_frames():
    error = encode_message({":message-type": "error", ":error-code": "InternalFailure",
                            ":error-message": "boom"})
    frames = list(decode_frames([exception("throttlingException", "Too many requests"), error]))
    assert frames == [
        (EXCEPTION, {"type": "throttlingException", "message": "Too many requests",
                     "body": '{"message": "Too many requests"}'}),
        (EXCEPTION, {"type": "InternalFailure", "message": "boom", "body": ""}),
    ]


def test_empty_payload_is_an_empty_object_and_non_json_stays_bytes():
    frames = list(decode_frames([encode_message({":event-type": "ping"}),
                                 encode_message({":event-type": "blob", ":content-type": "application/octet-stream"},
                                                b"\x00\xff")]))
    assert frames == [("ping", {}), ("blob", b"\x00\xff")]


def test_empty_stream_yields_nothing():
    assert list(decode_frames([])) == []
    assert list(decode_frames([b""])) == []


@pytest.mark.parametrize("position", [1, 5, 9])  # inside the prelude lengths and the prelude CRC
def test_corrupt_prelude_crc_is_detected(position):
    data = bytearray(STREAM)
    data[position] ^= 0x01
    with pytest.raises(StreamInterruptedError, match="prelude CRC"):
        list(decode_frames([bytes(data)]))


def test_corrupt_payload_byte_fails_the_message_crc_after_good_messages():
    first = event("messageStart", {"role": "assistant"})
    data = bytearray(STREAM)
    data[len(first) + 40] ^= 0x20
    frames = decode_frames(awkward_chunks(bytes(data)))
    assert next(frames) == EXPECTED[0]
    with pytest.raises(StreamInterruptedError, match="message CRC"):
        list(frames)


def test_corrupt_message_crc_itself_is_detected():
    data = bytearray(STREAM)
    data[-1] ^= 0xFF
    with pytest.raises(StreamInterruptedError, match="message CRC"):
        list(decode_frames([bytes(data)]))


@pytest.mark.parametrize("keep", [5, 13, len(STREAM) - 1])
def test_truncated_stream_is_interrupted(keep):
    with pytest.raises(StreamInterruptedError, match="ended inside"):
        list(decode_frames(awkward_chunks(STREAM[:keep])))


def test_impossible_lengths_with_a_valid_prelude_crc_are_refused():
    prelude = struct.pack(">II", 10, 0)  # shorter than the 16-byte overhead
    data = prelude + struct.pack(">I", zlib.crc32(prelude)) + b"\x00" * 4
    with pytest.raises(StreamInterruptedError, match="impossible lengths"):
        list(decode_frames([data]))


def test_malformed_headers_and_json_are_stream_errors():
    broken = bytearray(encode_message([("x", "v")]))
    broken[12 + 2] = 42  # an unknown header value type, with the message CRC fixed up
    broken[-4:] = struct.pack(">I", zlib.crc32(bytes(broken[:-4])))
    with pytest.raises(StreamInterruptedError, match="unknown value type"):
        list(decode_frames([bytes(broken)]))
    not_json = encode_message({":event-type": "x", ":content-type": "application/json"}, b"{nope")
    with pytest.raises(StreamInterruptedError, match="not JSON"):
        list(decode_frames([not_json]))
