"""Unified, provider-neutral data: messages, requests, responses, stream events, stats.

Every dialect translates to and from these types, so user code never sees a provider's
wire shape. Classes use ``__slots__`` or plain dataclasses because stream events are
created once per delta and sit on the hot path.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "other")


class MessageRole(str, Enum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


@dataclass
class TextPart:
    text: str
    type: str = "text"


@dataclass
class ImagePart:
    """An image as either a remote ``url`` or inline base64 ``data`` with its media type.

    Dialects need both forms (Anthropic and Gemini want base64 blocks, OpenAI wants a URL or
    a data URL), so images are normalised once here and each dialect picks its shape.
    """

    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    detail: str | None = None
    type: str = "image"

    @property
    def data_url(self) -> str:
        if self.data is not None:
            return f"data:{self.media_type or 'image/png'};base64,{self.data}"
        return self.url or ""

    @classmethod
    def from_any(cls, source: str, detail: str | None = None) -> ImagePart:
        """Build from an https URL, a ``data:`` URL or a local file path."""
        if source.startswith("data:"):
            header, _, payload = source.partition(",")
            media_type = header[5:].split(";")[0] or "image/png"
            if ";base64" not in header:
                payload = base64.b64encode(payload.encode()).decode()
            return cls(data=payload, media_type=media_type, detail=detail)
        if source.startswith(("http://", "https://", "gs://")):
            return cls(url=source, media_type=mimetypes.guess_type(source)[0], detail=detail)
        path = os.path.expanduser(source)
        if not os.path.isfile(path):
            from .errors import InvalidRequestError

            raise InvalidRequestError(
                f"image {source!r} is neither an http(s) URL, a data: URL, nor an existing file"
            )
        with open(path, "rb") as handle:
            payload = base64.b64encode(handle.read()).decode()
        media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return cls(data=payload, media_type=media_type, detail=detail)


ContentPart = TextPart | ImagePart


@dataclass
class ToolCall:
    """A function call the model asked for. ``arguments`` is parsed JSON; the raw text is kept
    in ``arguments_raw`` for the (truncated or invalid) cases where parsing fails.
    ``signature`` is an opaque provider token that must be sent back with the call in later
    turns (Gemini's ``thoughtSignature``)."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    arguments_raw: str | None = None
    signature: str | None = field(default=None, repr=False)

    @classmethod
    def from_raw(cls, id: str, name: str, raw: str | dict | None) -> ToolCall:
        if isinstance(raw, dict):
            return cls(id=id, name=name, arguments=raw, arguments_raw=json.dumps(raw, ensure_ascii=False))
        text = raw or ""
        try:
            parsed = json.loads(text) if text.strip() else {}
        except ValueError:
            parsed = {}
        if not isinstance(parsed, dict):
            parsed = {"value": parsed}
        return cls(id=id, name=name, arguments=parsed, arguments_raw=text)

    def arguments_json(self) -> str:
        if self.arguments_raw is not None and self.arguments == _loads_or_none(self.arguments_raw):
            return self.arguments_raw
        return json.dumps(self.arguments)


def _loads_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


@dataclass
class Tool:
    """A function the model may call; ``parameters`` is a JSON schema."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_openai(self) -> dict[str, Any]:
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}

    @classmethod
    def from_any(cls, tool: Tool | dict[str, Any]) -> Tool:
        if isinstance(tool, Tool):
            return tool
        if not isinstance(tool, dict):
            from .errors import InvalidRequestError

            raise InvalidRequestError(f"a tool must be a Tool or an OpenAI-style dict, got {type(tool).__name__}")
        function = tool.get("function", tool)
        name = function.get("name")
        if not name:
            from .errors import InvalidRequestError

            raise InvalidRequestError("a tool needs a function name: {'type': 'function', 'function': {'name': ...}}")
        return cls(
            name=name,
            description=function.get("description", ""),
            parameters=function.get("parameters") or {"type": "object", "properties": {}},
        )


@dataclass
class Message:
    """One conversation turn. ``content`` is text or a list of parts (text and images).

    ``extra`` keeps OpenAI fields we do not model (``name``, ``cache_control``...) so an
    OpenAI-style dict survives a round trip through the OpenAI dialect unchanged.

    ``reasoning_blocks`` (assistant turns only) are a provider's opaque reasoning blocks, in
    its own wire shape, that must go back unchanged with the turn (Anthropic signed
    ``thinking``/``redacted_thinking``, Bedrock signed ``reasoningContent``: without them
    the next request after a tool call is refused). ``ChatResponse.to_message()`` fills
    them; each dialect sends only the shapes it knows and others ignore them.
    """

    role: MessageRole
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    reasoning_blocks: list[dict[str, Any]] | None = field(default=None, repr=False)

    @classmethod
    def system(cls, content: str) -> Message:
        return cls(MessageRole.SYSTEM, content)

    @classmethod
    def user(cls, content: str | list[ContentPart], images: list[str] | None = None) -> Message:
        if images:
            parts: list[ContentPart] = [TextPart(content)] if isinstance(content, str) else list(content)
            parts.extend(ImagePart.from_any(image) for image in images)
            return cls(MessageRole.USER, parts)
        return cls(MessageRole.USER, content)

    @classmethod
    def assistant(cls, content: str | None = None, tool_calls: list[ToolCall] | None = None) -> Message:
        return cls(MessageRole.ASSISTANT, content, tool_calls=tool_calls or None)

    @classmethod
    def tool(cls, tool_call_id: str, content: str | dict | list, name: str | None = None) -> Message:
        text = content if isinstance(content, str) else json.dumps(content)
        return cls(MessageRole.TOOL, text, tool_call_id=tool_call_id, name=name)

    @property
    def text(self) -> str:
        """The text of the message, parts joined; images are skipped."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))

    @property
    def images(self) -> list[ImagePart]:
        if isinstance(self.content, list):
            return [part for part in self.content if isinstance(part, ImagePart)]
        return []

    @classmethod
    def from_any(cls, value: Message | dict[str, Any]) -> Message:
        if isinstance(value, Message):
            return value
        if not isinstance(value, dict):
            from .errors import InvalidRequestError

            raise InvalidRequestError(f"a message must be a Message or an OpenAI-style dict, got {type(value).__name__}")
        return message_from_openai(value)


def message_from_openai(data: dict[str, Any]) -> Message:
    """Parse an OpenAI chat message dict (the lingua franca users already write)."""
    from .errors import InvalidRequestError

    role_name = data.get("role")
    if role_name == "developer":
        role_name = "system"
    try:
        role = MessageRole(role_name)
    except ValueError:
        raise InvalidRequestError(
            f"message role {role_name!r} is not one of system, user, assistant, tool"
        ) from None
    raw_content = data.get("content")
    content: str | list[ContentPart] | None
    if isinstance(raw_content, list):
        content = []
        for part in raw_content:
            if isinstance(part, str):
                content.append(TextPart(part))
            elif part.get("type") in ("text", "input_text"):
                content.append(TextPart(part.get("text", "")))
            elif part.get("type") == "image_url":
                image = part.get("image_url")
                url = image.get("url") if isinstance(image, dict) else image
                detail = image.get("detail") if isinstance(image, dict) else None
                content.append(ImagePart.from_any(url, detail=detail))
            else:
                raise InvalidRequestError(f"unsupported content part type {part.get('type')!r}")
    else:
        content = raw_content
    tool_calls = None
    if data.get("tool_calls"):
        tool_calls = []
        for call in data["tool_calls"]:
            function = call.get("function", {})
            tool_calls.append(ToolCall.from_raw(call.get("id", ""), function.get("name", ""), function.get("arguments")))
    known = {"role", "content", "tool_calls", "tool_call_id", "name"}
    extra = {key: value for key, value in data.items() if key not in known}
    return Message(role, content, tool_calls, data.get("tool_call_id"), data.get("name"), extra)


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None

    @classmethod
    def of(cls, prompt: int | None, completion: int | None, reasoning: int | None = None,
           cached: int | None = None) -> Usage:
        prompt = int(prompt or 0)
        completion = int(completion or 0)
        return cls(prompt, completion, prompt + completion, reasoning, cached)


class _Serializable:
    """``to_dict``/``to_json`` through dataclasses-json, imported only when used."""

    def to_dict(self) -> dict[str, Any]:
        from dataclasses_json import DataClassJsonMixin

        return DataClassJsonMixin.to_dict(self, encode_json=True)  # type: ignore[arg-type]

    def to_json(self, **kwargs: Any) -> str:
        kwargs.setdefault("ensure_ascii", False)
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """The inverse of ``to_dict`` (caches and checkpoints store responses as JSON)."""
        from dataclasses_json import DataClassJsonMixin

        return DataClassJsonMixin.from_dict.__func__(cls, data)  # type: ignore[attr-defined]


@dataclass
class ChatResponse(_Serializable):
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    provider: str = ""
    thinking: str | None = None
    id: str | None = None
    raw: dict[str, Any] | None = field(default=None, repr=False)
    # The model's refusal text (OpenAI ``message.refusal`` and the like); finish_reason is then
    # ``content_filter``.
    refusal: str | None = None
    # What the provider needs echoed with this turn (see Message.reasoning_blocks).
    reasoning_blocks: list[dict[str, Any]] | None = field(default=None, repr=False)

    def to_message(self) -> Message:
        """This answer as the assistant turn to append to the history, reasoning blocks
        included, so a tool-use loop with extended thinking keeps working:
        ``builder.message(response.to_message()).tool_result(...)``."""
        return Message(MessageRole.ASSISTANT, self.content or None, list(self.tool_calls) or None,
                       reasoning_blocks=list(self.reasoning_blocks) if self.reasoning_blocks else None)

    def parse(self, cls: type) -> Any:
        """``content`` as an instance of dataclass ``cls`` (the reply to ``json_schema(cls)``).
        Raises ``StructuredOutputError`` listing every problem (``raw_text`` holds the reply),
        or ``ContentFilterError`` when the model refused."""
        from .structured import parse_response

        return parse_response(cls, self)


@dataclass
class CallStats(_Serializable):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    latency_ms: float = 0.0
    time_to_first_token_ms: float | None = None
    retries: int = 0
    provider: str = ""
    model: str = ""
    cost_usd: float | None = None
    request_id: str | None = None
    cached: bool = False  # answered from the response cache, no network call
    # The cost in the currency the provider bills in: equal to ``cost_usd`` for USD prices; for a
    # provider that bills in CNY, ``cost_usd`` stays None (we never convert) and this holds yuan.
    cost: float | None = None
    currency: str | None = None

    def __post_init__(self) -> None:
        if self.cost is None and self.cost_usd is not None:
            self.cost, self.currency = self.cost_usd, "USD"


@dataclass(frozen=True)
class Reasoning:
    """The one reasoning control (``builder.reasoning(...)``), mapped per dialect: OpenAI
    ``reasoning_effort``, Anthropic ``thinking`` budget, Gemini ``thinkingConfig``, ..."""

    effort: str | None = None  # "low" | "medium" | "high"
    budget_tokens: int | None = None


@dataclass
class ChatRequest:
    """What the user asked for, before any provider mapping."""

    model: str
    messages: list[Message]
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    tools: list[Tool] | None = None
    tool_choice: str | None = None
    response_format: dict[str, Any] | None = None
    reasoning: Reasoning | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EmbeddingResponse(_Serializable):
    """``client.embed(texts)``: one vector per input text, in input order, whatever number of
    requests the provider's per-request limits needed. ``usage.prompt_tokens`` sums what the
    provider reported (0 where it reports nothing); ``stats.cost_usd`` comes from the manifest."""

    vectors: list[list[float]] = field(default_factory=list, repr=False)
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    provider: str = ""
    stats: CallStats = field(default_factory=CallStats)

    @property
    def dimensions(self) -> int | None:
        """Length of the vectors (None when there are none)."""
        return len(self.vectors[0]) if self.vectors else None

    def __len__(self) -> int:
        return len(self.vectors)


# --- stream events -----------------------------------------------------------------------


class StreamEvent:
    """Base of the unified stream events. ``is_<kind>`` tests, ``as_<kind>`` narrows."""

    __slots__ = ()
    kind = ""

    def _as(self, kind: str) -> Any:
        if self.kind != kind:
            raise TypeError(f"this is a {self.kind} event, not {kind}")
        return self

    is_content_delta = property(lambda self: self.kind == "content_delta")
    is_thinking_delta = property(lambda self: self.kind == "thinking_delta")
    is_tool_call_started = property(lambda self: self.kind == "tool_call_started")
    is_tool_call_delta = property(lambda self: self.kind == "tool_call_delta")
    is_tool_call_ended = property(lambda self: self.kind == "tool_call_ended")
    is_usage = property(lambda self: self.kind == "usage")
    is_finish = property(lambda self: self.kind == "finish")

    as_content_delta = property(lambda self: self._as("content_delta"))
    as_thinking_delta = property(lambda self: self._as("thinking_delta"))
    as_tool_call_started = property(lambda self: self._as("tool_call_started"))
    as_tool_call_delta = property(lambda self: self._as("tool_call_delta"))
    as_tool_call_ended = property(lambda self: self._as("tool_call_ended"))
    as_usage = property(lambda self: self._as("usage"))
    as_finish = property(lambda self: self._as("finish"))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__
        )

    __hash__ = None  # type: ignore[assignment]


class ContentDelta(StreamEvent):
    __slots__ = ("text",)
    kind = "content_delta"

    def __init__(self, text: str) -> None:
        self.text = text


class ThinkingDelta(StreamEvent):
    __slots__ = ("text",)
    kind = "thinking_delta"

    def __init__(self, text: str) -> None:
        self.text = text


class ToolCallStarted(StreamEvent):
    __slots__ = ("index", "id", "name")
    kind = "tool_call_started"

    def __init__(self, index: int, id: str, name: str) -> None:
        self.index = index
        self.id = id
        self.name = name


class ToolCallDelta(StreamEvent):
    __slots__ = ("index", "arguments_fragment")
    kind = "tool_call_delta"

    def __init__(self, index: int, arguments_fragment: str) -> None:
        self.index = index
        self.arguments_fragment = arguments_fragment


class ToolCallEnded(StreamEvent):
    __slots__ = ("index", "tool_call")
    kind = "tool_call_ended"

    def __init__(self, index: int, tool_call: ToolCall) -> None:
        self.index = index
        self.tool_call = tool_call


class UsageEvent(StreamEvent):
    __slots__ = ("usage",)
    kind = "usage"

    def __init__(self, usage: Usage) -> None:
        self.usage = usage


class FinishEvent(StreamEvent):
    __slots__ = ("finish_reason",)
    kind = "finish"

    def __init__(self, finish_reason: str) -> None:
        self.finish_reason = finish_reason


def response_events(response: ChatResponse) -> list[StreamEvent]:
    """The events a stream of ``response`` would have carried, in the stream contract's order:
    for a server that answered a stream request with one JSON body, or a cached answer."""
    events: list[StreamEvent] = []
    if response.thinking:
        events.append(ThinkingDelta(response.thinking))
    if response.content:
        events.append(ContentDelta(response.content))
    for index, call in enumerate(response.tool_calls):
        events.append(ToolCallStarted(index, call.id, call.name))
        events.append(ToolCallDelta(index, call.arguments_raw or json.dumps(call.arguments, ensure_ascii=False)))
        events.append(ToolCallEnded(index, call))
    if response.usage != Usage():  # the stream contract: usage only when the provider sent it
        events.append(UsageEvent(response.usage))
    events.append(FinishEvent(response.finish_reason))
    return events
