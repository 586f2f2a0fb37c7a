"""The OpenAI Responses API wire dialect (``POST /v1/responses``).

References: https://platform.openai.com/docs/api-reference/responses/create (request body,
response object), https://platform.openai.com/docs/api-reference/responses-streaming (semantic
stream events), https://platform.openai.com/docs/guides/function-calling (``function_call`` and
``function_call_output`` items), https://platform.openai.com/docs/guides/reasoning (reasoning
items, ``include: ["reasoning.encrypted_content"]`` with ``store: false``).

How the unified request maps, where the API differs from Chat Completions:

- Leading system messages become ``instructions``; a system message later in the
  conversation stays in place as a ``system`` input message.
- Tool calls of an assistant turn become ``function_call`` items after its text, tool results
  ``function_call_output`` items. Tools go out flat (``{"type": "function", "name", ...}``)
  with ``strict: false``, the Chat Completions default (the Responses API requires the field).
- ``max_tokens`` is ``max_output_tokens``; ``response_format`` is ``text.format`` (the
  ``json_schema`` envelope flattened); ``.reasoning()`` is ``reasoning: {"effort"}`` (a
  budget alone is turned into an effort). The API has no ``stop``: it is refused before I/O.
- This library keeps no server-side state, so reasoning must round-trip in the request: when
  reasoning is asked for, or the history holds encrypted reasoning, the request says
  ``store: false`` and includes ``reasoning.encrypted_content``. Reasoning items come back
  on ``ChatResponse.reasoning_blocks`` and go out again, unchanged, before the assistant
  turn they belong to (``response.to_message()``). ``.param("store", True)`` overrides.

The stream has no ``[DONE]``: ``response.completed`` or ``response.incomplete`` ends it,
``response.failed`` and ``error`` events raise, classified like HTTP error bodies.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ..errors import AiLibError, InvalidRequestError, make_error
from ..params import model_params, reasoning_plan
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
    Tool,
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
    classify,
    extract_error,
    json_or_none,
    new_call_id,
    with_tool_calls,
)
from .openai import encode_response_format

log = logging.getLogger(__name__)

ENCRYPTED_REASONING = "reasoning.encrypted_content"
# ``incomplete_details.reason`` -> unified finish reason.
INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}
# Codes of ``response.error`` (https://platform.openai.com/docs/api-reference/responses/object),
# which arrive without an HTTP status inside a stream or a failed response.
RESPONSES_RULES: list[dict[str, Any]] = [
    {"code": "^rate_limit_exceeded$", "kind": "rate_limited"},
    {"code": "^server_error$", "kind": "server_error"},
    {"code": "^vector_store_timeout$", "kind": "timeout"},
    {"code": "content_policy|^bio_policy$", "kind": "content_filter"},
    {"code": "^invalid_prompt$", "message": "usage policy|flagged", "kind": "content_filter"},
    {"code": "^(invalid_prompt|data_residency_mismatch|invalid_image.*|image_.*|unsupported_image_media_type"
             "|empty_image_file|failed_to_download_image|invalid_base64_image)$", "kind": "invalid_request"},
]


# --- request -----------------------------------------------------------------------------


def encode_user_content(message: Message) -> Any:
    if not isinstance(message.content, list):
        return message.content or ""
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            parts.append({"type": "input_text", "text": part.text})
        elif isinstance(part, ImagePart):
            parts.append({"type": "input_image", "image_url": part.data_url, "detail": part.detail or "auto"})
    return parts


def encode_assistant(message: Message) -> list[dict[str, Any]]:
    """Reasoning items first (as received), then the text, then one item per tool call."""
    items = [dict(block) for block in message.reasoning_blocks or () if block.get("type") == "reasoning"]
    if message.text:
        items.append({"role": "assistant", "content": message.text})
    for call in message.tool_calls or ():
        items.append({"type": "function_call", "call_id": call.id, "name": call.name,
                      "arguments": call.arguments_json()})
    return items


def encode_input(messages: list[Message]) -> tuple[str | None, list[dict[str, Any]]]:
    """(instructions, input items)."""
    leading = 0
    while leading < len(messages) and messages[leading].role == MessageRole.SYSTEM:
        leading += 1
    instructions = "\n\n".join(message.text for message in messages[:leading]) or None
    items: list[dict[str, Any]] = []
    for message in messages[leading:]:
        if message.role == MessageRole.ASSISTANT:
            items.extend(encode_assistant(message))
        elif message.role == MessageRole.TOOL:
            if not message.tool_call_id:
                raise InvalidRequestError("a tool result needs the id of the call it answers (tool_call_id)")
            items.append({"type": "function_call_output", "call_id": message.tool_call_id,
                          "output": message.text})
        elif message.role == MessageRole.SYSTEM:
            items.append({"role": "system", "content": message.text})
        else:
            items.append({"role": "user", "content": encode_user_content(message)})
    return instructions, items


def encode_text_format(response_format: dict[str, Any]) -> dict[str, Any]:
    """Chat Completions ``response_format`` -> Responses ``text.format`` (flat json_schema)."""
    kind = response_format.get("type")
    if kind != "json_schema":
        return {"type": kind}
    schema = encode_response_format(response_format).get("json_schema") or {}  # strict mode's rules
    wire: dict[str, Any] = {"type": "json_schema", "name": schema.get("name", "response"),
                            "schema": schema.get("schema", {})}
    for key in ("description", "strict"):
        if key in schema:
            wire[key] = schema[key]
    return wire


def encode_tool(tool: Tool) -> dict[str, Any]:
    """The flat function-tool shape; ``strict`` is required there and false matches Chat
    Completions, where an OpenAI-style tool dict is not strict unless it says so."""
    wire: dict[str, Any] = {"type": "function", "name": tool.name}
    if tool.description:
        wire["description"] = tool.description
    wire["parameters"] = tool.parameters
    wire["strict"] = False
    return wire


def encode_tool_choice(choice: str) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "name": choice}


def has_encrypted_reasoning(messages: list[Message]) -> bool:
    return any(block.get("type") == "reasoning" and block.get("encrypted_content")
               for message in messages for block in message.reasoning_blocks or ())


def encode_reasoning(request: ChatRequest, manifest: Any, model: str) -> dict[str, Any] | None:
    """``{"effort"}``: the Responses API takes no token budget, so a budget alone picks the
    effort the manifest's ``params.reasoning.budgets`` give it (``params.reasoning_plan``)."""
    if request.reasoning is None:
        return None
    spec = model_params(manifest, model, reasoning=True).get("reasoning") or {}
    effort, _ = reasoning_plan(request.reasoning, spec)
    if request.reasoning.budget_tokens is not None:
        log.debug("reasoning budget_tokens=%s sent as effort %r", request.reasoning.budget_tokens, effort)
    return {"effort": effort}


# --- response ----------------------------------------------------------------------------


def decode_usage(usage: dict[str, Any] | None) -> Usage | None:
    if not isinstance(usage, dict) or not usage:
        return None
    output_details = usage.get("output_tokens_details") or {}
    input_details = usage.get("input_tokens_details") or {}
    return Usage.of(usage.get("input_tokens"), usage.get("output_tokens"),
                    output_details.get("reasoning_tokens") if isinstance(output_details, dict) else None,
                    input_details.get("cached_tokens") if isinstance(input_details, dict) else None)


def finish_reason(response: dict[str, Any], has_tool_calls: bool, refused: bool) -> str:
    if refused:
        return "content_filter"
    status = response.get("status")
    if status == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason")
        return INCOMPLETE_REASONS.get(reason, "other")
    if status not in (None, "completed"):
        return "other"
    return with_tool_calls("stop", has_tool_calls)


def reasoning_text(item: dict[str, Any]) -> str:
    """The readable part of a reasoning item: its summaries, else its raw reasoning text
    (open-weight models served by llama.cpp or vLLM send ``content``)."""
    parts = [part.get("text", "") for part in item.get("summary") or () if isinstance(part, dict)]
    if not any(parts):
        parts = [part.get("text", "") for part in item.get("content") or () if isinstance(part, dict)]
    return "\n\n".join(part for part in parts if part)


def error_parts(payload: Any, fallback: str = "the provider reported an error",
                ) -> tuple[str, str | None, str | None, int | None]:
    """(message, type, code, status) of an ``error`` event, a failed response's ``error`` or
    an HTTP error body. The event carries its fields flat or under ``error``."""
    if isinstance(payload, dict) and payload.get("type") == "error" and not isinstance(payload.get("error"), dict):
        payload = {"error": {key: value for key, value in payload.items() if key != "type"}}
    message, err_type, code = extract_error(payload, fallback)
    status = None
    if isinstance(payload, dict):
        for node in (payload, payload.get("error")):
            value = node.get("status_code") if isinstance(node, dict) else None
            if isinstance(value, int) and 400 <= value < 600:
                status = value
    return message, err_type, code, status


def classify_parts(status: int | None, message: str, err_type: str | None, code: str | None,
                   manifest: Any) -> ErrorInfo:
    if (status is None or status < 400) and code and code.isdigit() and 400 <= int(code) < 600:
        status = int(code)
    return ErrorInfo(classify(status, message, err_type, code, manifest, RESPONSES_RULES), message, code, err_type)


def raise_error(payload: Any, manifest: Any, body: str) -> None:
    message, err_type, code, status = error_parts(payload)
    info = classify_parts(status, message, err_type, code, manifest)
    raise make_error(info.kind, info.message, status_code=status, code=info.code, provider=manifest.id, body=body)


class OpenAIResponsesDialect:
    name = "openai_responses"
    framing = "sse"

    def encode_request(self, request: ChatRequest, manifest: Any, model: str, stream: bool) -> HttpRequest:
        if request.stop:
            raise InvalidRequestError("the OpenAI Responses API has no stop sequences: drop .stop(...) "
                                      "or use the Chat Completions API (api='chat')")
        body: dict[str, Any] = {}
        if manifest.endpoint.get("model_in_body", True):
            body["model"] = model
        instructions, items = encode_input(request.messages)
        if instructions is not None:
            body["instructions"] = instructions
        body["input"] = items
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.max_tokens is not None:
            body["max_output_tokens"] = request.max_tokens
        if request.tools:
            body["tools"] = [encode_tool(tool) for tool in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = encode_tool_choice(request.tool_choice)
        if request.response_format is not None:
            body["text"] = {"format": encode_text_format(request.response_format)}
        reasoning = encode_reasoning(request, manifest, model)
        if reasoning is not None:
            body["reasoning"] = reasoning
        if reasoning is not None or has_encrypted_reasoning(request.messages):
            body["store"] = False
            body["include"] = [ENCRYPTED_REASONING]
        if stream:
            body["stream"] = True
        body.update(request.extra)
        headers = {"Content-Type": "application/json",
                   "Accept": "text/event-stream" if stream else "application/json"}
        return HttpRequest("POST", chat_path(manifest, model, stream), chat_query(manifest, stream), headers, body)

    def decode_response(self, body: bytes, manifest: Any, model: str) -> ChatResponse:
        payload = json_or_none(body)
        if not isinstance(payload, dict):
            raise make_error("server_error", "expected a JSON response object", provider=manifest.id,
                             body=body.decode("utf-8", "replace")[:4000])
        try:
            return self._decode(payload, body, manifest, model)
        except AiLibError:  # a failed response, classified (InvalidRequestError is a ValueError too)
            raise
        except (AttributeError, TypeError, KeyError, ValueError) as exc:  # a field of the wrong shape
            raise make_error("server_error", f"unreadable response object ({type(exc).__name__})",
                             provider=manifest.id, body=body.decode("utf-8", "replace")[:4000]) from None

    def _decode(self, payload: dict[str, Any], body: bytes, manifest: Any, model: str) -> ChatResponse:
        if payload.get("status") == "failed" or (payload.get("error") and "output" not in payload):
            error = payload.get("error") or {"message": "the response failed"}
            raise_error({"error": error}, manifest, body.decode("utf-8", "replace"))
        content: list[str] = []
        refusal: list[str] = []
        thinking: list[str] = []
        tool_calls: list[ToolCall] = []
        reasoning: list[dict[str, Any]] = []
        for item in payload.get("output") or ():
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "message":
                for part in item.get("content") or ():
                    if part.get("type") == "output_text":
                        content.append(part.get("text") or "")
                    elif part.get("type") == "refusal":
                        refusal.append(part.get("refusal") or "")
            elif kind == "function_call":
                tool_calls.append(ToolCall.from_raw(item.get("call_id") or new_call_id(), item.get("name") or "",
                                                    item.get("arguments")))
            elif kind == "reasoning":
                reasoning.append(dict(item))
                text = reasoning_text(item)
                if text:
                    thinking.append(text)
        refused = bool(refusal)
        return ChatResponse(
            content="".join(content),
            tool_calls=tool_calls,
            finish_reason=finish_reason(payload, bool(tool_calls), refused),
            usage=decode_usage(payload.get("usage")) or Usage(),
            model=payload.get("model") or model,
            provider=manifest.id,
            thinking="\n\n".join(thinking) or None,
            id=payload.get("id"),
            raw=payload,
            refusal="".join(refusal) or None,
            reasoning_blocks=reasoning or None,
        )

    def stream_decoder(self, manifest: Any, model: str) -> ResponsesStreamDecoder:
        return ResponsesStreamDecoder(manifest)

    def classify_error(self, status: int | None, headers: Any, body: bytes, manifest: Any) -> ErrorInfo:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        message, err_type, code, _ = error_parts(json_or_none(text), text.strip()[:500] or f"HTTP {status}")
        return classify_parts(status, message, err_type, code, manifest)


class ResponsesStreamDecoder(StreamDecoder):
    """Semantic events -> unified events. Tool calls are numbered in the order they start;
    each ends once, on its ``output_item.done`` or, failing that, at the end of the response."""

    def __init__(self, manifest: Any) -> None:
        self.manifest = manifest
        self.done = False
        self.calls: dict[Any, dict[str, Any]] = {}  # item id (or output index) -> call state
        self.refusal: str | None = None
        self._reasoning: dict[int, dict[str, Any]] = {}  # output index -> finished reasoning item
        self._summary_index: dict[Any, int] = {}

    @property
    def reasoning_blocks(self) -> list[dict[str, Any]] | None:
        """Finished reasoning items (from ``output_item.done``: the ``added`` copy may hold an
        incomplete ``encrypted_content``), in output order, for ``ChatResponse.reasoning_blocks``."""
        return [self._reasoning[index] for index in sorted(self._reasoning)] or None

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
        try:
            return self._dispatch(payload.get("type") or event, payload, data)
        except AiLibError:  # an error event, classified (InvalidRequestError is a ValueError too)
            raise
        except (AttributeError, TypeError, KeyError, ValueError) as exc:  # a field of the wrong shape
            raise make_error("stream_interrupted", f"unreadable stream event ({type(exc).__name__}): {str(data)[:200]!r}",
                             provider=self.manifest.id) from None

    def _dispatch(self, kind: Any, payload: dict[str, Any], data: str) -> list[StreamEvent]:
        if kind == "response.output_text.delta":
            delta = payload.get("delta")
            return [ContentDelta(delta)] if isinstance(delta, str) and delta else []
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            return self._thinking(payload)
        if kind == "response.refusal.delta":
            delta = payload.get("delta")
            if isinstance(delta, str):
                self.refusal = (self.refusal or "") + delta
            return []
        if kind == "response.function_call_arguments.delta":
            call = self._call_for(payload)
            fragment = payload.get("delta")
            if call is None or not isinstance(fragment, str) or not fragment or call["ended"]:
                return []
            call["arguments"] += fragment
            return [ToolCallDelta(call["index"], fragment)]
        if kind == "response.function_call_arguments.done":
            call = self._call_for(payload)
            return self._complete_arguments(call, payload.get("arguments")) if call else []
        if kind == "response.output_item.added":
            return self._item_added(payload)
        if kind == "response.output_item.done":
            return self._item_done(payload)
        if kind in ("response.completed", "response.incomplete"):
            return self._end(payload.get("response") or {})
        if kind == "response.failed":
            response = payload.get("response") or {}
            raise_error({"error": response.get("error") or {"message": "the response failed"}}, self.manifest, data)
        if kind == "error":
            raise_error(payload, self.manifest, data)
        return []

    def _thinking(self, payload: dict[str, Any]) -> list[StreamEvent]:
        delta = payload.get("delta")
        if not isinstance(delta, str) or not delta:
            return []
        events: list[StreamEvent] = []
        key = (payload.get("item_id"), payload.get("type"))
        part = payload.get("summary_index", payload.get("content_index", 0))
        previous = self._summary_index.get(key)
        if previous is not None and part != previous or previous is None and self._summary_index:
            events.append(ThinkingDelta("\n\n"))  # as the non-streamed thinking joins its parts
        self._summary_index[key] = part
        events.append(ThinkingDelta(delta))
        return events

    def _call_for(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        return self.calls.get(payload.get("item_id")) or self.calls.get(payload.get("output_index"))

    def _item_added(self, payload: dict[str, Any]) -> list[StreamEvent]:
        item = payload.get("item") or {}
        if item.get("type") != "function_call":
            return []
        call = {"index": len(self.calls), "id": str(item.get("call_id") or new_call_id()), "name": str(item.get("name") or ""),
                "arguments": "", "ended": False}
        self.calls[item.get("id") if item.get("id") is not None else payload.get("output_index")] = call
        events: list[StreamEvent] = [ToolCallStarted(call["index"], call["id"], call["name"])]
        events.extend(self._complete_arguments(call, item.get("arguments")))
        return events

    def _complete_arguments(self, call: dict[str, Any], arguments: Any) -> list[StreamEvent]:
        """The rest of the arguments when a server sends them whole rather than as deltas."""
        if call["ended"] or not isinstance(arguments, str) or not arguments.startswith(call["arguments"]):
            return []
        rest = arguments[len(call["arguments"]):]
        if not rest:
            return []
        call["arguments"] = arguments
        return [ToolCallDelta(call["index"], rest)]

    def _item_done(self, payload: dict[str, Any]) -> list[StreamEvent]:
        item = payload.get("item") or {}
        kind = item.get("type")
        if kind == "reasoning":
            self._reasoning[payload.get("output_index", len(self._reasoning))] = dict(item)
            return []
        if kind == "message" and self.refusal is None:
            refusal = "".join(part.get("refusal") or "" for part in item.get("content") or ()
                              if part.get("type") == "refusal")
            self.refusal = refusal or None
            return []
        if kind != "function_call":
            return []
        call = self._call_for({"item_id": item.get("id"), "output_index": payload.get("output_index")})
        events: list[StreamEvent] = []
        if call is None:  # a server that skipped output_item.added
            events.extend(self._item_added(payload))
            call = self._call_for({"item_id": item.get("id"), "output_index": payload.get("output_index")})
        else:
            events.extend(self._complete_arguments(call, item.get("arguments")))
        events.extend(self._close(call))
        return events

    def _close(self, call: dict[str, Any] | None) -> list[StreamEvent]:
        if call is None or call["ended"]:
            return []
        call["ended"] = True
        return [ToolCallEnded(call["index"], ToolCall.from_raw(call["id"], call["name"], call["arguments"]))]

    def _end(self, response: dict[str, Any]) -> list[StreamEvent]:
        self.done = True
        events: list[StreamEvent] = []
        for call in sorted(self.calls.values(), key=lambda call: call["index"]):
            events.extend(self._close(call))
        if not self._reasoning:  # servers that send no output_item.done: the final output has them
            for index, item in enumerate(response.get("output") or ()):
                if isinstance(item, dict) and item.get("type") == "reasoning":
                    self._reasoning[index] = dict(item)
        usage = decode_usage(response.get("usage"))
        if usage is not None:
            events.append(UsageEvent(usage))
        events.append(FinishEvent(finish_reason(response, bool(self.calls), bool(self.refusal))))
        return events

    def finish(self) -> list[StreamEvent]:
        if self.done:
            return []
        raise make_error("stream_interrupted", "the stream ended before response.completed",
                         provider=self.manifest.id)


DIALECT = OpenAIResponsesDialect()
