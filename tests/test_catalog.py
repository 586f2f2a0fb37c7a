"""The shipped model catalogs: every listed model is priced with a source and a date, or says
why it is not; unknown model ids still work, unpriced."""

from __future__ import annotations

import json
import re

import pytest

from ai_lib_sync import AiClient
from ai_lib_sync.manifest import builtin_dir, list_providers, load_manifest
from ai_lib_sync.testing import Reply

DATE = re.compile(r"^20\d\d-[01]\d-[0-3]\d$")
SHIPPED = list_providers([builtin_dir()])
# The providers the catalog issue names: each must price its current models.
FLAGSHIP_PROVIDERS = ["openai", "anthropic", "gemini", "deepseek", "xai", "moonshot"]


def _entries():
    for provider in SHIPPED:
        manifest = load_manifest(provider, [builtin_dir()])
        for key, info in manifest.models.items():
            yield pytest.param(manifest, key, info, id=f"{provider}/{key}")


@pytest.mark.parametrize("manifest,key,info", list(_entries()))
def test_every_listed_model_is_priced_with_source_and_date_or_says_why_not(manifest, key, info):
    price = manifest.price(key)
    if "unpriced" in info:
        assert price is None, f"{key} has prices and an 'unpriced' reason; drop one"
        assert info["unpriced"].strip()
        return
    assert price is not None, f"{manifest.id}/{key}: no input_per_mtok/output_per_mtok and no 'unpriced' reason"
    assert price.source, f"{manifest.id}/{key}: no price source (model 'source' or manifest pricing.source)"
    assert price.as_of and DATE.match(price.as_of), f"{manifest.id}/{key}: as_of {price.as_of!r}"
    if price.cached_input_per_mtok is not None:
        assert price.cached_input_per_mtok <= price.input_per_mtok
    assert info.get("status", "current") in ("current", "legacy", "retired")


@pytest.mark.parametrize("provider", FLAGSHIP_PROVIDERS)
def test_named_providers_price_their_current_models(provider):
    """Each named provider lists current models, priced (a current model without a price says
    why, which the test above checks)."""
    manifest = load_manifest(provider, [builtin_dir()])
    current = [key for key, info in manifest.models.items() if info.get("status", "current") == "current"]
    priced = [key for key in current if manifest.price(key) is not None]
    assert priced, f"{provider}: no current model is priced"


def test_manifest_files_keep_one_model_per_line():
    """The manifests are hand-formatted; tools that edit the catalog keep that format."""
    for provider in SHIPPED:
        text = (builtin_dir() / f"{provider}.json").read_text(encoding="utf-8")
        models = json.loads(text).get("models", {})
        for key in models:
            line = next(line for line in text.splitlines() if line.strip().startswith(json.dumps(key) + ":"))
            assert json.loads("{" + line.strip().rstrip(",") + "}")[key] == models[key], f"{provider}/{key}"


def test_dated_snapshots_resolve_through_glob_keys():
    anthropic = load_manifest("anthropic", [builtin_dir()])
    assert anthropic.price("claude-opus-5-5-20261001").input_per_mtok == anthropic.price("claude-opus-5-5").input_per_mtok
    assert anthropic.model_info("claude-3-5-haiku-latest")["status"] == "retired"
    openai = load_manifest("openai", [builtin_dir()])
    assert openai.price("gpt-4o-2024-08-06") == openai.price("gpt-4o")


def test_unknown_model_is_passed_through_with_no_price(server, make_client):
    server.enqueue(Reply(body={
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-9-preview",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }))
    client = make_client("openai/gpt-9-preview", prefix="/v1")
    response, stats = client.chat().user("Hello").execute_with_stats()
    assert server.last.path == "/v1/chat/completions"
    assert server.last.json["model"] == "gpt-9-preview"
    assert response.content == "hi" and stats.prompt_tokens == 5
    assert client.manifest.price("gpt-9-preview") is None and stats.cost_usd is None


def test_catalog_needs_no_network(monkeypatch):
    """Prices are data in the manifests: loading and costing never opens a socket."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("the catalog tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    client = AiClient("openai/gpt-6.1-sol", api_key="k")
    assert client.manifest.cost_usd("gpt-6.1-sol", 1_000_000, 0) == 2.0
    client.close()
