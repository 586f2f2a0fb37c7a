"""The OpenAI Chat Completions wire dialect, spoken by OpenAI and most other providers.

Reference: https://platform.openai.com/docs/api-reference/chat (request, response, stream
chunks). Provider differences (paths, auth, renamed fields, where usage hides, whether
``stream_options`` is accepted, reasoning field names) come from the manifest.

Manifest keys read here besides the shared ones: ``response.usage_paths``,
``response.reasoning_fields``, ``response.completion_excludes_reasoning``,
``response.error_paths`` (dotted paths where an error object or string may sit in a 2xx body
or a stream chunk, default ``["error"]``) and ``errors.status_field`` (an in-body status code
such as MiniMax's ``base_resp.status_code``, where any value outside ``ok`` is an error).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any
from urllib.parse import quote

from ..errors import InvalidRequestError, make_error
from ..params import model_params, reasoning_fields
from ..structured import strict_schema
from ..types import (
    ChatRequest,
    ChatResponse,
    ContentDelta,
    FinishEvent,
    ImagePart,
    Message,
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
    classify,
    embedded_status,
    extract_error,
    json_or_none,
    new_call_id,
    with_tool_calls,
)

log = logging.getLogger("ai_lib_sync.dialects.openai")

FINISH_REASONS = {
    "stop": "stop", "eos": "stop", "end_turn": "stop", "stop_sequence": "stop",
    "length": "length", "max_tokens": "length", "model_length": "length",
    "tool_calls": "tool_calls", "function_call": "tool_calls", "tool_use": "tool_calls",
    "content_filter": "content_filter", "sensitive": "content_filter", "safety": "content_filter",
}
DEFAULT_REASONING_FIELDS = ("reasoning_content", "reasoning")
# How .reasoning() goes out unless the manifest says otherwise (OpenAI's own field).
DEFAULT_REASONING_BODY = {"reasoning_effort": "{effort}"}
DEFAULT_USAGE_PATHS = ("usage",)
DEFAULT_ERROR_PATHS = ("error",)


def map_finish_reason(reason: str | None, has_tool_calls: bool) -> str:
    mapped = FINISH_REASONS.get(reason or "", "other" if reason else "stop")
    return with_tool_calls(mapped, has_tool_calls)


# --- request -----------------------------------------------------------------------------


def encode_content(message: Message) -> Any:
    if not isinstance(message.content, list):
        return message.content
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
    wire: dict[str, Any] = {"role": message.role.value, "content": encode_content(message)}
    if message.tool_calls:
        wire["tool_calls"] = [
            {"id": call.id, "type": "function",
             "function": {"name": call.name, "arguments": call.arguments_json()}}
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        wire["name"] = message.name
    wire.update(message.extra)
    return wire


def encode_tool_choice(choice: str, manifest: Any) -> Any:
    mapped = manifest.params.get("tool_choice", {})
    if choice in ("auto", "none", "required"):
        return mapped.get(choice, choice)
    return {"type": "function", "function": {"name": choice}}


def encode_response_format(response_format: dict[str, Any]) -> dict[str, Any]:
    """``json_schema`` with ``strict`` (the default) gets its schema adjusted to strict mode's
    rules (every property required, optional ones nullable, objects closed; see
    ``ai_lib_sync.structured.strict_schema``): OpenAI, Azure, Mistral and the other strict
    implementations reject a schema that breaks them. A schema strict mode cannot express
    (a free-form object, ``not``, ...) is sent as given with ``strict: false``, with a warning.
    Everything else passes unchanged."""
    spec = response_format.get("json_schema")
    if response_format.get("type") != "json_schema" or not isinstance(spec, dict) or not spec.get("strict"):
        return response_format
    try:
        schema = strict_schema(spec.get("schema") or {})
    except InvalidRequestError as error:
        log.warning("json_schema %r sent with strict=false: %s", spec.get("name"), error.message)
        return {**response_format, "json_schema": {**spec, "strict": False}}
    return {**response_format, "json_schema": {**spec, "schema": schema}}


class OpenAIChatDialect:
    name = "openai_chat"
    framing = "sse"

    def encode_request(self, request: ChatRequest, manifest: Any, model: str, stream: bool) -> HttpRequest:
        body: dict[str, Any] = {}
        if manifest.endpoint.get("model_in_body", True):
            body["model"] = model
        body["messages"] = [encode_message(message) for message in request.messages]
        for name in ("temperature", "max_tokens", "top_p"):
            value = getattr(request, name)
            if value is not None:
                body[name] = value
        if request.stop:
            body["stop"] = request.stop
        if request.tools:
            body["tools"] = [tool.to_openai() for tool in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = encode_tool_choice(request.tool_choice, manifest)
        if request.response_format is not None:
            body["response_format"] = encode_response_format(request.response_format)
        if stream:
            body["stream"] = True
            if manifest.streaming.get("include_usage", True):
                body["stream_options"] = {"include_usage": True}
        renames = model_params(manifest, model, reasoning=request.reasoning is not None,
                               query=chat_query(manifest, stream)).get("rename", {})
        for wire_name in list(body):
            renamed = renames.get(wire_name)
            if renamed:
                body[renamed] = body.pop(wire_name)
        body.update(reasoning_fields(request, manifest, model, DEFAULT_REASONING_BODY))
        body.update(request.extra)
        headers = {"Content-Type": "application/json",
                   "Accept": "text/event-stream" if stream else "application/json"}
        return HttpRequest("POST", chat_path(manifest, model, stream), chat_query(manifest, stream), headers, body)

    def decode_response(self, body: bytes, manifest: Any, model: str) -> ChatResponse:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise make_error("server_error", f"expected a JSON object, got {type(payload).__name__}", provider=manifest.id)
        raise_payload_error(payload, manifest, body.decode("utf-8", "replace"))
        choices = payload.get("choices") or [{}]
        choice = choices[0]
        message = choice.get("message") or {}
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        thinking = None
        for field in manifest.response.get("reasoning_fields", DEFAULT_REASONING_FIELDS):
            if isinstance(message.get(field), str) and message[field]:
                thinking = message[field]
                break
        tool_calls = [
            ToolCall.from_raw(call.get("id") or new_call_id(), (call.get("function") or {}).get("name", ""),
                              (call.get("function") or {}).get("arguments"))
            for call in message.get("tool_calls") or ()
        ]
        refusal = message.get("refusal") if isinstance(message.get("refusal"), str) and message["refusal"] else None
        finish_reason = map_finish_reason(choice.get("finish_reason"), bool(tool_calls))
        return ChatResponse(
            content=content or "",
            tool_calls=tool_calls,
            finish_reason="content_filter" if refusal else finish_reason,
            refusal=refusal,
            usage=decode_usage(find_usage(payload, manifest), manifest) or Usage(),
            model=payload.get("model") or model,
            provider=manifest.id,
            thinking=thinking,
            id=payload.get("id"),
            raw=payload,
        )

    def stream_decoder(self, manifest: Any, model: str) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder(manifest)

    def classify_error(self, status: int | None, headers: Any, body: bytes, manifest: Any) -> ErrorInfo:
        return classify_openai_error(status, body, manifest)

    def encode_batch_item(self, request: ChatRequest, manifest: Any, model: str, custom_id: str,
                          spec: dict[str, Any]) -> dict[str, Any]:
        """One line of a provider batch input file: the body a direct call would send, under
        ``custom_id``. OpenAI's format adds ``method`` and ``url`` (the manifest's
        ``batch.line_url``); Together's and Mistral's carry only the body (no ``line_url``)."""
        body = self.encode_request(request, manifest, model, False).body or {}
        for name in spec.get("body_omit", ()):
            body.pop(name, None)
        line: dict[str, Any] = {"custom_id": custom_id}
        if spec.get("line_url"):
            line.update(method="POST", url=spec["line_url"])
        line["body"] = body
        return line

    def decode_batch_item(self, line: dict[str, Any], manifest: Any, model: str,
                          ) -> tuple[str | None, ChatResponse | ErrorInfo, int | None]:
        """One output or error file line: ``{"custom_id", "response": {"status_code", "body"},
        "error": {"code", "message"}}`` -> (custom_id, response or error info, HTTP status)."""
        response = line.get("response") or {}
        status = response.get("status_code")
        body = response.get("body")
        if isinstance(body, dict) and isinstance(status, int) and status < 400 and not line.get("error"):
            return line.get("custom_id"), self.decode_response(json.dumps(body).encode(), manifest, model), status
        if isinstance(body, dict) and isinstance(status, int) and status >= 400:
            return line.get("custom_id"), classify_openai_error(status, json.dumps(body), manifest), status
        error = line.get("error") or {}
        message = str(error.get("message") or "the provider returned no result for this request")
        code = None if error.get("code") is None else str(error["code"])
        return line.get("custom_id"), classify_parts(None, message, None, code, manifest), status

    def encode_embeddings(self, texts: list[str], manifest: Any, model: str, spec: dict[str, Any], *,
                          dimensions: int | None = None, input_type: str | None = None,
                          extra: dict[str, Any] | None = None) -> HttpRequest:
        return encode_openai_embeddings(texts, manifest, model, spec, dimensions, input_type, extra)

    def decode_embeddings(self, body: bytes, headers: Any, manifest: Any, model: str,
                          spec: dict[str, Any]) -> tuple[list[list[float]], int | None, str | None]:
        return decode_openai_embeddings(body, manifest)


def classify_openai_error(status: int | None, body: bytes | str, manifest: Any) -> ErrorInfo:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    payload = json_or_none(text)
    fallback = text.strip()[:500] or f"HTTP {status}"
    found = payload_error(payload, manifest) if isinstance(payload, dict) else None
    message, err_type, code = found or extract_error(payload, fallback)
    if status is None or status < 400:
        status = embedded_status(payload) or status
    return classify_parts(status, message, err_type, code, manifest)


def classify_parts(status: int | None, message: str, err_type: str | None, code: str | None,
                   manifest: Any) -> ErrorInfo:
    """Classify an error whose parts are known. In a 2xx body or a stream frame there is no
    HTTP status; an HTTP-like numeric code (OpenRouter, llama.cpp: ``"code": 402``) stands in."""
    if (status is None or status < 400) and code and code.isdigit() and 400 <= int(code) < 600:
        status = int(code)
    return ErrorInfo(classify(status, message, err_type, code, manifest), message, code, err_type)


def dig(node: Any, path: str) -> Any:
    """The value at a dotted path (``choices.0.usage``), or None."""
    for part in path.split("."):
        if isinstance(node, list):
            node = node[int(part)] if part.isdigit() and int(part) < len(node) else None
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            return None
        if node is None:
            return None
    return node


def payload_error(payload: dict[str, Any], manifest: Any) -> tuple[str, str | None, str | None] | None:
    """(message, type, code) when a 2xx body or stream chunk carries an error, else None."""
    for path in manifest.response.get("error_paths", DEFAULT_ERROR_PATHS):
        found = dig(payload, path)
        if found:
            return extract_error({"error": found}, "the provider reported an error")
    status_field = manifest.errors.get("status_field")
    if status_field:
        code = dig(payload, status_field["code"])
        if code is not None and str(code) not in {str(ok) for ok in status_field.get("ok", [0])}:
            message = dig(payload, status_field.get("message", "")) or f"provider status {code}"
            return str(message), None, str(code)
    return None


def raise_payload_error(payload: dict[str, Any], manifest: Any, body: str) -> None:
    found = payload_error(payload, manifest)
    if found:
        # An error frame may carry its own HTTP status ({"error": ..., "status_code": 429}).
        info = classify_parts(embedded_status(payload), *found, manifest)
        raise make_error(info.kind, info.message, code=info.code, provider=manifest.id, body=body)


def find_usage(payload: dict[str, Any], manifest: Any) -> dict[str, Any] | None:
    for path in manifest.response.get("usage_paths", DEFAULT_USAGE_PATHS):
        node = dig(payload, path)
        if isinstance(node, dict) and node:
            return node
    return None


def decode_usage(usage: dict[str, Any] | None, manifest: Any) -> Usage | None:
    if not usage:
        return None
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    details = usage.get("completion_tokens_details") or {}
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
    if manifest.response.get("completion_excludes_reasoning") and reasoning:
        completion += reasoning
    prompt_details = usage.get("prompt_tokens_details") or {}
    cached = prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else None
    if cached is None:  # DeepSeek's prompt_cache_hit_tokens, Moonshot's top-level cached_tokens
        cached = usage.get("prompt_cache_hit_tokens", usage.get("cached_tokens"))
    return Usage.of(prompt, completion, reasoning, cached if isinstance(cached, int) else None)


class OpenAIStreamDecoder(StreamDecoder):
    """Chat-completion chunks -> unified events, assembling tool-call fragments by index."""

    def __init__(self, manifest: Any) -> None:
        self.manifest = manifest
        self.done = False
        self.done_marker = manifest.streaming.get("done_marker", "[DONE]")
        self.terminator_required = manifest.streaming.get("terminator_required", True) and self.done_marker is not None
        self.reasoning_fields = tuple(manifest.response.get("reasoning_fields", DEFAULT_REASONING_FIELDS))
        self.usage_paths = manifest.response.get("usage_paths", DEFAULT_USAGE_PATHS)
        self.plain_usage = tuple(self.usage_paths) == DEFAULT_USAGE_PATHS
        # Most manifests keep errors under "error": then one dict lookup per chunk suffices
        # (the general lookup costs about 8% of stream CPU).
        self.plain_errors = (tuple(manifest.response.get("error_paths", DEFAULT_ERROR_PATHS)) == DEFAULT_ERROR_PATHS
                             and not manifest.errors.get("status_field"))
        self.calls: dict[int, dict[str, Any]] = {}
        self.closed_calls = False
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.refusal_parts: list[str] = []

    @property
    def refusal(self) -> str | None:
        """The streamed ``delta.refusal`` text, read by the client for ``final_response()``."""
        return "".join(self.refusal_parts) or None

    def feed(self, event: str | None, data: Any) -> list[StreamEvent]:
        if data == self.done_marker:
            return self._end()
        if self.done:
            return []
        try:
            chunk = json.loads(data)
        except ValueError:
            raise make_error("stream_interrupted", f"malformed stream chunk: {data[:200]!r}", provider=self.manifest.id) from None
        if not isinstance(chunk, dict):
            return []
        if not self.plain_errors or chunk.get("error"):
            raise_payload_error(chunk, self.manifest, data)
        choices = chunk.get("choices")
        if choices:
            choice = choices[0]
            delta = choice.get("delta") or {}
            content = delta.get("content")
            # The common chunk: text and nothing else. Answer it without the general walk.
            if content and len(delta) == 1 and not choice.get("finish_reason") and (
                    self.plain_usage and not chunk.get("usage")):
                return [ContentDelta(content)]
        events: list[StreamEvent] = []
        if choices:
            if content:
                events.append(ContentDelta(content))
            for field in self.reasoning_fields:
                value = delta.get(field)
                if value and isinstance(value, str):
                    events.append(ThinkingDelta(value))
                    break
            if delta.get("tool_calls"):
                self._tool_calls(delta["tool_calls"], events)
            if isinstance(delta.get("refusal"), str) and delta["refusal"]:
                self.refusal_parts.append(delta["refusal"])
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                self._close_calls(events)
        if self.plain_usage:
            usage = chunk.get("usage")
        else:
            usage = find_usage(chunk, self.manifest)
        if usage:
            self.usage = usage
        return events

    def _tool_calls(self, fragments: list[dict[str, Any]], events: list[StreamEvent]) -> None:
        for fragment in fragments:
            index = fragment.get("index")
            function = fragment.get("function") or {}
            if index is None:  # whole calls without an index (Mistral): match by id or append
                index = next((i for i, call in self.calls.items() if fragment.get("id") and call["id"] == fragment.get("id")),
                             len(self.calls))
            call = self.calls.get(index)
            if call is None:
                call = {"id": fragment.get("id") or new_call_id(), "name": function.get("name") or "", "arguments": ""}
                self.calls[index] = call
                events.append(ToolCallStarted(index, call["id"], call["name"]))
            arguments = function.get("arguments")
            if arguments:
                if isinstance(arguments, dict):
                    arguments = json.dumps(arguments)
                call["arguments"] += arguments
                events.append(ToolCallDelta(index, arguments))

    def _close_calls(self, events: list[StreamEvent]) -> None:
        if self.closed_calls:
            return
        self.closed_calls = True
        for index in sorted(self.calls):
            call = self.calls[index]
            events.append(ToolCallEnded(index, ToolCall.from_raw(call["id"], call["name"], call["arguments"])))

    def _end(self) -> list[StreamEvent]:
        if self.done:
            return []
        self.done = True
        events: list[StreamEvent] = []
        self._close_calls(events)
        usage = decode_usage(self.usage, self.manifest)
        if usage is not None:
            events.append(UsageEvent(usage))
        finish = "content_filter" if self.refusal_parts else map_finish_reason(self.finish_reason, bool(self.calls))
        events.append(FinishEvent(finish))
        return events

    def finish(self) -> list[StreamEvent]:
        if self.done:
            return []
        if self.finish_reason is not None and not self.terminator_required:
            return self._end()
        expected = repr(self.done_marker) if self.terminator_required else "a finish_reason"
        raise make_error("stream_interrupted", f"the stream ended before {expected}", provider=self.manifest.id)


# --- embeddings (https://platform.openai.com/docs/api-reference/embeddings/create) -------------


def encode_openai_embeddings(texts: list[str], manifest: Any, model: str, spec: dict[str, Any],
                             dimensions: int | None, input_type: str | None,
                             extra: dict[str, Any] | None) -> HttpRequest:
    """``POST /embeddings`` with ``input`` as a list. The manifest's ``embeddings`` section names
    the dimensions field (``dimensions``; Mistral ``output_dimension``) and the input-type field
    of the providers that have one (NVIDIA ``input_type``)."""
    body: dict[str, Any] = {}
    if manifest.endpoint.get("model_in_body", True):
        body["model"] = model
    body["input"] = list(texts)
    if dimensions is not None:
        body[spec.get("dimensions") or "dimensions"] = dimensions
    if input_type is not None:
        body[spec["input_type"]["field"]] = input_type
    body.update(extra or {})
    path = spec["path"].replace("{model}", quote(model, safe=""))
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    return HttpRequest("POST", path, dict(manifest.endpoint.get("query", {})), headers, body)


def decode_openai_embeddings(body: bytes, manifest: Any) -> tuple[list[list[float]], int | None, str | None]:
    """``data[].embedding`` ordered by ``data[].index`` (floats, or base64 little-endian float32
    when ``encoding_format="base64"`` was asked for); tokens from ``usage.prompt_tokens``."""
    payload = json.loads(body)
    if not isinstance(payload, dict):
        raise make_error("server_error", f"expected a JSON object, got {type(payload).__name__}", provider=manifest.id)
    raise_payload_error(payload, manifest, body.decode("utf-8", "replace"))
    data = payload.get("data")
    if not isinstance(data, list):
        raise make_error("server_error", "the embeddings response has no 'data' list", provider=manifest.id)
    indexes = [item.get("index") if isinstance(item, dict) else None for item in data]
    if sorted(index for index in indexes if isinstance(index, int)) == list(range(len(data))):
        data = [item for _, item in sorted(zip(indexes, data, strict=True), key=lambda pair: pair[0])]
    vectors = [embedding_vector(item.get("embedding") if isinstance(item, dict) else None, manifest)
               for item in data]
    usage = find_usage(payload, manifest) or {}
    tokens = usage.get("prompt_tokens", usage.get("total_tokens"))
    return vectors, tokens if isinstance(tokens, int) else None, payload.get("model")


def embedding_vector(value: Any, manifest: Any) -> list[float]:
    if isinstance(value, str):
        import array
        import base64

        floats = array.array("f")
        floats.frombytes(base64.b64decode(value))
        if sys.byteorder == "big":
            floats.byteswap()
        return floats.tolist()
    if not isinstance(value, list):
        raise make_error("server_error", f"an embedding is {type(value).__name__}, not a list of numbers",
                         provider=manifest.id)
    return value


DIALECT = OpenAIChatDialect()
