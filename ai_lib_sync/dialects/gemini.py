"""The Google Gemini ``generateContent`` wire dialect (Gemini Developer API, ``v1beta``).

References (official): https://ai.google.dev/api/generate-content (request, response,
``streamGenerateContent``), https://ai.google.dev/gemini-api/docs/function-calling,
https://ai.google.dev/gemini-api/docs/structured-output,
https://ai.google.dev/gemini-api/docs/troubleshooting (error statuses).

Decisions where the docs leave room (each one is tested):

- System messages, wherever they sit, become ``systemInstruction`` parts (Gemini has no
  system role inside ``contents``). Assistant turns are role ``model``; tool results are
  ``functionResponse`` parts in a ``user`` turn, consecutive results merged into one turn
  (parallel calls are answered together). The function name comes from the earlier assistant
  tool call with the same id, else ``Message.name``. A result that is a JSON object is sent as
  the ``response``; anything else as ``{"output": ...}`` (the documented key).
- Tool-call ids: Gemini's ``generateContent`` normally sends none, so ids are synthesised
  (``call_...``); an id Gemini does send is used. Ids are never sent back (the REST docs match
  results by name and order). A ``thoughtSignature`` on a ``functionCall`` part is kept on
  ``ToolCall.signature`` and echoed back (Gemini 3 rejects tool history without it).
- Images: base64 -> ``inlineData``; ``http(s)://`` and ``gs://`` URLs -> ``fileData`` (the
  API fetches public and signed URLs itself), ``mimeType`` only when known.
- Schemas: by default (``dialect_options.schema_mode = "openapi"``) tool parameters go to
  ``parameters`` and JSON-schema output to ``responseSchema``, both reduced to the OpenAPI
  subset Gemini accepts: unknown keywords (``additionalProperties``, ``$schema``,
  ``default``...) are dropped, local ``$ref``s inlined, ``type: [T, "null"]`` becomes
  ``nullable``, unsupported ``format``s dropped, and a parameterless function sends no
  ``parameters`` (Gemini rejects an OBJECT with no properties). ``schema_mode = "json_schema"``
  sends the schema unchanged (minus ``$schema``) as ``parametersJsonSchema`` /
  ``responseJsonSchema`` instead (Gemini 2.5 and later).
- ``param(name, value)``: names of ``GenerationConfig`` fields (``topK``, ``seed``,
  ``thinkingConfig``...) go into ``generationConfig``; any other name goes to the top level of
  the body. Objects are deep-merged into what the dialect built; other values replace it.
- A prompt blocked before generation (``promptFeedback.blockReason``, no candidates) raises
  ``ContentFilterError``, streamed or not. An answer stopped with finishReason ``SAFETY``,
  ``RECITATION``, ``BLOCKLIST``, ``PROHIBITED_CONTENT``, ``SPII`` or an ``IMAGE_*`` block is
  returned with finish_reason ``content_filter`` and ``refusal`` naming the reason (the text
  before the block stays in ``content``); ``LANGUAGE``, ``MALFORMED_FUNCTION_CALL``, ``OTHER``
  and reasons added later are ``other``.
- ``.reasoning(effort, budget_tokens)`` -> ``generationConfig.thinkingConfig``: Gemini 2.5
  ``thinkingBudget`` (an effort alone: low 1024, medium 8192, high 24576), Gemini 3
  ``thinkingLevel`` (manifest ``params.model_rules``), always with ``includeThoughts`` so the
  thought summaries come back as ``thinking``; ``thoughtsTokenCount`` is
  ``usage.reasoning_tokens``, ``cachedContentTokenCount`` ``usage.cached_tokens``.
- A stream is complete once a candidate carried a ``finishReason``; Gemini sends no ``[DONE]``,
  so a body that ends without one raises ``StreamInterruptedError``. ``usageMetadata`` is
  cumulative: the last one wins.
- Usage: prompt = ``promptTokenCount`` + ``toolUsePromptTokenCount``; completion =
  ``candidatesTokenCount`` + ``thoughtsTokenCount``.
- ``RESOURCE_EXHAUSTED`` is ``rate_limited`` (``retry_after`` from ``RetryInfo.retryDelay``);
  without a ``RetryInfo`` and with a message about the plan/billing it is ``quota_exhausted``
  (that quota does not come back within a retry window).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from ..dicts import deep_merge
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

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    **dict.fromkeys(("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
                     "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"), "content_filter"),
}

# GenerationConfig fields (https://ai.google.dev/api/generate-content#generationconfig):
# a ``param()`` with one of these names belongs inside ``generationConfig``.
GENERATION_CONFIG_FIELDS = frozenset({
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "responseModalities",
    "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed", "presencePenalty",
    "frequencyPenalty", "responseLogprobs", "logprobs", "enableEnhancedCivicAnswers", "speechConfig",
    "thinkingConfig", "imageConfig", "mediaResolution",
})

# The OpenAPI-subset Schema object (https://ai.google.dev/api/caching#Schema), minus the
# hint-only ``default``/``example`` that older models refuse in function declarations.
SCHEMA_KEYS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "anyOf",
    "propertyOrdering", "items", "minimum", "maximum",
})
SCHEMA_FORMATS = {"string": {"enum", "date-time"}, "integer": {"int32", "int64"}, "number": {"float", "double"}}
_MAX_REF_DEPTH = 8

TOOL_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}

# .reasoning() on Gemini 2.5 (a token budget; thought summaries included so ``thinking`` is
# filled); Gemini 3 models take ``thinkingLevel`` instead (manifest ``params.model_rules``).
# https://ai.google.dev/gemini-api/docs/thinking
DEFAULT_REASONING_BODY = {"thinkingConfig": {"thinkingBudget": "{budget_tokens}", "includeThoughts": True}}

_RETRY_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")

# Gemini's statuses and reasons; the manifest's rules still come first.
DIALECT_RULES: list[dict[str, Any]] = [
    {"code": "^(API_KEY_INVALID|API_KEY_EXPIRED|API_KEY_SERVICE_BLOCKED)$", "kind": "authentication"},
    {"type": "^UNAUTHENTICATED$", "kind": "authentication"},
    {"message": r"API key (not valid|not found|expired)", "kind": "authentication"},
    {"message": "exceeds the maximum number of tokens|input token count .* exceeds", "kind": "context_length"},
    {"type": "^PERMISSION_DENIED$", "kind": "permission"},
    {"type": "^NOT_FOUND$", "kind": "not_found"},
    {"type": "^RESOURCE_EXHAUSTED$", "message": "billing|your plan|prepayment|credits", "kind": "quota_exhausted"},
    {"type": "^RESOURCE_EXHAUSTED$", "kind": "rate_limited"},
    {"type": "^FAILED_PRECONDITION$", "message": "billing", "kind": "quota_exhausted"},
    {"type": "^FAILED_PRECONDITION$", "kind": "permission"},
    {"type": "^INVALID_ARGUMENT$", "kind": "invalid_request"},
    {"type": "^INTERNAL$", "kind": "server_error"},
    {"type": "^UNAVAILABLE$", "kind": "overloaded"},
    {"type": "^DEADLINE_EXCEEDED$", "kind": "timeout"},
]
_RATE_LIMIT_WITH_RETRY = {"type": "^RESOURCE_EXHAUSTED$", "kind": "rate_limited"}


def map_finish_reason(reason: str | None, has_tool_calls: bool) -> str:
    mapped = FINISH_REASONS.get(reason or "STOP", "other")
    return with_tool_calls(mapped, has_tool_calls)


def blocked_note(reason: str | None) -> str | None:
    """``response.refusal`` for an answer Gemini stopped for safety, recitation or policy."""
    if FINISH_REASONS.get(reason or "") != "content_filter":
        return None
    return f"the answer was blocked by Gemini (finishReason {reason})"


# --- schemas -----------------------------------------------------------------------------


def openapi_schema(schema: Any, root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """``schema`` reduced to the OpenAPI subset Gemini's ``Schema`` accepts."""
    if not isinstance(schema, dict):
        return schema
    root = schema if root is None else root
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        if depth >= _MAX_REF_DEPTH:  # a recursive type: stop with an opaque object
            return {"type": "object", **({"description": schema["description"]} if "description" in schema else {})}
        target: Any = root
        for key in ref[2:].split("/"):
            target = target.get(key, {}) if isinstance(target, dict) else {}
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return openapi_schema(merged, root, depth + 1)
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
        merged = {**all_of[0], **{k: v for k, v in schema.items() if k != "allOf"}}
        return openapi_schema(merged, root, depth)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if len(types) < len(value):
                out["nullable"] = True
            if len(types) == 1:
                out["type"] = types[0]
            elif types:
                out["anyOf"] = [{"type": t} for t in types]
        elif key == "const":
            out["enum"] = [value]
        elif key not in SCHEMA_KEYS:
            continue
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: openapi_schema(sub, root, depth) for name, sub in value.items()}
        elif key == "items":
            out[key] = openapi_schema(value, root, depth)
        elif key == "anyOf" and isinstance(value, list):
            variants = [v for v in value if not (isinstance(v, dict) and v.get("type") == "null")]
            if len(variants) < len(value):
                out["nullable"] = True
            if len(variants) == 1:
                out.update({k: v for k, v in openapi_schema(variants[0], root, depth).items() if k not in out})
            else:
                out[key] = [openapi_schema(v, root, depth) for v in variants]
        else:
            out[key] = value
    if "format" in out and out["format"] not in SCHEMA_FORMATS.get(str(out.get("type", "")).lower(), ()):
        del out["format"]
    return out


def json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in schema.items() if key != "$schema"}


def encode_tool(tool: Tool, mode: str) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": tool.name}
    if tool.description:
        declaration["description"] = tool.description
    if mode == "json_schema":
        declaration["parametersJsonSchema"] = json_schema(tool.parameters)
        return declaration
    parameters = openapi_schema(tool.parameters)
    if parameters.get("properties") or str(parameters.get("type", "object")).lower() != "object":
        declaration["parameters"] = parameters
    return declaration


# --- request -----------------------------------------------------------------------------


def encode_image(part: ImagePart) -> dict[str, Any]:
    if part.data is not None:
        return {"inlineData": {"mimeType": part.media_type or "image/png", "data": part.data}}
    file_data: dict[str, Any] = {"fileUri": part.url}
    if part.media_type:
        file_data = {"mimeType": part.media_type, **file_data}
    return {"fileData": file_data}


def encode_parts(message: Message) -> list[dict[str, Any]]:
    if not isinstance(message.content, list):
        return [{"text": message.content}] if message.content else []
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            parts.append({"text": part.text})
        elif isinstance(part, ImagePart):
            parts.append(encode_image(part))
    return parts


def function_response(message: Message, names: dict[str, str]) -> dict[str, Any]:
    name = names.get(message.tool_call_id or "") or message.name
    if not name:
        raise InvalidRequestError(
            f"tool result {message.tool_call_id!r} answers no earlier assistant tool call; Gemini needs the "
            "function name: keep the assistant message with that tool call, or pass name=... to the tool message"
        )
    text = message.text
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = text
    response = value if isinstance(value, dict) else {"output": value}
    return {"functionResponse": {"name": name, "response": response}}


def encode_contents(messages: list[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(contents, systemInstruction parts)."""
    contents: list[dict[str, Any]] = []
    system: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for message in messages:
        if message.role == MessageRole.SYSTEM:
            system.extend(encode_parts(message))
        elif message.role == MessageRole.TOOL:
            part = function_response(message, names)
            previous = contents[-1] if contents else None
            if previous and previous["role"] == "user" and all("functionResponse" in p for p in previous["parts"]):
                previous["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
        elif message.role == MessageRole.ASSISTANT:
            parts = encode_parts(message)
            for call in message.tool_calls or ():
                names[call.id] = call.name
                part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call.arguments}}
                if call.signature:
                    part["thoughtSignature"] = call.signature
                parts.append(part)
            if parts:
                contents.append({"role": "model", "parts": parts})
        else:
            contents.append({"role": "user", "parts": encode_parts(message) or [{"text": ""}]})
    return contents, system


def generation_config(request: ChatRequest, mode: str) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if request.stop:
        config["stopSequences"] = list(request.stop)
    response_format = request.response_format or {}
    if response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            if mode == "json_schema":
                config["responseJsonSchema"] = json_schema(schema)
            else:
                config["responseSchema"] = openapi_schema(schema)
    return config


class GeminiDialect:
    name = "gemini"
    framing = "sse"

    def encode_request(self, request: ChatRequest, manifest: Any, model: str, stream: bool) -> HttpRequest:
        mode = manifest.dialect_options.get("schema_mode", "openapi")
        contents, system = encode_contents(request.messages)
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": system}
        if request.tools:
            body["tools"] = [{"functionDeclarations": [encode_tool(tool, mode) for tool in request.tools]}]
            if request.tool_choice is not None:
                config: dict[str, Any] = {"mode": TOOL_CHOICE_MODES.get(request.tool_choice, "ANY")}
                if request.tool_choice not in TOOL_CHOICE_MODES:
                    config["allowedFunctionNames"] = [request.tool_choice]
                body["toolConfig"] = {"functionCallingConfig": config}
        config = generation_config(request, mode)
        thinking = reasoning_fields(request, manifest, model.removeprefix("models/"), DEFAULT_REASONING_BODY)
        if thinking:
            config = deep_merge(config, thinking)
        if config:
            body["generationConfig"] = config
        extra_config = {k: v for k, v in request.extra.items() if k in GENERATION_CONFIG_FIELDS}
        top_level = {k: v for k, v in request.extra.items() if k not in GENERATION_CONFIG_FIELDS}
        if extra_config:
            body["generationConfig"] = deep_merge(body.get("generationConfig", {}), extra_config)
        body = deep_merge(body, top_level)
        model = model.removeprefix("models/")
        return HttpRequest("POST", chat_path(manifest, model, stream), chat_query(manifest, stream),
                           {"Content-Type": "application/json"}, body)

    def decode_response(self, body: bytes, manifest: Any, model: str) -> ChatResponse:
        payload = json.loads(body)
        if isinstance(payload, list) and len(payload) == 1:
            payload = payload[0]
        if not isinstance(payload, dict):
            raise make_error("server_error", f"expected a JSON object, got {type(payload).__name__}", provider=manifest.id)
        if payload.get("error"):
            raise frame_error(payload, manifest)
        candidate = first_candidate(payload, manifest)
        content: list[str] = []
        thinking: list[str] = []
        calls: list[ToolCall] = []
        for part in parts_of(candidate):
            if "functionCall" in part:
                calls.append(tool_call(part))
            elif isinstance(part.get("text"), str):
                (thinking if part.get("thought") else content).append(part["text"])
        return ChatResponse(
            content="".join(content),
            tool_calls=calls,
            finish_reason=map_finish_reason(candidate.get("finishReason"), bool(calls)),
            refusal=blocked_note(candidate.get("finishReason")),
            usage=decode_usage(payload.get("usageMetadata")) or Usage(),
            model=payload.get("modelVersion") or model,
            provider=manifest.id,
            thinking="".join(thinking) or None,
            id=payload.get("responseId"),
            raw=payload,
        )

    def stream_decoder(self, manifest: Any, model: str) -> GeminiStreamDecoder:
        return GeminiStreamDecoder(manifest)

    def classify_error(self, status: int | None, headers: Any, body: bytes, manifest: Any) -> ErrorInfo:
        return classify_gemini_error(status, body, manifest)

    def encode_batch_item(self, request: ChatRequest, manifest: Any, model: str, custom_id: str,
                          spec: dict[str, Any]) -> dict[str, Any]:
        """One inlined batch request: ``{"request": <generateContent body>, "metadata": {"key"}}``."""
        return {"request": self.encode_request(request, manifest, model, False).body,
                "metadata": {"key": custom_id}}

    def decode_batch_item(self, line: dict[str, Any], manifest: Any, model: str,
                          ) -> tuple[str | None, ChatResponse | ErrorInfo, int | None]:
        """One inlined response: ``{"response": <GenerateContentResponse>} | {"error": <Status>}``
        with the request's ``metadata`` (its ``key``) when the service echoes it."""
        key = (line.get("metadata") or {}).get("key")
        if isinstance(line.get("response"), dict):
            return key, self.decode_response(json.dumps(line["response"]).encode(), manifest, model), None
        error = line.get("error") or {}
        status = error.get("code") if isinstance(error.get("code"), int) else None
        return key, classify_gemini_error(status, json.dumps({"error": error}), manifest), status

    def encode_embeddings(self, texts: list[str], manifest: Any, model: str, spec: dict[str, Any], *,
                          dimensions: int | None = None, input_type: str | None = None,
                          extra: dict[str, Any] | None = None) -> HttpRequest:
        return encode_gemini_embeddings(texts, manifest, model, spec, dimensions, input_type, extra)

    def decode_embeddings(self, body: bytes, headers: Any, manifest: Any, model: str,
                          spec: dict[str, Any]) -> tuple[list[list[float]], int | None, str | None]:
        return decode_gemini_embeddings(body, manifest)


# --- response ----------------------------------------------------------------------------


def first_candidate(payload: dict[str, Any], manifest: Any) -> dict[str, Any]:
    candidates = payload.get("candidates") or []
    if candidates:
        return candidates[0]
    reason = (payload.get("promptFeedback") or {}).get("blockReason")
    if reason:
        raise make_error("content_filter", f"the prompt was blocked ({reason}); no candidates were generated",
                         code=reason, provider=manifest.id, body=json.dumps(payload)[:4000])
    return {}


def parts_of(candidate: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for part in (candidate.get("content") or {}).get("parts") or ():
        if isinstance(part, dict):
            yield part


def tool_call(part: dict[str, Any]) -> ToolCall:
    function = part["functionCall"] or {}
    args = function.get("args")
    call = ToolCall.from_raw(function.get("id") or new_call_id(), function.get("name", ""),
                             args if isinstance(args, dict) else json.dumps(args or {}))
    call.signature = part.get("thoughtSignature")
    return call


def decode_usage(usage: dict[str, Any] | None) -> Usage | None:
    if not usage or not isinstance(usage, dict):
        return None
    thoughts = usage.get("thoughtsTokenCount")
    prompt = (usage.get("promptTokenCount") or 0) + (usage.get("toolUsePromptTokenCount") or 0)
    completion = (usage.get("candidatesTokenCount") or 0) + (thoughts or 0)
    return Usage.of(prompt, completion, thoughts, usage.get("cachedContentTokenCount"))


def retry_delay(details: Any) -> float | None:
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _RETRY_DELAY.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def error_reason(details: Any) -> str | None:
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.ErrorInfo"):
            return detail.get("reason")
    return None


def classify_gemini_error(status: int | None, body: bytes | str, manifest: Any) -> ErrorInfo:
    """``{"error": {"code", "message", "status", "details": [...]}}`` (maybe wrapped in a list)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    payload = json_or_none(text)
    message, status_name, _ = extract_error(payload, text.strip()[:500] or f"HTTP {status}")
    error = payload[0] if isinstance(payload, list) and payload else payload
    error = error.get("error") if isinstance(error, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    reason = error_reason(details)
    retry_after = retry_delay(details)
    if status is None and isinstance(error, dict) and isinstance(error.get("code"), int):
        status = error["code"]  # an error frame inside a 200 stream carries its HTTP code
    rules = [_RATE_LIMIT_WITH_RETRY, *DIALECT_RULES] if retry_after is not None else DIALECT_RULES
    kind = classify(status, message, status_name, reason, manifest, rules)
    return ErrorInfo(kind, message, reason or status_name, status_name, retry_after)


def frame_error(payload: dict[str, Any], manifest: Any) -> Exception:
    data = json.dumps(payload)
    info = classify_gemini_error(None, data, manifest)
    return make_error(info.kind, info.message, code=info.code, provider=manifest.id, body=data,
                      retry_after=info.retry_after)


class GeminiStreamDecoder(StreamDecoder):
    """``GenerateContentResponse`` chunks -> unified events. Function calls arrive whole, so each
    is started, given its full arguments and ended at once."""

    def __init__(self, manifest: Any) -> None:
        self.manifest = manifest
        self.done = False
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.calls = 0

    @property
    def refusal(self) -> str | None:
        """Set when a safety/recitation/policy finishReason stopped the answer (final_response())."""
        return blocked_note(self.finish_reason)

    def feed(self, event: str | None, data: Any) -> list[StreamEvent]:
        if self.done:
            return []
        try:
            chunk = json.loads(data)
        except ValueError:
            raise make_error("stream_interrupted", f"malformed stream chunk: {str(data)[:200]!r}",
                             provider=self.manifest.id) from None
        if isinstance(chunk, list) and len(chunk) == 1:
            chunk = chunk[0]
        if not isinstance(chunk, dict):
            return []
        if chunk.get("error"):
            raise frame_error(chunk, self.manifest)
        if isinstance(chunk.get("usageMetadata"), dict):
            self.usage = chunk["usageMetadata"]
        candidate = first_candidate(chunk, self.manifest)
        events: list[StreamEvent] = []
        for part in parts_of(candidate):
            if "functionCall" in part:
                call = tool_call(part)
                index = self.calls
                self.calls += 1
                events += [ToolCallStarted(index, call.id, call.name),
                           ToolCallDelta(index, call.arguments_json()), ToolCallEnded(index, call)]
            elif isinstance(part.get("text"), str) and part["text"]:
                events.append(ThinkingDelta(part["text"]) if part.get("thought") else ContentDelta(part["text"]))
        if candidate.get("finishReason"):
            # The chunk with a finishReason is the last one (it carries the final
            # usageMetadata): end here, so a server that holds the connection open after it
            # cannot make the caller wait.
            self.finish_reason = candidate["finishReason"]
            events += self.finish()
        return events

    def finish(self) -> list[StreamEvent]:
        if self.done:
            return []
        if self.finish_reason is None:
            raise make_error("stream_interrupted", "the stream ended before any candidate had a finishReason",
                             provider=self.manifest.id)
        self.done = True
        events: list[StreamEvent] = []
        usage = decode_usage(self.usage)
        if usage is not None:
            events.append(UsageEvent(usage))
        events.append(FinishEvent(map_finish_reason(self.finish_reason, self.calls > 0)))
        return events


# --- embeddings (https://ai.google.dev/api/embeddings) ------------------------------------------


def encode_gemini_embeddings(texts: list[str], manifest: Any, model: str, spec: dict[str, Any],
                             dimensions: int | None, input_type: str | None,
                             extra: dict[str, Any] | None) -> HttpRequest:
    """One text: ``models/{model}:embedContent``; several: ``:batchEmbedContents`` with one
    ``EmbedContentRequest`` per text (each names its model, as the API requires). The input type
    is the ``taskType``, the size ``outputDimensionality``; ``extra`` fields (``title``) go into
    every per-text request."""
    model = model.removeprefix("models/")

    def one(text: str) -> dict[str, Any]:
        request: dict[str, Any] = {"content": {"parts": [{"text": text}]}}
        if input_type is not None:
            request[spec["input_type"]["field"]] = input_type
        if dimensions is not None:
            request[spec.get("dimensions") or "outputDimensionality"] = dimensions
        request.update(extra or {})
        return request

    if len(texts) == 1:
        path, body = spec["path"], one(texts[0])
    else:
        path = spec["batch_path"]
        body = {"requests": [{"model": f"models/{model}", **one(text)} for text in texts]}
    path = path.replace("{model}", quote(model, safe=""))
    return HttpRequest("POST", path, dict(manifest.endpoint.get("query", {})),
                       {"Content-Type": "application/json"}, body)


def decode_gemini_embeddings(body: bytes, manifest: Any) -> tuple[list[list[float]], int | None, str | None]:
    """``{"embedding": {"values"}}`` (one) or ``{"embeddings": [{"values"}]}`` (batch, in request
    order). The Gemini API reports no token count for embeddings."""
    payload = json.loads(body)
    if not isinstance(payload, dict):
        raise make_error("server_error", f"expected a JSON object, got {type(payload).__name__}", provider=manifest.id)
    if payload.get("error"):
        raise frame_error(payload, manifest)
    items = payload.get("embeddings") if "embeddings" in payload else [payload.get("embedding")]
    if not isinstance(items, list):
        raise make_error("server_error", "the embeddings response has no 'embeddings' list", provider=manifest.id)
    vectors = []
    for item in items:
        values = item.get("values") if isinstance(item, dict) else None
        if not isinstance(values, list):
            raise make_error("server_error", "an embedding has no 'values' list", provider=manifest.id)
        vectors.append(values)
    return vectors, None, None


DIALECT = GeminiDialect()
