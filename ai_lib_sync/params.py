"""Checks and manifest parameter rules applied to a unified request before any I/O.

Generic checks (the SPEC's ranges) come first, then the manifest's: unsupported parameters
are dropped or refused, ranges narrowed per provider, required defaults filled in. Renames
and value maps of wire names belong to the dialects, which know where a field lives.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .errors import InvalidRequestError
from .types import ChatRequest, MessageRole

_UNIFIED_FIELDS = ("temperature", "max_tokens", "top_p", "stop", "tools", "tool_choice", "response_format")


def check_request(request: ChatRequest) -> None:
    """Refuse what no provider accepts, with a message that says what to fix."""
    if not request.messages:
        raise InvalidRequestError("the conversation is empty: add at least one message, e.g. .user('Hello')")
    if all(message.role == MessageRole.SYSTEM for message in request.messages):
        raise InvalidRequestError("the conversation has only system messages: add a user message with .user(...)")
    if request.temperature is not None and not 0 <= request.temperature <= 2:
        raise InvalidRequestError(f"temperature must be between 0 and 2, got {request.temperature}")
    if request.top_p is not None and not 0 <= request.top_p <= 1:
        raise InvalidRequestError(f"top_p must be between 0 and 1, got {request.top_p}")
    if request.max_tokens is not None and (isinstance(request.max_tokens, bool) or request.max_tokens < 1):
        raise InvalidRequestError(f"max_tokens must be a positive integer, got {request.max_tokens}")
    if request.tool_choice not in (None, "auto", "none", "required") and not request.tools:
        raise InvalidRequestError(f"tool_choice {request.tool_choice!r} names a tool, but no tools were given")
    if request.tool_choice not in (None, "auto", "none", "required") and request.tools:
        names = {tool.name for tool in request.tools}
        if request.tool_choice not in names:
            raise InvalidRequestError(
                f"tool_choice {request.tool_choice!r} is not one of the tools: {', '.join(sorted(names))}"
            )
    if request.response_format is not None:
        kind = request.response_format.get("type")
        if kind not in ("text", "json_object", "json_schema"):
            raise InvalidRequestError(
                f"response_format type must be text, json_object or json_schema, got {kind!r}"
            )
        if kind == "json_schema" and not isinstance(request.response_format.get("json_schema"), dict):
            raise InvalidRequestError("response_format json_schema needs {'json_schema': {'name': ..., 'schema': {...}}}")


def apply_manifest_rules(request: ChatRequest, manifest: Any) -> ChatRequest:
    """A copy of ``request`` shaped by the manifest's parameter rules."""
    rules = manifest.params
    changes: dict[str, Any] = {}
    extra = dict(request.extra)
    for name, action in rules.get("unsupported", {}).items():
        present = name in extra or (name in _UNIFIED_FIELDS and getattr(request, name) is not None)
        if not present:
            continue
        if action == "error":
            raise InvalidRequestError(f"{manifest.id} does not support the parameter {name!r}")
        if name in _UNIFIED_FIELDS:
            changes[name] = None
        extra.pop(name, None)
    for name, bounds in rules.get("ranges", {}).items():
        value = changes.get(name, extra.get(name, getattr(request, name, None)))
        low, high = bounds[0], bounds[1]
        if value is not None and not isinstance(value, (list, dict)) and not low <= value <= high:
            raise InvalidRequestError(f"{manifest.id} accepts {name} from {low} to {high}, got {value}")
    for name, default in rules.get("defaults", {}).items():
        if name in _UNIFIED_FIELDS:
            if changes.get(name, getattr(request, name)) is None and name not in changes:
                changes[name] = default
        else:
            extra.setdefault(name, default)
    limit = rules.get("max_stop_sequences")
    stop = changes.get("stop", request.stop)
    if limit is not None and stop and len(stop) > limit:
        raise InvalidRequestError(f"{manifest.id} accepts at most {limit} stop sequences, got {len(stop)}")
    if not changes and extra == request.extra:
        return request
    return dataclasses.replace(request, extra=extra, **changes)
