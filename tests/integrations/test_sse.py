"""``ai_lib_sync.sse``: real ChatStreams over a loopback provider, encoded to the bytes an
EventSource reads. Chunk shapes follow https://platform.openai.com/docs/api-reference/chat-streaming
(tool calls: https://platform.openai.com/docs/guides/function-calling#streaming) and, for
``reasoning_content``, https://api-docs.deepseek.com/guides/reasoning_model."""

from __future__ import annotations

import gc
import json
import logging

import pytest

from ai_lib_sync import ConfigurationError
from ai_lib_sync.sse import HEADERS, encode, format_comment, format_event
from ai_lib_sync.testing import Reply

from .slow_provider import API_KEY, MODEL, SlowProvider


def chunk(delta=None, finish=None, usage=None, choices=True):
    data = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
    data["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if choices else []
    if usage:
        data["usage"] = usage
    return data


USAGE = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
STORY = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Once "}), chunk({"content": "upon\né世"}),
         chunk(finish="stop"), chunk(choices=False, usage=USAGE)]


def parse(body: bytes) -> list[tuple[str, object]]:
    """(event, data) per message; ("comment", text) for comment lines."""
    messages = []
    for block in body.decode().split("\n\n"):
        if not block:
            continue
        lines = block.split("\n")
        if all(line.startswith(":") for line in lines):
            messages.append(("comment", "\n".join(line[2:] for line in lines)))
            continue
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        messages.append((lines[0][7:], json.loads(lines[1][6:])))
    return messages


def test_deltas_then_done_with_usage_and_stats(server, make_client):
    server.enqueue(Reply.sse(STORY))
    stream = make_client("openai/gpt-4o", prefix="/v1").chat().user("Tell me a story").stream()
    body = b"".join(encode(stream, heartbeat=None))
    assert body.startswith(b'event: delta\ndata: {"text":"Once "}\n\nevent: delta\ndata: {"text":"upon\\n\xc3\xa9')
    messages = parse(body)
    assert messages[:2] == [("delta", {"text": "Once "}), ("delta", {"text": "upon\né世"})]
    event, done = messages[2]
    assert event == "done" and len(messages) == 3
    assert done["finish_reason"] == "stop"
    assert done["usage"] == {**USAGE, "reasoning_tokens": None, "cached_tokens": None}
    assert done["stats"]["completion_tokens"] == 3 and done["stats"]["provider"] == "openai"
    assert server.last.path == "/v1/chat/completions" and server.last.json["stream"] is True
    assert server.last.json["messages"] == [{"role": "user", "content": "Tell me a story"}]


def test_thinking_and_tool_call_events(server, make_client):
    server.enqueue(Reply.sse([
        chunk({"role": "assistant", "reasoning_content": "The user wants weather."}),
        chunk({"content": "Checking."}),
        chunk({"tool_calls": [{"index": 0, "id": "call_w", "type": "function",
                               "function": {"name": "weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": \"Paris\"}"}}]}),
        chunk(finish="tool_calls"), chunk(choices=False, usage=USAGE)]))
    stream = make_client("deepseek/deepseek-chat").chat().user("Weather in Paris?").stream()
    messages = parse(b"".join(encode(stream, heartbeat=None)))
    assert messages[:3] == [
        ("thinking", {"text": "The user wants weather."}),
        ("delta", {"text": "Checking."}),
        ("tool_call", {"index": 0, "id": "call_w", "name": "weather", "arguments": {"city": "Paris"},
                       "arguments_raw": "{\"city\": \"Paris\"}"}),
    ]
    assert messages[3][0] == "done" and messages[3][1]["finish_reason"] == "tool_calls"
    assert server.last.path == "/chat/completions"


def test_a_stream_cut_mid_answer_ends_with_an_error_event(server, make_client):
    server.enqueue(Reply.sse(STORY[:3], done=False, cut_after=3))
    stream = make_client("openai/gpt-4o", prefix="/v1").chat().user("x").stream()
    messages = parse(b"".join(encode(stream, heartbeat=None)))
    assert [event for event, _ in messages] == ["delta", "delta", "error"]
    error = messages[-1][1]
    assert error["kind"] == "stream_interrupted" and error["message"]
    assert error["partial_content"] == "Once upon\né世"


def test_an_error_before_the_first_event_is_an_event_and_names_no_key(server, make_client):
    key = "sk-live-secret-abcdef0123456789"
    server.enqueue(Reply(401, {"error": {"message": f"Incorrect API key provided: {key}.",
                                         "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}))
    stream = make_client("openai/gpt-4o", prefix="/v1", api_key=key).chat().user("x").stream()
    body = b"".join(encode(stream))
    assert key.encode() not in body
    assert parse(body) == [("error", {"kind": "authentication", "message": parse(body)[0][1]["message"],
                                      "partial_content": ""})]
    assert server.last.header("authorization") == f"Bearer {key}"


class BrokenStream:
    """A stream whose reader hits a bug (not an AiLibError) carrying a secret in its text."""

    closed = 0

    def __iter__(self):
        from ai_lib_sync.types import ContentDelta

        yield ContentDelta("partial ")
        raise KeyError("Authorization: Bearer sk-leak-0123456789abcdef")

    def close(self):
        self.closed += 1


@pytest.mark.parametrize("heartbeat", [None, 5.0])
def test_a_bug_below_becomes_a_typed_error_event_without_its_text(heartbeat, caplog):
    stream = BrokenStream()
    with caplog.at_level(logging.DEBUG, logger="ai_lib_sync"):
        body = b"".join(encode(stream, heartbeat=heartbeat))
    assert parse(body) == [("delta", {"text": "partial "}), ("error", {
        "kind": "server_error", "message": "the stream failed unexpectedly (KeyError)", "partial_content": "partial "})]
    assert b"sk-leak" not in body and "sk-leak" not in caplog.text and "KeyError" in caplog.text
    assert stream.closed >= 1


def test_heartbeats_while_the_provider_is_silent(server, make_client):
    server.enqueue(Reply.sse(STORY, chunk_delay=0.15))
    stream = make_client("openai/gpt-4o", prefix="/v1").chat().user("x").stream()
    messages = parse(b"".join(encode(stream, heartbeat=0.05)))
    events = [event for event, _ in messages]
    assert events.count("comment") >= 4  # about three per silent gap
    assert [m for m in messages if m[0] != "comment"][:2] == [("delta", {"text": "Once "}), ("delta", {"text": "upon\né世"})]
    assert events[-1] == "done"


@pytest.fixture
def slow():
    provider = SlowProvider(words=80, interval=0.05)
    yield provider
    provider.close()


@pytest.mark.parametrize("heartbeat", [None, 0.02])
def test_closing_the_encoder_closes_the_provider_stream(slow, heartbeat):
    """What a WSGI server does when the browser hangs up: close() the body iterable. The
    upstream must close at once, with no help from the garbage collector."""
    from ai_lib_sync import AiClient

    client = AiClient(f"openai/{MODEL}", base_url=slow.base_url, api_key=API_KEY, max_retries=0, timeout=10)
    gc.disable()
    try:
        body = encode(client.chat().user("hang up").stream(), heartbeat=heartbeat)
        first = next(message for message in body if message.startswith(b"event: delta"))
        assert b"About hang up" in first
        body.close()
        upstream = slow.stream_for("hang up")
        assert upstream.ended.wait(timeout=1.5), "the provider stream was still open 1.5 s after close()"
        assert not upstream.finished
    finally:
        gc.enable()
        client.close()


@pytest.mark.parametrize("heartbeat", [0, -1, True, "5", float("nan")])
def test_a_bad_heartbeat_is_refused_before_any_request(server, make_client, heartbeat):
    stream = make_client("openai/gpt-4o", prefix="/v1").chat().user("x").stream()
    with pytest.raises(ConfigurationError, match="heartbeat"):
        encode(stream, heartbeat=heartbeat)
    assert server.requests == []


def test_formatting():
    assert format_event("delta", {"text": "a\nb"}) == b'event: delta\ndata: {"text":"a\\nb"}\n\n'
    assert format_comment() == b": keep-alive\n\n"
    assert format_comment("two\nlines") == b": two\n: lines\n\n"
    assert HEADERS == {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def test_close_before_the_first_read_still_closes_the_stream():
    """A server may close() a body it never iterated (the client left during the view)."""
    stream = BrokenStream()
    body = encode(stream)
    body.close()
    assert stream.closed == 1
    assert list(body) == []
