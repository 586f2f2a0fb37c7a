"""The Amazon Bedrock Converse wire dialect (``/model/{modelId}/converse`` and ``converse-stream``).

References: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html,
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html.

Request mapping (decisions where the docs leave a choice):

- every system message goes to the top-level ``system`` list; tool results become ``toolResult``
  blocks of a user turn; consecutive turns of the same role are merged into one message, as
  Converse requires alternating roles (so parallel tool results travel together);
- a tool result that is a JSON object is sent as ``{"json": ...}``, anything else as text;
  ``Message.extra["status"]`` (``"success"``/``"error"``) is passed through;
- images must be inline (base64 from a ``data:`` URL or a local file): Converse has no image
  URLs, so an http(s) image is refused before any I/O;
- ``tool_choice``: auto -> ``{"auto": {}}``, required -> ``{"any": {}}``, a name ->
  ``{"tool": {"name"}}``; ``"none"`` has no Converse equivalent, so the tools are left out, unless
  the history holds tool blocks (Converse then requires ``toolConfig``): the tools are sent
  without ``toolChoice``;
- ``response_format`` json_schema -> ``outputConfig.textFormat`` on models whose manifest entry
  lists ``json_schema``, else (and for json_object) a forced tool whose input is decoded back
  into ``content`` (see ``encode_structured_output``);
- ``param(name, value)``: names that are top-level Converse fields (``guardrailConfig``,
  ``additionalModelRequestFields``, ...) go to the top level (dicts merged over ours); every
  other name goes into ``additionalModelRequestFields`` (``param("top_k", 50)``, Anthropic's
  ``param("thinking", {...})``).

Reasoning: ``.reasoning(effort, budget_tokens)`` goes into ``additionalModelRequestFields`` as
the manifest's ``params.model_rules`` say per model family (Claude:
``{"thinking": {"type": "enabled", "budget_tokens": N}}``, ``inferenceConfig.maxTokens`` above the
budget; https://docs.aws.amazon.com/bedrock/latest/userguide/claude-messages-extended-thinking.html);
a model without a documented control refuses it before any I/O.

Response: ``text`` blocks -> content, ``reasoningContent`` -> thinking, ``toolUse`` -> tool
calls; usage ``prompt = inputTokens + cacheReadInputTokens + cacheWriteInputTokens`` (Bedrock
counts cache tokens apart from ``inputTokens``), ``completion = outputTokens``.

Reasoning round trip: ``reasoningContent`` blocks that carry a ``signature`` (or are
``redactedContent``) are kept verbatim in ``reasoning_blocks`` (streams: text, signature and
redacted fragments assembled per content block) and sent first in the assistant message that
carries them, unchanged, as ReasoningTextBlock requires (Claude refuses a tool-use history
without them). Unsigned reasoning (DeepSeek-R1's) is not kept: Converse refuses it in a request.

Stream: ``messageStop`` carries the stop reason and ``metadata`` (the last event) the usage.
The stream ends at the later of the two; bytes that end after ``messageStop`` without
``metadata`` still finish (without usage), bytes that end before ``messageStop`` are
``stream_interrupted``. Exception frames are classified like HTTP errors.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..errors import InvalidRequestError, make_error
from ..eventstream import EXCEPTION
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
from .anthropic import JSON_TOOL
from .base import (
    ErrorInfo,
    HttpRequest,
    StreamDecoder,
    chat_path,
    chat_query,
    classify,
    json_or_none,
    with_tool_calls,
)

STOP_REASONS = {
    "end_turn": "stop", "stop_sequence": "stop",
    "max_tokens": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter", "content_filtered": "content_filter",
}
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                 "image/webp": "webp"}
# Request fields that live at the top level of a Converse body; other param() names are
# model-specific and go into additionalModelRequestFields.
TOP_LEVEL_FIELDS = frozenset({
    "messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig",
    "additionalModelRequestFields", "additionalModelResponseFieldPaths", "promptVariables",
    "requestMetadata", "performanceConfig", "serviceTier", "outputConfig",
})

_CONTEXT = (r"input is too long|too many (input )?tokens|prompt is too long|context (length|window)|"
            r"max(imum)? input tokens|exceeds? the (model'?s? )?(maximum|max|context)")
_AUTH_TYPES = (r"^(UnrecognizedClient|InvalidSignature|IncompleteSignature|MissingAuthenticationToken|"
               r"InvalidClientTokenId|ExpiredToken|RequestExpired|NotAuthorized|SignatureDoesNotMatch|"
               r"InvalidAccessKeyId|AccessKeyNotFound)(Exception)?$")
# Error types arrive as x-amzn-errortype names (HTTP) or lowerCamel :exception-type names
# (streams); both are normalised to the UpperCamel name before matching.
RULES: list[dict[str, Any]] = [
    {"message": r"authentication failed|api key|bearer token|security token included in the request is "
                r"(invalid|expired)|signature we calculated does not match", "kind": "authentication"},
    {"type": _AUTH_TYPES, "kind": "authentication"},
    {"type": r"^ValidationException$", "message": _CONTEXT, "kind": "context_length"},
    {"type": r"^(ValidationException|ValidationError|InvalidAction|MalformedHttpRequestException)$",
     "kind": "invalid_request"},
    {"type": r"^AccessDeniedException$", "kind": "permission"},
    {"type": r"^ResourceNotFoundException$", "kind": "not_found"},
    {"type": r"^(ThrottlingException|ServiceQuotaExceededException|TooManyRequestsException)$",
     "kind": "rate_limited"},
    # A body without its x-amzn-errortype header (a 200 from a proxy): the documented message.
    {"message": r"^too many (requests|tokens)", "kind": "rate_limited"},
    {"type": r"^ModelTimeoutException$", "kind": "timeout"},
    {"type": r"^(ServiceUnavailableException|ServiceUnavailable|ModelNotReadyException)$", "kind": "overloaded"},
    {"type": r"^(InternalServerException|InternalFailure|ModelErrorException|ModelStreamErrorException)$",
     "kind": "server_error"},
]


def map_stop_reason(reason: str | None, has_tool_calls: bool) -> str:
    mapped = STOP_REASONS.get(reason or "", "other" if reason else "stop")
    return with_tool_calls(mapped, has_tool_calls)


def structured_finish(finish_reason: str, used_json_tool: bool, has_tool_calls: bool) -> str:
    """A turn that only filled the forced JSON tool is an answer: ``stop``, not ``tool_calls``."""
    return "stop" if used_json_tool and not has_tool_calls and finish_reason == "tool_calls" else finish_reason


def new_tool_use_id() -> str:
    return "tooluse_" + uuid.uuid4().hex[:22]


def echoable(block: Any) -> bool:
    """A ``reasoningContent`` block Converse takes back: signed text or redacted content."""
    reasoning = block.get("reasoningContent") if isinstance(block, dict) else None
    if not isinstance(reasoning, dict):
        return False
    text = reasoning.get("reasoningText")
    return bool(reasoning.get("redactedContent") or (isinstance(text, dict) and text.get("signature")))


# --- request -----------------------------------------------------------------------------


def encode_image(part: ImagePart) -> dict[str, Any]:
    if part.data is None:
        raise InvalidRequestError(
            f"Bedrock Converse does not accept image URLs ({part.url!r}): pass a local file path or a "
            "data: URL so the image is sent inline"
        )
    image_format = IMAGE_FORMATS.get((part.media_type or "").lower())
    if image_format is None:
        raise InvalidRequestError(
            f"Bedrock Converse accepts png, jpeg, gif and webp images, got {part.media_type!r}")
    return {"image": {"format": image_format, "source": {"bytes": part.data}}}


def encode_blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == MessageRole.TOOL:
        return [encode_tool_result(message)]
    reasoning = message.reasoning_blocks if message.role == MessageRole.ASSISTANT else None
    blocks = [dict(block) for block in reasoning or () if echoable(block)]
    parts = [TextPart(message.content)] if isinstance(message.content, str) else (message.content or [])
    for part in parts:
        if isinstance(part, TextPart):
            if part.text:  # Converse rejects blank text blocks
                blocks.append({"text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append(encode_image(part))
    for call in message.tool_calls or ():
        blocks.append({"toolUse": {"toolUseId": call.id, "name": call.name, "input": call.arguments}})
    return blocks


def encode_tool_result(message: Message) -> dict[str, Any]:
    if not message.tool_call_id:
        raise InvalidRequestError("a tool result message needs the tool_call_id of the call it answers")
    text = message.text
    parsed = json_or_none(text)
    content = [{"json": parsed}] if isinstance(parsed, dict) else [{"text": text}]
    result: dict[str, Any] = {"toolUseId": message.tool_call_id, "content": content}
    status = message.extra.get("status")
    if status in ("success", "error"):
        result["status"] = status
    return {"toolResult": result}


def encode_messages(messages: list[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, alternating user/assistant messages)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for position, message in enumerate(messages):
        if message.role == MessageRole.SYSTEM:
            if message.text:
                system.append({"text": message.text})
            continue
        role = "assistant" if message.role == MessageRole.ASSISTANT else "user"
        blocks = encode_blocks(message)
        if not blocks:
            raise InvalidRequestError(f"message {position} ({message.role.value}) has no content to send")
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def encode_tool_config(request: ChatRequest, turns: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not request.tools:
        return None
    choice = request.tool_choice
    if choice == "none" and not any("toolUse" in block or "toolResult" in block
                                    for turn in turns for block in turn["content"]):
        return None
    tools = []
    for tool in request.tools:
        spec: dict[str, Any] = {"name": tool.name, "inputSchema": {"json": tool.parameters}}
        if tool.description:
            spec["description"] = tool.description
        tools.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": tools}
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice not in (None, "none"):
        config["toolChoice"] = {"tool": {"name": choice}}
    return config


def encode_structured_output(request: ChatRequest, manifest: Any, model: str, body: dict[str, Any]) -> None:
    """``response_format`` json_schema -> native ``outputConfig.textFormat`` where the manifest
    lists ``json_schema`` among the model's capabilities (AWS documents it for some models
    only: https://docs.aws.amazon.com/bedrock/latest/userguide/structured-output.html);
    otherwise, and for json_object, one tool named ``JSON_TOOL`` forced with ``toolChoice``,
    whose input comes back as ``content`` (JSON text), as on Anthropic's API."""
    response_format = request.response_format or {}
    kind = response_format.get("type")
    if kind not in ("json_schema", "json_object"):
        return
    spec = response_format.get("json_schema") or {}
    schema = spec.get("schema") or {"type": "object"}
    if kind == "json_schema" and "json_schema" in manifest.model_info(model).get("capabilities", ()):
        definition: dict[str, Any] = {"schema": json.dumps(closed_schema(schema))}
        for name in ("name", "description"):
            if spec.get(name):
                definition[name] = spec[name]
        body["outputConfig"] = {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": definition}}}
        return
    if request.tool_choice not in (None, "auto"):
        raise InvalidRequestError(
            f"{manifest.id}/{model}: response_format {kind} is sent as a forced tool on this model, "
            f"so it cannot be combined with tool_choice {request.tool_choice!r}")
    if request.reasoning is not None:
        raise InvalidRequestError(
            f"{manifest.id}/{model}: response_format {kind} is sent as a forced tool on this model, "
            "and a forced tool cannot be combined with reasoning: drop one of them")
    description = spec.get("description") or "Give the answer as a JSON object matching this input schema."
    config = body.setdefault("toolConfig", {"tools": []})
    config["tools"].append({"toolSpec": {"name": JSON_TOOL, "description": description,
                                         "inputSchema": {"json": schema}}})
    config["toolChoice"] = {"tool": {"name": JSON_TOOL}}


class BedrockConverseDialect:
    name = "bedrock_converse"
    framing = "aws_eventstream"

    def encode_request(self, request: ChatRequest, manifest: Any, model: str, stream: bool) -> HttpRequest:
        system, turns = encode_messages(request.messages)
        body: dict[str, Any] = {"messages": turns}
        if system:
            body["system"] = system
        inference = {wire: value for wire, value in (
            ("maxTokens", request.max_tokens), ("temperature", request.temperature),
            ("topP", request.top_p), ("stopSequences", request.stop or None)) if value is not None}
        if inference:
            body["inferenceConfig"] = inference
        tool_config = encode_tool_config(request, turns)
        if tool_config:
            body["toolConfig"] = tool_config
        encode_structured_output(request, manifest, model, body)
        # .reasoning(): the manifest's per-model template (Claude: ``thinking``), sent in
        # additionalModelRequestFields like any model-specific field.
        extra_model_fields = dict(reasoning_fields(request, manifest, model, None))
        for name, value in request.extra.items():
            if name not in TOP_LEVEL_FIELDS:
                extra_model_fields[name] = value
            elif isinstance(value, dict) and isinstance(body.get(name), dict):
                body[name] = {**body[name], **value}
            else:
                body[name] = value
        if extra_model_fields:
            body["additionalModelRequestFields"] = {**body.get("additionalModelRequestFields", {}),
                                                    **extra_model_fields}
        headers = {"Content-Type": "application/json",
                   "Accept": "application/vnd.amazon.eventstream" if stream else "application/json"}
        return HttpRequest("POST", chat_path(manifest, model, stream), chat_query(manifest, stream), headers, body)

    def decode_response(self, body: bytes, manifest: Any, model: str) -> ChatResponse:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise make_error("server_error", f"expected a JSON object, got {type(payload).__name__}", provider=manifest.id)
        if "output" not in payload and _is_error_body(payload):
            # A 2xx whose body is an exception ({"message"}, maybe "__type"), as a proxy or an
            # exception frame turned into JSON delivers it: the error, not an empty answer.
            info = self.classify_error(None, {}, body, manifest)
            raise make_error(info.kind, info.message, code=info.code, provider=manifest.id,
                             body=body.decode("utf-8", "replace"))
        message = (payload.get("output") or {}).get("message") or {}
        texts: list[str] = []
        thinking: list[str] = []
        calls: list[ToolCall] = []
        reasoning_blocks = [dict(block) for block in message.get("content") or () if echoable(block)]
        used_json_tool = False
        for block in message.get("content") or ():
            if not isinstance(block, dict):
                continue
            if isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif "reasoningContent" in block:
                reasoning = (block["reasoningContent"] or {}).get("reasoningText") or {}
                if reasoning.get("text"):
                    thinking.append(reasoning["text"])
            elif "toolUse" in block and (block["toolUse"] or {}).get("name") == JSON_TOOL:
                used_json_tool = True
                structured = (block["toolUse"] or {}).get("input")
                texts.append(json.dumps(structured if structured is not None else {}, ensure_ascii=False))
            elif "toolUse" in block:
                use = block["toolUse"] or {}
                calls.append(ToolCall.from_raw(use.get("toolUseId") or new_tool_use_id(), use.get("name", ""),
                                               use.get("input") if isinstance(use.get("input"), dict) else {}))
        return ChatResponse(
            content="".join(texts),
            tool_calls=calls,
            finish_reason=structured_finish(map_stop_reason(payload.get("stopReason"), bool(calls)),
                                            used_json_tool, bool(calls)),
            usage=decode_usage(payload.get("usage")) or Usage(),
            model=model,
            provider=manifest.id,
            thinking="".join(thinking) or None,
            raw=payload,
            reasoning_blocks=reasoning_blocks or None,
        )

    def stream_decoder(self, manifest: Any, model: str) -> BedrockStreamDecoder:
        return BedrockStreamDecoder(manifest)

    def classify_error(self, status: int | None, headers: Any, body: bytes, manifest: Any) -> ErrorInfo:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
        payload = json_or_none(text)
        payload = payload if isinstance(payload, dict) else {}
        err_type = _header(headers, "x-amzn-errortype") or payload.get("__type") or payload.get("code")
        message = payload.get("message") or payload.get("Message") or text.strip()[:500] or f"HTTP {status}"
        return classify_bedrock(status, str(message), err_type, manifest)

    def encode_embeddings(self, texts: list[str], manifest: Any, model: str, spec: dict[str, Any], *,
                          dimensions: int | None = None, input_type: str | None = None,
                          extra: dict[str, Any] | None = None) -> HttpRequest:
        return encode_bedrock_embeddings(texts, manifest, model, spec, dimensions, input_type, extra)

    def decode_embeddings(self, body: bytes, headers: Any, manifest: Any, model: str,
                          spec: dict[str, Any]) -> tuple[list[list[float]], int | None, str | None]:
        return decode_bedrock_embeddings(body, headers, manifest, spec)


def _is_error_body(payload: dict[str, Any]) -> bool:
    return any(isinstance(payload.get(key), str) for key in ("message", "Message", "__type"))


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is None and isinstance(headers, Mapping):
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def error_type_name(raw: Any) -> str | None:
    """``ThrottlingException:http://internal.amazon.com/coral/...``, ``aws.protocols#Foo`` or
    ``throttlingException`` -> ``ThrottlingException``."""
    if not raw:
        return None
    name = str(raw).split(":")[0].split(",")[0].strip()
    name = name.rsplit("#", 1)[-1]
    return name[:1].upper() + name[1:] if name else None


def classify_bedrock(status: int | None, message: str, raw_type: Any, manifest: Any) -> ErrorInfo:
    err_type = error_type_name(raw_type)
    kind = classify(status, message, err_type, None, manifest, RULES)
    return ErrorInfo(kind, message, err_type, err_type)


def decode_usage(usage: dict[str, Any] | None) -> Usage | None:
    if not isinstance(usage, dict) or not usage:
        return None
    cache_read = usage.get("cacheReadInputTokens")
    prompt = (usage.get("inputTokens") or 0) + (cache_read or 0) + (usage.get("cacheWriteInputTokens") or 0)
    return Usage.of(prompt, usage.get("outputTokens"), cached=cache_read)


class BedrockStreamDecoder(StreamDecoder):
    """ConverseStream events -> unified events. Tool calls are numbered 0, 1, ... in the order
    their blocks start; ``contentBlockIndex`` only finds the call a delta belongs to."""

    def __init__(self, manifest: Any) -> None:
        self.manifest = manifest
        self.done = False
        self.calls: dict[Any, dict[str, Any]] = {}  # contentBlockIndex -> call state
        self.json_blocks: set[Any] = set()  # blocks of the forced JSON tool: streamed as content
        self.reasoning: dict[Any, dict[str, Any]] = {}  # contentBlockIndex -> reasoning fragments
        self.call_count = 0
        self.stop_reason: str | None = None
        self.usage: Usage | None = None
        self.got_metadata = False

    def feed(self, event: str | None, data: Any) -> list[StreamEvent]:
        if self.done or not isinstance(data, dict):
            return []
        if event == EXCEPTION:
            info = classify_bedrock(None, data.get("message") or "stream exception", data.get("type"), self.manifest)
            raise make_error(info.kind, info.message, code=info.code, provider=self.manifest.id,
                             body=data.get("body") or None)
        events: list[StreamEvent] = []
        if event == "contentBlockStart":
            use = (data.get("start") or {}).get("toolUse")
            if isinstance(use, dict) and use.get("name") == JSON_TOOL:
                self.json_blocks.add(data.get("contentBlockIndex"))
            elif isinstance(use, dict):
                self._open(data.get("contentBlockIndex"), use, events)
        elif event == "contentBlockDelta":
            self._delta(data.get("contentBlockIndex"), data.get("delta") or {}, events)
        elif event == "contentBlockStop":
            self._close(data.get("contentBlockIndex"), events)
        elif event == "messageStop":
            self.stop_reason = data.get("stopReason") or "end_turn"
            for block_index in list(self.calls):
                self._close(block_index, events)
            if self.got_metadata:
                events.extend(self._end())
        elif event == "metadata":
            self.got_metadata = True
            self.usage = decode_usage(data.get("usage")) or self.usage
            if self.stop_reason is not None:
                events.extend(self._end())
        return events

    def _open(self, block_index: Any, use: dict[str, Any], events: list[StreamEvent]) -> dict[str, Any]:
        call = {"index": self.call_count, "id": use.get("toolUseId") or new_tool_use_id(),
                "name": use.get("name") or "", "arguments": "", "closed": False}
        self.calls[block_index] = call
        self.call_count += 1
        events.append(ToolCallStarted(call["index"], call["id"], call["name"]))
        return call

    def _delta(self, block_index: Any, delta: dict[str, Any], events: list[StreamEvent]) -> None:
        if isinstance(delta.get("text"), str) and delta["text"]:
            events.append(ContentDelta(delta["text"]))
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict):
            part = self.reasoning.setdefault(block_index, {"text": "", "signature": "", "redacted": []})
            for name in ("text", "signature"):
                if isinstance(reasoning.get(name), str):
                    part[name] += reasoning[name]
            if isinstance(reasoning.get("redactedContent"), str) and reasoning["redactedContent"]:
                part["redacted"].append(reasoning["redactedContent"])
            if isinstance(reasoning.get("text"), str) and reasoning["text"]:
                events.append(ThinkingDelta(reasoning["text"]))
        use = delta.get("toolUse")
        if isinstance(use, dict) and block_index in self.json_blocks:
            fragment = use.get("input")
            fragment = json.dumps(fragment) if isinstance(fragment, dict) else fragment
            if fragment:
                events.append(ContentDelta(fragment))
        elif isinstance(use, dict):
            call = self.calls.get(block_index) or self._open(block_index, {}, events)
            fragment = use.get("input")
            if isinstance(fragment, dict):
                fragment = json.dumps(fragment)
            if fragment:
                call["arguments"] += fragment
                events.append(ToolCallDelta(call["index"], fragment))

    @property
    def reasoning_blocks(self) -> list[dict[str, Any]] | None:
        """The signed or redacted reasoning blocks, as ``converse`` would have returned them."""
        blocks: list[dict[str, Any]] = []
        for part in self.reasoning.values():
            redacted = part["redacted"]
            if len(redacted) > 1:  # base64 pieces: join the bytes, not the text
                redacted = [base64.b64encode(b"".join(base64.b64decode(piece) for piece in redacted)).decode()]
            if redacted:
                blocks.append({"reasoningContent": {"redactedContent": redacted[0]}})
            elif part["signature"]:
                blocks.append({"reasoningContent": {"reasoningText": {"text": part["text"],
                                                                      "signature": part["signature"]}}})
        return blocks or None

    def _close(self, block_index: Any, events: list[StreamEvent]) -> None:
        call = self.calls.get(block_index)
        if call is None or call["closed"]:
            return
        call["closed"] = True
        events.append(ToolCallEnded(call["index"], ToolCall.from_raw(call["id"], call["name"], call["arguments"])))

    def _end(self) -> list[StreamEvent]:
        self.done = True
        events: list[StreamEvent] = []
        if self.usage is not None:
            events.append(UsageEvent(self.usage))
        finish = map_stop_reason(self.stop_reason, bool(self.calls))
        events.append(FinishEvent(structured_finish(finish, bool(self.json_blocks), bool(self.calls))))
        return events

    def finish(self) -> list[StreamEvent]:
        if self.done:
            return []
        if self.stop_reason is not None:  # messageStop came, metadata did not: still a whole answer
            return self._end()
        raise make_error("stream_interrupted", "the stream ended before messageStop", provider=self.manifest.id)


# --- embeddings: InvokeModel with the model's own body ------------------------------------------
# https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModel.html
# Titan Text Embeddings v2: https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html
# Cohere Embed: https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-embed.html


def encode_bedrock_embeddings(texts: list[str], manifest: Any, model: str, spec: dict[str, Any],
                              dimensions: int | None, input_type: str | None,
                              extra: dict[str, Any] | None) -> HttpRequest:
    """``POST /model/{modelId}/invoke``. The manifest's per-model ``format`` picks the body:
    ``titan`` (one ``inputText`` per request, ``dimensions``) or ``cohere`` (``texts``, the
    required ``input_type``, ``output_dimension`` on Embed v4)."""
    body_format = spec.get("format")
    body: dict[str, Any]
    if body_format == "titan":
        if len(texts) != 1:
            raise InvalidRequestError("Titan Text Embeddings takes one text per request")
        body = {"inputText": texts[0]}
    elif body_format == "cohere":
        body = {"texts": list(texts)}
        if input_type is not None:
            body[spec["input_type"]["field"]] = input_type
    else:
        raise InvalidRequestError(f"{manifest.id}: no embeddings body format for model {model!r} "
                                  "(the manifest's embeddings.models names 'titan' or 'cohere' formats)")
    if dimensions is not None:
        body[spec.get("dimensions") or "dimensions"] = dimensions
    body.update(extra or {})
    path = spec["path"].replace("{model}", quote(model, safe=""))
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    return HttpRequest("POST", path, dict(manifest.endpoint.get("query", {})), headers, body)


def decode_bedrock_embeddings(body: bytes, headers: Any, manifest: Any,
                              spec: dict[str, Any]) -> tuple[list[list[float]], int | None, str | None]:
    """Titan: ``embedding`` and ``inputTextTokenCount``; Cohere: ``embeddings`` (list or by
    type). Tokens fall back to InvokeModel's ``X-Amzn-Bedrock-Input-Token-Count`` header."""
    payload = json.loads(body)
    if not isinstance(payload, dict):
        raise make_error("server_error", f"expected a JSON object, got {type(payload).__name__}", provider=manifest.id)
    if spec.get("format") == "titan":
        vector = payload.get("embedding")
        if not isinstance(vector, list):
            vector = (payload.get("embeddingsByType") or {}).get("float")
        if not isinstance(vector, list):
            raise make_error("server_error", "the Titan response has no 'embedding' list", provider=manifest.id)
        vectors, tokens = [vector], payload.get("inputTextTokenCount")
    else:
        from .cohere import cohere_vectors

        vectors, tokens = cohere_vectors(payload, manifest), None
    if not isinstance(tokens, int):
        header = _header(headers, "x-amzn-bedrock-input-token-count")
        tokens = int(header) if header and header.isdigit() else None
    return vectors, tokens, None


DIALECT = BedrockConverseDialect()
