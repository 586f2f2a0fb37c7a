"""What every wire fake shares: the unified answer it gives, the unified view of the request it
received, and the plumbing (read, check, answer).

A fake is an independent reader and writer of one provider family's documented wire format. It
reads the request strictly in that family's shape (a misplaced field is a rejected request) and
writes the answer the way the provider's docs show it. ``strict=True`` (our own cross-dialect
table) also rejects what is legal on the wire but not what our dialects send: tool calls the fake
never made, a system message after the first turn. ``model``/``key``/``prefix`` left unset accept
any model, any key and any base-URL path, which is what tests of users' code need.
"""

from __future__ import annotations

import base64
import json
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from ..testing import RecordedRequest, Reply

ANY: Any = type("Any", (), {"__repr__": lambda self: "ANY"})()  # "do not check this"
KEEP: Any = type("Keep", (), {"__repr__": lambda self: "KEEP"})()  # "as the documented example"

# A 1x1 PNG, sent as a data: URL so every dialect gets the same inline image.
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
PNG = base64.b64decode(PNG_B64)
PNG_DATA_URL = "data:image/png;base64," + PNG_B64


@dataclass(frozen=True)
class Call:
    """A tool call the fake makes; ``id`` empty: the family's own style (or none, where the
    provider sends no ids)."""

    name: str
    arguments: dict[str, Any]
    id: str = ""


@dataclass
class Answer:
    """What the model says, in unified terms; each fake says it in its family's words.

    ``usage`` is (prompt, completion) with completion including thinking tokens, of which
    ``thinking_tokens`` are reasoning. ``call`` is shorthand for ``calls=[call]``. ``error``
    answers with the family's documented error of that kind instead (``status`` overrides its
    HTTP status, ``retry_after`` its retry hint: None removes it, KEEP keeps the documented
    one); ``fail`` (streams) sends the text, then the family's mid-stream error frame of that kind.
    ``delay``/``chunk_delay`` slow the reply down (seconds before it, between body chunks).
    """

    text: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    call: Call | None = None
    finish: str = "stop"
    usage: tuple[int, int] = (10, 5)
    thinking_tokens: int = 0
    error: str | None = None
    fail: str | None = None
    calls: list[Call] = field(default_factory=list)
    status: int | None = None
    retry_after: Any = KEEP
    delay: float = 0.0
    chunk_delay: float = 0.0

    def __post_init__(self) -> None:
        if self.call is not None and not self.calls:
            self.calls = [self.call]

    def limited(self, max_tokens: int | None) -> Answer:
        """A model stops at the limit it was sent: one text piece stands for one token."""
        if max_tokens is None or len(self.text) <= max_tokens:
            return self
        return replace(self, text=self.text[:max_tokens], finish="length",
                       usage=(self.usage[0], max_tokens + self.thinking_tokens))

    @property
    def content(self) -> str:
        return "".join(self.text)

    @property
    def reasoning(self) -> str:
        return "".join(self.thinking)


@dataclass
class Seen:
    """The request as the provider understood it. ``turns`` are flat parts:
    ``("user", text)``, ``("image", png bytes)``, ``("assistant", text)``,
    ``("call", name, arguments)``, ``("result", name, content)``."""

    stream: bool
    system: str | None
    turns: list[tuple]
    tools: list[tuple]  # (name, description, JSON schema of the parameters)
    max_tokens: int | None
    flags: dict[str, Any] = field(default_factory=dict)
    model: str | None = None

    @property
    def last_user_text(self) -> str | None:
        """The text of the last user turn: what most assertions on a prompt need."""
        for turn in reversed(self.turns):
            if turn[0] == "user":
                return turn[1]
        return None


@dataclass
class ErrorCase:
    """A documented error: ``status`` None means a 200 body that is an error (``retry_after``
    is what the client must report)."""

    status: int | None
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None


class FakeProvider:
    """A ``LoopbackServer`` handler speaking one family's wire format."""

    family = ""
    prefix_default = ""  # the part of the documented base URL after the host
    call_id = ""  # the id style of the family's tool calls; "" = the provider sends none
    thinking = True  # the family returns reasoning text
    content_filter = True  # the family can end a turn on its content filter
    stream_failure: str | None = None  # the kind of its documented mid-stream error frame
    errors: dict[str, ErrorCase] = {}

    def __init__(self, *, model: str | None = None, key: Any = ANY, prefix: str | None = None,
                 strict: bool = False) -> None:
        self.model = model
        self.key = key
        self.prefix = prefix
        self.strict = strict
        self.answers: deque[Answer] = deque()
        self.seen: list[Seen] = []
        self.problems: list[str] = []
        self.issued: dict[str, str] = {}  # tool call id (or name, when the family sends none) -> name

    def answer(self, *answers: Answer) -> FakeProvider:
        self.answers.extend(answers)
        return self

    def __call__(self, request: RecordedRequest) -> Reply:
        try:
            seen = self.read(request)
        except (AssertionError, KeyError, TypeError, ValueError) as exc:
            return self.reject(request, exc)
        self.seen.append(seen)
        if not self.answers:
            self.problems.append(f"{request.method} {request.path}: a request the scenario did not expect")
            return Reply(418, {"fake": "no answer scripted"})
        return self.render(self.answers.popleft(), seen)

    def reject(self, request: RecordedRequest, exc: Exception) -> Reply:
        self.problems.append(f"{request.method} {request.path}: {type(exc).__name__}: {exc}")
        return Reply(418, {"fake": f"request rejected: {exc}"})

    def render(self, answer: Answer, seen: Seen) -> Reply:
        """``answer`` in this family's words, as the reply to the request ``seen``."""
        answer = self._with_ids(answer.limited(seen.max_tokens))
        if answer.error:
            reply = self.error_reply(answer.error, seen, answer.status, answer.retry_after)
        else:
            for call in answer.calls:
                self.issued[call.id or call.name] = call.name
            reply = self.stream_reply(answer, seen) if seen.stream else self.reply(answer, seen)
        reply.delay, reply.chunk_delay = answer.delay, answer.chunk_delay
        return reply

    def _with_ids(self, answer: Answer) -> Answer:
        if not self.call_id or all(call.id for call in answer.calls):
            return answer
        calls = [call if call.id else replace(call, id=self.new_call_id(call, position))
                 for position, call in enumerate(answer.calls)]
        return replace(answer, calls=calls, call=None)

    def new_call_id(self, call: Call, position: int) -> str:
        """An id in the family's style for a scripted call that has none."""
        return f"{self.call_id}{position}"

    # --- family specific ------------------------------------------------------------------

    def read(self, request: RecordedRequest) -> Seen:  # pragma: no cover
        raise NotImplementedError

    def reply(self, answer: Answer, seen: Seen) -> Reply:  # pragma: no cover
        raise NotImplementedError

    def stream_reply(self, answer: Answer, seen: Seen) -> Reply:  # pragma: no cover
        raise NotImplementedError

    def error_case(self, kind: str, status: int | None = None) -> ErrorCase:
        """The documented error of ``kind``; a kind the family does not document borrows the
        body of one with the same HTTP status, else the family's server error."""
        case = self.errors.get(kind)
        if case is None:
            same_status = [c for c in self.errors.values() if status is not None and c.status == status]
            fallback = self.errors.get("server_error") or next(iter(self.errors.values()))
            case = same_status[0] if same_status else fallback
        return case

    def error_reply(self, kind: str, seen: Seen, status: int | None = None, retry_after: Any = KEEP) -> Reply:
        case = self.error_case(kind, status)
        body, headers = json.loads(json.dumps(case.body)), dict(case.headers)
        if retry_after is not KEEP:
            headers = {k: v for k, v in headers.items() if k.lower() not in ("retry-after", "retry-after-ms")}
            body = self.retry_hint(body, headers, retry_after)
        return Reply(status or case.status or 200, body, headers)

    def retry_hint(self, body: Any, headers: dict[str, str], seconds: float | None) -> Any:
        """Put a retry hint of ``seconds`` (None: none) where the family sends it; returns the body."""
        if seconds is not None:
            headers["retry-after"] = f"{seconds:g}"
        return body

    # --- shared checks ----------------------------------------------------------------------

    def check_path(self, request: RecordedRequest, *suffixes: str) -> str:
        """The documented path suffix the request used; with ``prefix`` set, the whole path must
        be prefix + suffix, else any base-URL path may precede it (gateways, Azure)."""
        for suffix in suffixes:
            if (request.path == self.prefix + suffix) if self.prefix is not None else request.path.endswith(suffix):
                return suffix
        raise AssertionError(f"{request.method} {request.path}: not a {self.family} endpoint")

    def check_key(self, request: RecordedRequest, header: str, template: str = "{}") -> None:
        """With ``key`` set, the key must travel in ``header`` (None: no key at all)."""
        if self.key is ANY:
            return
        if self.key is None:
            assert request.header(header) is None, f"{header} sent to a provider that takes no key"
        else:
            assert request.header(header) == template.format(self.key), f"wrong {header}"

    def check_model(self, model: Any) -> None:
        if self.model is not None:
            assert model == self.model, f"model {model!r}, expected {self.model!r}"

    def model_of(self, seen: Seen) -> str:
        return seen.model or self.model or "fake-model"

    def issued_call(self, ref: str, name: str | None = None) -> str:
        """The name of the call made under ``ref`` (an id, or a name where the family sends no
        ids). Strict fakes reject calls they never made; others take the request's word."""
        if ref in self.issued:
            return self.issued[ref]
        assert not self.strict and name, f"{ref!r} is no tool call this provider made ({sorted(self.issued)})"
        return name


def maybe_json(text: Any) -> Any:
    """A tool result: JSON when it parses, else the text as sent."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def image_bytes(media_type: str | None, data: str) -> bytes:
    """Decode an inline image and check its declared type against its bytes."""
    raw = base64.b64decode(data, validate=True)
    if media_type is not None:
        sniffed = _sniff(raw)
        assert sniffed in (media_type, "unknown"), f"image declared as {media_type}, bytes are {sniffed}"
    return raw


def _sniff(raw: bytes) -> str:
    for magic, media_type in ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
                              (b"GIF8", "image/gif"), (b"RIFF", "image/webp")):
        if raw.startswith(magic):
            return media_type
    return "unknown"


def data_url_bytes(url: str) -> bytes:
    header, _, payload = url.partition(",")
    assert header.startswith("data:") and header.endswith(";base64"), f"not a base64 data URL: {url[:40]}"
    return image_bytes(header[5:-7], payload)


def split_json(arguments: dict[str, Any]) -> list[str]:
    """Tool arguments as the fragments a streaming provider sends (cut mid-token)."""
    text = json.dumps(arguments)
    cut = max(1, len(text) // 2 - 1)
    return [text[:cut], text[cut:]]


def awkward_chunks(data: bytes, sizes: tuple[int, ...] = (7, 13, 29, 61)) -> list[bytes]:
    """``data`` cut into small, uneven pieces, so frames and UTF-8 characters straddle chunks."""
    chunks, position, turn = [], 0, 0
    while position < len(data):
        size = sizes[turn % len(sizes)]
        chunks.append(data[position:position + size])
        position += size
        turn += 1
    return chunks


def chunked(data: bytes, content_type: str) -> Reply:
    """A streamed reply whose bytes arrive in small, uneven chunks."""
    return Reply(200, headers={"Content-Type": content_type}, chunks=awkward_chunks(data))


def sse(frames: list[tuple[str | None, Any]], newline: str = "\n") -> bytes:
    """SSE bytes: ``(event name or None, data)``; dict data is JSON-encoded."""
    out = []
    for name, data in frames:
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        head = f"event: {name}{newline}" if name else ""
        out.append(f"{head}data: {text}{newline}{newline}")
    return "".join(out).encode()
