"""Errors that name the right kind: the HTTP status decides first, message patterns refine only
within it; an error frame carrying its own status is classified from it; context overflow of the
servers we ship manifests for is ``context_length`` through every endpoint; moderation codes are
``content_filter`` and never retried; "model not found" sent as 400 is ``not_found``.

Sources: the real llama.cpp capture ``tests/fixtures/llamacpp/llama-server-error-exceed-context-size.txt``;
https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html (error object),
https://docs.ollama.com/api/errors, https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
(ValidationException), https://docs.cohere.com/reference/errors,
https://www.volcengine.com/docs/82379/1299023 (Ark error codes: ``OutputTextRiskDetection``),
https://api-docs.deepseek.com/quick_start/error_codes, https://platform.openai.com/docs/guides/error-codes.
"""

from __future__ import annotations

import json

import pytest

from ai_lib_sync.dialects import get_dialect
from ai_lib_sync.errors import AiLibError
from ai_lib_sync.manifest import load_manifest, search_dirs
from ai_lib_sync.testing import Reply
from tests.helpers import FIXTURES, decode_stream

LLAMACPP_CAPTURE = FIXTURES / "llamacpp" / "llama-server-error-exceed-context-size.txt"


def llamacpp_bodies() -> list[tuple[str, int, dict]]:
    """(request line, status, JSON body) of each exchange in the capture."""
    exchanges = []
    for section in LLAMACPP_CAPTURE.read_text(encoding="utf-8").split("\n# llama.cpp"):
        lines = [line for line in section.splitlines() if line.strip()]
        command = next(line for line in lines if line.startswith("$ curl"))
        status = int(next(line for line in lines if line.startswith("HTTP/1.1")).split()[1])
        exchanges.append((command, status, json.loads(lines[-1])))
    return exchanges


def classify(provider: str, status: int | None, body: dict | str, headers: dict | None = None) -> str:
    manifest = load_manifest(provider, search_dirs())
    raw = body if isinstance(body, str) else json.dumps(body)
    return get_dialect(manifest.dialect).classify_error(status, headers or {}, raw.encode(), manifest).kind


# --- the status decides first ----------------------------------------------------------------

TOO_MANY_TOKENS_429 = {"error": {"message": "Rate limit reached: too many tokens per minute (TPM): Limit 30000, "
                                            "Used 29000, Requested 4000.", "type": "tokens", "code": "rate_limit_exceeded"}}


@pytest.mark.parametrize("provider", ["openai", "groq", "llamacpp", "vllm", "deepseek", "anthropic", "ollama",
                                      "cohere", "mistral"])
def test_a_429_is_never_context_length(provider: str) -> None:
    assert classify(provider, 429, TOO_MANY_TOKENS_429) == "rate_limited"
    assert classify(provider, 429, {"message": "too many tokens, please wait"}) == "rate_limited"
    assert classify(provider, 429, {"error": "prompt is too long for the tokens per minute limit"}) == "rate_limited"


def test_bedrock_429_too_many_tokens_is_throttling() -> None:
    headers = {"x-amzn-errortype": "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    assert classify("bedrock", 429, {"message": "Too many tokens, please wait before trying again."}, headers) \
        == "rate_limited"


def test_message_patterns_refine_within_a_status() -> None:
    assert classify("openai", 400, {"error": {"message": "This model's maximum context length is 128000 tokens.",
                                              "type": "invalid_request_error", "code": None}}) == "context_length"
    assert classify("openai", 429, {"error": {"message": "You exceeded your current quota",
                                              "type": "insufficient_quota", "code": "insufficient_quota"}}) \
        == "quota_exhausted"
    # A 5xx is never the caller's fault, a 401 never a context overflow.
    assert classify("openai", 500, {"error": {"message": "The model `x` does not exist"}}) == "server_error"
    assert classify("openai", 401, {"error": {"message": "context length exceeded", "code": None}}) == "authentication"


# --- errors inside streams carrying their own status ---------------------------------------


def test_stream_error_frame_with_status_code_429_is_rate_limited(server, make_client) -> None:
    base = {"id": "c1", "object": "chat.completion.chunk", "model": "m"}
    server.enqueue(Reply.sse([
        base | {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {"error": {"message": "too many tokens in flight, slow down", "type": "server_error"}, "status_code": 429},
    ], done=False))
    client = make_client("vllm/Qwen/Qwen3-8B", prefix="/v1")
    with pytest.raises(AiLibError) as caught:
        list(client.chat().user("hi").stream())
    assert server.last.json["stream"] is True
    error = caught.value
    assert error.kind == "rate_limited" and error.partial_content == "Hel"


def test_anthropic_error_event_with_status_is_classified_from_it() -> None:
    frame = json.dumps({"type": "error", "error": {"type": "api_error", "message": "busy"}, "status": 503})
    events = f"event: message_start\ndata: {json.dumps({'type': 'message_start', 'message': {}})}\n\n" \
             f"event: error\ndata: {frame}\n\n"
    with pytest.raises(AiLibError) as caught:
        decode_stream("anthropic", events.encode())
    assert caught.value.kind == "overloaded"


# --- context overflow: llama.cpp (real capture), vLLM, Ollama, Bedrock, Cohere ---------------


def test_llamacpp_capture_is_context_length_streamed_or_not(server, make_client) -> None:
    chat, stream, _ = llamacpp_bodies()
    assert "/v1/chat/completions" in chat[0] and '"stream":true' in stream[0]
    client = make_client("llamacpp/gemma-3-270m", prefix="/v1", api_key=None)
    server.enqueue(Reply(chat[1], chat[2]))
    with pytest.raises(AiLibError) as caught:
        client.chat().user("hello " * 1280).max_tokens(4).execute()
    assert (caught.value.kind, caught.value.status_code) == ("context_length", 400)
    assert server.last.json["max_tokens"] == 4 and server.last.path == "/v1/chat/completions"
    server.enqueue(Reply(stream[1], stream[2]))
    with pytest.raises(AiLibError) as caught:
        list(client.chat().user("hello " * 1280).max_tokens(4).stream())
    assert caught.value.kind == "context_length" and not caught.value.retryable
    assert server.last.json["stream_options"] == {"include_usage": True}


def test_llamacpp_anthropic_endpoint_capture_is_context_length(server, make_client) -> None:
    _, _, messages = llamacpp_bodies()
    assert "/v1/messages" in messages[0]
    server.enqueue(Reply(messages[1], messages[2]))
    client = make_client("anthropic/gemma-3-270m")
    with pytest.raises(AiLibError) as caught:
        client.chat().user("hello " * 1280).max_tokens(4).execute()
    assert caught.value.kind == "context_length"
    assert server.last.path == "/v1/messages" and server.last.json["max_tokens"] == 4


@pytest.mark.parametrize(("provider", "status", "body"), [
    ("vllm", 400, {"object": "error", "message": "The decoder prompt (length 5000) is longer than the maximum model "
                   "length of 4096. Make sure that `max_model_len` is no smaller than the number of text tokens.",
                   "type": "BadRequestError", "param": None, "code": 400}),
    ("vllm", 400, {"object": "error", "message": "'max_tokens' or 'max_completion_tokens' is too large: 1000. This "
                   "model's maximum context length is 4096 tokens and your request has 3500 input tokens.",
                   "type": "BadRequestError", "param": None, "code": 400}),
    ("ollama", 400, {"error": "the input length exceeds the context length"}),
    ("ollama", 500, {"error": "the input length exceeds the context length"}),
    ("cohere", 400, {"message": "too many tokens: size limit exceeded by 1187 tokens. Try using shorter or fewer "
                                "inputs, or setting prompt_truncation='AUTO'."}),
])
def test_context_overflow_phrasings(provider, status, body) -> None:
    assert classify(provider, status, body) == "context_length"


def test_bedrock_context_overflow_http_and_stream() -> None:
    headers = {"x-amzn-errortype": "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    assert classify("bedrock", 400, {"message": "Input is too long for requested model."}, headers) == "context_length"
    assert classify("bedrock", 400, {"message": "The model returned the following errors: prompt is too long: "
                                                "215000 tokens > 200000 maximum"}, headers) == "context_length"


def test_vllm_in_stream_context_error_frame(server, make_client) -> None:
    server.enqueue(Reply.sse([{"error": {"object": "error", "message": "This model's maximum context length is 4096 "
                                         "tokens.", "type": "BadRequestError", "param": None, "code": 400}}],
                             done=False))
    with pytest.raises(AiLibError) as caught:
        list(make_client("vllm/m", prefix="/v1").chat().user("x").stream())
    assert caught.value.kind == "context_length"


def test_ollama_in_stream_error_line(server, make_client) -> None:
    lines = [json.dumps({"model": "llama3.2", "message": {"role": "assistant", "content": "A"}, "done": False}) + "\n",
             json.dumps({"error": "the input length exceeds the context length"}) + "\n"]
    server.enqueue(Reply(chunks=lines, headers={"Content-Type": "application/x-ndjson"}))
    with pytest.raises(AiLibError) as caught:
        list(make_client("ollama/llama3.2", api_key=None).chat().user("x").stream())
    assert server.last.path == "/api/chat" and server.last.json["stream"] is True
    assert caught.value.kind == "context_length" and caught.value.partial_content == "A"


# --- moderation and not-found ----------------------------------------------------------------

ARK_RISK = {"error": {"code": "OutputTextRiskDetection", "type": "BadRequest",
                      "message": "The request failed because the output text may contain sensitive information."}}


def test_ark_risk_detection_is_content_filter_and_not_retried(server, make_client) -> None:
    server.enqueue(Reply(400, ARK_RISK), Reply(200, {}))
    client = make_client("doubao/doubao-seed-1-6-250615", prefix="/api/v3", max_retries=2)
    with pytest.raises(AiLibError) as caught:
        client.chat().user("x").execute()
    assert caught.value.kind == "content_filter" and not caught.value.retryable
    assert len(server.requests) == 1 and server.last.path == "/api/v3/chat/completions"
    assert classify("doubao", 400, {"error": {"code": "InputTextRiskDetection", "message": "x"}}) == "content_filter"


def test_ark_risk_detection_inside_a_stream(server, make_client) -> None:
    base = {"id": "c1", "object": "chat.completion.chunk", "model": "doubao"}
    server.enqueue(Reply.sse([base | {"choices": [{"index": 0, "delta": {"content": "Sure"}}]}, ARK_RISK], done=False))
    with pytest.raises(AiLibError) as caught:
        list(make_client("doubao/doubao-seed-1-6-250615", prefix="/api/v3").chat().user("x").stream())
    assert caught.value.kind == "content_filter" and not caught.value.retryable
    assert caught.value.partial_content == "Sure"


@pytest.mark.parametrize(("provider", "body"), [
    ("openai", {"error": {"message": "The model `gpt-9` does not exist or you do not have access to it.",
                          "type": "invalid_request_error", "param": None, "code": None}}),
    ("deepseek", {"error": {"message": "Model Not Exist", "type": "invalid_request_error", "param": None,
                            "code": "invalid_request_error"}}),
    ("llamacpp", {"error": {"code": 400, "message": "model 'nope' not found", "type": "invalid_request_error"}}),
    ("deepseek", {"error": {"message": "Content Exists Risk", "type": "invalid_request_error"}}),
])
def test_400_bodies_name_their_kind(provider, body) -> None:
    expected = "content_filter" if "Risk" in json.dumps(body) else "not_found"
    assert classify(provider, 400, body) == expected


def test_plain_400_stays_invalid_request() -> None:
    assert classify("openai", 400, {"error": {"message": "Invalid value for 'tool_choice'.",
                                              "type": "invalid_request_error", "code": "invalid_value"}}) \
        == "invalid_request"
