"""Reasoning models: one ``.max_tokens()`` and one ``.reasoning()`` on every family, per-model
parameter rules from the manifests, and reasoning usage/text coming back unified.

Request side: the body each provider's docs describe. Response side: documented usage fields.
Sources: https://platform.openai.com/docs/api-reference/chat/create (max_completion_tokens,
reasoning_effort), https://platform.openai.com/docs/guides/reasoning,
https://learn.microsoft.com/azure/ai-services/openai/how-to/reasoning,
https://docs.claude.com/en/docs/build-with-claude/extended-thinking,
https://ai.google.dev/gemini-api/docs/thinking, https://docs.x.ai/docs/guides/reasoning,
https://api-docs.deepseek.com/guides/thinking_mode, https://help.aliyun.com/en/model-studio/deep-thinking,
https://docs.aws.amazon.com/bedrock/latest/userguide/claude-messages-extended-thinking.html.
"""

from __future__ import annotations

import json
import logging

import pytest

from ai_lib_sync import InvalidRequestError, Message
from ai_lib_sync.dialects import get_dialect
from ai_lib_sync.manifest import load_manifest, search_dirs
from ai_lib_sync.params import apply_manifest_rules, check_request
from ai_lib_sync.testing import Reply
from ai_lib_sync.types import ChatRequest, Reasoning
from tests.helpers import fixture_json

ANTHROPIC_TEXT = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                  "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                  "usage": {"input_tokens": 5, "output_tokens": 2}}


def wire(provider: str, model: str, dirs=None, stream: bool = False, **fields):
    """The body (and path) the client would send for a request, without any I/O."""
    manifest = load_manifest(provider, dirs or search_dirs())
    request = ChatRequest(model=model, messages=[Message.user("Why is the sky blue?")], **fields)
    check_request(request)
    shaped = apply_manifest_rules(request, manifest, model)
    return get_dialect(manifest.dialect).encode_request(shaped, manifest, model, stream)


# --- OpenAI and Azure: max_tokens on every family ------------------------------------------


@pytest.mark.parametrize("model", ["o3-mini", "o1", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-4o", "gpt-4.1"])
def test_openai_max_tokens_goes_out_as_max_completion_tokens(model: str) -> None:
    body = wire("openai", model, max_tokens=100).body
    assert body["max_completion_tokens"] == 100 and "max_tokens" not in body


def test_openai_reasoning_model_end_to_end(server, make_client, caplog) -> None:
    server.enqueue(Reply(200, fixture_json("openai/chat_reasoning.json")))
    client = make_client("openai/o3-mini", prefix="/v1")
    with caplog.at_level(logging.DEBUG, logger="ai_lib_sync.params"):
        response = (client.chat().user("What is 6 x 7?").max_tokens(100).temperature(0.7).top_p(0.9)
                    .reasoning(effort="high").execute())
    body = server.last.json
    assert body["max_completion_tokens"] == 100 and body["reasoning_effort"] == "high"
    assert "max_tokens" not in body and "temperature" not in body and "top_p" not in body
    assert "does not support 'temperature': dropped" in caplog.text
    usage = response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens, usage.cached_tokens) == \
        (19, 210, 192, 12)
    assert response.content == "The answer is 42." and response.refusal is None


def test_openai_non_reasoning_models_keep_sampling_parameters() -> None:
    for model in ("gpt-4o", "gpt-5-chat-latest"):
        body = wire("openai", model, temperature=0.2, top_p=0.5).body
        assert (body["temperature"], body["top_p"]) == (0.2, 0.5)
    assert "reasoning_effort" not in wire("openai", "gpt-5-chat-latest", reasoning=Reasoning("low")).body


def test_openai_logprobs_on_a_reasoning_model_is_refused_before_io(server, make_client) -> None:
    client = make_client("openai/o3", prefix="/v1")
    with pytest.raises(InvalidRequestError, match="logprobs"):
        client.chat().user("hi").param("logprobs", True).execute()
    assert server.requests == []


def test_openai_o1_mini_takes_no_reasoning_effort() -> None:
    body = wire("openai", "o1-mini", reasoning=Reasoning("low"), max_tokens=50).body
    assert "reasoning_effort" not in body and body["max_completion_tokens"] == 50


def test_azure_by_deployment_family_and_api_version(tmp_path) -> None:
    reasoning = wire("azure", "o3-mini", max_tokens=64, temperature=0.3, reasoning=Reasoning("medium"))
    assert reasoning.query == {"api-version": "2024-10-21"}
    assert reasoning.body["max_completion_tokens"] == 64 and "max_tokens" not in reasoning.body
    assert "temperature" not in reasoning.body and reasoning.body["reasoning_effort"] == "medium"
    classic = wire("azure", "gpt-4o", max_tokens=64).body
    assert classic["max_tokens"] == 64 and "max_completion_tokens" not in classic
    (tmp_path / "azure.json").write_text(json.dumps(
        {"id": "azure", "extends": "azure", "endpoint": {"query": {"api-version": "2024-06-01"}}}))
    dirs = search_dirs(tmp_path, {})
    with pytest.raises(InvalidRequestError, match="max_tokens"):
        wire("azure", "o3-mini", dirs=dirs, max_tokens=64)


def test_openai_compatible_servers_keep_max_tokens() -> None:
    for provider, model in (("llamacpp", "gemma-3-270m"), ("vllm", "Qwen/Qwen3-8B"), ("groq", "openai/gpt-oss-20b")):
        body = wire(provider, model, max_tokens=32).body
        assert body["max_tokens"] == 32 and "max_completion_tokens" not in body


# --- builder validation --------------------------------------------------------------------


@pytest.mark.parametrize(("effort", "budget"), [("max", None), (None, None), (None, 0), (None, True), ("low", -5),
                                                (None, 2.5)])
def test_bad_reasoning_is_refused_by_the_builder(make_client, server, effort, budget) -> None:
    client = make_client("openai/o3", prefix="/v1")
    with pytest.raises(InvalidRequestError, match="reasoning"):
        client.chat().user("hi").reasoning(effort=effort, budget_tokens=budget)
    assert server.requests == []


# --- Anthropic extended thinking -------------------------------------------------------------


def test_anthropic_effort_becomes_a_budget_and_max_tokens_makes_room(server, make_client) -> None:
    server.enqueue(Reply(200, fixture_json("anthropic/message_thinking.json") | {"stop_reason": "end_turn"}))
    client = make_client("anthropic/claude-sonnet-4-5")
    response = client.chat().user("Prove it").top_p(0.97).reasoning(effort="medium").execute()
    body = server.last.json
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert body["max_tokens"] == 8192 + 4096 and body["top_p"] == 0.97
    assert response.thinking == "Let me analyze this step by step..."
    assert response.content == "Based on my analysis..."


def test_anthropic_explicit_budget_and_max_tokens() -> None:
    body = wire("anthropic", "claude-opus-4-1", max_tokens=16000, reasoning=Reasoning(budget_tokens=10000)).body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 10000} and body["max_tokens"] == 16000


@pytest.mark.parametrize(("fields", "match"), [
    ({"max_tokens": 4000, "reasoning": Reasoning(budget_tokens=8000)}, "must be larger than the reasoning budget"),
    ({"reasoning": Reasoning(budget_tokens=500)}, "from 1024"),
    ({"temperature": 0.5, "reasoning": Reasoning("low")}, "'temperature' with reasoning on"),
    ({"top_p": 0.5, "reasoning": Reasoning("low")}, "top_p from 0.95 to 1"),
])
def test_anthropic_thinking_conflicts_are_refused_before_io(server, make_client, fields, match) -> None:
    client = make_client("anthropic/claude-sonnet-4-5")
    builder = client.chat().user("hi")
    if "max_tokens" in fields:
        builder.max_tokens(fields["max_tokens"])
    if "temperature" in fields:
        builder.temperature(fields["temperature"])
    if "top_p" in fields:
        builder.top_p(fields["top_p"])
    reasoning = fields["reasoning"]
    with pytest.raises(InvalidRequestError, match=match):
        builder.reasoning(reasoning.effort, reasoning.budget_tokens).execute()
    assert server.requests == []


def test_anthropic_thinking_with_a_forced_tool_is_refused(server, make_client) -> None:
    client = make_client("anthropic/claude-sonnet-4-5")
    tool = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
    with pytest.raises(InvalidRequestError, match="tool_choice 'auto' or 'none'"):
        client.chat().user("hi").tools([tool]).tool_choice("required").reasoning("low").execute()
    assert server.requests == []
    server.enqueue(Reply(200, ANTHROPIC_TEXT))
    client.chat().user("hi").tools([tool]).tool_choice("auto").reasoning("low").execute()
    assert server.last.json["tool_choice"] == {"type": "auto"}


def test_temperature_without_thinking_is_still_sent_to_anthropic() -> None:
    assert wire("anthropic", "claude-sonnet-4-5", temperature=0.5).body["temperature"] == 0.5


def test_deepseek_anthropic_endpoint_takes_effort() -> None:
    body = wire("deepseek-anthropic", "deepseek-v4-flash", reasoning=Reasoning("medium"), temperature=0.3).body
    assert body["thinking"] == {"type": "enabled"} and body["output_config"] == {"effort": "high"}
    assert "temperature" not in body


# --- Gemini thinkingConfig -----------------------------------------------------------------


def test_gemini_25_budget_and_thoughts_come_back(server, make_client) -> None:
    server.enqueue(Reply(200, fixture_json("gemini/generate_thinking.json")))
    client = make_client("gemini/gemini-2.5-flash")
    response = client.chat().user("2+2?").max_tokens(2000).reasoning(budget_tokens=1024).execute()
    config = server.last.json["generationConfig"]
    assert config == {"maxOutputTokens": 2000, "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}}
    assert response.thinking.startswith("**Adding the numbers**") and response.content == "2 + 2 = 4."
    assert (response.usage.reasoning_tokens, response.usage.cached_tokens) == (120, 4)


def test_gemini_budget_ranges_per_family() -> None:
    with pytest.raises(InvalidRequestError, match="from 128 to 32768"):
        wire("gemini", "gemini-2.5-pro", reasoning=Reasoning(budget_tokens=64))
    with pytest.raises(InvalidRequestError, match="from 512 to 24576"):
        wire("gemini", "gemini-2.5-flash-lite", reasoning=Reasoning(budget_tokens=100))
    config = wire("gemini", "gemini-2.5-pro", reasoning=Reasoning("high")).body["generationConfig"]
    assert config["thinkingConfig"]["thinkingBudget"] == 24576


def test_gemini_3_takes_thinking_level() -> None:
    pro = wire("gemini", "gemini-3-pro-preview", reasoning=Reasoning("medium")).body["generationConfig"]
    assert pro["thinkingConfig"] == {"thinkingLevel": "high", "includeThoughts": True}
    flash = wire("gemini", "gemini-3-flash-preview", reasoning=Reasoning("medium")).body["generationConfig"]
    assert flash["thinkingConfig"] == {"thinkingLevel": "medium", "includeThoughts": True}
    # A budget alone picks the level whose budget it reaches.
    low = wire("gemini", "gemini-3-pro-preview", reasoning=Reasoning(budget_tokens=2000)).body["generationConfig"]
    assert low["thinkingConfig"]["thinkingLevel"] == "low"


# --- Bedrock Converse (Claude) -------------------------------------------------------------


def test_bedrock_claude_thinking_goes_to_additional_model_request_fields(monkeypatch) -> None:
    body = wire("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", reasoning=Reasoning("low")).body
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    assert body["inferenceConfig"]["maxTokens"] == 1024 + 4096
    with pytest.raises(InvalidRequestError, match="temperature"):
        wire("bedrock", "anthropic.claude-3-7-sonnet-20250219-v1:0", temperature=0.2, reasoning=Reasoning("low"))
    with pytest.raises(InvalidRequestError, match="no documented reasoning control"):
        wire("bedrock", "amazon.titan-text-express-v1", reasoning=Reasoning("low"))
    assert "additionalModelRequestFields" not in wire("bedrock", "us.deepseek.r1-v1:0", reasoning=Reasoning("low")).body


# --- OpenAI-compatible switches as manifest data ---------------------------------------------


def test_deepseek_thinking_switch_effort_and_cache_usage(server, make_client) -> None:
    server.enqueue(Reply(200, {
        "id": "x", "object": "chat.completion", "model": "deepseek-v4-flash",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi", "reasoning_content": "Greeting."},
                     "finish_reason": "stop"}],
        # https://api-docs.deepseek.com/api/create-chat-completion (usage)
        "usage": {"prompt_tokens": 20, "completion_tokens": 30, "total_tokens": 50, "prompt_cache_hit_tokens": 16,
                  "prompt_cache_miss_tokens": 4, "completion_tokens_details": {"reasoning_tokens": 25}}}))
    client = make_client("deepseek/deepseek-v4-flash")
    response = client.chat().user("hi").temperature(0.7).reasoning(effort="medium").execute()
    body = server.last.json
    assert body["thinking"] == {"type": "enabled"} and body["reasoning_effort"] == "high"
    assert "temperature" not in body
    assert (response.thinking, response.usage.reasoning_tokens, response.usage.cached_tokens) == ("Greeting.", 25, 16)


def test_qwen_zhipu_doubao_openrouter_switches() -> None:
    qwen = wire("dashscope", "qwen3-max", reasoning=Reasoning(budget_tokens=2048)).body
    assert (qwen["enable_thinking"], qwen["thinking_budget"]) == (True, 2048)
    qwq = wire("dashscope", "qwq-plus", reasoning=Reasoning("low")).body
    assert qwq["thinking_budget"] == 1024 and "enable_thinking" not in qwq
    assert wire("zhipu", "glm-4.5", reasoning=Reasoning("high")).body["thinking"] == {"type": "enabled"}
    assert wire("doubao", "doubao-seed-1-6-250615", reasoning=Reasoning("high")).body["thinking"] == {"type": "enabled"}
    assert wire("openrouter", "openai/o3", reasoning=Reasoning("low")).body["reasoning"] == {"effort": "low"}


def test_xai_reasoning_rules() -> None:
    assert wire("xai", "grok-3-mini", reasoning=Reasoning("medium")).body["reasoning_effort"] == "high"
    assert "reasoning_effort" not in wire("xai", "grok-4", reasoning=Reasoning("low")).body
    for model in ("grok-4", "grok-3-mini", "grok-code-fast-1"):
        with pytest.raises(InvalidRequestError, match="'stop'"):
            wire("xai", model, stop=["END"])
    assert wire("xai", "grok-4-fast-non-reasoning", stop=["END"]).body["stop"] == ["END"]
    assert wire("xai", "grok-3", stop=["END"]).body["stop"] == ["END"]


def test_stop_on_xai_reasoning_model_is_refused_before_io(server, make_client) -> None:
    client = make_client("xai/grok-4", prefix="/v1")
    with pytest.raises(InvalidRequestError, match="does not support the parameter 'stop'"):
        client.chat().user("hi").stop("END").execute()
    assert server.requests == []


def test_streamed_reasoning_request_carries_the_same_fields() -> None:
    body = wire("openai", "o4-mini", stream=True, max_tokens=10, reasoning=Reasoning("low")).body
    assert body["stream"] is True and body["reasoning_effort"] == "low" and body["max_completion_tokens"] == 10
