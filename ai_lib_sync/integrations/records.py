"""Flat result records for data-frame and Dask users: one dict per request, the same columns
whether the call succeeded or not, so a frame of a million rows needs no per-row checks.

``content``, ``finish_reason``, ``prompt_tokens``, ``completion_tokens``, ``total_tokens``,
``cost_usd`` (from the client's manifest prices; None when unpriced), ``error`` (the error
``kind``, None on success), ``error_message`` and ``custom_id`` (None when the request had none).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import AiLibError

FIELDS = ("content", "finish_reason", "prompt_tokens", "completion_tokens", "total_tokens",
          "cost_usd", "error", "error_message", "custom_id")
DTYPES = {"content": "object", "finish_reason": "object", "prompt_tokens": "int64",
          "completion_tokens": "int64", "total_tokens": "int64", "cost_usd": "float64",
          "error": "object", "error_message": "object", "custom_id": "object"}


def with_options(item: Any, options: Mapping[str, Any]) -> Any:
    """A prompt string or an OpenAI-style dict, with the call-wide ``options`` (temperature,
    max_tokens, ...) filled in where the item does not set them."""
    if not options:
        return item
    if isinstance(item, str):
        return {"messages": [{"role": "user", "content": item}], **options}
    if isinstance(item, Mapping):
        return {**options, **item}
    return item


def record(result: Any, client: Any = None) -> dict[str, Any]:
    """The record of one executor result (a ``ChatResponse`` or an ``AiLibError``)."""
    custom_id = getattr(result, "custom_id", None)
    if isinstance(result, AiLibError):
        return {"content": None, "finish_reason": None, "prompt_tokens": 0, "completion_tokens": 0,
                "total_tokens": 0, "cost_usd": None, "error": result.kind,
                "error_message": result.message, "custom_id": custom_id}
    usage = result.usage
    cost = None
    if client is not None and result.provider in ("", client.provider):
        cost = client.manifest.usage_cost_usd(client.model, usage)
    prompt, completion = usage.prompt_tokens or 0, usage.completion_tokens or 0
    return {"content": result.content, "finish_reason": result.finish_reason,
            "prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": usage.total_tokens or prompt + completion, "cost_usd": cost,
            "error": None, "error_message": None, "custom_id": custom_id}
