"""The Gemini ``generateContent`` dialect: the request Google would receive, and the parsing of
documented responses, SSE streams (CRLF framing) and error envelopes.

Fixtures in tests/fixtures/gemini/ follow https://ai.google.dev/api/generate-content and the
guides named in each file's ``_source``.
"""

from __future__ import annotations

import base64
import json

import pytest

from ai_lib_sync import AiClient
from ai_lib_sync.dialects import get_dialect
from ai_lib_sync.dialects.gemini import openapi_schema
from ai_lib_sync.errors import (
    AiLibError,
    ConfigurationError,
    ContentFilterError,
    InvalidRequestError,
    OverloadedError,
    RateLimitError,
    StreamInterruptedError,
)
from ai_lib_sync.manifest import load_manifest, search_dirs
from ai_lib_sync.testing import Reply
from ai_lib_sync.types import Message, Tool, ToolCall, Usage
from tests.helpers import awkward_chunks, decode_stream, fixture_bytes, fixture_json, kinds, text_of

KEY = "test-gemini-key-0123456789"  # not key-shaped: redaction must come from knowing the secret
AIZA_KEY = "AIza" + "SyD-0123456789abcdefghijklmnopqrstu"  # the shape Google's keys have
MODEL_PATH = "/v1beta/models/gemini-2.0-flash:generateContent"
STREAM_PATH = "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
WEATHER = Tool("get_current_temperature", "Gets the current temperature for a given location.",
               {"type": "object", "properties": {"location": {"type": "string", "description": "The city name"}},
                "required": ["location"]})
WEATHER_DECLARATION = {"name": "get_current_temperature",
                       "description": "Gets the current temperature for a given location.",
                       "parameters": {"type": "object",
                                      "properties": {"location": {"type": "string", "description": "The city name"}},
                                      "required": ["location"]}}
DIALECT = get_dialect("gemini")


def manifest():
    return load_manifest("gemini", search_dirs())


def gemini(make_client, model: str = "gemini/gemini-2.0-flash", **kwargs):
    kwargs.setdefault("api_key", KEY)
    return make_client(model, **kwargs)


def json_reply(name: str) -> Reply:
    return Reply(200, fixture_json(f"gemini/{name}"))


def sse_reply(data: bytes, **kwargs) -> Reply:
    return Reply(chunks=awkward_chunks(data), headers={"Content-Type": "text/event-stream"}, **kwargs)


def sent(server, build) -> dict:
    """Send ``build`` (a builder) against a canned text reply; return the JSON body Google got."""
    server.enqueue(json_reply("generate_text.json"))
    build.execute()
    return server.last.json


# --- request ---------------------------------------------------------------------------------


def test_plain_chat_request_and_response(server, make_client):
    server.enqueue(json_reply("generate_text.json"))
    response = gemini(make_client).chat().user("Hello").execute()

    request = server.last
    assert request.method == "POST"
    assert request.path == MODEL_PATH
    assert request.query == {}
    assert request.header("x-goog-api-key") == KEY
    assert request.header("authorization") is None
    assert KEY not in request.path
    assert request.header("content-type") == "application/json"
    assert request.json == {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}

    assert response.content == "Hello! How can I help you today?"
    assert response.finish_reason == "stop"
    assert response.usage == Usage.of(2, 9)
    assert response.tool_calls == [] and response.thinking is None
    assert (response.provider, response.model, response.id) == ("gemini", "gemini-2.0-flash", "rIt0aKWpGIiBkdUP4Mv6oAQ")


@pytest.mark.parametrize("model, path", [
    ("gemini/gemini-exp 1/2", "/v1beta/models/gemini-exp%201%2F2:generateContent"),
    ("gemini/models/gemini-2.0-flash", MODEL_PATH),
])
def test_model_is_url_quoted_in_the_path(server, make_client, model, path):
    sent(server, gemini(make_client, model).chat().user("Hi"))
    assert server.last.path == path


def test_system_prompt_and_multi_turn_history(server, make_client):
    body = sent(server, gemini(make_client).chat().messages([
        Message.system("You are terse."), Message.user("Hi"), Message.assistant("Hello!"),
        {"role": "user", "content": "Tell me a joke"}, {"role": "developer", "content": "Answer in French."},
    ]))
    assert body == {
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello!"}]},
            {"role": "user", "parts": [{"text": "Tell me a joke"}]},
        ],
        "systemInstruction": {"parts": [{"text": "You are terse."}, {"text": "Answer in French."}]},
    }


def test_generation_config_mapping(server, make_client):
    body = sent(server, gemini(make_client).chat().user("Hi").temperature(0.3).top_p(0.9)
                .max_tokens(256).stop(["END", "\n\n"]))
    assert body["generationConfig"] == {"temperature": 0.3, "topP": 0.9, "maxOutputTokens": 256,
                                        "stopSequences": ["END", "\n\n"]}


def test_more_than_five_stop_sequences_fail_before_sending(server, make_client):
    with pytest.raises(InvalidRequestError, match="at most 5 stop sequences"):
        gemini(make_client).chat().user("Hi").stop(list("abcdef")).execute()
    assert server.requests == []


def test_param_extras_go_to_generation_config_or_the_top_level(server, make_client):
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]
    body = sent(server, gemini(make_client).chat().user("Hi").temperature(0.5)
                .param("topK", 40).param("thinkingConfig", {"thinkingBudget": 0})
                .param("generationConfig", {"seed": 7}).param("safetySettings", safety))
    assert body["generationConfig"] == {"temperature": 0.5, "topK": 40, "thinkingConfig": {"thinkingBudget": 0},
                                        "seed": 7}
    assert body["safetySettings"] == safety
    assert set(body) == {"contents", "generationConfig", "safetySettings"}


def test_images_base64_url_and_local_file(server, make_client, tmp_path):
    png = tmp_path / "dot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nnot-really-a-png")
    body = sent(server, gemini(make_client).chat().messages([
        Message.user("Describe these", images=["data:image/jpeg;base64,/9j/4AAQSkZJRg==",
                                               "https://example.com/cat.jpg", str(png), "https://example.com/photo"]),
        {"role": "user", "content": [{"type": "text", "text": "and this"},
                                     {"type": "image_url", "image_url": {"url": "gs://bucket/dog.png"}}]},
    ]))
    assert body["contents"] == [
        {"role": "user", "parts": [
            {"text": "Describe these"},
            {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}},
            {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png.read_bytes()).decode()}},
            {"fileData": {"fileUri": "https://example.com/photo"}},
        ]},
        {"role": "user", "parts": [{"text": "and this"},
                                   {"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/dog.png"}}]},
    ]


@pytest.mark.parametrize("choice, config", [
    (None, None),
    ("auto", {"mode": "AUTO"}),
    ("none", {"mode": "NONE"}),
    ("required", {"mode": "ANY"}),
    ("get_current_temperature", {"mode": "ANY", "allowedFunctionNames": ["get_current_temperature"]}),
])
def test_tools_and_tool_choice(server, make_client, choice, config):
    builder = gemini(make_client).chat().user("Weather in London?").tools([WEATHER.to_openai()])
    if choice is not None:
        builder.tool_choice(choice)
    body = sent(server, builder)
    assert body["tools"] == [{"functionDeclarations": [WEATHER_DECLARATION]}]
    if config is None:
        assert "toolConfig" not in body
    else:
        assert body["toolConfig"] == {"functionCallingConfig": config}


LOOSE_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "site": {"type": "string", "format": "uri", "description": "Page to read"},
        "when": {"type": "string", "format": "date-time"},
        "unit": {"type": ["string", "null"], "enum": ["C", "F"]},
        "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}},
        "mode": {"const": "fast"},
        "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None, "title": "Limit"},
    },
    "required": ["site"],
    "$defs": {"Tag": {"type": "object", "additionalProperties": False, "properties": {"name": {"type": "string"}}}},
}
GEMINI_SCHEMA = {
    "type": "object",
    "properties": {
        "site": {"type": "string", "description": "Page to read"},
        "when": {"type": "string", "format": "date-time"},
        "unit": {"type": "string", "nullable": True, "enum": ["C", "F"]},
        "tags": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
        "mode": {"enum": ["fast"]},
        "limit": {"nullable": True, "type": "integer", "title": "Limit"},
    },
    "required": ["site"],
}


def test_json_schema_is_reduced_to_geminis_openapi_subset(server, make_client):
    assert openapi_schema(LOOSE_SCHEMA) == GEMINI_SCHEMA
    recursive = {"type": "object", "properties": {"child": {"$ref": "#"}}}
    assert json.dumps(openapi_schema(recursive))  # terminates
    body = sent(server, gemini(make_client).chat().user("Read it").tools([
        Tool("read_page", "Reads a page.", LOOSE_SCHEMA),
        Tool("get_time", "", {"type": "object", "properties": {}}),
    ]))
    assert body["tools"] == [{"functionDeclarations": [
        {"name": "read_page", "description": "Reads a page.", "parameters": GEMINI_SCHEMA},
        {"name": "get_time"},  # Gemini rejects an OBJECT without properties: no parameters at all
    ]}]


@pytest.mark.parametrize("response_format, config", [
    ("text", None),
    ("json_object", {"responseMimeType": "application/json"}),
])
def test_response_format_plain(server, make_client, response_format, config):
    body = sent(server, gemini(make_client).chat().user("List three colours").response_format(response_format))
    assert body.get("generationConfig") == config


def test_response_format_json_schema(server, make_client):
    body = sent(server, gemini(make_client).chat().user("Read it").json_schema(LOOSE_SCHEMA, name="page"))
    assert body["generationConfig"] == {"responseMimeType": "application/json", "responseSchema": GEMINI_SCHEMA}


def test_json_schema_mode_sends_schemas_unchanged(server, make_client, tmp_path):
    (tmp_path / "gemini.json").write_text(json.dumps(
        {"id": "gemini", "extends": "gemini", "dialect_options": {"schema_mode": "json_schema"}}))
    client = gemini(make_client, "gemini/gemini-2.5-flash", manifests_dir=str(tmp_path))
    body = sent(server, client.chat().user("Read it").tools([Tool("read_page", "Reads a page.", LOOSE_SCHEMA)])
                .json_schema(LOOSE_SCHEMA))
    unchanged = {k: v for k, v in LOOSE_SCHEMA.items() if k != "$schema"}
    assert body["tools"] == [{"functionDeclarations": [
        {"name": "read_page", "description": "Reads a page.", "parametersJsonSchema": unchanged}]}]
    assert body["generationConfig"] == {"responseMimeType": "application/json", "responseJsonSchema": unchanged}


# --- tool calls ------------------------------------------------------------------------------


def test_tool_call_round_trip(server, make_client):
    client = gemini(make_client)
    server.enqueue(json_reply("generate_function_call.json"))
    first = client.chat().user("What's the temperature in London?").tools([WEATHER]).execute()
    assert first.finish_reason == "tool_calls"
    assert first.content == ""
    [call] = first.tool_calls
    assert (call.name, call.arguments) == ("get_current_temperature", {"location": "London"})
    assert call.id.startswith("call_")  # Gemini sends no id: synthesised

    server.enqueue(json_reply("generate_text.json"))
    second = client.chat().messages([
        Message.user("What's the temperature in London?"),
        Message.assistant(tool_calls=first.tool_calls),
        Message.tool(call.id, {"temperature": 12, "unit": "celsius"}),
    ]).tools([WEATHER]).execute()
    assert second.finish_reason == "stop"
    assert server.last.json["contents"] == [
        {"role": "user", "parts": [{"text": "What's the temperature in London?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_current_temperature", "args": {"location": "London"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_current_temperature",
                                                         "response": {"temperature": 12, "unit": "celsius"}}}]},
    ]


def test_parallel_calls_keep_thought_signatures_and_share_one_result_turn(server, make_client):
    client = gemini(make_client, "gemini/gemini-2.5-flash")
    server.enqueue(json_reply("generate_parallel_calls.json"))
    first = client.chat().user("Paris or London: which is warmer?").tools([WEATHER]).execute()
    paris, london = first.tool_calls
    assert first.content == "Let me check both cities."
    assert first.finish_reason == "tool_calls"
    assert paris.id != london.id
    assert paris.signature == "CiQBjz1rX8sigE0JqyIzHMWkV2y7wOk4c4T1Ra0Q1qYpY2cJq2A=" and london.signature is None
    assert first.usage == Usage.of(90, 24 + 31, reasoning=31)

    body = sent(server, client.chat().messages([
        Message.user("Paris or London: which is warmer?"),
        Message.assistant(first.content, first.tool_calls),
        Message.tool(paris.id, '{"temperature": 21}'),
        Message.tool(london.id, "18 degrees"),
    ]))
    assert body["contents"][1:] == [
        {"role": "model", "parts": [
            {"text": "Let me check both cities."},
            {"functionCall": {"name": "get_current_temperature", "args": {"location": "Paris"}},
             "thoughtSignature": "CiQBjz1rX8sigE0JqyIzHMWkV2y7wOk4c4T1Ra0Q1qYpY2cJq2A="},
            {"functionCall": {"name": "get_current_temperature", "args": {"location": "London"}}},
        ]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_current_temperature", "response": {"temperature": 21}}},
            {"functionResponse": {"name": "get_current_temperature", "response": {"output": "18 degrees"}}},
        ]},
    ]


def test_openai_style_tool_history_and_function_name_lookup(server, make_client):
    body = sent(server, gemini(make_client).chat().messages([
        {"role": "user", "content": "Look it up"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\": \"x\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "[1, 2]"},
        {"role": "tool", "tool_call_id": "elsewhere", "name": "other_fn", "content": "done"},
    ]))
    assert body["contents"][1:] == [
        {"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {"q": "x"}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "lookup", "response": {"output": [1, 2]}}},
            {"functionResponse": {"name": "other_fn", "response": {"output": "done"}}},
        ]},
    ]


def test_tool_result_without_a_known_function_name_fails_before_sending(server, make_client):
    with pytest.raises(InvalidRequestError, match="function name"):
        gemini(make_client).chat().user("Hi").tool_result("call_unknown", "42").execute()
    assert server.requests == []


def test_gemini_supplied_call_id_is_kept():
    body = json.dumps({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"id": "fc-7", "name": "f", "args": {}}}]}, "finishReason": "STOP"}]}).encode()
    assert DIALECT.decode_response(body, manifest(), "m").tool_calls == [ToolCall("fc-7", "f", {}, "{}")]


# --- responses -------------------------------------------------------------------------------


def test_thinking_parts_and_usage_with_thoughts():
    response = DIALECT.decode_response(fixture_bytes("gemini/generate_thinking.json"), manifest(), "gemini-2.5-flash")
    assert response.content == "2 + 2 = 4."
    assert response.thinking == "**Adding the numbers**\n\nTwo plus two is four."
    # prompt = promptTokenCount + toolUsePromptTokenCount; completion = candidates + thoughts
    assert response.usage == Usage(15, 128, 143, reasoning_tokens=120, cached_tokens=4)


@pytest.mark.parametrize("reason, with_call, expected", [
    ("STOP", False, "stop"), ("STOP", True, "tool_calls"), ("MAX_TOKENS", False, "length"),
    ("MAX_TOKENS", True, "length"), ("SAFETY", False, "content_filter"), ("RECITATION", False, "content_filter"),
    ("BLOCKLIST", False, "content_filter"), ("PROHIBITED_CONTENT", False, "content_filter"),
    ("SPII", False, "content_filter"), ("IMAGE_SAFETY", False, "content_filter"),
    ("MALFORMED_FUNCTION_CALL", False, "other"), ("LANGUAGE", False, "other"), ("OTHER", False, "other"),
    ("FINISH_REASON_UNSPECIFIED", False, "other"),
])
def test_finish_reasons(reason, with_call, expected):
    parts = [{"functionCall": {"name": "f", "args": {}}}] if with_call else [{"text": "x"}]
    body = json.dumps({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": reason}]})
    assert DIALECT.decode_response(body.encode(), manifest(), "m").finish_reason == expected


def test_blocked_prompt_raises_content_filter(server, make_client):
    server.enqueue(json_reply("blocked_prompt.json"))
    with pytest.raises(ContentFilterError) as caught:
        gemini(make_client).chat().user("something unsafe").execute()
    assert caught.value.kind == "content_filter" and caught.value.code == "SAFETY"
    assert (caught.value.provider, caught.value.model) == ("gemini", "gemini-2.0-flash")


def test_execute_with_stats_end_to_end(server, make_client):
    server.enqueue(json_reply("generate_text.json"))
    response, stats = gemini(make_client).chat().user("Hello").execute_with_stats()
    assert response.content == "Hello! How can I help you today?"
    assert (stats.prompt_tokens, stats.completion_tokens, stats.total_tokens) == (2, 9, 11)
    assert (stats.provider, stats.model, stats.retries) == ("gemini", "gemini-2.0-flash", 0)
    assert stats.cost_usd == pytest.approx((2 * 0.1 + 9 * 0.4) / 1_000_000)


# --- streams ---------------------------------------------------------------------------------


def test_stream_request_and_events_end_to_end(server, make_client):
    server.enqueue(sse_reply(fixture_bytes("gemini/stream_text.sse")))
    stream = gemini(make_client).chat().user("Tell me about cats").stream()
    events = list(stream)

    request = server.last
    assert request.path == STREAM_PATH
    assert request.query == {"alt": ["sse"]}
    assert request.header("x-goog-api-key") == KEY
    assert "key" not in request.query and KEY not in request.path
    assert request.json == {"contents": [{"role": "user", "parts": [{"text": "Tell me about cats"}]}]}

    assert text_of(events) == "Les chats aiment dormir au soleil — 冒险伙伴 🐈."
    assert kinds(events)[-2:] == ["usage", "finish"]
    final = stream.final_response()
    assert (final.content, final.finish_reason) == (text_of(events), "stop")
    assert final.usage == Usage.of(7, 16)  # the last, cumulative usageMetadata
    assert (stream.stats.prompt_tokens, stream.stats.completion_tokens) == (7, 16)
    assert stream.stats.time_to_first_token_ms is not None


def _split_after_every_cr(data: bytes) -> list[bytes]:
    pieces = data.split(b"\r")
    return [piece + b"\r" for piece in pieces[:-1]] + [pieces[-1]]


def test_stream_crlf_framing_at_any_byte_boundary():
    data = fixture_bytes("gemini/stream_text.sse")
    assert data.count(b"\r\n\r\n") == 4 and b"\n\n" not in data.replace(b"\r\n\r\n", b"")
    expected = decode_stream("gemini", data, awkward=False)
    assert kinds(expected) == ["content_delta"] * 3 + ["usage", "finish"]
    for chunks in (awkward_chunks(data), awkward_chunks(data, (1,)), _split_after_every_cr(data)):
        assert decode_stream("gemini", chunks) == expected


def test_stream_function_call_arrives_whole(server, make_client):
    events = decode_stream("gemini", fixture_bytes("gemini/stream_function_call.sse"))
    assert kinds(events) == ["tool_call_started", "tool_call_delta", "tool_call_ended", "usage", "finish"]
    started, delta, ended, usage, finish = events
    assert started.index == delta.index == ended.index == 0
    assert started.id == ended.tool_call.id and started.id.startswith("call_")
    assert json.loads(delta.arguments_fragment) == {"location": "Zürich", "unit": "celsius"}
    assert ended.tool_call.arguments == {"location": "Zürich", "unit": "celsius"}
    assert usage.usage == Usage.of(70, 12)
    assert finish.finish_reason == "tool_calls"

    server.enqueue(sse_reply(fixture_bytes("gemini/stream_function_call.sse")))
    stream = gemini(make_client).chat().user("Temperature in Zürich?").tools([WEATHER]).stream()
    stream.text()
    final = stream.final_response()
    assert final.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in final.tool_calls] == [
        ("get_current_temperature", {"location": "Zürich", "unit": "celsius"})]


def test_stream_thinking(server, make_client):
    server.enqueue(sse_reply(fixture_bytes("gemini/stream_thinking.sse")))
    stream = gemini(make_client, "gemini/gemini-2.5-flash").chat().user("A haiku").stream()
    events = list(stream)
    assert kinds(events) == ["thinking_delta", "content_delta", "content_delta", "usage", "finish"]
    final = stream.final_response()
    assert final.thinking == "**Planning**\n\nThe user wants a haiku."
    assert final.content == "Silent pond at dusk\na frog leaps."
    assert final.usage == Usage.of(9, 11 + 95, reasoning=95)


def test_stream_max_tokens_finishes_as_length():
    events = decode_stream("gemini", fixture_bytes("gemini/stream_max_tokens.sse"))
    assert events[-1].finish_reason == "length"


def test_stream_ending_without_finish_reason_is_interrupted(server, make_client):
    data = fixture_bytes("gemini/stream_text.sse")
    without_last = data[:data.rindex(b"data: ")]
    with pytest.raises(StreamInterruptedError, match="finishReason"):
        decode_stream("gemini", without_last)
    with pytest.raises(StreamInterruptedError, match="malformed"):
        decode_stream("gemini", data[:-40])  # cut inside the last JSON object

    server.enqueue(sse_reply(without_last))
    with pytest.raises(StreamInterruptedError) as caught:
        gemini(make_client).chat().user("Tell me about cats").stream().text()
    assert caught.value.partial_content == "Les chats aiment dormir au soleil — 冒险伙伴 🐈"
    assert caught.value.provider == "gemini"


def test_stream_connection_cut_is_interrupted(server, make_client):
    server.enqueue(Reply(chunks=[fixture_bytes("gemini/stream_text.sse")[:400], b"never sent"],
                         headers={"Content-Type": "text/event-stream"}, cut_after=1))
    with pytest.raises(StreamInterruptedError):
        gemini(make_client).chat().user("Tell me about cats").stream().text()


def test_stream_blocked_prompt_raises_content_filter(server, make_client):
    server.enqueue(sse_reply(fixture_bytes("gemini/stream_blocked.sse")))
    with pytest.raises(ContentFilterError) as caught:
        gemini(make_client).chat().user("something unsafe").stream().text()
    assert caught.value.code == "PROHIBITED_CONTENT"


def test_stream_error_frame_is_classified(server, make_client):
    server.enqueue(sse_reply(fixture_bytes("gemini/stream_error.sse")))
    with pytest.raises(OverloadedError) as caught:
        gemini(make_client).chat().user("Hi").stream().text()
    assert caught.value.partial_content == "Partial answer"
    assert caught.value.retryable

    frame = json.dumps(fixture_json("gemini/errors.json")["rate_limited"]["body"])
    decoder = DIALECT.stream_decoder(manifest(), "m")
    with pytest.raises(RateLimitError) as limited:
        decoder.feed("message", frame)
    assert limited.value.retry_after == 37.0


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case, kind, retryable, retry_after", [
    ("api_key_invalid", "authentication", False, None),
    ("invalid_argument", "invalid_request", False, None),
    ("failed_precondition", "quota_exhausted", False, None),
    ("user_location", "permission", False, None),
    ("context_length", "context_length", False, None),
    ("permission_denied", "permission", False, None),
    ("not_found", "not_found", False, None),
    ("rate_limited", "rate_limited", True, 37.0),
    ("quota_exhausted", "quota_exhausted", False, None),
    ("resource_exhausted_bare", "rate_limited", True, None),
    ("internal", "server_error", True, None),
    ("unavailable", "overloaded", True, None),
    ("deadline_exceeded", "timeout", True, None),
])
def test_error_classification(server, make_client, case, kind, retryable, retry_after):
    spec = fixture_json("gemini/errors.json")[case]
    server.enqueue(Reply(spec["status"], spec["body"]))
    with pytest.raises(AiLibError) as caught:
        gemini(make_client).chat().user("Hi").execute()
    error = caught.value
    assert (error.kind, error.status_code, error.retryable, error.retry_after) == (
        kind, spec["status"], retryable, retry_after)
    assert error.message == spec["body"]["error"]["message"]
    assert error.provider == "gemini"


def test_error_reason_and_array_envelope():
    body = fixture_json("gemini/errors.json")["api_key_invalid"]["body"]
    info = DIALECT.classify_error(400, {}, json.dumps([body]).encode(), manifest())
    assert (info.kind, info.code, info.type) == ("authentication", "API_KEY_INVALID", "INVALID_ARGUMENT")
    info = DIALECT.classify_error(502, {}, b"<html>Bad Gateway</html>", manifest())
    assert info.kind == "server_error"


def _assert_secret_free(error: BaseException, secret: str) -> None:
    for text in (str(error), repr(error), error.message, error.body or "", str(error.args)):
        assert secret not in text


def test_api_key_never_appears_in_http_errors(server, make_client):
    body = fixture_json("gemini/errors.json")["api_key_invalid"]["body"]
    body["error"]["details"].append({"@type": "type.googleapis.com/google.rpc.DebugInfo",
                                     "detail": f"Invalid API key: {KEY}"})
    body["error"]["message"] = f"API key not valid: {KEY}"
    server.enqueue(Reply(400, body))
    client = gemini(make_client)
    with pytest.raises(AiLibError) as caught:
        client.chat().user("Hi").execute()
    assert caught.value.kind == "authentication"
    _assert_secret_free(caught.value, KEY)
    assert KEY not in repr(client) and KEY not in repr(client.binding) and KEY not in repr(client.binding.credentials)


def test_api_key_never_appears_in_stream_or_connection_errors(server, make_client):
    frame = {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": f"API key not valid: {AIZA_KEY}"}}
    server.enqueue(sse_reply(f"data: {json.dumps(frame)}\r\n\r\n".encode()))
    with pytest.raises(AiLibError) as caught:
        gemini(make_client, api_key=AIZA_KEY).chat().user("Hi").stream().text()
    assert caught.value.kind == "authentication"
    _assert_secret_free(caught.value, AIZA_KEY)

    with pytest.raises(AiLibError) as refused:
        gemini(make_client, api_key=AIZA_KEY, base_url="http://127.0.0.1:9").chat().user("Hi").execute()
    assert refused.value.kind in ("connection", "timeout")
    _assert_secret_free(refused.value, AIZA_KEY)


# --- configuration ---------------------------------------------------------------------------


def test_google_api_key_takes_precedence_and_base_url_env(server):
    env = {"GOOGLE_API_KEY": "google-key-1111", "GEMINI_API_KEY": "gemini-key-2222",
           "GOOGLE_GEMINI_BASE_URL": server.base_url}
    server.enqueue(json_reply("generate_text.json"), json_reply("generate_text.json"))
    with AiClient("gemini/gemini-2.0-flash", environ=env, max_retries=0) as client:
        client.chat().user("Hi").execute()
    assert server.last.header("x-goog-api-key") == "google-key-1111"
    with AiClient("gemini/gemini-2.0-flash", environ={"GEMINI_API_KEY": "gemini-key-2222"},
                  base_url=server.base_url, max_retries=0) as client:
        client.chat().user("Hi").execute()
    assert server.last.header("x-goog-api-key") == "gemini-key-2222"


def test_missing_key_names_both_variables():
    with pytest.raises(ConfigurationError, match="GOOGLE_API_KEY, GEMINI_API_KEY"):
        AiClient("gemini/gemini-2.0-flash", environ={})


def test_google_alias_and_default_endpoint():
    with AiClient("google/gemini-2.0-flash", api_key=KEY, environ={}) as client:
        assert client.provider == "gemini"
        assert client.base_url == "https://generativelanguage.googleapis.com"


def test_manifest_model_metadata():
    gemini_manifest = manifest()
    assert gemini_manifest.model_info("gemini-2.0-flash")["max_output_tokens"] == 8192
    assert gemini_manifest.model_info("gemini-2.5-flash")["max_output_tokens"] == 65536
    assert "reasoning" in gemini_manifest.model_info("gemini-2.5-pro")["capabilities"]
    assert gemini_manifest.model_info("gemini-1.5-pro")["context_window"] == 2097152
    # retired: kept with its last list price, for old logs
    assert gemini_manifest.model_info("gemini-1.5-flash")["status"] == "retired"
    assert gemini_manifest.cost_usd("gemini-1.5-flash", 10, 10) == pytest.approx((10 * 0.075 + 10 * 0.3) / 1e6)
