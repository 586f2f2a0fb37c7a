"""Shared fixtures: a loopback server per test, clients pointed at it, a clean environment."""

from __future__ import annotations

import os

import pytest

from ai_lib_sync.testing import LoopbackServer, openai_echo

# Variables that would otherwise leak a developer's real configuration into tests.
_PREFIXES = ("OPENAI", "AZURE", "ANTHROPIC", "GEMINI", "GOOGLE", "CO_API", "COHERE", "OLLAMA", "AWS",
             "AI_LIB_SYNC", "DEEPSEEK", "GROQ", "MISTRAL", "XAI", "TOGETHER", "OPENROUTER", "FIREWORKS",
             "PERPLEXITY", "PPLX", "CEREBRAS", "DEEPINFRA", "NVIDIA", "SAMBANOVA", "DASHSCOPE", "ZHIPU",
             "MOONSHOT", "ARK", "VOLC", "BAICHUAN", "MINIMAX", "YI_", "SILICONFLOW", "LMSTUDIO", "LM_STUDIO",
             "VLLM", "LLAMA", "HF_", "HUGGING", "GITHUB_", "GH_TOKEN", "HYPERBOLIC", "NOVITA", "NEBIUS",
             "HUNYUAN", "STEP", "QIANFAN", "AI_GATEWAY", "VERCEL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server():
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture
def make_client(server):
    """``make_client("openai/gpt-4o", **kwargs)``: a client aimed at the loopback server.

    ``base_url`` defaults to the server root plus ``prefix`` (the part of the provider's
    documented base URL after the host, e.g. ``/v1`` for OpenAI)."""
    from ai_lib_sync import AiClient

    clients = []

    def factory(model: str, prefix: str = "", **kwargs):
        kwargs.setdefault("base_url", server.base_url + prefix)
        kwargs.setdefault("api_key", "test-key-123456")
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 10)
        client = AiClient(model, **kwargs)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
def seed_env(server, monkeypatch):
    """The seed page's setting: only OPENAI_API_KEY and OPENAI_BASE_URL, aimed at an echo server."""
    server.handler = openai_echo
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-seed")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url + "/v1")
    return server


# --- the suite-wide secrets guard (tests/faults/secrets_guard.py) ------------------------------
from tests.faults import secrets_guard as _secrets_guard  # noqa: E402

_secrets_guard.install()
secrets_guard = _secrets_guard.secrets_guard


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    leak = _secrets_guard.check_report(item, call)
    if leak:
        report = outcome.get_result()
        report.outcome = "failed"
        report.longrepr = f"a test key reached the exception that failed this test: {leak}"
