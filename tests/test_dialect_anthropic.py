"""The Anthropic Messages dialect: the request Anthropic receives, documented responses and
streams (split at awkward byte boundaries), the error taxonomy, and Anthropic-compatible
endpoints as pure manifests.

Wire shapes follow https://docs.anthropic.com/en/api/messages, .../build-with-claude/streaming,
.../tool-use/overview, .../extended-thinking, .../vision, .../structured-outputs and
https://docs.anthropic.com/en/api/errors; the fixtures name their page."""

from __future__ import annotations

import base64
import json

import pytest

from ai_lib_sync import AiClient, ToolCall
from ai_lib_sync.dialects import get_dialect
from ai_lib_sync.errors import (
    AuthenticationError,
    ContextLengthError,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    QuotaExhaustedError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from ai_lib_sync.manifest import load_manifest, search_dirs
from ai_lib_sync.testing import Reply
from ai_lib_sync.types import (
    ContentDelta,
    FinishEvent,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallStarted,
    Usage,
    UsageEvent,
)

from .helpers import awkward_chunks, decode_stream, fixture_bytes, fixture_json, kinds, text_of

MODEL = "claude-3-5-sonnet-20241022"
KEY = "test-key-123456"
DIALECT = get_dialect("anthropic_messages")
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a given location",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}
WEATHER_WIRE = {"name": "get_weather", "description": "Get the current weather in a given location",
                "input_schema": WEATHER["function"]["parameters"]}


def manifest(provider: str = "anthropic"):
    return load_manifest(provider, search_dirs())


def sse_reply(name: str, **kwargs) -> Reply:
    """A documented stream served in awkward HTTP chunks, as a real server might cut it."""
    return Reply(chunks=awkward_chunks(fixture_bytes(f"anthropic/{name}"), (7, 19, 3, 64)),
                 headers={"Content-Type": "text/event-stream"}, **kwargs)


def sse(*events: dict) -> bytes:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


@pytest.fixture
def client(make_client):
    return make_client(f"anthropic/{MODEL}")


def sent(server, request_builder) -> dict:
    """Execute against the loopback server; return the JSON body Anthropic would receive."""
    server.enqueue(Reply(200, fixture_json("anthropic/message_text.json")))
    request_builder.execute()
    return server.last.json


# --- the outgoing request ------------------------------------------------------------------


def test_plain_chat_request_path_headers_and_exact_body(server, client):
    server.enqueue(Reply(200, fixture_json("anthropic/message_text.json")))
    response = client.chat().user("Hello").execute()
    request = server.last
    assert (request.method, request.path, request.query) == ("POST", "/v1/messages", {})
    assert request.header("x-api-key") == KEY
    assert request.header("anthropic-version") == "2023-06-01"
    assert request.header("content-type") == "application/json"
    assert request.header("authorization") is None
    assert request.json == {"model": MODEL, "max_tokens": 4096,  # the manifest's default
                            "messages": [{"role": "user", "content": "Hello"}]}
    assert response.content == "Hi! My name is Claude."
    assert (response.finish_reason, response.provider, response.id) == ("stop", "anthropic", "msg_013Zva2CMHLNnXjNJJKqJ2EF")


def test_system_prompts_go_top_level_and_same_role_turns_merge(server, client):
    body = sent(server, client.chat().system("You are terse.").user("Hi").assistant("Hello.")
                .user("Tell me").user("a joke").temperature(0.5).top_p(0.9).max_tokens(200).stop("\n\n"))
    assert body == {
        "model": MODEL, "system": "You are terse.", "max_tokens": 200, "temperature": 0.5, "top_p": 0.9,
        "stop_sequences": ["\n\n"],
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": [{"type": "text", "text": "Tell me"}, {"type": "text", "text": "a joke"}]},
        ],
    }
    body = sent(server, client.chat().system("Rule one.").user("Hi").system("Rule two.").stop(["END", "STOP"]))
    assert body["system"] == [{"type": "text", "text": "Rule one."}, {"type": "text", "text": "Rule two."}]
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    assert body["stop_sequences"] == ["END", "STOP"]


def test_tool_call_round_trip_history_uses_tool_use_and_tool_result_blocks(server, client):
    history = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": "Checking both.", "tool_calls": [
            {"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}},
            {"id": "toolu_02", "type": "function", "function": {"name": "get_weather", "arguments": '{"location": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_01", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_02", "content": "24C"},
    ]
    body = sent(server, client.chat().messages(history).user("Which is warmer?").tools([WEATHER]))
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"location": "Paris"}},
            {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {"location": "Rome"}}]},
        {"role": "user", "content": [  # tool results first, then the new text, in one user turn
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "toolu_02", "content": "24C"},
            {"type": "text", "text": "Which is warmer?"}]},
    ]
    body = sent(server, client.chat().user("Weather?").assistant(None, [ToolCall("toolu_9", "get_weather", {"location": "Oslo"})])
                .tool_result("toolu_9", {"temp": -3}))
    assert body["messages"][1:] == [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"location": "Oslo"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": '{"temp": -3}'}]},
    ]


def test_images_by_url_base64_and_local_file(server, client, tmp_path):
    png = b"\x89PNG\r\n\x1a\nfake-image-bytes"
    path = tmp_path / "chart.png"
    path.write_bytes(png)
    encoded = base64.b64encode(png).decode()
    body = sent(server, client.chat().user("What is in these?", images=[
        "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg",
        f"data:image/jpeg;base64,{encoded}", str(path)]))
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "What is in these?"},
        {"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": encoded}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": encoded}},
    ]}]


@pytest.mark.parametrize("choice, wire", [
    ("auto", {"type": "auto"}), ("none", {"type": "none"}), ("required", {"type": "any"}),
    ("get_weather", {"type": "tool", "name": "get_weather"}),
])
def test_tools_and_each_tool_choice(server, client, choice, wire):
    body = sent(server, client.chat().user("Weather in Paris?").tools([WEATHER]).tool_choice(choice))
    assert body["tools"] == [WEATHER_WIRE]
    assert body["tool_choice"] == wire


def test_tool_choice_without_tools_is_not_sent_and_tool_without_description_omits_it(server, client):
    assert "tool_choice" not in sent(server, client.chat().user("Hi").tool_choice("auto"))
    body = sent(server, client.chat().user("Hi").tools([{"type": "function", "function": {"name": "ping"}}]))
    assert body["tools"] == [{"name": "ping", "input_schema": {"type": "object", "properties": {}}}]


def test_param_extras_pass_through_and_streams_ask_for_sse(server, client):
    server.enqueue(sse_reply("stream_text.sse"))
    stream = (client.chat().user("Think").max_tokens(16000).param("thinking", {"type": "enabled", "budget_tokens": 10000})
              .param("top_k", 5).param("metadata", {"user_id": "u-1"}).stream())
    assert stream.text() == "Hello!"
    assert server.last.json == {
        "model": MODEL, "max_tokens": 16000, "stream": True, "top_k": 5, "metadata": {"user_id": "u-1"},
        "thinking": {"type": "enabled", "budget_tokens": 10000},
        "messages": [{"role": "user", "content": "Think"}]}
    assert server.last.header("accept") == "text/event-stream"


def test_temperature_above_one_is_refused_before_any_request(server, client):
    with pytest.raises(InvalidRequestError, match="anthropic accepts temperature from 0 to 1, got 1.5"):
        client.chat().user("Hi").temperature(1.5).execute()
    assert server.requests == []


def test_cache_control_on_a_message_marks_its_last_block(server, client):
    body = sent(server, client.chat().messages([
        {"role": "system", "content": "Long policy text", "cache_control": {"type": "ephemeral"}},
        {"role": "user", "content": "Question"}]))
    assert body["system"] == [{"type": "text", "text": "Long policy text", "cache_control": {"type": "ephemeral"}}]


# --- structured output ----------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
          "additionalProperties": False}


def test_json_schema_uses_structured_outputs_where_the_model_has_them(server, make_client):
    client = make_client("anthropic/claude-sonnet-4-5-20250929")
    body = sent(server, client.chat().user("Extract").json_schema(SCHEMA, name="person"))
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert "tools" not in body and "tool_choice" not in body


def test_json_schema_elsewhere_is_a_forced_tool_whose_input_comes_back_as_content(server, client):
    tool = "ai_lib_sync_json_response"
    server.enqueue(Reply(200, {"id": "msg_1", "type": "message", "role": "assistant", "model": MODEL,
                               "content": [{"type": "tool_use", "id": "toolu_1", "name": tool, "input": {"name": "Ada"}}],
                               "stop_reason": "tool_use", "usage": {"input_tokens": 40, "output_tokens": 9}}))
    response = client.chat().user("Extract").json_schema(SCHEMA, name="person").execute()
    body = server.last.json
    assert body["tools"] == [{"name": tool, "description": "Give the answer as a JSON object matching this input schema.",
                              "input_schema": SCHEMA}]
    assert body["tool_choice"] == {"type": "tool", "name": tool}
    assert "output_config" not in body
    assert json.loads(response.content) == {"name": "Ada"}
    assert (response.tool_calls, response.finish_reason) == ([], "stop")
    with pytest.raises(InvalidRequestError, match="cannot be combined with tool_choice"):
        client.chat().user("x").tools([WEATHER]).tool_choice("required").json_schema(SCHEMA).execute()

    stream = sse({"type": "message_start", "message": {"usage": {"input_tokens": 40, "output_tokens": 1}}},
                 {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": tool, "input": {}}},
                 {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"name": '}},
                 {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '"Ada"}'}},
                 {"type": "content_block_stop", "index": 0},
                 {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
                 {"type": "message_stop"})
    events = decode_stream("anthropic", stream)
    assert text_of(events) == '{"name": "Ada"}'
    assert kinds(events) == ["content_delta", "content_delta", "usage", "finish"]
    assert events[-1] == FinishEvent("stop")


# --- responses ------------------------------------------------------------------------------


def test_text_response_and_usage():
    response = DIALECT.decode_response(fixture_bytes("anthropic/message_text.json"), manifest(), MODEL)
    assert response.content == "Hi! My name is Claude."
    assert response.usage == Usage(2095, 503, 2598)
    assert (response.model, response.thinking, response.tool_calls) == (MODEL, None, [])


def test_tool_use_response_gives_tool_calls_with_parsed_input():
    response = DIALECT.decode_response(fixture_bytes("anthropic/message_tool_use.json"), manifest(), MODEL)
    assert response.content == "I'll check the current weather in San Francisco for you."
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("toolu_01A09q90qw90lq917835lq9", "get_weather", {"location": "San Francisco, CA", "unit": "celsius"})]
    assert response.finish_reason == "tool_calls"


def test_thinking_response_separates_thinking_from_content():
    response = DIALECT.decode_response(fixture_bytes("anthropic/message_thinking.json"), manifest(), MODEL)
    assert response.thinking == "Let me analyze this step by step..."
    assert response.content == "Based on my analysis..."


@pytest.mark.parametrize("stop_reason, finish", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("refusal", "content_filter"), ("pause_turn", "other"), (None, "stop"),
])
def test_stop_reasons_map_to_finish_reasons(stop_reason, finish):
    content = [{"type": "text", "text": "x"}]
    if stop_reason == "tool_use":
        content.append({"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}})
    body = json.dumps({"type": "message", "content": content, "stop_reason": stop_reason}).encode()
    assert DIALECT.decode_response(body, manifest(), MODEL).finish_reason == finish


def test_cache_reads_and_writes_count_as_prompt_tokens():
    body = json.dumps({"type": "message", "content": [], "stop_reason": "end_turn", "usage": {
        "input_tokens": 50, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 2000,
        "output_tokens": 20}}).encode()
    usage = DIALECT.decode_response(body, manifest(), MODEL).usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, usage.cached_tokens) == (3050, 20, 3070, 2000)


# --- streams --------------------------------------------------------------------------------


@pytest.mark.parametrize("awkward", [False, True])
def test_text_stream(awkward):
    events = decode_stream("anthropic", fixture_bytes("anthropic/stream_text.sse"), awkward=awkward)
    assert events == [ContentDelta("Hello"), ContentDelta("!"), UsageEvent(Usage(25, 15, 40)), FinishEvent("stop")]


@pytest.mark.parametrize("awkward", [False, True])
def test_tool_use_stream_assembles_input_json_deltas(awkward):
    events = decode_stream("anthropic", fixture_bytes("anthropic/stream_tool_use.sse"), awkward=awkward)
    assert text_of(events) == "Okay, let's check the weather for San Francisco, CA:"
    tool_events = [e for e in events if e.kind.startswith("tool_call")]
    assert tool_events[0] == ToolCallStarted(0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather")  # index 0, not block 1
    fragments = [e.arguments_fragment for e in tool_events if e.is_tool_call_delta]
    assert "".join(fragments) == '{"location": "San Francisco, CA", "unit": "fahrenheit"}' and "" not in fragments
    assert all(e.index == 0 for e in tool_events) and kinds(tool_events).count("tool_call_ended") == 1
    ended = tool_events[-1].as_tool_call_ended.tool_call
    assert (ended.id, ended.name, ended.arguments) == (
        "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather", {"location": "San Francisco, CA", "unit": "fahrenheit"})
    assert events[-2:] == [UsageEvent(Usage(472, 89, 561)), FinishEvent("tool_calls")]


@pytest.mark.parametrize("awkward", [False, True])
def test_thinking_stream_ignores_signatures(awkward):
    events = decode_stream("anthropic", fixture_bytes("anthropic/stream_thinking.sse"), awkward=awkward)
    thinking = "".join(e.text for e in events if e.is_thinking_delta)
    assert thinking.startswith("I need to find the GCD") and thinking.endswith("= 21") and "2 × 462" in thinking
    assert text_of(events) == "The greatest common divisor (GCD) of 1071 and 462 is **21**."
    assert kinds(events) == ["thinking_delta", "thinking_delta", "content_delta", "finish"]  # no usage was sent


def test_parallel_tool_calls_are_numbered_among_tool_calls():
    def tool(block, call_id, fragment):
        return [{"type": "content_block_start", "index": block, "content_block": {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {}}},
                {"type": "content_block_delta", "index": block, "delta": {"type": "input_json_delta", "partial_json": fragment}},
                {"type": "content_block_stop", "index": block}]
    data = sse({"type": "message_start", "message": {"usage": {"input_tokens": 10, "output_tokens": 1}}},
               {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
               {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Two cities."}},
               {"type": "content_block_stop", "index": 0},
               *tool(1, "toolu_a", '{"location": "Paris"}'), *tool(2, "toolu_b", '{"location": "Rome"}'),
               {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}},
               {"type": "message_stop"})
    events = decode_stream("anthropic", data)
    assert [e for e in events if e.is_tool_call_started] == [ToolCallStarted(0, "toolu_a", "get_weather"),
                                                             ToolCallStarted(1, "toolu_b", "get_weather")]
    assert [e for e in events if e.is_tool_call_delta] == [ToolCallDelta(0, '{"location": "Paris"}'),
                                                           ToolCallDelta(1, '{"location": "Rome"}')]
    ended = [(e.index, e.tool_call.arguments) for e in events if e.is_tool_call_ended]
    assert ended == [(0, {"location": "Paris"}), (1, {"location": "Rome"})]
    assert events[0] == ThinkingDelta("Two cities.") and events[-1] == FinishEvent("tool_calls")


def test_output_usage_is_cumulative_the_last_count_wins():
    data = sse({"type": "message_start", "message": {"usage": {"input_tokens": 25, "cache_read_input_tokens": 5, "output_tokens": 1}}},
               {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
               {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
               {"type": "message_delta", "delta": {"stop_reason": None}, "usage": {"output_tokens": 5}},
               {"type": "content_block_stop", "index": 0},
               {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 12, "input_tokens": None}},
               {"type": "message_stop"})
    events = decode_stream("anthropic", data)
    assert events[-2:] == [UsageEvent(Usage(30, 12, 42, cached_tokens=5)), FinishEvent("length")]


def test_error_event_mid_stream_raises_the_classified_error():
    with pytest.raises(OverloadedError) as caught:
        decode_stream("anthropic", fixture_bytes("anthropic/stream_error.sse"))
    assert (caught.value.kind, caught.value.code, caught.value.message) == ("overloaded", "overloaded_error", "Overloaded")
    assert caught.value.retryable


@pytest.mark.parametrize("awkward", [False, True])
def test_stream_cut_before_message_stop_is_interrupted(awkward):
    data = fixture_bytes("anthropic/stream_text.sse")
    cut = data[:data.index(b"event: message_stop")]
    with pytest.raises(StreamInterruptedError, match="before message_stop"):
        decode_stream("anthropic", cut, awkward=awkward)


# --- end to end through AiClient ----------------------------------------------------------------


def test_execute_with_stats_counts_tokens_and_cost(server, client):
    server.enqueue(Reply(200, fixture_json("anthropic/message_text.json"), headers={"request-id": "req_018EeWyXxfu5pfWkrYcMdjWG"}))
    response, stats = client.chat().user("Hello").execute_with_stats()
    assert response.content == "Hi! My name is Claude."
    assert (stats.prompt_tokens, stats.completion_tokens, stats.total_tokens) == (2095, 503, 2598)
    assert stats.cost_usd == pytest.approx((2095 * 3 + 503 * 15) / 1_000_000)
    assert (stats.provider, stats.request_id, stats.retries) == ("anthropic", "req_018EeWyXxfu5pfWkrYcMdjWG", 0)


def test_stream_end_to_end_tool_use(server, client):
    server.enqueue(sse_reply("stream_tool_use.sse"))
    stream = client.chat().user("Weather in SF?").tools([WEATHER]).stream()
    events = list(stream)
    assert server.last.json["stream"] is True and server.last.path == "/v1/messages"
    final = stream.final_response()
    assert final.content == "Okay, let's check the weather for San Francisco, CA:"
    assert [(c.name, c.arguments) for c in final.tool_calls] == [("get_weather", {"location": "San Francisco, CA", "unit": "fahrenheit"})]
    assert (final.finish_reason, final.usage) == ("tool_calls", Usage(472, 89, 561))
    assert stream.stats.completion_tokens == 89 and stream.stats.time_to_first_token_ms is not None
    assert kinds(events)[-2:] == ["usage", "finish"]


def test_stream_end_to_end_error_event_carries_partial_content(server, client):
    server.enqueue(sse_reply("stream_error.sse"))
    with pytest.raises(OverloadedError) as caught:
        for _ in client.chat().user("Hello").stream():
            pass
    assert caught.value.partial_content == "Hello"
    assert (caught.value.provider, caught.value.model) == ("anthropic", MODEL)


def test_stream_end_to_end_connection_cut_before_message_stop(server, client):
    data = fixture_bytes("anthropic/stream_text.sse")
    server.enqueue(Reply(chunks=[data[:data.index(b"event: message_delta")]], cut_after=1,
                         headers={"Content-Type": "text/event-stream"}))
    with pytest.raises(StreamInterruptedError) as caught:
        for _ in client.chat().user("Hello").stream():
            pass
    assert caught.value.partial_content == "Hello!"


def test_529_is_retried_honouring_retry_after(server, make_client):
    client = make_client(f"anthropic/{MODEL}", max_retries=1)
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    server.enqueue(Reply(529, overloaded, headers={"retry-after": "0"}),
                   Reply(200, fixture_json("anthropic/message_text.json")))
    response, stats = client.chat().user("Hello").execute_with_stats()
    assert response.content == "Hi! My name is Claude." and stats.retries == 1 and len(server.requests) == 2


def test_environment_supplies_key_and_base_url(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env-key-0000")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    server.enqueue(Reply(200, fixture_json("anthropic/message_text.json")))
    with AiClient("claude/claude-3-5-haiku-latest", max_retries=0) as client:  # the alias
        assert client.provider == "anthropic"
        client.chat().user("Hi").execute()
    assert server.last.header("x-api-key") == "sk-ant-env-key-0000"
    assert server.last.json["model"] == "claude-3-5-haiku-latest"


# --- errors ---------------------------------------------------------------------------------

ERRORS = [
    (400, "invalid_request_error", "messages: roles must alternate", InvalidRequestError, "invalid_request"),
    (400, "invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum", ContextLengthError, "context_length"),
    (400, "invalid_request_error", "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
     QuotaExhaustedError, "quota_exhausted"),
    (401, "authentication_error", "invalid x-api-key", AuthenticationError, "authentication"),
    (402, "billing_error", "There is an issue with your billing.", QuotaExhaustedError, "quota_exhausted"),
    (403, "permission_error", "Your API key does not have permission to use the specified resource.", PermissionDeniedError, "permission"),
    (404, "not_found_error", "The requested resource could not be found.", NotFoundError, "not_found"),
    (413, "request_too_large", "Request exceeds the maximum allowed number of bytes.", ContextLengthError, "context_length"),
    (429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit", RateLimitError, "rate_limited"),
    (500, "api_error", "An unexpected error has occurred internal to Anthropic's systems.", ServerError, "server_error"),
    (529, "overloaded_error", "Overloaded", OverloadedError, "overloaded"),
]


@pytest.mark.parametrize("status, err_type, message, cls, kind", ERRORS)
def test_documented_errors_are_classified(server, client, status, err_type, message, cls, kind):
    envelope = {"type": "error", "error": {"type": err_type, "message": message}, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}
    server.enqueue(Reply(status, envelope, headers={"request-id": "req_011CSHoEeqs5C35K2UUqR7Fy"}))
    with pytest.raises(cls) as caught:
        client.chat().user("Hello").execute()
    error = caught.value
    assert (error.kind, error.status_code, error.code, error.message) == (kind, status, err_type, message)
    assert error.request_id == "req_011CSHoEeqs5C35K2UUqR7Fy" and KEY not in str(error) + repr(error) + (error.body or "")
    # The same payload as an ``event: error`` inside a stream (no HTTP status) gets the same kind.
    frame = sse({"type": "message_start", "message": {}}, envelope)
    with pytest.raises(cls):
        decode_stream("anthropic", frame)


def test_documented_error_fixture_and_non_json_bodies():
    info = DIALECT.classify_error(404, {}, fixture_bytes("anthropic/error_not_found.json"), manifest())
    assert (info.kind, info.type, info.message) == ("not_found", "not_found_error", "The requested resource could not be found.")
    assert DIALECT.classify_error(413, {}, b"<html>413 Request Entity Too Large</html>", manifest()).kind == "context_length"
    assert DIALECT.classify_error(529, {}, b"", manifest()).kind == "overloaded"
    assert DIALECT.classify_error(500, {}, b'{"type":"error","error":{"type":"invalid_request_error","message":"?"}}',
                                  manifest()).kind == "server_error"  # a 5xx is never the caller's fault


def test_error_envelope_with_status_200_is_raised():
    with pytest.raises(OverloadedError):
        DIALECT.decode_response(b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', manifest(), MODEL)


# --- Anthropic-compatible endpoints: manifests, no code --------------------------------------


def test_deepseek_anthropic_endpoint_is_a_manifest(server, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_KEY", "ds-key-987654321")
    server.enqueue(Reply(200, {"id": "msg_1", "type": "message", "role": "assistant", "model": "deepseek-v4-flash",
                               "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn",
                               "usage": {"input_tokens": 8, "output_tokens": 2}}))
    with AiClient("deepseek-anthropic/deepseek-v4-flash", base_url=server.base_url, max_retries=0) as client:
        assert client.manifest.endpoint["base_url"] == "https://api.deepseek.com/anthropic"
        response = client.chat().system("Be brief.").user("Hi").temperature(1.5).json_schema(SCHEMA).execute()
    request = server.last
    assert request.path == "/v1/messages" and request.header("x-api-key") == "ds-key-987654321"
    assert request.json["system"] == "Be brief." and request.json["temperature"] == 1.5  # no 0..1 narrowing here
    assert request.json["tool_choice"] == {"type": "tool", "name": "ai_lib_sync_json_response"}  # no native structured output
    assert (response.content, response.provider, response.usage.total_tokens) == ("Hi", "deepseek-anthropic", 10)
