"""Cohere v2 Chat: the request Cohere would receive, and the parsing of documented responses,
SSE streams (split at awkward bytes) and flat ``{"message"}`` errors.

Fixtures come from https://docs.cohere.com (reference/chat, reference/chat-stream,
v2/docs/streaming, v2/docs/tool-use, v2/docs/reasoning, reference/errors)."""

from __future__ import annotations

import json

import pytest

from ai_lib_sync import (
    AiClient,
    ConfigurationError,
    InvalidRequestError,
    Message,
    QuotaExhaustedError,
    RateLimitError,
    StreamInterruptedError,
    Tool,
    ToolCall,
)
from ai_lib_sync.dialects import get_dialect
from ai_lib_sync.errors import ERROR_CLASSES
from ai_lib_sync.manifest import load_manifest, search_dirs
from ai_lib_sync.testing import Reply

from .helpers import decode_stream, fixture_bytes, fixture_json, kinds, text_of

MODEL = "cohere/command-r-plus"
WEATHER = Tool("get_weather", "Gets the weather of a given location",
               {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]})
WEATHER_WIRE = {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER.parameters,
                                                 "description": "Gets the weather of a given location"}}
SSE = {"Content-Type": "text/event-stream"}


def ok(name: str = "chat_response.json") -> Reply:
    return Reply(200, fixture_json(f"cohere/{name}"))


def sse_reply(name: str, cut: bytes | None = None) -> Reply:
    data = fixture_bytes(f"cohere/{name}")
    if cut is not None:
        data = data[:data.index(cut)]
    return Reply(chunks=[data[i:i + 7] for i in range(0, len(data), 7)], headers=SSE)


@pytest.fixture
def cohere(make_client):
    return make_client(MODEL)


# --- requests ----------------------------------------------------------------------------


def test_plain_chat_request_and_documented_response(server, cohere):
    server.enqueue(ok())
    response = cohere.chat().user("Hello").execute()
    sent = server.last
    assert (sent.method, sent.path, sent.query) == ("POST", "/v2/chat", {})
    assert sent.header("authorization") == "Bearer test-key-123456"
    assert sent.header("content-type") == "application/json"
    assert sent.header("accept") == "application/json"
    assert sent.json == {"model": "command-r-plus", "messages": [{"role": "user", "content": "Hello"}],
                         "stream": False}
    assert response.content.startswith("LLMs stand for Large Language Models")
    assert response.finish_reason == "stop" and response.tool_calls == []
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.total_tokens) == (87, 386, 473)
    assert response.id == "c14c80c3-18eb-4519-9460-6c92edd8cfb4"
    assert response.provider == "cohere" and response.model == "command-r-plus" and response.thinking is None


def test_system_multi_turn_and_parameters_are_mapped_to_cohere_names(server, cohere):
    server.enqueue(ok())
    (cohere.chat().system("You respond in concise sentences.").user("Hello")
     .assistant("Hi, how can I help you today?").user("Write a haiku.")
     .temperature(0.5).top_p(0.9).max_tokens(100).stop(["\n\n", "END"]).param("seed", 7).execute())
    assert server.last.json == {
        "model": "command-r-plus",
        "messages": [
            {"role": "system", "content": "You respond in concise sentences."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi, how can I help you today?"},
            {"role": "user", "content": "Write a haiku."},
        ],
        "stream": False, "temperature": 0.5, "p": 0.9, "max_tokens": 100,
        "stop_sequences": ["\n\n", "END"], "seed": 7,
    }


def test_tool_call_round_trip(server, cohere):
    server.enqueue(ok("chat_tool_call_response.json"), ok())
    first = cohere.chat().user("What's the weather in Toronto?").tools([WEATHER]).tool_choice("required").execute()
    assert server.last.json == {
        "model": "command-r-plus", "messages": [{"role": "user", "content": "What's the weather in Toronto?"}],
        "stream": False, "tools": [WEATHER_WIRE], "tool_choice": "REQUIRED",
    }
    assert first.finish_reason == "tool_calls" and first.content == ""
    assert first.tool_calls == [ToolCall("get_weather_k88p0m8504w5", "get_weather", {"location": "Toronto"},
                                         '{"location":"Toronto"}')]
    assert first.thinking == "I will use the get_weather tool to find the weather in Toronto."

    call = first.tool_calls[0]
    (cohere.chat().user("What's the weather in Toronto?")
     .messages([Message.assistant(first.thinking, first.tool_calls)])
     .tool_result(call.id, {"temperature": "20C"}).tools([WEATHER]).execute())
    assert server.last.json["messages"] == [
        {"role": "user", "content": "What's the weather in Toronto?"},
        {"role": "assistant", "tool_plan": "I will use the get_weather tool to find the weather in Toronto.",
         "tool_calls": [{"id": "get_weather_k88p0m8504w5", "type": "function",
                         "function": {"name": "get_weather", "arguments": '{"location":"Toronto"}'}}]},
        {"role": "tool", "tool_call_id": "get_weather_k88p0m8504w5", "content": '{"temperature": "20C"}'},
    ]
    assert "tool_choice" not in server.last.json


@pytest.mark.parametrize("choice, wire, tool_names", [
    ("auto", None, ["get_weather", "get_time"]),
    ("none", "NONE", ["get_weather", "get_time"]),
    ("required", "REQUIRED", ["get_weather", "get_time"]),
    ("get_time", "REQUIRED", ["get_time"]),  # no named choice at Cohere: only that tool, required
])
def test_tool_choice_mapping(server, cohere, choice, wire, tool_names):
    server.enqueue(ok())
    cohere.chat().user("hi").tools([WEATHER, Tool("get_time")]).tool_choice(choice).execute()
    body = server.last.json
    assert body.get("tool_choice") == wire
    assert [tool["function"]["name"] for tool in body["tools"]] == tool_names


def test_images_are_image_url_parts(server, cohere, tmp_path):
    png = tmp_path / "dot.png"
    png.write_bytes(b"\x89PNG\r\n")
    server.enqueue(ok())
    cohere.chat().messages([
        {"role": "user", "content": [
            {"type": "text", "text": "Describe these."},
            {"type": "image_url", "image_url": {"url": "https://example.com/chart.jpg", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]},
    ]).user("And this one?", images=[str(png)]).execute()
    assert server.last.json["messages"] == [
        {"role": "user", "content": [
            {"type": "text", "text": "Describe these."},
            {"type": "image_url", "image_url": {"url": "https://example.com/chart.jpg", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]},
        {"role": "user", "content": [
            {"type": "text", "text": "And this one?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
        ]},
    ]


def test_response_format_json_object_and_json_schema(server, cohere):
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    server.enqueue(ok(), ok())
    cohere.chat().user("json please").response_format("json_object").execute()
    assert server.last.json["response_format"] == {"type": "json_object"}
    cohere.chat().user("json please").json_schema(schema, name="person").execute()
    assert server.last.json["response_format"] == {"type": "json_object", "json_schema": schema}


@pytest.mark.parametrize("build, fragment", [
    (lambda chat: chat.user("hi").tool_result("", "x"), "tool_call_id"),
    (lambda chat: chat.user("hi").top_p(1.0), "top_p from 0.01 to 0.99"),
    (lambda chat: chat.user("hi").stop(["a", "b", "c", "d", "e", "f"]), "at most 5 stop sequences"),
])
def test_requests_cohere_cannot_take_fail_before_any_io(server, cohere, build, fragment):
    with pytest.raises(InvalidRequestError, match=fragment):
        build(cohere.chat()).execute()
    assert server.requests == []


# --- responses ---------------------------------------------------------------------------


def _dialect():
    manifest = load_manifest("cohere", search_dirs())
    return get_dialect(manifest.dialect), manifest


def test_thinking_content_is_thinking_not_content():
    dialect, manifest = _dialect()
    response = dialect.decode_response(fixture_bytes("cohere/chat_thinking_response.json"), manifest, "m")
    assert response.content == "Alice's brother has 3 sisters."
    assert response.thinking == "Alice's brother has Alice's 2 sisters plus Alice herself."
    assert response.usage.total_tokens == 2004 + 59


@pytest.mark.parametrize("reason, expected", [
    ("COMPLETE", "stop"), ("STOP_SEQUENCE", "stop"), ("MAX_TOKENS", "length"), ("TOOL_CALL", "tool_calls"),
    ("ERROR", "other"), ("TIMEOUT", "other"), ("CONTENT_BLOCKED", "content_filter"),
])
def test_finish_reasons(reason, expected):
    dialect, manifest = _dialect()
    body = json.dumps({"id": "x", "finish_reason": reason, "message": {"role": "assistant", "content": []}})
    assert dialect.decode_response(body.encode(), manifest, "m").finish_reason == expected


def test_billed_units_are_used_only_without_token_counts():
    dialect, manifest = _dialect()
    body = {"id": "x", "finish_reason": "COMPLETE", "message": {"role": "assistant", "content": []},
            "usage": {"billed_units": {"input_tokens": 3, "output_tokens": 4}}}
    usage = dialect.decode_response(json.dumps(body).encode(), manifest, "m").usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (3, 4, 7)


# --- streams -----------------------------------------------------------------------------


def test_text_stream_split_at_awkward_bytes():
    events = decode_stream("cohere", fixture_bytes("cohere/stream_text.sse"))
    assert text_of(events) == "A large language model — “LLM”."
    assert kinds(events) == ["content_delta"] * 4 + ["usage", "finish"]
    assert events[-2].usage.prompt_tokens == 72 and events[-2].usage.total_tokens == 82
    assert events[-1].finish_reason == "stop"


def test_tool_call_stream_with_tool_plan_as_thinking():
    events = decode_stream("cohere", fixture_bytes("cohere/stream_tool_call.sse"))
    assert kinds(events) == (["thinking_delta"] * 3 + ["tool_call_started"] + ["tool_call_delta"] * 5
                             + ["tool_call_ended", "usage", "finish"])
    assert "".join(e.text for e in events if e.is_thinking_delta) == "I will use the get_weather tool."
    started = events[3].as_tool_call_started
    assert (started.index, started.id, started.name) == (0, "get_weather_nsz5zm3w56q3", "get_weather")
    ended = events[-3].as_tool_call_ended
    assert ended.tool_call.arguments == {"location": "Toronto"} and ended.tool_call.id == "get_weather_nsz5zm3w56q3"
    assert events[-1].finish_reason == "tool_calls"


def test_a_trailing_done_marker_is_ignored_and_citations_are_skipped():
    data = fixture_bytes("cohere/stream_text.sse").replace(
        b"event: content-end",
        b'event: citation-start\ndata: {"type":"citation-start","index":0,"delta":{"message":{"citations":'
        b'{"start":0,"end":1,"text":"A","sources":[]}}}}\n\nevent: citation-end\ndata: {"type":"citation-end","index":0}'
        b"\n\nevent: content-end") + b"data: [DONE]\n\n"
    events = decode_stream("cohere", data)
    assert kinds(events)[-2:] == ["usage", "finish"] and text_of(events) == "A large language model — “LLM”."


def test_stream_cut_before_message_end_is_interrupted():
    data = fixture_bytes("cohere/stream_tool_call.sse")
    with pytest.raises(StreamInterruptedError, match="message-end"):
        decode_stream("cohere", data[:data.index(b"event: tool-call-end")])


@pytest.mark.parametrize("frame", [b"event: error\n", b""], ids=["named", "flat"])
def test_an_error_frame_in_the_stream_raises_the_classified_error(frame):
    data = (fixture_bytes("cohere/stream_text.sse").split(b"event: content-end")[0] + frame
            + b'data: {"message": "You are past the per minute request limit, please wait and try again later."}\n\n')
    with pytest.raises(RateLimitError, match="per minute request limit"):
        decode_stream("cohere", data)


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", fixture_json("cohere/errors.json")["cases"], ids=lambda case: f"{case['status']}-{case['kind']}")
def test_documented_error_bodies_are_classified(case):
    dialect, manifest = _dialect()
    info = dialect.classify_error(case["status"], {}, json.dumps(case["body"]).encode(), manifest)
    assert info.kind == case["kind"] and info.message == case["body"]["message"]


@pytest.mark.parametrize("status, kind", [(500, "server_error"), (503, "overloaded"), (498, "authentication")])
def test_status_only_errors(status, kind):
    dialect, manifest = _dialect()
    assert dialect.classify_error(status, {}, b'{"message": "x"}', manifest).kind == kind


def test_http_errors_end_to_end_carry_status_and_stay_unretried_when_terminal(server, make_client):
    monthly = fixture_json("cohere/errors.json")["cases"][8]["body"]
    server.enqueue(Reply(429, monthly))
    with pytest.raises(QuotaExhaustedError) as caught:
        make_client(MODEL, max_retries=2).chat().user("hi").execute()
    assert caught.value.status_code == 429 and not caught.value.retryable and len(server.requests) == 1
    assert "test-key-123456" not in repr(caught.value)
    assert isinstance(caught.value, ERROR_CLASSES["quota_exhausted"])


# --- end to end --------------------------------------------------------------------------


def test_stream_end_to_end(server, cohere):
    server.enqueue(sse_reply("stream_tool_call.sse"))
    stream = cohere.chat().user("Weather in Toronto?").tools([WEATHER]).stream()
    events = list(stream)
    assert server.last.json["stream"] is True and server.last.header("accept") == "text/event-stream"
    assert kinds(events)[-3:] == ["tool_call_ended", "usage", "finish"]
    final = stream.final_response()
    assert final.finish_reason == "tool_calls" and final.tool_calls[0].arguments == {"location": "Toronto"}
    assert final.thinking == "I will use the get_weather tool."
    assert stream.stats.total_tokens == 1199 and stream.stats.provider == "cohere"


def test_execute_with_stats_end_to_end(server, make_client):
    server.enqueue(ok())
    response, stats = make_client("cohere/command-r-08-2024").chat().user("Hello").execute_with_stats()
    assert (stats.prompt_tokens, stats.completion_tokens, stats.total_tokens) == (87, 386, 473)
    assert stats.cost_usd == pytest.approx((87 * 0.15 + 386 * 0.6) / 1e6)
    assert stats.provider == "cohere" and response.content


def test_interrupted_stream_end_to_end_keeps_partial_content(server, cohere):
    server.enqueue(sse_reply("stream_text.sse", cut=b"event: content-end"))
    stream = cohere.chat().user("What is an LLM?").stream()
    with pytest.raises(StreamInterruptedError) as caught:
        list(stream)
    assert caught.value.partial_content == "A large language model — “LLM”."
    assert caught.value.provider == "cohere"


# --- configuration -----------------------------------------------------------------------


def test_key_and_base_url_from_the_sdk_environment_variables(server, monkeypatch):
    monkeypatch.setenv("COHERE_API_KEY", "alias-key-0000")
    monkeypatch.setenv("CO_API_URL", server.base_url)
    server.enqueue(ok(), ok())
    with AiClient(MODEL, max_retries=0) as client:
        client.chat().user("hi").execute()
    assert server.last.header("authorization") == "Bearer alias-key-0000"
    monkeypatch.setenv("CO_API_KEY", "sdk-key-1111")  # the SDK's own variable wins over the alias
    with AiClient(MODEL, max_retries=0) as client:
        client.chat().user("hi").execute()
    assert server.last.header("authorization") == "Bearer sdk-key-1111"


def test_missing_key_names_the_variables():
    with pytest.raises(ConfigurationError, match="CO_API_KEY, COHERE_API_KEY"):
        AiClient(MODEL)


def test_default_endpoint_is_the_documented_one():
    with AiClient(MODEL, api_key="k" * 8) as client:
        assert client.base_url == "https://api.cohere.com"
