"""What every dialect shares: the plain request description, error info, stream decoder base,
and the manifest-driven error classification.

Nothing here does I/O. Dialects return ``HttpRequest`` (a plain description, in the spirit of
botocore's serializers) and turn bytes or frames into unified objects.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ..errors import kind_for_status
from ..types import StreamEvent


@dataclass
class HttpRequest:
    """A transport-neutral request: easy to assert on in tests, not tied to an HTTP library."""

    method: str
    url_path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None


@dataclass
class ErrorInfo:
    kind: str
    message: str
    code: str | None = None
    type: str | None = None
    retry_after: float | None = None


class StreamDecoder:
    """Turns frames into unified events. ``feed`` takes one frame (an SSE event name and data,
    an NDJSON line with ``event=None``, or an AWS event-stream message type and payload).

    Contract for every dialect: deltas as they come, each tool call closed with exactly one
    ``ToolCallEnded``, then ``UsageEvent`` (when the provider sent usage), and ``FinishEvent``
    last, exactly once. ``finish()`` is called when the byte stream ends and raises
    ``StreamInterruptedError`` when the terminator never came.
    """

    done: bool = False

    def feed(self, event: str | None, data: Any) -> list[StreamEvent]:  # pragma: no cover
        raise NotImplementedError

    def finish(self) -> list[StreamEvent]:  # pragma: no cover
        raise NotImplementedError


def new_call_id() -> str:
    """An id for a tool call the provider sent without one (tool results must name a call)."""
    return "call_" + uuid.uuid4().hex[:24]


def with_tool_calls(finish_reason: str, has_tool_calls: bool) -> str:
    """A turn that made tool calls finishes as ``tool_calls`` even where the provider says stop."""
    return "tool_calls" if has_tool_calls and finish_reason == "stop" else finish_reason


def chat_path(manifest: Any, model: str, stream: bool) -> str:
    """The manifest's path template with the URL-quoted model substituted."""
    endpoint = manifest.endpoint
    template = endpoint.get("stream_path", endpoint["chat_path"]) if stream else endpoint["chat_path"]
    return template.replace("{model}", quote(model, safe=""))


def chat_query(manifest: Any, stream: bool) -> dict[str, str]:
    endpoint = manifest.endpoint
    query = dict(endpoint.get("query", {}))
    if stream:
        query.update(endpoint.get("stream_query", {}))
    return query


def json_or_none(body: bytes | str) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def extract_error(payload: Any, fallback: str) -> tuple[str, str | None, str | None]:
    """(message, type, code) from the error envelopes providers use:
    ``{"error": {"message", "type", "code"}}``, ``{"error": "text"}``, ``{"message"}``,
    ``{"detail"}``, ``[{"error": {...}}]`` (Gemini arrays)."""
    if isinstance(payload, list) and payload:
        payload = payload[0]
    if not isinstance(payload, dict):
        return (payload if isinstance(payload, str) and payload else fallback), None, None
    error = payload.get("error", payload)
    if isinstance(error, str):
        return error, _str_or_none(payload.get("type")), _str_or_none(payload.get("code"))
    if not isinstance(error, dict):
        return fallback, None, None
    message = error.get("message") or error.get("msg") or error.get("detail") or payload.get("message")
    if isinstance(message, (dict, list)):
        message = json.dumps(message)
    err_type = error.get("type") or error.get("status") or payload.get("type")
    code = error.get("code") if error.get("code") is not None else payload.get("code")
    return (str(message) if message else fallback), _str_or_none(err_type), _str_or_none(code)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


# Patterns that mean the same thing at nearly every provider; manifests add their own first.
COMMON_RULES: list[dict[str, Any]] = [
    {"code": "^(insufficient_quota|billing_hard_limit_reached|billing_not_active|payment_required)$", "kind": "quota_exhausted"},
    {"message": "insufficient.?(quota|balance|credits?)|exceeded your current quota|billing|out of credits|payment required|balance is insufficient|arrearage", "kind": "quota_exhausted"},
    {"code": "^(context_length_exceeded|string_above_max_length)$", "kind": "context_length"},
    # llama.cpp: 400 {"type": "exceed_context_size_error", "message": "request (1290 tokens) exceeds
    # the available context size (1024 tokens), ..."}, on /v1/chat/completions and /v1/messages alike.
    {"type": "^exceed_context_size_error$", "kind": "context_length"},
    # vLLM ("maximum context length is", "longer than the maximum model length"), Ollama ("the
    # input length exceeds the context length"), Bedrock ("Input is too long for requested
    # model"), Cohere ("too many tokens: size limit exceeded"), llama.cpp (above).
    {"message": "context.?length|context window|maximum context|too many tokens|prompt is too long|prompt too long|"
                "input is too long|reduce the length|exceeds the (model's )?(maximum|max)|available context size|"
                "maximum model length|exceed_context_size", "kind": "context_length"},
    {"code": "^(content_filter|content_policy_violation|content_filtered)$", "kind": "content_filter"},
    {"type": "^(content_filter|content_policy_violation)$", "kind": "content_filter"},
    {"message": "content (management )?policy|content filter|safety system|flagged as (unsafe|inappropriate)", "kind": "content_filter"},
    {"code": "^(invalid_api_key|invalid_key|unauthorized|authentication_error)$", "kind": "authentication"},
    {"type": "^(authentication_error|invalid_api_key)$", "kind": "authentication"},
    {"code": "^(model_not_found|not_found)$", "kind": "not_found"},
    # "model not found" often comes as a 400 (OpenAI-compatible servers, DeepSeek "Model Not Exist").
    {"message": r"\bmodel\b.{0,120}\b(not found|does not exist|not exist|is not (available|supported|a valid model))|"
                r"no such model|unknown model|model.not.found|invalid model (name|id)", "kind": "not_found"},
    {"type": "^(rate_limit_error|rate_limit_exceeded|requests|tokens)$", "kind": "rate_limited"},
    {"type": "^(overloaded_error|server_overloaded)$", "kind": "overloaded"},
    {"type": "^(server_error|api_error|internal_server_error)$", "kind": "server_error"},
]


def _matches(rule: dict[str, Any], status: int | None, message: str, err_type: str | None, code: str | None) -> bool:
    if "status" in rule:
        statuses = rule["status"] if isinstance(rule["status"], list) else [rule["status"]]
        if status not in statuses:
            return False
    if "type" in rule and not (err_type and re.search(rule["type"], err_type)):
        return False
    if "code" in rule:
        wanted = rule["code"]
        if isinstance(wanted, int):
            if code is None or code != str(wanted):
                return False
        elif not (code and re.search(wanted, code)):
            return False
    if "message" in rule and not re.search(rule["message"], message or "", re.IGNORECASE):
        return False
    return True


# The kinds a rule may refine an HTTP status into. The status decides first: a 429 is never
# context_length, whatever its message says ("too many tokens" per minute); a message or code
# only chooses among the kinds its status can mean. Statuses not listed (2xx error frames in a
# stream, provider-specific 498/499, ...) may be anything. A manifest rule that names a
# ``status`` is trusted as written.
STATUS_REFINEMENTS: dict[int, frozenset[str]] = {
    # 400 is overloaded by providers: Gemini sends a bad key, Bedrock ServiceQuotaExceeded
    # (throttling), DashScope arrears as 400. Only the server-side kinds are excluded.
    400: frozenset({"invalid_request", "context_length", "content_filter", "not_found", "quota_exhausted",
                    "authentication", "permission", "rate_limited"}),
    401: frozenset({"authentication", "permission", "quota_exhausted"}),
    402: frozenset({"quota_exhausted"}),
    403: frozenset({"permission", "authentication", "quota_exhausted", "content_filter", "not_found"}),
    404: frozenset({"not_found"}),
    408: frozenset({"timeout"}),
    413: frozenset({"context_length", "invalid_request"}),
    422: frozenset({"invalid_request", "context_length", "content_filter", "not_found"}),
    429: frozenset({"rate_limited", "quota_exhausted", "overloaded"}),
}
# A 5xx is never a caller mistake, whatever its message says.
_NOT_5XX = frozenset({"invalid_request", "not_found", "authentication", "permission"})


def status_allows(status: int | None, kind: str) -> bool:
    """Whether a rule may turn an error of HTTP ``status`` into ``kind``."""
    if status is None or status < 400:
        return True
    if status >= 500:
        # 503/529 mean "overloaded" whatever generic error type the body names.
        return kind not in _NOT_5XX and not (status in (503, 529) and kind == "server_error")
    allowed = STATUS_REFINEMENTS.get(status)
    return allowed is None or kind in allowed


def embedded_status(payload: Any) -> int | None:
    """The HTTP status an error body or stream frame carries itself (``"status_code": 429``,
    ``"status": 503``, ``"error": {"code": 400}``), when it is one; else None."""
    if isinstance(payload, list) and payload:
        payload = payload[0]
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    for node, key in ((payload, "status_code"), (payload, "status"), (error, "status_code"), (error, "status"),
                      (error, "code")):
        value = node.get(key) if isinstance(node, dict) else None
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 400 <= value < 600:
            return value
    return None


def classify(status: int | None, message: str, err_type: str | None, code: str | None,
             manifest: Any, dialect_rules: list[dict[str, Any]] = ()) -> str:
    """First matching rule the HTTP status allows wins: the manifest's, then the dialect's,
    then the common ones; else the status alone decides. Without a status (an error frame in a
    stream that carries none) every rule applies."""
    manifest_rules = manifest.errors.get("rules", ())
    for position, rule in enumerate((*manifest_rules, *dialect_rules, *COMMON_RULES)):
        if _matches(rule, status, message, err_type, code):
            kind = rule["kind"]
            if position < len(manifest_rules) and "status" in rule:
                return kind
            if status_allows(status, kind):
                return kind
    return kind_for_status(status)


def classify_body(status: int | None, body: bytes | str, manifest: Any,
                  dialect_rules: list[dict[str, Any]] = ()) -> ErrorInfo:
    """``ErrorInfo`` of an error body in the common envelopes (``extract_error``): an HTTP
    error, or an error line or event inside a stream, which may carry its own status."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    payload = json_or_none(text)
    message, err_type, code = extract_error(payload, text.strip()[:500] or f"HTTP {status}")
    if status is None or status < 400:
        status = embedded_status(payload) or status
    return ErrorInfo(classify(status, message, err_type, code, manifest, dialect_rules), message, code, err_type)
