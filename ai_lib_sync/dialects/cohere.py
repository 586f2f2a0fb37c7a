"""The Cohere v2 Chat wire dialect (``POST /v2/chat``).

References: https://docs.cohere.com/reference/chat (request, response),
https://docs.cohere.com/reference/chat-stream and https://docs.cohere.com/v2/docs/streaming
(SSE events), https://docs.cohere.com/v2/docs/tool-use (tool calls and results),
https://docs.cohere.com/v2/docs/image-inputs (image parts), https://docs.cohere.com/v2/docs/reasoning
(``thinking`` content) and https://docs.cohere.com/reference/errors (flat ``{"message"}`` errors).

Decisions where the documentation leaves room:

- ``tool_choice``: Cohere knows only ``REQUIRED`` and ``NONE`` (the manifest's
  ``params.tool_choice`` maps them). ``auto`` is Cohere's default, so nothing is sent. A named tool
  has no Cohere equivalent; it is emulated by sending only that tool with ``REQUIRED``.
- ``message.tool_plan`` (the model's plan before it calls tools) is reasoning, not an answer: it
  becomes ``thinking`` (``tool-plan-delta`` becomes ``thinking_delta``), so ``content`` stays the
  answer as with OpenAI. Going back, the text of an assistant turn with tool calls is sent as its
  ``tool_plan``, which is where Cohere expects it.
- Usage: ``usage.tokens`` are the tokens the model really processed (prompt template included);
  ``usage.billed_units`` are what is charged. ``tokens`` is reported, ``billed_units`` only when
  ``tokens`` is absent.
- ``ERROR``/``TIMEOUT``/``USER_CANCEL`` finishes map to ``other``; ``CONTENT_BLOCKED`` and
  ``ERROR_TOXIC`` to ``content_filter``; ``ERROR_LIMIT`` (context exhausted) to ``length``.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import InvalidRequestError, make_error
from ..params import reasoning_fields
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
    ErrorInfo,
    HttpRequest,
    StreamDecoder,
    chat_path,
    chat_query,
    classify_body,
    with_tool_calls,
)

# Cohere's errors are a flat {"message"}; the kind usually comes from the HTTP status. An error
# event inside a 200 stream has no status, so the documented messages must say it alone (the
# same error must get the same kind streamed or not). https://docs.cohere.com/reference/errors
RULES: list[dict[str, Any]] = [
    {"message": r"^invalid api token|^(no|missing) api key", "kind": "authentication"},
    {"message": r"max.?tokens must be", "kind": "invalid_request"},
    {"message": r"^invalid request", "kind": "invalid_request"},
    {"message": r"\bnot found\b", "kind": "not_found"},
]

FINISH_REASONS = {
    "COMPLETE": "stop", "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length", "ERROR_LIMIT": "length",
    "TOOL_CALL": "tool_calls",
    "CONTENT_BLOCKED": "content_filter", "ERROR_TOXIC": "content_filter",
}
# .reasoning() on reasoning models (https://docs.cohere.com/v2/docs/reasoning).
DEFAULT_REASONING_BODY: dict = {"thinking": {"type": "enabled", "token_budget": "{budget_tokens}"}}


def map_finish_reason(reason: str | None, has_tool_calls: bool) -> str:
    mapped = FINISH_REASONS.get((reason or "").upper(), "other" if reason else "stop")
    return with_tool_calls(mapped, has_tool_calls)


# --- request -----------------------------------------------------------------------------


def encode_content(message: Message) -> Any:
    if not isinstance(message.content, list):
        return message.content if message.content is not None else ""
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            image: dict[str, Any] = {"url": part.data_url}
            if part.detail:
                image["detail"] = part.detail
            parts.append({"type": "image_url", "image_url": image})
    return parts


def encode_message(message: Message) -> dict[str, Any]:
    role = message.role
    if role == MessageRole.TOOL:
        if not message.tool_call_id:
            raise InvalidRequestError("Cohere needs the tool_call_id of every tool result: Message.tool(tool_call_id, ...)")
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text}
    if role == MessageRole.ASSISTANT and message.tool_calls:
        wire: dict[str, Any] = {"role": "assistant", "tool_calls": [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments_json()}}
            for call in message.tool_calls
        ]}
        if message.text:
            wire["tool_plan"] = message.text
        return wire
    return {"role": role.value, "content": encode_content(message)}


def encode_response_format(response_format: dict[str, Any]) -> dict[str, Any] | None:
    kind = response_format.get("type")
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        return {"type": "json_object", "json_schema": response_format["json_schema"].get("schema", {})}
    return None


class CohereV2Dialect:
    name = "cohere_v2"
    framing = "sse"

    def encode_request(self, request: ChatRequest, manifest: Any, model: str, stream: bool) -> HttpRequest:
        body: dict[str, Any] = {"model": model,
                                "messages": [encode_message(message) for message in request.messages],
                                "stream": stream}
        tools = list(request.tools or ())
        choices = manifest.params.get("tool_choice", {})
        choice = request.tool_choice
        if choice is not None and choice not in ("auto", "none", "required"):
            tools = [tool for tool in tools if tool.name == choice]
            choice = "required"
        if tools:
            body["tools"] = [tool.to_openai() for tool in tools]
        if choice and choices.get(choice):
            body["tool_choice"] = choices[choice]
        for name, wire_name in (("temperature", "temperature"), ("top_p", "p"), ("max_tokens", "max_tokens")):
            value = getattr(request, name)
            if value is not None:
                body[wire_name] = value
        if request.stop:
            body["stop_sequences"] = request.stop
        if request.response_format is not None:
            response_format = encode_response_format(request.response_format)
            if response_format is not None:
                body["response_format"] = response_format
        body.update(reasoning_fields(request, manifest, model, DEFAULT_REASONING_BODY))
        body.update(request.extra)
        headers = {"Content-Type": "application/json",
                   "Accept": "text/event-stream" if stream else "application/json"}
        return HttpRequest("POST", chat_path(manifest, model, stream), chat_query(manifest, stream), headers, body)

    def decode_response(self, body: bytes, manifest: Any, model: str) -> ChatResponse:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise make_error("server_error", f"expected a JSON object, got {type(payload).__name__}", provider=manifest.id)
        message = payload.get("message") or {}
        if not isinstance(message, dict):  # a 2xx carrying the flat error shape
            info = self.classify_error(None, {}, body, manifest)
            raise make_error(info.kind, info.message, provider=manifest.id, body=body.decode("utf-8", "replace"))
        text, thinking = [], []
        for item in message.get("content") or ():
            if isinstance(item, dict) and item.get("type") == "thinking":
                thinking.append(item.get("thinking") or "")
            elif isinstance(item, dict):
                text.append(item.get("text") or "")
        if message.get("tool_plan"):
            thinking.append(message["tool_plan"])
        tool_calls = [
            ToolCall.from_raw(call.get("id") or f"call_{index}", (call.get("function") or {}).get("name", ""),
                              (call.get("function") or {}).get("arguments"))
            for index, call in enumerate(message.get("tool_calls") or ())
        ]
        return ChatResponse(
            content="".join(text),
            tool_calls=tool_calls,
            finish_reason=map_finish_reason(payload.get("finish_reason"), bool(tool_calls)),
            usage=decode_usage(payload.get("usage")) or Usage(),
            model=model,
            provider=manifest.id,
            thinking="".join(thinking) or None,
            id=payload.get("id"),
            raw=payload,
        )

    def stream_decoder(self, manifest: Any, model: str) -> CohereStreamDecoder:
        return CohereStreamDecoder(manifest)

    def classify_error(self, status: int | None, headers: Any, body: bytes, manifest: Any) -> ErrorInfo:
        return classify_body(status, body, manifest, RULES)

    def encode_embeddings(self, texts: list[str], manifest: Any, model: str, spec: dict[str, Any], *,
                          dimensions: int | None = None, input_type: str | None = None,
                          extra: dict[str, Any] | None = None) -> HttpRequest:
        return encode_cohere_embeddings(texts, manifest, model, spec, dimensions, input_type, extra)

    def decode_embeddings(self, body: bytes, headers: Any, manifest: Any, model: str,
                          spec: dict[str, Any]) -> tuple[list[list[float]], int | None, str | None]:
        return decode_cohere_embeddings(body, manifest)


def decode_usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    counts = usage.get("tokens") or usage.get("billed_units")
    if not isinstance(counts, dict):
        return None
    return Usage.of(counts.get("input_tokens"), counts.get("output_tokens"), cached=usage.get("cached_tokens"))


class CohereStreamDecoder(StreamDecoder):
    """Cohere's typed SSE events -> unified events. ``message-end`` is the terminator."""

    def __init__(self, manifest: Any) -> None:
        self.manifest = manifest
        self.done = False
        self.calls: dict[int, dict[str, Any]] = {}
        self.ended: set[int] = set()

    def feed(self, event: str | None, data: Any) -> list[StreamEvent]:
        if self.done or not data or not data.strip() or data.strip() == "[DONE]":
            return []
        try:
            frame = json.loads(data)
        except ValueError:
            raise make_error("stream_interrupted", f"malformed stream event: {data[:200]!r}", provider=self.manifest.id) from None
        if not isinstance(frame, dict):
            return []
        kind = frame.get("type") or event
        if kind == "error" or (kind == "message" and isinstance(frame.get("message"), str)):
            # an event named "error", or Cohere's flat {"message": ...} error shape
            info = CohereV2Dialect().classify_error(None, {}, data.encode(), self.manifest)
            raise make_error(info.kind, info.message, provider=self.manifest.id, body=data)
        delta = frame.get("delta") if isinstance(frame.get("delta"), dict) else {}
        message = delta.get("message") if isinstance(delta.get("message"), dict) else {}
        events: list[StreamEvent] = []
        if kind == "content-delta":
            content = message.get("content") or {}
            if content.get("thinking"):
                events.append(ThinkingDelta(content["thinking"]))
            if content.get("text"):
                events.append(ContentDelta(content["text"]))
        elif kind == "tool-plan-delta":
            if message.get("tool_plan"):
                events.append(ThinkingDelta(message["tool_plan"]))
        elif kind == "tool-call-start":
            self._start(frame.get("index"), message.get("tool_calls") or {}, events)
        elif kind == "tool-call-delta":
            index = frame.get("index", max(self.calls, default=0))
            fragment = ((message.get("tool_calls") or {}).get("function") or {}).get("arguments")
            if fragment and index in self.calls:
                self.calls[index]["arguments"] += fragment
                events.append(ToolCallDelta(index, fragment))
        elif kind == "tool-call-end":
            index = frame.get("index", max(self.calls, default=0))
            self._end_call(index, events)
        elif kind == "message-end":
            self._end(delta, events)
        return events

    def _start(self, index: int | None, call: dict[str, Any], events: list[StreamEvent]) -> None:
        index = len(self.calls) if index is None else index
        function = call.get("function") or {}
        self.calls[index] = {"id": call.get("id") or f"call_{index}", "name": function.get("name") or "",
                             "arguments": ""}
        events.append(ToolCallStarted(index, self.calls[index]["id"], self.calls[index]["name"]))
        if function.get("arguments"):
            self.calls[index]["arguments"] = function["arguments"]
            events.append(ToolCallDelta(index, function["arguments"]))

    def _end_call(self, index: int, events: list[StreamEvent]) -> None:
        if index in self.calls and index not in self.ended:
            self.ended.add(index)
            call = self.calls[index]
            events.append(ToolCallEnded(index, ToolCall.from_raw(call["id"], call["name"], call["arguments"])))

    def _end(self, delta: dict[str, Any], events: list[StreamEvent]) -> None:
        self.done = True
        for index in sorted(self.calls):
            self._end_call(index, events)
        usage = decode_usage(delta.get("usage"))
        if usage is not None:
            events.append(UsageEvent(usage))
        events.append(FinishEvent(map_finish_reason(delta.get("finish_reason"), bool(self.calls))))

    def finish(self) -> list[StreamEvent]:
        if self.done:
            return []
        raise make_error("stream_interrupted", "the stream ended before its message-end event", provider=self.manifest.id)


# --- embeddings (https://docs.cohere.com/reference/embed) ---------------------------------------


def encode_cohere_embeddings(texts: list[str], manifest: Any, model: str, spec: dict[str, Any],
                             dimensions: int | None, input_type: str | None,
                             extra: dict[str, Any] | None) -> HttpRequest:
    """``POST /v2/embed`` with ``texts``, the (required) ``input_type``, ``embedding_types``
    ``["float"]`` and, for Embed v4, ``output_dimension``."""
    body: dict[str, Any] = {"model": model, "texts": list(texts)}
    if input_type is not None:
        body[spec["input_type"]["field"]] = input_type
    body["embedding_types"] = ["float"]
    if dimensions is not None:
        body[spec.get("dimensions") or "output_dimension"] = dimensions
    body.update(extra or {})
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    return HttpRequest("POST", spec["path"], dict(manifest.endpoint.get("query", {})), headers, body)


def decode_cohere_embeddings(body: bytes, manifest: Any) -> tuple[list[list[float]], int | None, str | None]:
    payload = json.loads(body)
    if not isinstance(payload, dict):
        raise make_error("server_error", f"expected a JSON object, got {type(payload).__name__}", provider=manifest.id)
    billed = (payload.get("meta") or {}).get("billed_units") or {}
    tokens = billed.get("input_tokens")
    return cohere_vectors(payload, manifest), int(tokens) if isinstance(tokens, (int, float)) else None, None


def cohere_vectors(payload: dict[str, Any], manifest: Any) -> list[list[float]]:
    """``embeddings`` as a list (``embeddings_floats``) or by type (``embeddings_by_type``:
    ``float`` when present, else the one type asked for). Bedrock's Cohere Embed answers alike."""
    embeddings = payload.get("embeddings")
    if isinstance(embeddings, dict):
        embeddings = embeddings.get("float", next(iter(embeddings.values()), None))
    if not isinstance(embeddings, list) or not all(isinstance(item, list) for item in embeddings):
        message = payload.get("message") if isinstance(payload.get("message"), str) else None
        raise make_error("server_error", message or "the embed response has no 'embeddings' list",
                         provider=manifest.id)
    return embeddings


DIALECT = CohereV2Dialect()
