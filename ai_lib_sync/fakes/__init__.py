"""Wire fakes: loopback stand-ins for every provider family, in that family's real format.

Each module reads requests the way its provider documents them and answers the same way:
``openai`` (Chat Completions and every OpenAI-compatible provider), ``openai_responses`` (OpenAI's
Responses API, /v1/responses), ``anthropic`` (Messages), ``gemini`` (generateContent), ``cohere``
(v2 chat), ``ollama`` (/api/chat, NDJSON) and ``bedrock`` (Converse, AWS event-stream). Our
cross-dialect table (tests/cross) checks every dialect against them strictly;
``ai_lib_sync.testing.AiFake`` and the pytest fixture ``ai_fake`` use them to stand in for
providers when testing applications.

``family_of(path)`` tells which family a request path belongs to (the documented endpoint paths
differ per family, whatever base URL precedes them), so one server can answer every client.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from .base import ANY, KEEP, Answer, Call, ErrorCase, FakeProvider, Seen

__all__ = ["ANY", "FAMILIES", "KEEP", "Answer", "Call", "ErrorCase", "FakeProvider", "Seen", "fake_class",
           "family_of", "make_fake"]

# family -> (module, class, the path pattern of its chat endpoint)
FAMILIES: dict[str, tuple[str, str, re.Pattern[str]]] = {
    "openai": ("openai", "OpenAIFake", re.compile(r"/chat/completions$")),
    "openai_responses": ("openai_responses", "OpenAIResponsesFake", re.compile(r"/responses$")),
    "anthropic": ("anthropic", "AnthropicFake", re.compile(r"/v1/messages$")),
    "gemini": ("gemini", "GeminiFake", re.compile(r"/models/[^/:]+:(generateContent|streamGenerateContent)$")),
    "cohere": ("cohere", "CohereFake", re.compile(r"/v2/chat$")),
    "ollama": ("ollama", "OllamaFake", re.compile(r"/api/chat$")),
    "bedrock": ("bedrock", "BedrockFake", re.compile(r"/model/[^/]+/(converse|converse-stream)$")),
}
# manifest dialect -> family
DIALECTS = {"openai_chat": "openai", "openai_responses": "openai_responses", "anthropic_messages": "anthropic",
            "gemini": "gemini", "cohere_v2": "cohere", "ollama_chat": "ollama", "bedrock_converse": "bedrock"}


def family_of(path: str) -> str | None:
    """The family whose documented chat endpoint ``path`` is, or None."""
    for family, (_, _, pattern) in FAMILIES.items():
        if pattern.search(path):
            return family
    return None


def fake_class(family: str) -> type[FakeProvider]:
    family = DIALECTS.get(family, family)
    if family not in FAMILIES:
        raise ValueError(f"no fake for {family!r}; families: {', '.join(FAMILIES)}")
    module, name, _ = FAMILIES[family]
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def make_fake(family: str, **options: Any) -> FakeProvider:
    """A fresh fake of ``family`` (a family name or a manifest dialect name)."""
    return fake_class(family)(**options)
