"""Checks and manifest parameter rules applied to a unified request before any I/O.

Generic checks (the SPEC's ranges) come first, then the manifest's: unsupported parameters
are dropped (with a debug log) or refused, ranges narrowed per provider, required defaults
filled in. ``params.model_rules`` narrow all of these per model family (model-id globs,
optionally only with reasoning on or from an API version on), so one manifest serves
``gpt-4o`` and ``o3`` alike. Renames and value maps of wire names belong to the dialects,
which know where a field lives; they read the same merged view through ``model_params``.

``reasoning_fields`` turns the one unified reasoning control into the provider's fields from
the manifest's ``params.reasoning`` template (or the dialect's default template).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
from functools import lru_cache
from typing import Any

from .errors import InvalidRequestError
from .types import ChatRequest, MessageRole

log = logging.getLogger("ai_lib_sync.params")

_UNIFIED_FIELDS = ("temperature", "max_tokens", "top_p", "stop", "tools", "tool_choice", "response_format",
                   "reasoning")
EFFORTS = ("low", "medium", "high")
# Budget for an effort when only an effort is given and the provider wants tokens. The
# Anthropic minimum is 1024; 24576 is the largest budget every Gemini 2.5 model accepts.
DEFAULT_BUDGETS = {"low": 1024, "medium": 8192, "high": 24576}
# Output room added on top of a thinking budget when the caller set no max_tokens.
ANSWER_ROOM_TOKENS = 4096
_RULE_KEYS = ("match", "when", "note")
_MERGED_MAPS = ("rename", "unsupported", "ranges", "defaults", "tool_choice")


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
    check_reasoning(request.reasoning)


def check_reasoning(reasoning: Any) -> None:
    if reasoning is None:
        return
    if reasoning.effort is None and reasoning.budget_tokens is None:
        raise InvalidRequestError("reasoning needs an effort ('low', 'medium', 'high') or budget_tokens")
    if reasoning.effort is not None and reasoning.effort not in EFFORTS:
        raise InvalidRequestError(f"reasoning effort must be one of low, medium, high, got {reasoning.effort!r}")
    budget = reasoning.budget_tokens
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
        raise InvalidRequestError(f"reasoning budget_tokens must be a positive integer, got {budget!r}")


# --- per-model rules -----------------------------------------------------------------------


def _rule_applies(rule: dict[str, Any], model: str, reasoning: bool, query: dict[str, str]) -> bool:
    name = model.lower()
    if "match" in rule and not any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in rule["match"]):
        return False
    when = rule.get("when", {})
    if "reasoning" in when and bool(when["reasoning"]) != reasoning:
        return False
    version = query.get("api-version")
    # API versions are dates (YYYY-MM-DD[-preview]); a request without one (a v1 endpoint) is
    # the newest API.
    if "api_version_min" in when and version and version[:10] < when["api_version_min"][:10]:
        return False
    if "api_version_below" in when and (not version or version[:10] >= when["api_version_below"][:10]):
        return False
    return True


def model_params(manifest: Any, model: str, *, reasoning: bool = False,
                 query: dict[str, str] | None = None) -> dict[str, Any]:
    """The manifest's ``params`` for ``model``: the top level with every matching
    ``model_rules`` entry merged over it in order (maps merged key by key, others replaced).
    Remembered per (manifest, model, reasoning, query): every request asks, some dialects twice,
    and the answer never changes. Read-only: callers share it."""
    base = manifest.params
    if not base.get("model_rules"):
        return base
    query = manifest.endpoint.get("query", {}) if query is None else query
    return _merged_params(manifest, model, reasoning, tuple(sorted(query.items())))


@lru_cache(maxsize=1024)
def _merged_params(manifest: Any, model: str, reasoning: bool,
                   query_items: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    base = manifest.params
    query = dict(query_items)
    merged = {key: value for key, value in base.items() if key != "model_rules"}
    for rule in base["model_rules"]:
        if not _rule_applies(rule, model, reasoning, query):
            continue
        for key, value in rule.items():
            if key in _RULE_KEYS:
                continue
            if key in _MERGED_MAPS and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return merged


# --- reasoning -----------------------------------------------------------------------------


def reasoning_plan(reasoning: Any, spec: dict[str, Any]) -> tuple[str, int]:
    """(wire effort, budget tokens) for a unified ``Reasoning`` under a manifest spec: the
    effort mapped through ``efforts``, a budget from ``budgets`` when only an effort was given,
    an effort from the budgets when only a budget was given."""
    budgets = {**DEFAULT_BUDGETS, **spec.get("budgets", {})}
    effort = reasoning.effort
    if effort is None:
        effort = "low"
        for name in EFFORTS:
            if budgets[name] <= reasoning.budget_tokens:
                effort = name
    budget = reasoning.budget_tokens if reasoning.budget_tokens is not None else budgets[effort]
    efforts = spec.get("efforts", {name: name for name in EFFORTS})
    if effort not in efforts:
        raise InvalidRequestError(
            f"this model accepts reasoning efforts {', '.join(efforts)}, got {effort!r}")
    return efforts[effort], budget


def _fill(template: Any, values: dict[str, Any]) -> Any:
    if isinstance(template, dict):
        return {key: _fill(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [_fill(value, values) for value in template]
    if isinstance(template, str) and template.startswith("{") and template.endswith("}") and template[1:-1] in values:
        return values[template[1:-1]]
    return template


def reasoning_fields(request: ChatRequest, manifest: Any, model: str,
                     default_body: dict[str, Any] | None) -> dict[str, Any]:
    """The body fields that carry ``request.reasoning`` for this model (``{}`` without one):
    the manifest's ``params.reasoning.body`` (or the dialect's ``default_body``) with
    ``"{effort}"`` and ``"{budget_tokens}"`` filled in. Each dialect places them where it places
    ``param()`` fields."""
    if request.reasoning is None:
        return {}
    spec = model_params(manifest, model, reasoning=True).get("reasoning") or {}
    body = spec.get("body", default_body)
    if not body:
        raise InvalidRequestError(f"{manifest.id}/{model}: no documented reasoning control for this model")
    effort, budget = reasoning_plan(request.reasoning, spec)
    low, high = spec.get("budget_range", (1, None))
    if "{budget_tokens}" in repr(body) and (budget < low or (high is not None and budget > high)):
        raise InvalidRequestError(
            f"{manifest.id}/{model}: reasoning budget_tokens must be from {low} to {high or 'the max_tokens'}, "
            f"got {budget}")
    return _fill(body, {"effort": effort, "budget_tokens": budget})


# --- manifest rules --------------------------------------------------------------------------


def apply_manifest_rules(request: ChatRequest, manifest: Any, model: str | None = None,
                         query: dict[str, str] | None = None) -> ChatRequest:
    """A copy of ``request`` shaped by the manifest's parameter rules for ``model`` (default
    ``request.model``) and the API version in ``query`` (default the manifest's)."""
    model = model or request.model
    rules = model_params(manifest, model, reasoning=request.reasoning is not None, query=query)
    changes: dict[str, Any] = {}
    extra = dict(request.extra)
    for name, action in rules.get("unsupported", {}).items():
        present = name in extra or (name in _UNIFIED_FIELDS and getattr(request, name) is not None)
        if not present or action == "allow":
            continue
        if action == "error":
            why = " with reasoning on" if request.reasoning is not None and name != "reasoning" else ""
            raise InvalidRequestError(
                f"{manifest.id}/{model} does not support the parameter {name!r}{why}: remove it")
        log.debug("%s/%s does not support %r: dropped", manifest.id, model, name)
        if name in _UNIFIED_FIELDS:
            changes[name] = None
        extra.pop(name, None)
    for name, bounds in rules.get("ranges", {}).items():
        value = changes.get(name, extra.get(name, getattr(request, name, None)))
        low, high = bounds[0], bounds[1]
        if value is not None and not isinstance(value, (list, dict)) and not low <= value <= high:
            raise InvalidRequestError(f"{manifest.id} accepts {name} from {low} to {high}, got {value}"
                                      + (f" (model {model})" if rules is not manifest.params else ""))
    reasoning = changes.get("reasoning", request.reasoning)
    spec = rules.get("reasoning") or {}
    if reasoning is not None and spec.get("max_tokens_above_budget"):
        _, budget = reasoning_plan(reasoning, spec)
        if request.max_tokens is not None and request.max_tokens <= budget:
            raise InvalidRequestError(
                f"{manifest.id}/{model}: max_tokens ({request.max_tokens}) must be larger than the reasoning "
                f"budget ({budget} tokens), since thinking counts towards it: raise max_tokens or lower the budget")
        if request.max_tokens is None:
            changes["max_tokens"] = budget + rules.get("defaults", {}).get("max_tokens", ANSWER_ROOM_TOKENS)
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
