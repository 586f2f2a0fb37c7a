"""The Anthropic Messages wire dialect, spoken by Anthropic and by the Anthropic-compatible
endpoints of other providers (DeepSeek, Moonshot, ...; each is a manifest).

References (docs.anthropic.com / docs.claude.com): the Messages API (``/v1/messages``),
streaming (named SSE events), tool use, vision, structured outputs, and errors.

Decisions the documentation leaves to us:

- System messages, wherever they appear, become the top-level ``system`` (a string for one,
  text blocks for several). Consecutive turns of one role are merged, because the API wants
  alternation; tool results become ``tool_result`` blocks of a user turn.
- ``response_format`` json_schema uses native structured outputs
  (``output_config.format``) when the manifest lists ``json_schema`` among the model's
  capabilities; otherwise, and for json_object (which has no native form), the documented
  "JSON via a forced tool" pattern: one tool named ``JSON_TOOL`` whose ``input_schema`` is the
  schema, forced with ``tool_choice``. Its input comes back as ``content`` (JSON text), never
  as a tool call, streamed as content deltas, finishing as ``stop``. A forced tool cannot be
  combined with another ``tool_choice`` nor, per Anthropic, with extended thinking.
- Extended thinking with tools: the ``thinking`` (with ``signature``) and ``redacted_thinking``
  blocks of an answer are kept verbatim in ``reasoning_blocks`` (streams: accumulated from
  ``thinking_delta`` and ``signature_delta``), and an assistant message carrying them sends
  them first, before its text and ``tool_use`` blocks, as the docs' "preserving thinking
  blocks" requires. Blocks of other shapes (another dialect's) are not sent.
- ``.reasoning(effort, budget_tokens)`` -> ``thinking: {"type": "enabled", "budget_tokens": N}``
  (https://docs.claude.com/en/docs/build-with-claude/extended-thinking), unless the manifest's
  ``params.reasoning.body`` says otherwise (DeepSeek's endpoint takes ``output_config.effort``).
  An effort alone becomes a budget: low 1024 (the documented minimum), medium 8192, high 24576
  (``params.reasoning.budgets`` overrides). ``max_tokens`` must exceed the budget: a smaller
  explicit one is refused before any I/O, a missing one becomes budget + the default 4096. With
  thinking on, temperature is refused and top_p narrowed to 0.95..1 (manifest ``model_rules``),
  and a forced tool (``tool_choice`` required or a name, or JSON output through the forced tool)
  is refused: the docs allow only ``auto`` and ``none`` with thinking.

Stop reasons: ``end_turn``/``stop_sequence`` -> stop, ``max_tokens`` and
``model_context_window_exceeded`` -> length, ``tool_use`` -> tool_calls, ``refusal`` ->
content_filter with ``response.refusal`` set (the text given before the refusal, else a note
that says so), ``pause_turn`` -> other: a server-tool turn paused before it finished; send the
response back as the assistant turn (``response.to_message()``) to let it continue.
"""

from __future__ import annotations

import json
from typing import Any

from ..dicts import deep_merge
from ..errors import InvalidRequestError, make_error
from ..params import reasoning_fields
from ..structured import closed_schema
from ..types import (
    ChatRequest,
    ChatResponse,
    ContentDelta,
    FinishEvent,
    ImagePart,
    Message,
    MessageRole,
    StreamEvent,
    TextPart,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallEnded,
    ToolCallStarted,
    Usage,
    UsageEvent,
)
from .base import (
    COMMON_RULES,
    ErrorInfo,
    HttpRequest,
    StreamDecoder,
    chat_path,
    chat_query,
    classify,
    embedded_status,
    extract_error,
    json_or_none,
    with_tool_calls,
)

# Reserved name of the forced tool that carries JSON output on models without structured
# outputs. Unlikely to clash with a user's tool, since the decoder turns it into content.
JSON_TOOL = "ai_lib_sync_json_response"
FALLBACK_MAX_TOKENS = 4096  # max_tokens is required; manifests set params.defaults.max_tokens
REASONING_TYPES = ("thinking", "redacted_thinking")  # echoed back unchanged, signature and all
DEFAULT_REASONING_BODY = {"thinking": {"type": "enabled", "budget_tokens": "{budget_tokens}"}}
REFUSAL_NOTE = "the model declined to answer (stop_reason refusal)"

STOP_REASONS = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "other",
    "max_tokens": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls", "refusal": "content_filter",
}

# Anthropic error types (https://docs.anthropic.com/en/api/errors). The type decides the kind
# even without an HTTP status (an ``event: error`` inside a stream), but only after the
# message rules, since "prompt is too long" arrives as an invalid_request_error.
ERROR_RULES: list[dict[str, Any]] = [
    {"type": "^billing_error$", "kind": "quota_exhausted"},
    {"message": "credit balance is too low", "kind": "quota_exhausted"},
    {"message": "prompt is too long|exceeds? (the )?context limit", "kind": "context_length"},
    {"type": "^request_too_large$", "kind": "context_length"},
    *COMMON_RULES,
    {"type": "^invalid_request_error$", "kind": "invalid_request"},
    {"type": "^authentication_error$", "kind": "authentication"},
    {"type": "^permission_error$", "kind": "permission"},
    {"type": "^not_found_error$", "kind": "not_found"},
    {"type": "^rate_limit_error$", "kind": "rate_limited"},
    {"type": "^(api_error|internal_server_error)$", "kind": "server_error"},
    {"type": "^overloaded_error$", "kind": "overloaded"},
    {"type": "^timeout_error$", "kind": "timeout"},
]


def map_stop_reason(reason: str | None, has_tool_calls: bool) -> str:
    mapped = STOP_REASONS.get(reason or "", "other" if reason else "stop")
    if mapped == "tool_calls" and not has_tool_calls:
        return "stop"  # only the forced JSON tool was used
    return with_tool_calls(mapped, has_tool_calls)


# --- request -----------------------------------------------------------------------------


def encode_image(part: ImagePart) -> dict[str, Any]:
    if part.data is not None:
        source = {"type": "base64", "media_type": part.media_type or "image/png", "data": part.data}
    else:
        source = {"type": "url", "url": part.url or ""}
    return {"type": "image", "source": source}


def encode_blocks(message: Message) -> list[dict[str, Any]]:
    """The content blocks of one unified message, in the role it will be sent as."""
    if message.role == MessageRole.TOOL:
        return [{"type": "tool_result", "tool_use_id": message.tool_call_id or "", "content": message.text}]
    reasoning = message.reasoning_blocks if message.role == MessageRole.ASSISTANT else None
    blocks = [dict(block) for block in reasoning or () if block.get("type") in REASONING_TYPES]
    if isinstance(message.content, list):
        for part in message.content:
            if isinstance(part, TextPart):
                if part.text:
                    blocks.append({"type": "text", "text": part.text})
            elif isinstance(part, ImagePart):
                blocks.append(encode_image(part))
    elif message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls or ():
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments})
    if blocks and "cache_control" in message.extra:
        blocks[-1]["cache_control"] = message.extra["cache_control"]
    return blocks


def encode_messages(messages: list[Message]) -> tuple[Any, list[dict[str, Any]]]:
    """(system, turns): system prompts lifted out, same-role turns merged."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        blocks = encode_blocks(message)
        if message.role == MessageRole.SYSTEM:
            system.extend(blocks)
            continue
        if not blocks:
            continue  # the API refuses empty turns
        role = "assistant" if message.role == MessageRole.ASSISTANT else "user"
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:  # a single text block reads best as the documented plain string
        content = turn["content"]
        if len(content) == 1 and set(content[0]) == {"type", "text"}:
            turn["content"] = content[0]["text"]
    if len(system) == 1 and set(system[0]) == {"type", "text"}:
        return system[0]["text"], turns
    return (system or None), turns


def encode_tool_choice(choice: str) -> dict[str, Any]:
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    return {"type": "tool", "name": choice}


def encode_response_format(request: ChatRequest, manifest: Any, model: str, body: dict[str, Any]) -> None:
    response_format = request.response_format or {}
    kind = response_format.get("type")
    if kind not in ("json_schema", "json_object"):
        return
    spec = response_format.get("json_schema") or {}
    schema = spec.get("schema") or {"type": "object"}
    capabilities = manifest.model_info(model).get("capabilities", ())
    if kind == "json_schema" and "json_schema" in capabilities:
        # Native structured outputs require every object closed (additionalProperties false).
        body["output_config"] = {"format": {"type": "json_schema", "schema": closed_schema(schema)}}
        return
    if request.tool_choice not in (None, "auto"):
        raise InvalidRequestError(
            f"{manifest.id}/{model}: response_format {kind} is sent as a forced tool on this model, "
            f"so it cannot be combined with tool_choice {request.tool_choice!r}"
        )
    description = spec.get("description") or "Give the answer as a JSON object matching this input schema."
    body.setdefault("tools", []).append({"name": JSON_TOOL, "description": description, "input_schema": schema})
    body["tool_choice"] = {"type": "tool", "name": JSON_TOOL}


# --- response ----------------------------------------------------------------------------


def decode_usage(usage: dict[str, Any] | None) -> Usage | None:
    """Cache reads and writes are input the model processed, so they count as prompt tokens;
    ``output_tokens`` already includes thinking."""
    if not usage:
        return None
    cached = usage.get("cache_read_input_tokens")
    prompt = (usage.get("input_tokens") or 0) + (cached or 0) + (usage.get("cache_creation_input_tokens") or 0)
    return Usage.of(prompt, usage.get("output_tokens"), cached=cached)


def error_info(status: int | None, body: bytes | str, manifest: Any) -> ErrorInfo:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    fallback = text.strip()[:500] or f"HTTP {status}"
    payload = json_or_none(text)
    message, err_type, code = extract_error(payload, fallback)
    if status is None or status < 400:  # an error event may carry its own status
        status = embedded_status(payload) or status
    kind = classify(status, message, err_type, code, manifest, ERROR_RULES)
    return ErrorInfo(kind, message, code or err_type, err_type)  # the type is Anthropic's only code


def raise_error_payload(data: str, manifest: Any) -> None:
    info = error_info(None, data, manifest)
    raise make_error(info.kind, info.message, code=info.code, provider=manifest.id, body=data)


class AnthropicMessagesDialect:
    name = "anthropic_messages"
    framing = "sse"

    def encode_request(self, request: ChatRequest, manifest: Any, model: str, stream: bool) -> HttpRequest:
        system, turns = encode_messages(request.messages)
        body: dict[str, Any] = {"model": model, "messages": turns,
                                "max_tokens": request.max_tokens or FALLBACK_MAX_TOKENS}
        if system is not None:
            body["system"] = system
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop_sequences"] = request.stop
        if request.tools:
            body["tools"] = [{"name": tool.name, **({"description": tool.description} if tool.description else {}),
                              "input_schema": tool.parameters} for tool in request.tools]
        if request.tool_choice is not None and (request.tools or request.tool_choice not in ("auto", "none")):
            body["tool_choice"] = encode_tool_choice(request.tool_choice)
        encode_response_format(request, manifest, model, body)
        thinking = reasoning_fields(request, manifest, model, DEFAULT_REASONING_BODY)
        if thinking:
            forced = (body.get("tool_choice") or {}).get("type") in ("any", "tool")
            if forced:
                raise InvalidRequestError(
                    f"{manifest.id}/{model}: extended thinking works only with tool_choice 'auto' or 'none' "
                    "(a forced tool, or JSON output sent as one, is refused by the API): drop one of them")
            body.update(deep_merge(body, thinking))  # output_config may hold both format and effort
        if stream:
            body["stream"] = True
        body.update(request.extra)
        headers = {"Content-Type": "application/json",
                   "Accept": "text/event-stream" if stream else "application/json"}
        return HttpRequest("POST", chat_path(manifest, model, stream), chat_query(manifest, stream), headers, body)

    def decode_response(self, body: bytes, manifest: Any, model: str) -> ChatResponse:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise make_error("server_error", f"expected a JSON object, got {type(payload).__name__}", provider=manifest.id)
        if payload.get("type") == "error" or (payload.get("error") and "content" not in payload):
            raise_error_payload(body.decode("utf-8", "replace"), manifest)
        text: list[str] = []
        thinking: list[str] = []
        calls: list[ToolCall] = []
        reasoning: list[dict[str, Any]] = []
        for block in payload.get("content") or ():
            kind = block.get("type")
            if kind in REASONING_TYPES:
                reasoning.append(dict(block))
            if kind == "text":
                text.append(block.get("text") or "")
            elif kind == "thinking":
                thinking.append(block.get("thinking") or "")
            elif kind == "tool_use" and block.get("name") == JSON_TOOL:
                text.append(json.dumps(block.get("input") or {}, ensure_ascii=False))
            elif kind == "tool_use":
                calls.append(ToolCall.from_raw(block.get("id") or "", block.get("name") or "", block.get("input") or {}))
        refused = payload.get("stop_reason") == "refusal"
        return ChatResponse(
            content="".join(text),
            tool_calls=calls,
            finish_reason=map_stop_reason(payload.get("stop_reason"), bool(calls)),
            refusal=("".join(text) or REFUSAL_NOTE) if refused else None,
            usage=decode_usage(payload.get("usage")) or Usage(),
            model=payload.get("model") or model,
            provider=manifest.id,
            thinking="".join(thinking) or None,
            id=payload.get("id"),
            raw=payload,
            reasoning_blocks=reasoning or None,
        )

    def stream_decoder(self, manifest: Any, model: str) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder(manifest)

    def classify_error(self, status: int | None, headers: Any, body: bytes, manifest: Any) -> ErrorInfo:
        return error_info(status, body, manifest)

    def encode_batch_item(self, request: ChatRequest, manifest: Any, model: str, custom_id: str,
                          spec: dict[str, Any]) -> dict[str, Any]:
        """One Message Batches request: ``{"custom_id", "params"}``, params being the very body
        a direct ``/v1/messages`` call sends."""
        return {"custom_id": custom_id, "params": self.encode_request(request, manifest, model, False).body}

    def decode_batch_item(self, line: dict[str, Any], manifest: Any, model: str,
                          ) -> tuple[str | None, ChatResponse | ErrorInfo, int | None]:
        """One results line: ``{"custom_id", "result": {"type": "succeeded", "message"} |
        {"type": "errored", "error"} | {"type": "canceled"} | {"type": "expired"}}``."""
        result = line.get("result") or {}
        kind = result.get("type")
        if kind == "succeeded":
            message = json.dumps(result.get("message") or {}).encode()
            return line.get("custom_id"), self.decode_response(message, manifest, model), None
        if kind == "errored":
            return line.get("custom_id"), error_info(None, json.dumps(result.get("error") or {}), manifest), None
        code = {"canceled": "batch_cancelled", "expired": "batch_expired"}.get(kind or "", kind)
        return line.get("custom_id"), ErrorInfo("server_error", f"the batch request was {kind}", code), None


class AnthropicStreamDecoder(StreamDecoder):
    """Named SSE events -> unified events. Content blocks are tracked by their block index;
    tool calls are numbered by their position among tool calls (0, 1, ...). Thinking blocks
    are assembled (text and signature) for ``reasoning_blocks``, read after the stream."""

    def __init__(self, manifest: Any) -> None:
        self.manifest = manifest
        self.done = False
        self.blocks: dict[int, dict[str, Any]] = {}  # block index -> open tool or JSON block
        self.reasoning: dict[int, dict[str, Any]] = {}  # block index -> thinking block as sent
        self.tool_count = 0
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.text: list[str] = []  # kept for ``refusal``

    @property
    def refusal(self) -> str | None:
        """Set when the stream stopped with ``refusal``, read by the client for final_response()."""
        return ("".join(self.text) or REFUSAL_NOTE) if self.stop_reason == "refusal" else None

    def feed(self, event: str | None, data: Any) -> list[StreamEvent]:
        if self.done:
            return []
        try:
            payload = json.loads(data)
        except ValueError:
            raise make_error("stream_interrupted", f"malformed stream event: {str(data)[:200]!r}",
                             provider=self.manifest.id) from None
        if not isinstance(payload, dict):
            return []
        kind = payload.get("type") or event
        if kind == "error":
            raise_error_payload(data, self.manifest)
        handler = getattr(self, f"_on_{kind}", None)
        return handler(payload) if handler else []  # ping and event types added later: nothing

    def _on_message_start(self, payload: dict[str, Any]) -> list[StreamEvent]:
        self._take_usage((payload.get("message") or {}).get("usage"))
        return []

    def _take_usage(self, usage: Any) -> None:
        """Counts are cumulative (message_delta repeats and raises them): the last one wins."""
        if isinstance(usage, dict):
            self.usage.update((key, value) for key, value in usage.items() if value is not None)

    @property
    def reasoning_blocks(self) -> list[dict[str, Any]] | None:
        """The thinking and redacted_thinking blocks, in order, to echo in the next turn."""
        return [self.reasoning[index] for index in sorted(self.reasoning)] or None

    def _on_content_block_start(self, payload: dict[str, Any]) -> list[StreamEvent]:
        block = payload.get("content_block") or {}
        kind = block.get("type")
        if kind in REASONING_TYPES:
            self.reasoning[payload.get("index", -1)] = dict(block)
        if kind == "text" and block.get("text"):
            return [ContentDelta(block["text"])]
        if kind == "thinking" and block.get("thinking"):
            return [ThinkingDelta(block["thinking"])]
        if kind != "tool_use":
            return []
        start_input = block.get("input") or {}
        if block.get("name") == JSON_TOOL:
            self.blocks[payload.get("index", -1)] = {"json": True, "fragments": [], "start": start_input}
            return []
        call = {"json": False, "index": self.tool_count, "id": block.get("id") or "", "name": block.get("name") or "",
                "fragments": [], "start": start_input}
        self.tool_count += 1
        self.blocks[payload.get("index", -1)] = call
        return [ToolCallStarted(call["index"], call["id"], call["name"])]

    def _on_content_block_delta(self, payload: dict[str, Any]) -> list[StreamEvent]:
        delta = payload.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            self.text.append(delta["text"])
            return [ContentDelta(delta["text"])]
        if kind in ("thinking_delta", "signature_delta"):
            field = kind.removesuffix("_delta")  # "thinking" or "signature"
            return self._reasoning_delta(payload.get("index", -1), field, delta.get(field))
        block = self.blocks.get(payload.get("index", -1))
        fragment = delta.get("partial_json")
        if kind != "input_json_delta" or block is None or not fragment:
            return []  # citations_delta, empty fragments
        block["fragments"].append(fragment)
        return [ContentDelta(fragment)] if block["json"] else [ToolCallDelta(block["index"], fragment)]

    def _reasoning_delta(self, index: int, field: str, fragment: Any) -> list[StreamEvent]:
        """Append a ``thinking`` or ``signature`` fragment to its block; only thinking text is
        an event."""
        if not isinstance(fragment, str) or not fragment:
            return []
        block = self.reasoning.setdefault(index, {"type": "thinking", "thinking": ""})
        block[field] = (block.get(field) or "") + fragment
        return [ThinkingDelta(fragment)] if field == "thinking" else []

    def _on_content_block_stop(self, payload: dict[str, Any]) -> list[StreamEvent]:
        block = self.blocks.pop(payload.get("index", -1), None)
        return self._close(block) if block else []

    def _close(self, block: dict[str, Any]) -> list[StreamEvent]:
        """End a tool block. A compatible server may send the whole input in the start event
        and no deltas; then the input goes out as one fragment."""
        events: list[StreamEvent] = []
        raw = "".join(block["fragments"])
        if not block["fragments"] and block["start"]:
            raw = json.dumps(block["start"], ensure_ascii=False)
            events.append(ContentDelta(raw) if block["json"] else ToolCallDelta(block["index"], raw))
        if not block["json"]:
            events.append(ToolCallEnded(block["index"], ToolCall.from_raw(block["id"], block["name"], raw)))
        return events

    def _on_message_delta(self, payload: dict[str, Any]) -> list[StreamEvent]:
        self.stop_reason = (payload.get("delta") or {}).get("stop_reason") or self.stop_reason
        self._take_usage(payload.get("usage"))
        return []

    def _on_message_stop(self, payload: dict[str, Any]) -> list[StreamEvent]:
        self.done = True
        events: list[StreamEvent] = []
        for index in sorted(self.blocks):  # blocks the server never closed
            events.extend(self._close(self.blocks.pop(index)))
        usage = decode_usage(self.usage)
        if usage is not None:
            events.append(UsageEvent(usage))
        events.append(FinishEvent(map_stop_reason(self.stop_reason, self.tool_count > 0)))
        return events

    def finish(self) -> list[StreamEvent]:
        if self.done:
            return []
        raise make_error("stream_interrupted", "the stream ended before message_stop", provider=self.manifest.id)


DIALECT = AnthropicMessagesDialect()
