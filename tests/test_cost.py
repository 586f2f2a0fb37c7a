"""Cost accounting: cached prompt tokens at the cached price, reasoning billed once as output,
the Batch API discount, and prices users override in their own manifests."""

from __future__ import annotations

import json

import pytest

from ai_lib_sync import AiClient
from ai_lib_sync.dialects import anthropic as anthropic_dialect
from ai_lib_sync.dialects import gemini as gemini_dialect
from ai_lib_sync.dialects import openai as openai_dialect
from ai_lib_sync.manifest import builtin_dir, load_manifest, search_dirs
from ai_lib_sync.pricing import Price
from ai_lib_sync.testing import Reply
from ai_lib_sync.types import Usage


def shipped(provider: str):
    return load_manifest(provider, [builtin_dir()])


def test_cached_prompt_tokens_cost_the_cached_price():
    openai = shipped("openai")
    price = openai.price("gpt-6.1-sol")
    assert (price.input_per_mtok, price.cached_input_per_mtok, price.output_per_mtok) == (2.0, 0.10, 10.0)
    # prompt_tokens includes the 400 cached ones
    assert openai.cost_usd("gpt-6.1-sol", 1000, 500, cached_tokens=400) == pytest.approx(
        (600 * 2.0 + 400 * 0.10 + 500 * 10.0) / 1e6)
    assert openai.cost_usd("gpt-6.1-sol", 1000, 500) == pytest.approx((1000 * 2.0 + 500 * 10.0) / 1e6)
    # more cached than prompt tokens (a provider's rounding): never a negative input charge
    assert openai.cost_usd("gpt-6.1-sol", 100, 0, cached_tokens=500) == pytest.approx(100 * 0.10 / 1e6)


def test_without_a_published_cached_price_cached_tokens_are_ordinary_input():
    openai = shipped("openai")
    assert openai.price("gpt-4o").cached_input_per_mtok is None
    assert openai.cost_usd("gpt-4o", 1000, 0, cached_tokens=600) == openai.cost_usd("gpt-4o", 1000, 0)


def test_openai_reasoning_tokens_are_inside_completion_tokens_and_billed_once():
    # Usage object as documented at https://platform.openai.com/docs/api-reference/chat/object
    usage = {"prompt_tokens": 1200, "completion_tokens": 900, "total_tokens": 2100,
             "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 640, "audio_tokens": 0,
                                           "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
    openai = shipped("openai")
    unified = openai_dialect.decode_usage(usage, openai)
    assert (unified.completion_tokens, unified.reasoning_tokens, unified.cached_tokens) == (900, 640, 1024)
    assert openai.usage_cost_usd("gpt-6.1-sol", unified) == pytest.approx(
        ((1200 - 1024) * 2.0 + 1024 * 0.10 + 900 * 10.0) / 1e6)


def test_xai_reasoning_tokens_reported_apart_are_billed_as_output():
    # xAI reports reasoning outside completion_tokens (manifest: completion_excludes_reasoning)
    usage = {"prompt_tokens": 32, "completion_tokens": 9, "total_tokens": 135,
             "prompt_tokens_details": {"cached_tokens": 6},
             "completion_tokens_details": {"reasoning_tokens": 94}}
    xai = shipped("xai")
    assert xai.response.get("completion_excludes_reasoning") is True
    unified = openai_dialect.decode_usage(usage, xai)
    assert unified.completion_tokens == 9 + 94
    assert xai.usage_cost_usd("grok-4.6", unified) == pytest.approx(((32 - 6) * 2.0 + 6 * 0.50 + 103 * 6.0) / 1e6)


def test_anthropic_cache_reads_cost_the_cache_read_price():
    # usage as documented at https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching
    usage = anthropic_dialect.decode_usage({"input_tokens": 50, "cache_creation_input_tokens": 248,
                                            "cache_read_input_tokens": 1800, "output_tokens": 503})
    anthropic = shipped("anthropic")
    assert (usage.prompt_tokens, usage.cached_tokens) == (50 + 248 + 1800, 1800)
    assert anthropic.usage_cost_usd("claude-opus-5-5", usage) == pytest.approx(
        ((50 + 248) * 4.0 + 1800 * 0.20 + 503 * 20.0) / 1e6)


def test_gemini_thinking_tokens_are_billed_as_output():
    # usageMetadata as documented at https://ai.google.dev/api/generate-content#UsageMetadata
    usage = gemini_dialect.decode_usage({"promptTokenCount": 1000, "cachedContentTokenCount": 800,
                                         "candidatesTokenCount": 40, "thoughtsTokenCount": 360,
                                         "totalTokenCount": 1400})
    gemini = shipped("gemini")
    assert (usage.completion_tokens, usage.cached_tokens) == (400, 800)
    assert gemini.usage_cost_usd("gemini-3.8-flash", usage) == pytest.approx(
        (200 * 0.75 + 800 * 0.075 + 400 * 3.75) / 1e6)


def test_batch_discount_applies_only_where_the_provider_documents_one():
    openai, deepseek = shipped("openai"), shipped("deepseek")
    assert openai.pricing["batch_discount"] == 0.5
    assert openai.cost_usd("gpt-6.1-sol", 1000, 1000, batch=True) == pytest.approx(
        openai.cost_usd("gpt-6.1-sol", 1000, 1000) / 2)
    assert "batch_discount" not in deepseek.pricing
    assert deepseek.cost_usd("deepseek-flash", 1000, 1000, batch=True) == deepseek.cost_usd("deepseek-flash", 1000, 1000)


def test_unpriced_and_unknown_models_have_no_cost(tmp_path):
    _write(tmp_path, "openai", {"id": "openai", "extends": "openai",
                                "models": {"my-finetune": {"unpriced": "billed by contract"}}})
    user = load_manifest("openai", search_dirs(tmp_path, environ={}))
    for manifest, model in ((user, "my-finetune"), (shipped("openai"), "gpt-9-preview")):
        assert manifest.price(model) is None
        assert manifest.cost_usd(model, 10, 10, cached_tokens=5) is None
        assert manifest.usage_cost_usd(model, Usage.of(10, 10, cached=5)) is None


def test_local_models_cost_nothing_rather_than_unknown():
    assert shipped("ollama").cost_usd("llama3.2", 10, 10, cached_tokens=5) == 0.0


def _write(directory, name, data):
    (directory / f"{name}.json").write_text(json.dumps(data), encoding="utf-8")


def test_users_override_prices_in_their_own_manifest(tmp_path):
    _write(tmp_path, "openai", {
        "id": "openai", "extends": "openai",
        "pricing": {"source": "https://contracts.example/acme-openai", "as_of": "2027-01-05", "batch_discount": 0.6},
        "models": {
            "gpt-6.1-sol": {"input_per_mtok": 1.5},  # a negotiated rate: only the input price changes
            "my-finetune": {"input_per_mtok": 3.0, "output_per_mtok": 12.0},
            "gpt-4.1-mini": {"input_per_mtok": 0.4, "output_per_mtok": 1.6},
        },
    })
    manifest = load_manifest("openai", search_dirs(tmp_path, environ={}))
    sol = manifest.price("gpt-6.1-sol")
    assert (sol.input_per_mtok, sol.output_per_mtok, sol.cached_input_per_mtok) == (1.5, 10.0, 0.10)
    assert sol.as_of == "2026-10-01"  # the shipped entry's own date still wins over pricing.as_of
    assert manifest.price("my-finetune").source == "https://contracts.example/acme-openai"
    assert manifest.cost_usd("my-finetune", 1000, 1000, batch=True) == pytest.approx(15000 * 0.4 / 1e6)
    assert manifest.price("gpt-4.1-mini").input_per_mtok == 0.4
    assert manifest.price("gpt-4o") == Price(2.5, 10.0, None, 0.6, "https://contracts.example/acme-openai",
                                             "2026-03-21")


def test_client_and_environment_directories_carry_the_override(tmp_path, monkeypatch):
    _write(tmp_path, "deepseek", {"id": "deepseek", "extends": "deepseek",
                                  "models": {"deepseek-flash": {"input_per_mtok": 0.15, "output_per_mtok": 0.60,
                                                                "cached_input_per_mtok": 0.003, "as_of": "2026-12-01"}}})
    with AiClient("deepseek/deepseek-flash", api_key="k", manifests_dir=str(tmp_path)) as client:
        assert client.manifest.cost_usd("deepseek-flash", 1_000_000, 0) == pytest.approx(0.15)
    monkeypatch.setenv("AI_LIB_SYNC_MANIFESTS", str(tmp_path))
    with AiClient("deepseek/deepseek-flash", api_key="k") as client:
        assert client.manifest.price("deepseek-flash").output_per_mtok == 0.60


def test_prices_in_the_providers_own_currency_are_never_converted(tmp_path, server, make_client):
    """A mainland-China endpoint bills in yuan: the stats carry yuan and say so, and
    ``cost_usd`` stays None rather than a made-up exchange rate."""
    _write(tmp_path, "dashscope", {
        "id": "dashscope", "extends": "dashscope",
        "pricing": {"currency": "CNY", "source": "https://example.cn/price", "as_of": "2026-11-01"},
        "models": {"my-qwen": {"input_per_mtok": 0.8, "output_per_mtok": 2.0, "cached_input_per_mtok": 0.16}}})
    manifest = load_manifest("dashscope", search_dirs(tmp_path, environ={}))
    assert manifest.price("my-qwen").currency == "CNY"
    assert manifest.cost_usd("my-qwen", 1000, 1000) is None
    assert manifest.usage_cost("my-qwen", Usage.of(1000, 1000, cached=500)) == pytest.approx(
        ((500 * 0.8 + 500 * 0.16 + 1000 * 2.0) / 1e6, "CNY"))
    # Usage object as documented for the OpenAI-compatible mode:
    # https://www.alibabacloud.com/help/en/model-studio/compatibility-of-openai-with-dashscope
    server.enqueue(Reply(body={
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "my-qwen",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "你好"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2000, "completion_tokens": 1000, "total_tokens": 3000},
    }))
    client = make_client("dashscope/my-qwen", prefix="/compatible-mode/v1", manifests_dir=str(tmp_path))
    _, stats = client.chat().user("你好").execute_with_stats()
    assert server.last.path == "/compatible-mode/v1/chat/completions"
    assert server.last.json["model"] == "my-qwen"
    assert (stats.cost_usd, stats.currency) == (None, "CNY")
    assert stats.cost == pytest.approx((2000 * 0.8 + 1000 * 2.0) / 1e6)


def test_usd_stats_carry_the_same_figure_as_cost_and_currency(server, make_client):
    server.enqueue(Reply(body={
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100},
    }))
    _, stats = make_client("openai/gpt-4o", prefix="/v1").chat().user("Hi").execute_with_stats()
    assert stats.cost_usd == pytest.approx((1000 * 2.5 + 100 * 10.0) / 1e6)
    assert (stats.cost, stats.currency) == (stats.cost_usd, "USD")
