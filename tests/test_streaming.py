"""Streaming over a real loopback server with the OpenAI dialect: events, assembly, faults.

Fixture shapes follow https://platform.openai.com/docs/api-reference/chat-streaming."""

from __future__ import annotations

import json

import pytest

from ai_lib_sync import APITimeoutError, RateLimitError, StreamInterruptedError
from ai_lib_sync.errors import ServerError
from ai_lib_sync.testing import Reply

from .helpers import awkward_chunks, kinds


def chunk(delta=None, finish=None, usage=None, choices=True):
    data = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
    data["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if choices else []
    if usage:
        data["usage"] = usage
    return data


STORY = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Once "}), chunk({"content": "upon é世"}),
         chunk(finish="stop"), chunk(choices=False, usage={"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8})]


def test_stream_events_usage_and_final_response(server, make_client):
    server.enqueue(Reply.sse(STORY))
    stream = make_client("openai/gpt-4o").chat().user("Tell me a story").stream()
    events = list(stream)
    assert kinds(events) == ["content_delta", "content_delta", "usage", "finish"]
    final = stream.final_response()
    assert final.content == "Once upon é世" and final.finish_reason == "stop"
    assert final.usage.total_tokens == 8 and stream.stats.completion_tokens == 3
    assert stream.stats.time_to_first_token_ms is not None and stream.stats.retries == 0
    body = server.last.json
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert server.last.header("accept") == "text/event-stream"


def test_stream_split_at_awkward_byte_boundaries(server, make_client):
    raw = "".join(f"data: {json.dumps(c, ensure_ascii=False)}\n\n" for c in STORY) + "data: [DONE]\n\n"
    server.enqueue(Reply(200, chunks=awkward_chunks(raw.encode()), headers={"content-type": "text/event-stream"}))
    stream = make_client("openai/gpt-4o").chat().user("x").stream()
    assert stream.text() == "Once upon é世"


def test_tool_call_fragments_are_assembled_by_index(server, make_client):
    server.enqueue(Reply.sse([
        chunk({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "time", "arguments": "{\"tz\":"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": "}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": " \"UTC\"}"}}]}),
        chunk(finish="tool_calls"),
    ]))
    stream = make_client("openai/gpt-4o").chat().user("x").tools([{"type": "function", "function": {"name": "weather"}}]).stream()
    events = list(stream)
    started = [e for e in events if e.is_tool_call_started]
    assert [(e.index, e.id, e.name) for e in started] == [(0, "call_a", "weather"), (1, "call_b", "time")]
    ended = [e.as_tool_call_ended for e in events if e.is_tool_call_ended]
    assert [e.tool_call.arguments for e in ended] == [{"city": "Paris"}, {"tz": "UTC"}]
    assert events[-1].as_finish.finish_reason == "tool_calls"
    assert [c.name for c in stream.final_response().tool_calls] == ["weather", "time"]


def test_comments_and_keepalives_are_ignored(server, make_client):
    frames = [": keep-alive\n\n", ": OPENROUTER PROCESSING\n\n"] + [f"data: {json.dumps(c)}\n\n" for c in STORY] + ["data: [DONE]\n\n"]
    server.enqueue(Reply(200, chunks=frames, headers={"content-type": "text/event-stream"}))
    assert make_client("openai/gpt-4o").chat().user("x").stream().text() == "Once upon é世"


def test_error_frame_mid_stream_raises_typed_error_with_partial_content(server, make_client):
    server.enqueue(Reply.sse([chunk({"content": "Hello"}), chunk({"content": " wor"}),
                              {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}],
                             done=False))
    stream = make_client("openai/gpt-4o", max_retries=2).chat().user("x").stream()
    seen = []
    with pytest.raises(RateLimitError) as caught:
        for event in stream:
            seen.append(event)
    assert caught.value.partial_content == "Hello wor"
    assert caught.value.provider == "openai" and caught.value.model == "gpt-4o"
    assert len(server.requests) == 1, "never retried once an event was yielded"


def test_stream_cut_without_done_raises_stream_interrupted(server, make_client):
    server.enqueue(Reply.sse([chunk({"content": "Hel"}), chunk({"content": "lo"})], done=False))
    with pytest.raises(StreamInterruptedError) as caught:
        list(make_client("openai/gpt-4o").chat().user("x").stream())
    assert caught.value.partial_content == "Hello" and "[DONE]" in str(caught.value)


def test_connection_dropped_mid_stream_raises_with_partial_content(server, make_client):
    server.enqueue(Reply.sse(STORY, cut_after=2))
    with pytest.raises(StreamInterruptedError) as caught:
        list(make_client("openai/gpt-4o").chat().user("x").stream())
    assert caught.value.partial_content == "Once "


def test_idle_stream_times_out_even_with_keepalive_comments(server, make_client):
    server.enqueue(Reply(200, chunks=[f"data: {json.dumps(chunk({'content': 'a'}))}\n\n"] + [": keep-alive\n\n"] * 40,
                         chunk_delay=0.05, headers={"content-type": "text/event-stream"}))
    with pytest.raises(APITimeoutError, match="no stream event") as caught:
        list(make_client("openai/gpt-4o", stream_idle_timeout=0.5).chat().user("x").stream())
    assert caught.value.partial_content == "a"


def test_errors_before_the_first_event_are_retried(server, make_client):
    server.enqueue(Reply(503, {"error": {"message": "busy"}}, headers={"retry-after": "0"}), Reply.sse(STORY))
    stream = make_client("openai/gpt-4o", max_retries=1).chat().user("x").stream()
    assert stream.text() == "Once upon é世" and stream.stats.retries == 1


def test_http_error_on_open_is_typed(server, make_client):
    server.enqueue(Reply(500, {"error": {"message": "boom", "type": "server_error"}}))
    with pytest.raises(ServerError):
        list(make_client("openai/gpt-4o").chat().user("x").stream())


def test_leaving_early_closes_the_connection_and_later_calls_work(server, make_client):
    server.enqueue(Reply.sse([chunk({"content": str(i)}) for i in range(50)], chunk_delay=0.01), Reply.sse(STORY))
    client = make_client("openai/gpt-4o")
    with client.chat().user("x").stream() as stream:
        for _event in stream:
            break
    with pytest.raises(Exception, match="exhausted"):
        stream.final_response()
    assert client.chat().user("again").stream().text() == "Once upon é世"


def test_stream_connection_is_reused_after_a_complete_stream(server, make_client):
    server.handler = lambda request: Reply.sse(STORY)
    client = make_client("openai/gpt-4o")
    for _ in range(3):
        assert client.chat().user("x").stream().text() == "Once upon é世"
    assert server.connections == 1


def test_stream_is_a_plain_iterator(server, make_client):
    server.enqueue(Reply.sse(STORY))
    stream = make_client("openai/gpt-4o").chat().user("x").execute_stream()
    assert next(stream).as_content_delta.text == "Once "
    assert iter(stream) is iter(stream)


def test_a_json_error_body_instead_of_a_stream_keeps_the_providers_message(server, make_client):
    server.enqueue(Reply(200, {"error": {"message": "model gpt-9 does not exist", "code": "model_not_found"}}))
    with pytest.raises(Exception) as caught:
        list(make_client("openai/gpt-4o").chat().user("x").stream())
    assert caught.value.kind == "not_found" and "gpt-9 does not exist" in str(caught.value)


def test_close_from_another_thread_stops_the_reader(server, make_client):
    import threading

    server.enqueue(Reply.sse([chunk({"content": str(i)}) for i in range(400)], chunk_delay=0.02))
    stream = make_client("openai/gpt-4o").chat().user("x").stream()
    seen, outcome = [], []

    def read():
        try:
            for event in stream:
                seen.append(event)
            outcome.append("exhausted")
        except Exception as error:  # the cut connection surfaces as a typed error
            outcome.append(error)

    reader = threading.Thread(target=read)
    reader.start()
    while not seen:
        threading.Event().wait(0.01)
    stream.close()
    reader.join(timeout=5)
    assert not reader.is_alive()
    assert len(seen) < 400 and isinstance(outcome[0], StreamInterruptedError), outcome
    assert outcome[0].partial_content == "".join(event.text for event in seen)
