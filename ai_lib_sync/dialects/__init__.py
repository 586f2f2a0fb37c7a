"""Wire dialects: one pure encode/decode module per protocol family, imported on first use.

A dialect module exposes ``DIALECT``, an object with:

- ``encode_request(request, manifest, model, stream) -> HttpRequest``
- ``decode_response(body: bytes, manifest, model) -> ChatResponse``
- ``stream_decoder(manifest, model) -> StreamDecoder``
- ``classify_error(status, headers, body: bytes, manifest) -> ErrorInfo``
- ``framing``: the default stream framing (``sse``, ``ndjson`` or ``aws_eventstream``)

None of them performs I/O; the transport owns the network.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "openai_chat": "openai",
    "openai_responses": "openai_responses",
    "anthropic_messages": "anthropic",
    "gemini": "gemini",
    "cohere_v2": "cohere",
    "ollama_chat": "ollama",
    "bedrock_converse": "bedrock",
}


def dialect_names() -> list[str]:
    return sorted(_MODULES)


def get_dialect(name: str) -> Any:
    module = importlib.import_module(f"{__name__}.{_MODULES[name]}")
    return module.DIALECT
