"""The Ollama native chat dialect (``POST /api/chat``), streamed as NDJSON.

References: https://github.com/ollama/ollama/blob/main/docs/api.md#generate-a-chat-completion
(request, response, tools, images, structured outputs), https://docs.ollama.com/capabilities/thinking
(``message.thinking``) and https://docs.ollama.com/api/errors (``{"error": "..."}`` bodies and lines).

Decisions where the documentation leaves room:

- ``stream`` is always sent: Ollama streams unless told ``false``.
- Images: Ollama takes bare base64 strings. A remote image URL is refused before any I/O (a
  dialect does no I/O); data URLs and local files work.
- ``tool_choice``: Ollama has none. ``none`` sends no tools, a tool name sends only that tool;
  ``auto`` and ``required`` send the tools as given (``required`` cannot be enforced).
- Tool calls come without ids; ids are made up (``call_...``). A tool result is sent with the
  ``tool_name`` of the call it answers, found by its ``tool_call_id`` in the conversation.
- ``options`` given through ``param("options", {...})`` are merged over the mapped ones.
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
    Message,
    MessageRole,
    StreamEvent,
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
    new_call_id,
    with_tool_calls,
)

FINISH_REASONS = {"stop": "stop", "length": "length"}
OPTION_NAMES = (("temperature", "temperature"), ("top_p", "top_p"), ("max_tokens", "num_predict"))
# .reasoning() on thinking models (https://docs.ollama.com/capabilities/thinking); levels only on
# gpt-oss, which a manifest rule can map.
DEFAULT_REASONING_BODY: dict = {"think": True}


def map_finish_reason(reason: str | None, has_tool_calls: bool) -> str:
    mapped = FINISH_REASONS.get(reason or "stop", "other")
    return with_tool_calls(mapped, has_tool_calls)


# --- request -----------------------------------------------------------------------------


def encode_message(message: Message, tool_names: dict[str, str]) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role.value, "content": message.text}
    images = []
    for image in message.images:
        if image.data is None:
            raise InvalidRequestError(
                f"Ollama takes images as base64 data, not URLs ({image.url}); "
                "download it and pass the local file or a data: URL instead"
            )
        images.append(image.data)
    if images:
        wire["images"] = images
    if message.tool_calls:
        wire["tool_calls"] = [{"function": {"name": call.name, "arguments": call.arguments}}
                              for call in message.tool_calls]
    if message.role == MessageRole.TOOL:
        name = message.name or tool_names.get(message.tool_call_id or "")
        if name:
            wire["tool_name"] = name
    return wire


def encode_format(response_format: dict[str, Any]) -> Any:
    kind = response_format.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        return response_format["json_schema"].get("schema", {})
    return None



# Ollama's errors are a flat {"error": "text"}; the status usually says the kind. In a 200 (an
# error line mid-stream, or a proxy's 200) the text must say it alone: https://docs.ollama.com/api/errors
RULES: list[dict[str, Any]] = [
    {"message": r"^too many requests", "kind": "rate_limited"},
]

class OllamaChatDialect:
    name = "ollama_chat"
    framing = "ndjson"

    def encode_request(self, request: ChatRequest, manifest: Any, model: str, stream: bool) -> HttpRequest:
        tool_names = {call.id: call.name for message in request.messages for call in message.tool_calls or ()}
        body: dict[str, Any] = {"model": model,
                                "messages": [encode_message(message, tool_names) for message in request.messages],
                                "stream": stream}
        tools = list(request.tools or ())
        if request.tool_choice == "none":
            tools = []
        elif request.tool_choice not in (None, "auto", "required"):
            tools = [tool for tool in tools if tool.name == request.tool_choice]
        if tools:
            body["tools"] = [tool.to_openai() for tool in tools]
        if request.response_format is not None:
            output_format = encode_format(request.response_format)
            if output_format is not None:
                body["format"] = output_format
        options = {wire: getattr(request, name) for name, wire in OPTION_NAMES if getattr(request, name) is not None}
        if request.stop:
            options["stop"] = request.stop
        extra = dict(request.extra)
        if isinstance(extra.get("options"), dict):
            options.update(extra.pop("options"))
        if options:
            body["options"] = options
        body.update(reasoning_fields(request, manifest, model, DEFAULT_REASONING_BODY))
        body.update(extra)
        headers = {"Content-Type": "application/json",
                   "Accept": "application/x-ndjson" if stream else "application/json"}
        return HttpRequest("POST", chat_path(manifest, model, stream), chat_query(manifest, stream), headers, body)

    def decode_response(self, body: bytes, manifest: Any, model: str) -> ChatResponse:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise make_error("server_error", f"expected a JSON object, got {type(payload).__name__}", provider=manifest.id)
        if payload.get("error"):
            info = self.classify_error(None, {}, body, manifest)
            raise make_error(info.kind, info.message, provider=manifest.id, body=body.decode("utf-8", "replace"))
        message = payload.get("message") or {}
        tool_calls = [decode_tool_call(call) for call in message.get("tool_calls") or ()]
        return ChatResponse(
            content=message.get("content") or "",
            tool_calls=tool_calls,
            finish_reason=map_finish_reason(payload.get("done_reason"), bool(tool_calls)),
            usage=decode_usage(payload),
            model=payload.get("model") or model,
            provider=manifest.id,
            thinking=message.get("thinking") or None,
            raw=payload,
        )

    def stream_decoder(self, manifest: Any, model: str) -> OllamaStreamDecoder:
        return OllamaStreamDecoder(manifest)

    def classify_error(self, status: int | None, headers: Any, body: bytes, manifest: Any) -> ErrorInfo:
        return classify_body(status, body, manifest, RULES)

    def encode_embeddings(self, texts: list[str], manifest: Any, model: str, spec: dict[str, Any], *,
                          dimensions: int | None = None, input_type: str | None = None,
                          extra: dict[str, Any] | None = None) -> HttpRequest:
        return encode_ollama_embeddings(texts, manifest, model, spec, dimensions, input_type, extra)

    def decode_embeddings(self, body: bytes, headers: Any, manifest: Any, model: str,
                          spec: dict[str, Any]) -> tuple[list[list[float]], int | None, str | None]:
        return decode_ollama_embeddings(body, manifest)


def decode_tool_call(call: dict[str, Any]) -> ToolCall:
    function = call.get("function") or {}
    return ToolCall.from_raw(call.get("id") or new_call_id(), function.get("name", ""), function.get("arguments"))


def decode_usage(payload: dict[str, Any]) -> Usage:
    """``eval_count`` counts every generated token, thinking included."""
    return Usage.of(payload.get("prompt_eval_count"), payload.get("eval_count"))


class OllamaStreamDecoder(StreamDecoder):
    """NDJSON lines -> unified events. The line with ``"done": true`` is the terminator; tool
    calls arrive whole, so each is started, given its arguments and ended at once."""

    def __init__(self, manifest: Any) -> None:
        self.manifest = manifest
        self.done = False
        self.calls = 0

    def feed(self, event: str | None, data: Any) -> list[StreamEvent]:
        if self.done:
            return []
        try:
            line = json.loads(data)
        except ValueError:
            raise make_error("stream_interrupted", f"malformed stream line: {data[:200]!r}", provider=self.manifest.id) from None
        if not isinstance(line, dict):
            return []
        if line.get("error"):
            info = OllamaChatDialect().classify_error(None, {}, data.encode(), self.manifest)
            raise make_error(info.kind, info.message, provider=self.manifest.id, body=data)
        events: list[StreamEvent] = []
        message = line.get("message") or {}
        if message.get("thinking"):
            events.append(ThinkingDelta(message["thinking"]))
        if message.get("content"):
            events.append(ContentDelta(message["content"]))
        for raw_call in message.get("tool_calls") or ():
            call = decode_tool_call(raw_call)
            index, self.calls = self.calls, self.calls + 1
            events.append(ToolCallStarted(index, call.id, call.name))
            events.append(ToolCallDelta(index, call.arguments_json()))
            events.append(ToolCallEnded(index, call))
        if line.get("done"):
            self.done = True
            if "prompt_eval_count" in line or "eval_count" in line:
                events.append(UsageEvent(decode_usage(line)))
            events.append(FinishEvent(map_finish_reason(line.get("done_reason"), self.calls > 0)))
        return events

    def finish(self) -> list[StreamEvent]:
        if self.done:
            return []
        raise make_error("stream_interrupted", 'the stream ended before its "done": true line', provider=self.manifest.id)


# --- embeddings (https://github.com/ollama/ollama/blob/main/docs/api.md#generate-embeddings) -----


def encode_ollama_embeddings(texts: list[str], manifest: Any, model: str, spec: dict[str, Any],
                             dimensions: int | None, input_type: str | None,
                             extra: dict[str, Any] | None) -> HttpRequest:
    """``POST /api/embed`` with ``input`` as a list; ``dimensions`` for models that can shorten;
    ``extra`` carries ``truncate``, ``keep_alive`` and ``options``."""
    body: dict[str, Any] = {"model": model, "input": list(texts)}
    if dimensions is not None:
        body[spec.get("dimensions") or "dimensions"] = dimensions
    body.update(extra or {})
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    return HttpRequest("POST", spec["path"], dict(manifest.endpoint.get("query", {})), headers, body)


def decode_ollama_embeddings(body: bytes, manifest: Any) -> tuple[list[list[float]], int | None, str | None]:
    """``embeddings`` in input order; tokens from ``prompt_eval_count``."""
    payload = json.loads(body)
    if not isinstance(payload, dict):
        raise make_error("server_error", f"expected a JSON object, got {type(payload).__name__}", provider=manifest.id)
    if payload.get("error"):
        info = DIALECT.classify_error(None, {}, body, manifest)
        raise make_error(info.kind, info.message, provider=manifest.id, body=body.decode("utf-8", "replace"))
    embeddings = payload.get("embeddings")
    if not isinstance(embeddings, list) or not all(isinstance(item, list) for item in embeddings):
        raise make_error("server_error", "the embed response has no 'embeddings' list", provider=manifest.id)
    tokens = payload.get("prompt_eval_count")
    return embeddings, tokens if isinstance(tokens, int) else None, payload.get("model")


DIALECT = OllamaChatDialect()
