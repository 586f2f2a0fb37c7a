"""Provider quirks, each expressed as manifest data read generically by the OpenAI dialect."""

from __future__ import annotations

import json

import pytest

from ai_lib_sync import AiClient
from ai_lib_sync.errors import (
    ConfigurationError,
    InvalidRequestError,
    QuotaExhaustedError,
    ServerError,
    StreamInterruptedError,
)
from ai_lib_sync.testing import Reply
from tests.helpers import decode_stream, fixture_bytes, fixture_json, kinds, text_of

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def sse(*frames: dict | str, done: bool = True) -> bytes:
    body = "".join(f"data: {f if isinstance(f, str) else json.dumps(f, ensure_ascii=False)}\n\n" for f in frames)
    return (body + ("data: [DONE]\n\n" if done else "")).encode()


def chunk(delta: dict, finish: str | None = None, **extra) -> dict:
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


# --- Azure -----------------------------------------------------------------------------------


def test_azure_deployment_path_api_key_header_and_api_version(server) -> None:
    server.enqueue(Reply(200, fixture_json("azure/chat.json")))
    environ = {"AZURE_OPENAI_ENDPOINT": server.base_url + "/", "AZURE_OPENAI_API_KEY": "azure-key-123456"}
    with AiClient("azure/prod-gpt4o", environ=environ, max_retries=0) as client:
        client.chat().user("hi").execute()
    request = server.last
    assert request.path == "/openai/deployments/prod-gpt4o/chat/completions"
    assert request.query == {"api-version": ["2024-10-21"]}
    assert request.header("api-key") == "azure-key-123456"
    assert request.header("authorization") is None
    assert "model" not in request.json


def test_azure_api_version_from_openai_api_version(server) -> None:
    server.enqueue(Reply(200, fixture_json("azure/chat.json")))
    environ = {"AZURE_OPENAI_ENDPOINT": server.base_url, "AZURE_OPENAI_API_KEY": "k" * 12,
               "OPENAI_API_VERSION": "2025-01-01-preview"}
    with AiClient("azure/dep", environ=environ, max_retries=0) as client:
        client.chat().user("hi").execute()
    assert server.last.query == {"api-version": ["2025-01-01-preview"]}


def test_azure_without_endpoint_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="AZURE_OPENAI_ENDPOINT"):
        AiClient("azure/dep", environ={"AZURE_OPENAI_API_KEY": "k" * 12})


def test_azure_first_stream_chunk_with_empty_choices_yields_nothing() -> None:
    frames = fixture_bytes("azure/stream.sse").split(b"\n\n")
    first = frames[1] + b"\n\n"  # frames[0] is the source comment
    assert b'"choices":[]' in first and b"prompt_filter_results" in first
    assert decode_stream("azure", [first + b"data: [DONE]\n\n"]) == decode_stream("azure", [b"data: [DONE]\n\n"])


# --- Mistral ---------------------------------------------------------------------------------


def test_mistral_tool_choice_required_is_any_and_no_stream_options(server, make_client) -> None:
    server.enqueue(Reply(chunks=[fixture_bytes("mistral/stream_tool_calls.sse")],
                         headers={"Content-Type": "text/event-stream"}))
    client = make_client("mistral/mistral-small-latest", prefix="/v1")
    stream = client.chat().user("Météo à Zürich ?").tools([WEATHER_TOOL]).tool_choice("required").stream()
    events = list(stream)
    body = server.last.json
    assert body["tool_choice"] == "any"
    assert "stream_options" not in body and body["stream"] is True
    assert kinds(events) == ["tool_call_started", "tool_call_delta", "tool_call_ended", "usage", "finish"]
    ended = events[2].tool_call
    assert (ended.id, ended.name, ended.arguments) == ("D681PevKs", "get_weather", {"city": "Zürich"})
    assert events[-1].finish_reason == "tool_calls"
    assert events[-2].usage.total_tokens == 88
    assert stream.final_response().tool_calls == [ended]


def test_mistral_named_tool_choice(server, make_client) -> None:
    server.enqueue(Reply(200, fixture_json("mistral/chat.json")))
    client = make_client("mistral/mistral-small-latest", prefix="/v1")
    client.chat().user("x").tools([WEATHER_TOOL]).tool_choice("get_weather").execute()
    assert server.last.json["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


def test_whole_tool_calls_without_index_are_told_apart_by_id() -> None:
    calls = [{"id": "a1", "function": {"name": "f", "arguments": "{\"x\": 1}"}},
             {"id": "b2", "function": {"name": "g", "arguments": "{}"}}]
    events = decode_stream("mistral", sse(chunk({"tool_calls": calls}, "tool_calls")))
    ended = [e.tool_call for e in events if e.is_tool_call_ended]
    assert [(c.id, c.name, c.arguments) for c in ended] == [("a1", "f", {"x": 1}), ("b2", "g", {})]
    assert kinds(events).count("tool_call_started") == 2


# --- Groq ------------------------------------------------------------------------------------


def test_groq_usage_under_x_groq() -> None:
    data = fixture_bytes("groq/stream.sse")
    frames = [json.loads(part) for part in data.split(b"data: ")[1:-1]]
    assert not any("usage" in frame for frame in frames)
    assert frames[-1]["x_groq"]["usage"]["total_tokens"] == 13
    usage = [e.usage for e in decode_stream("groq", data) if e.is_usage]
    assert [(u.prompt_tokens, u.completion_tokens, u.total_tokens) for u in usage] == [(9, 4, 13)]


def test_groq_error_in_x_groq_stops_the_stream_with_partial_content(server, make_client) -> None:
    body = sse(chunk({"content": "héllo"}),
               chunk({}, None, x_groq={"id": "req_1", "error": "over capacity, please retry"}), done=False)
    server.enqueue(Reply(chunks=[body], headers={"Content-Type": "text/event-stream"}))
    client = make_client("groq/llama-3.3-70b-versatile", prefix="/openai/v1")
    with pytest.raises(ServerError) as caught:
        list(client.chat().user("x").stream())
    assert caught.value.partial_content == "héllo"
    assert "over capacity" in str(caught.value)


def test_groq_refuses_unsupported_parameters_before_sending(server, make_client) -> None:
    client = make_client("groq/llama-3.3-70b-versatile", prefix="/openai/v1")
    with pytest.raises(InvalidRequestError, match="logit_bias"):
        client.chat().user("x").param("logit_bias", {"1": 5}).execute()
    assert server.requests == []


# --- DeepSeek --------------------------------------------------------------------------------


def test_deepseek_keep_alive_comments_and_reasoning_content() -> None:
    data = fixture_bytes("deepseek/stream.sse")
    assert data.count(b": keep-alive") == 2
    events = decode_stream("deepseek", data)
    assert "".join(e.text for e in events if e.is_thinking_delta) == "用户在打招呼。"
    assert kinds(events)[0] == "thinking_delta"
    assert text_of(events) == "héllo 世界"


def test_deepseek_blank_lines_before_a_slow_non_streamed_body(server, make_client) -> None:
    payload = json.dumps(fixture_json("deepseek/chat.json"), ensure_ascii=False).encode()
    server.enqueue(Reply(chunks=[b"\n", b"\n\n", payload], headers={"Content-Type": "application/json"}))
    response = make_client("deepseek/deepseek-reasoner").chat().user("hi").execute()
    assert response.content == "héllo 世界" and response.thinking == "用户在打招呼。"


# --- OpenRouter ------------------------------------------------------------------------------


def test_openrouter_processing_comments_are_ignored() -> None:
    data = fixture_bytes("openrouter/stream.sse")
    assert data.count(b": OPENROUTER PROCESSING") == 2
    assert text_of(decode_stream("openrouter", data)) == "héllo 世界"


def test_openrouter_mid_stream_error_raises_with_partial_content(server, make_client) -> None:
    server.enqueue(Reply(chunks=[fixture_bytes("openrouter/stream_error.sse")],
                         headers={"Content-Type": "text/event-stream"}))
    client = make_client("openrouter/anthropic/claude-3.5-sonnet", prefix="/api/v1")
    stream = client.chat().user("x").stream()
    seen = []
    with pytest.raises(ServerError) as caught:
        for event in stream:
            seen.append(event)
    assert caught.value.kind == "server_error"
    assert caught.value.partial_content == "héllo"
    assert "Provider disconnected" in str(caught.value)
    assert text_of(seen) == "héllo"
    assert server.last.json["model"] == "anthropic/claude-3.5-sonnet"


def test_openrouter_numeric_code_in_a_stream_frame_is_classified_like_its_status() -> None:
    frame = chunk({"content": ""}, "error", error={"code": 402, "message": "Insufficient credits"})
    with pytest.raises(QuotaExhaustedError):
        decode_stream("openrouter", sse(chunk({"content": "a"}), frame, done=False))


def test_openrouter_error_inside_a_choice_of_a_200_body(server, make_client) -> None:
    body = fixture_json("openrouter/chat.json")
    body["choices"][0]["error"] = {"code": 502, "message": "Upstream model is down"}
    server.enqueue(Reply(200, body))
    with pytest.raises(ServerError, match="Upstream model is down"):
        make_client("openrouter/x/y", prefix="/api/v1").chat().user("x").execute()


# --- Moonshot, xAI, Perplexity: usage in unusual places ---------------------------------------


def test_moonshot_usage_inside_the_choice() -> None:
    data = fixture_bytes("moonshot/stream.sse")
    last_frame = json.loads(data.split(b"data: ")[-2])
    assert "usage" not in last_frame and last_frame["choices"][0]["usage"]["total_tokens"] == 13
    usage = [e.usage for e in decode_stream("moonshot", data) if e.is_usage]
    assert [u.total_tokens for u in usage] == [13]


def test_xai_completion_tokens_include_reasoning() -> None:
    events = decode_stream("xai", fixture_bytes("xai/stream.sse"))
    usage = next(e.usage for e in events if e.is_usage)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (9, 14, 23)
    assert usage.reasoning_tokens == 10
    assert "".join(e.text for e in events if e.is_thinking_delta) == "The user greets me."


def test_perplexity_last_cumulative_usage_wins() -> None:
    usage = [e.usage for e in decode_stream("perplexity", fixture_bytes("perplexity/stream.sse")) if e.is_usage]
    assert [(u.prompt_tokens, u.completion_tokens) for u in usage] == [(9, 4)]


# --- MiniMax: status in the body ---------------------------------------------------------------


def test_minimax_base_resp_error_in_a_200_body(server, make_client) -> None:
    server.enqueue(Reply(200, fixture_json("minimax/error_1008.json")))
    with pytest.raises(QuotaExhaustedError, match="insufficient balance") as caught:
        make_client("minimax/MiniMax-M2", prefix="/v1").chat().user("x").execute()
    assert caught.value.code == "1008"


def test_minimax_base_resp_error_in_a_stream_frame() -> None:
    frame = {"id": "", "choices": None, "base_resp": {"status_code": 1002, "status_msg": "rate limit"}}
    with pytest.raises(Exception) as caught:
        decode_stream("minimax", sse(chunk({"content": "a"}), frame, done=False))
    assert caught.value.kind == "rate_limited"


def test_minimax_stream_may_end_without_done_but_others_may_not() -> None:
    without_done = fixture_bytes("minimax/stream.sse").replace(b"data: [DONE]\n\n", b"")
    assert kinds(decode_stream("minimax", without_done))[-1] == "finish"
    with pytest.raises(StreamInterruptedError):
        decode_stream("together", without_done)


# --- parameter rules from the manifests --------------------------------------------------------


@pytest.mark.parametrize(("model", "temperature"), [
    ("cerebras/llama3.1-8b", 1.6), ("moonshot/moonshot-v1-8k", 1.2), ("zhipu/glm-4-flash", 1.1),
    ("minimax/MiniMax-M2", 1.5), ("baichuan/Baichuan4-Turbo", 1.5),
])
def test_narrower_temperature_ranges_refused_before_sending(model: str, temperature: float, server, make_client) -> None:
    with pytest.raises(InvalidRequestError, match="temperature"):
        make_client(model).chat().user("x").temperature(temperature).execute()
    assert server.requests == []


def test_cerebras_accepts_temperature_up_to_its_limit_and_four_stops(server, make_client) -> None:
    server.enqueue(Reply(200, fixture_json("cerebras/chat.json")))
    client = make_client("cerebras/llama3.1-8b", prefix="/v1")
    client.chat().user("x").temperature(1.5).stop(["a", "b", "c", "d"]).execute()
    assert server.last.json["temperature"] == 1.5
    with pytest.raises(InvalidRequestError, match="stop"):
        client.chat().user("x").stop(["a", "b", "c", "d", "e"]).execute()
    assert len(server.requests) == 1
