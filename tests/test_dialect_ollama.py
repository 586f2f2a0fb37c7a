"""Ollama /api/chat: the request Ollama would receive, and the parsing of documented responses,
NDJSON streams (split at awkward bytes), ``{"error": ...}`` bodies and lines, and OLLAMA_HOST.

Fixtures come from https://github.com/ollama/ollama/blob/main/docs/api.md,
https://docs.ollama.com/capabilities/thinking and https://docs.ollama.com/api/errors."""

from __future__ import annotations

import base64
import json

import pytest

from ai_lib_sync import (
    AiClient,
    InvalidRequestError,
    Message,
    NotFoundError,
    ServerError,
    StreamInterruptedError,
    Tool,
)
from ai_lib_sync.dialects import get_dialect
from ai_lib_sync.manifest import load_manifest, search_dirs
from ai_lib_sync.testing import Reply

from .helpers import awkward_chunks, decode_stream, fixture_bytes, fixture_json, kinds, text_of

MODEL = "ollama/llama3.2"
WEATHER = Tool("get_weather", "Get the weather in a given city",
               {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
WEATHER_WIRE = {"type": "function", "function": {"name": "get_weather", "description": "Get the weather in a given city",
                                                 "parameters": WEATHER.parameters}}
NDJSON = {"Content-Type": "application/x-ndjson"}


def ndjson(name: str) -> bytes:
    """A raw stream fixture without its first line (the documentation URL)."""
    return fixture_bytes(f"ollama/{name}").split(b"\n", 1)[1]


def ok(name: str = "chat_response.json") -> Reply:
    return Reply(200, fixture_json(f"ollama/{name}"))


def stream_reply(data: bytes) -> Reply:
    return Reply(chunks=awkward_chunks(data, (5, 9, 13)), headers=NDJSON)


@pytest.fixture
def ollama(make_client):
    return make_client(MODEL, api_key=None)


def _dialect():
    manifest = load_manifest("ollama", search_dirs())
    return get_dialect(manifest.dialect), manifest


# --- requests ----------------------------------------------------------------------------


def test_plain_chat_request_has_no_auth_and_an_explicit_stream_flag(server, ollama):
    server.enqueue(ok())
    response = ollama.chat().user("why is the sky blue?").execute()
    sent = server.last
    assert (sent.method, sent.path, sent.query) == ("POST", "/api/chat", {})
    assert sent.header("authorization") is None
    assert sent.header("content-type") == "application/json"
    assert sent.json == {"model": "llama3.2", "messages": [{"role": "user", "content": "why is the sky blue?"}],
                         "stream": False}
    assert response.content == "Hello! How are you today?" and response.finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.total_tokens) == (26, 298, 324)
    assert response.model == "llama3.2" and response.provider == "ollama" and response.thinking is None


def test_an_explicit_key_is_sent_as_bearer(server, make_client):
    server.enqueue(ok())
    make_client(MODEL, api_key="proxy-key-1234").chat().user("hi").execute()
    assert server.last.header("authorization") == "Bearer proxy-key-1234"


def test_system_multi_turn_and_options(server, ollama):
    server.enqueue(ok())
    (ollama.chat().system("Answer briefly.").user("why is the sky blue?").assistant("due to rayleigh scattering.")
     .user("how is that different than mie scattering?")
     .temperature(0.0).top_p(0.9).max_tokens(64).stop(["\n", "user:"])
     .param("options", {"num_ctx": 4096, "seed": 101}).param("keep_alive", "10m").execute())
    assert server.last.json == {
        "model": "llama3.2",
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "why is the sky blue?"},
            {"role": "assistant", "content": "due to rayleigh scattering."},
            {"role": "user", "content": "how is that different than mie scattering?"},
        ],
        "stream": False,
        "options": {"temperature": 0.0, "top_p": 0.9, "num_predict": 64, "stop": ["\n", "user:"],
                    "num_ctx": 4096, "seed": 101},
        "keep_alive": "10m",
    }


def test_tool_call_round_trip(server, ollama):
    server.enqueue(ok("chat_tool_call_response.json"), ok())
    first = ollama.chat().user("what is the weather in tokyo?").tools([WEATHER]).execute()
    assert server.last.json == {"model": "llama3.2", "messages": [{"role": "user", "content": "what is the weather in tokyo?"}],
                                "stream": False, "tools": [WEATHER_WIRE]}
    assert first.finish_reason == "tool_calls" and first.content == ""
    call = first.tool_calls[0]
    assert call.name == "get_weather" and call.arguments == {"city": "Tokyo"} and call.id.startswith("call_")

    (ollama.chat().user("what is the weather in tokyo?").messages([Message.assistant(None, first.tool_calls)])
     .tool_result(call.id, "11 degrees celsius").tools([WEATHER]).execute())
    assert server.last.json["messages"] == [
        {"role": "user", "content": "what is the weather in tokyo?"},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}]},
        {"role": "tool", "content": "11 degrees celsius", "tool_name": "get_weather"},
    ]


@pytest.mark.parametrize("choice, tool_names", [
    ("auto", ["get_weather", "get_time"]), ("required", ["get_weather", "get_time"]),
    ("get_time", ["get_time"]), ("none", None),
])
def test_tool_choice_is_emulated_with_the_tool_list(server, ollama, choice, tool_names):
    server.enqueue(ok())
    ollama.chat().user("hi").tools([WEATHER, Tool("get_time")]).tool_choice(choice).execute()
    body = server.last.json
    assert "tool_choice" not in body
    assert [tool["function"]["name"] for tool in body.get("tools", [])] == (tool_names or [])


def test_images_are_bare_base64(server, ollama, tmp_path):
    picture = tmp_path / "pig.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n")
    server.enqueue(ok())
    ollama.chat().messages([{"role": "user", "content": [
        {"type": "text", "text": "what is in this image?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}
    ]).user("and this?", images=[str(picture)]).execute()
    assert server.last.json["messages"] == [
        {"role": "user", "content": "what is in this image?", "images": ["iVBORw0KGgo="]},
        {"role": "user", "content": "and this?", "images": [base64.b64encode(picture.read_bytes()).decode()]},
    ]


def test_an_image_url_is_refused_before_any_io(server, ollama):
    with pytest.raises(InvalidRequestError, match="base64"):
        ollama.chat().user("look", images=["https://example.com/pig.png"]).execute()
    assert server.requests == []


def test_response_format_becomes_format(server, ollama):
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    server.enqueue(ok(), ok())
    ollama.chat().user("json").response_format("json_object").execute()
    assert server.last.json["format"] == "json"
    ollama.chat().user("json").json_schema(schema).execute()
    assert server.last.json["format"] == schema


# --- responses ---------------------------------------------------------------------------


def test_thinking_response():
    dialect, manifest = _dialect()
    response = dialect.decode_response(fixture_bytes("ollama/chat_thinking_response.json"), manifest, "qwen3")
    assert response.thinking.startswith("Let me count the letters")
    assert response.content == 'There are 3 r\'s in "strawberry".'
    assert response.usage.completion_tokens == 301  # eval_count includes the thinking tokens


@pytest.mark.parametrize("reason, expected", [(None, "stop"), ("stop", "stop"), ("length", "length"), ("load", "other")])
def test_done_reasons(reason, expected):
    dialect, manifest = _dialect()
    body = {"model": "m", "message": {"role": "assistant", "content": "x"}, "done": True}
    if reason:
        body["done_reason"] = reason
    assert dialect.decode_response(json.dumps(body).encode(), manifest, "m").finish_reason == expected


def test_a_missing_prompt_count_is_zero_not_an_error():
    dialect, manifest = _dialect()
    body = {"model": "m", "message": {"role": "assistant", "content": "x"}, "done": True, "eval_count": 5}
    usage = dialect.decode_response(json.dumps(body).encode(), manifest, "m").usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (0, 5, 5)


# --- streams -----------------------------------------------------------------------------


def test_text_stream_split_at_awkward_bytes():
    events = decode_stream("ollama", ndjson("stream_text.ndjson"))
    assert text_of(events) == "The sky is blue — “Rayleigh”."
    assert kinds(events) == ["content_delta"] * 3 + ["usage", "finish"]
    assert events[-2].usage.total_tokens == 26 + 282 and events[-1].finish_reason == "stop"


def test_tool_call_stream():
    events = decode_stream("ollama", ndjson("stream_tool_call.ndjson"))
    assert kinds(events) == ["tool_call_started", "tool_call_delta", "tool_call_ended", "usage", "finish"]
    started, delta, ended = events[0], events[1], events[2]
    assert started.name == "get_weather" and started.id == ended.tool_call.id
    assert json.loads(delta.arguments_fragment) == {"city": "Tokyo"}
    assert ended.tool_call.arguments == {"city": "Tokyo"} and events[-1].finish_reason == "tool_calls"


def test_thinking_stream_with_length_finish():
    events = decode_stream("ollama", ndjson("stream_thinking.ndjson"))
    assert kinds(events) == ["thinking_delta", "thinking_delta", "content_delta", "usage", "finish"]
    assert "".join(e.text for e in events if e.is_thinking_delta) == "Let me count the r's."
    assert events[-1].finish_reason == "length"


def test_an_error_line_mid_stream_raises_the_classified_error():
    with pytest.raises(ServerError, match="an error was encountered while running the model"):
        decode_stream("ollama", ndjson("stream_error.ndjson"))


def test_a_not_found_error_line_is_not_found():
    data = ndjson("stream_text.ndjson").split(b"\n")[0] + b'\n{"error":"model \'llama9\' not found"}\n'
    with pytest.raises(NotFoundError):
        decode_stream("ollama", data)


def test_stream_without_done_line_is_interrupted():
    lines = ndjson("stream_text.ndjson").split(b"\n")
    with pytest.raises(StreamInterruptedError, match="done"):
        decode_stream("ollama", b"\n".join(lines[:3]) + b"\n")


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", fixture_json("ollama/errors.json")["cases"], ids=lambda case: f"{case['status']}-{case['kind']}")
def test_documented_error_bodies_are_classified(case):
    dialect, manifest = _dialect()
    info = dialect.classify_error(case["status"], {}, json.dumps(case["body"]).encode(), manifest)
    assert info.kind == case["kind"] and info.message == case["body"]["error"]


def test_http_not_found_end_to_end(server, ollama):
    server.enqueue(Reply(404, {"error": "model 'llama3.2' not found"}))
    with pytest.raises(NotFoundError) as caught:
        ollama.chat().user("hi").execute()
    assert caught.value.status_code == 404 and caught.value.message == "model 'llama3.2' not found"


# --- end to end --------------------------------------------------------------------------


def test_stream_end_to_end(server, ollama):
    server.enqueue(stream_reply(ndjson("stream_text.ndjson")))
    stream = ollama.chat().user("why is the sky blue?").stream()
    assert text_of(list(stream)) == "The sky is blue — “Rayleigh”."
    assert server.last.json["stream"] is True and server.last.header("accept") == "application/x-ndjson"
    final = stream.final_response()
    assert final.finish_reason == "stop" and final.usage.total_tokens == 308
    assert stream.stats.prompt_tokens == 26 and stream.stats.time_to_first_token_ms is not None


def test_execute_with_stats_end_to_end(server, ollama):
    server.enqueue(ok())
    response, stats = ollama.chat().user("hi").execute_with_stats()
    assert (stats.prompt_tokens, stats.completion_tokens, stats.total_tokens) == (26, 298, 324)
    # a local server bills nothing: the catalog prices Ollama models at 0.0, not unknown
    assert stats.provider == "ollama" and stats.cost_usd == 0.0 and response.content


def test_error_line_end_to_end_keeps_partial_content(server, ollama):
    server.enqueue(stream_reply(ndjson("stream_error.ndjson")))
    with pytest.raises(ServerError) as caught:
        list(ollama.chat().user("hi").stream())
    assert caught.value.partial_content == " Yes." and caught.value.provider == "ollama"


def test_cut_off_stream_end_to_end_is_interrupted(server, ollama):
    lines = ndjson("stream_text.ndjson").split(b"\n")
    server.enqueue(stream_reply(b"\n".join(lines[:2]) + b"\n"))
    with pytest.raises(StreamInterruptedError) as caught:
        list(ollama.chat().user("hi").stream())
    assert caught.value.partial_content == "The sky is"


# --- OLLAMA_HOST -------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "http://127.0.0.1:{port}", "http://127.0.0.1:{port}/"])
def test_ollama_host_points_the_client_at_the_server(server, monkeypatch, host):
    monkeypatch.setenv("OLLAMA_HOST", host.format(port=server.port))
    server.enqueue(ok())
    with AiClient(MODEL, max_retries=0) as client:
        assert client.base_url == server.base_url
        client.chat().user("hi").execute()
    assert server.last.path == "/api/chat"


@pytest.mark.parametrize("host, expected", [
    ("0.0.0.0", "http://0.0.0.0:11434"),
    ("gpu-box", "http://gpu-box:11434"),
    ("gpu-box:8080", "http://gpu-box:8080"),
    ("[::1]", "http://[::1]:11434"),
    ("https://ollama.example.com", "https://ollama.example.com"),  # a scheme keeps its own default port
])
def test_ollama_host_forms_are_normalised(monkeypatch, host, expected):
    monkeypatch.setenv("OLLAMA_HOST", host)
    with AiClient(MODEL) as client:
        assert client.base_url == expected


def test_default_host_and_explicit_base_url_beats_the_environment(server, monkeypatch):
    with AiClient(MODEL) as client:
        assert client.base_url == "http://localhost:11434"
    monkeypatch.setenv("OLLAMA_HOST", "elsewhere:1")
    with AiClient(MODEL, base_url=server.base_url) as client:
        assert client.base_url == server.base_url
