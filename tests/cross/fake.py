"""What every fake provider shares: the unified answer it must give, the unified view of the
request it received, and the handler plumbing (record, check, answer).

A fake is an independent reader and writer of one provider's documented wire format. It reads
the request strictly in that provider's shape (a misplaced field is a rejected request, so a
dialect that speaks the wrong shape fails the table) and writes the answer the way the
provider's docs show it. The scenario table then compares what every fake *saw* and what every
client *got* in unified terms, which proves both directions of every dialect.
"""

from __future__ import annotations

import base64
import json
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from ai_lib_sync.testing import RecordedRequest, Reply
from tests.helpers import awkward_chunks

# A 1x1 PNG, sent as a data: URL so every dialect gets the same inline image.
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
PNG = base64.b64decode(PNG_B64)
PNG_DATA_URL = "data:image/png;base64," + PNG_B64


@dataclass(frozen=True)
class Call:
    """A tool call the fake makes; ``id`` is empty for providers that send none."""

    name: str
    arguments: dict[str, Any]
    id: str = ""


@dataclass
class Answer:
    """What the model says, in unified terms; each fake says it in its provider's words.

    ``usage`` is (prompt, completion) with completion including thinking tokens, of which
    ``thinking_tokens`` are reasoning (providers that count them apart split them out).
    ``error`` answers with the provider's documented error of that kind instead; ``fail``
    (streams) sends the text, then the provider's mid-stream error frame of that kind.
    """

    text: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    call: Call | None = None
    finish: str = "stop"
    usage: tuple[int, int] = (10, 5)
    thinking_tokens: int = 0
    error: str | None = None
    fail: str | None = None

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


@dataclass
class ErrorCase:
    """A documented error: ``status`` None means a 200 body that is an error (``retry_after``
    is what the client must report)."""

    status: int | None
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None


class FakeProvider:
    """A ``LoopbackServer`` handler speaking one provider's wire format."""

    provider = ""
    model = ""
    prefix = ""  # the part of the documented base URL after the host
    key: str | None = "cross-test-key-0123456789"
    call_id = ""  # the id the fake gives its tool call, provider-style; "" = none sent
    thinking = True  # the provider returns reasoning text
    content_filter = True  # the provider can end a turn on its content filter
    stream_failure: str | None = None  # the kind of its documented mid-stream error frame
    errors: dict[str, ErrorCase] = {}

    def __init__(self) -> None:
        self.answers: deque[Answer] = deque()
        self.seen: list[Seen] = []
        self.problems: list[str] = []
        self.issued: dict[str, str] = {}  # tool call id (or name, when the provider sends none) -> name

    def answer(self, *answers: Answer) -> FakeProvider:
        self.answers.extend(answers)
        return self

    def __call__(self, request: RecordedRequest) -> Reply:
        try:
            seen = self.read(request)
        except (AssertionError, KeyError, TypeError, ValueError) as exc:
            self.problems.append(f"{request.method} {request.path}: {type(exc).__name__}: {exc}")
            return Reply(418, {"fake": f"request rejected: {exc}"})
        self.seen.append(seen)
        if not self.answers:
            self.problems.append(f"{request.method} {request.path}: a request the scenario did not expect")
            return Reply(418, {"fake": "no answer scripted"})
        answer = self.answers.popleft().limited(seen.max_tokens)
        if answer.error:
            return self.error_reply(answer.error, seen)
        if answer.call:
            self.issued[answer.call.id or answer.call.name] = answer.call.name
        return self.stream_reply(answer, seen) if seen.stream else self.reply(answer, seen)

    # --- provider specific ----------------------------------------------------------------

    def read(self, request: RecordedRequest) -> Seen:  # pragma: no cover
        raise NotImplementedError

    def reply(self, answer: Answer, seen: Seen) -> Reply:  # pragma: no cover
        raise NotImplementedError

    def stream_reply(self, answer: Answer, seen: Seen) -> Reply:  # pragma: no cover
        raise NotImplementedError

    def error_reply(self, kind: str, seen: Seen) -> Reply:
        case = self.errors[kind]
        return Reply(case.status or 200, case.body, dict(case.headers))

    # --- shared checks ----------------------------------------------------------------------

    def issued_call(self, ref: str) -> str:
        """The name of the call the fake made under ``ref`` (an id, or a name where the
        provider sends no ids); a request that invents calls is rejected."""
        assert ref in self.issued, f"{ref!r} is no tool call this provider made ({sorted(self.issued)})"
        return self.issued[ref]


def image_bytes(media_type: str | None, data: str) -> bytes:
    """Decode an inline image and check its declared type against its bytes."""
    raw = base64.b64decode(data, validate=True)
    if media_type is not None:
        sniffed = "image/png" if raw.startswith(b"\x89PNG") else "unknown"
        assert media_type == sniffed, f"image declared as {media_type}, bytes are {sniffed}"
    return raw


def data_url_bytes(url: str) -> bytes:
    header, _, payload = url.partition(",")
    assert header.startswith("data:") and header.endswith(";base64"), f"not a base64 data URL: {url[:40]}"
    return image_bytes(header[5:-7], payload)


def split_json(arguments: dict[str, Any]) -> list[str]:
    """Tool arguments as the fragments a streaming provider sends (cut mid-token)."""
    text = json.dumps(arguments)
    cut = max(1, len(text) // 2 - 1)
    return [text[:cut], text[cut:]]


def chunked(data: bytes, content_type: str) -> Reply:
    """A streamed reply whose bytes arrive in small, uneven chunks."""
    return Reply(200, headers={"Content-Type": content_type}, chunks=awkward_chunks(data, (7, 13, 29, 61)))


def sse(frames: list[tuple[str | None, Any]], newline: str = "\n") -> bytes:
    """SSE bytes: ``(event name or None, data)``; dict data is JSON-encoded."""
    out = []
    for name, data in frames:
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        head = f"event: {name}{newline}" if name else ""
        out.append(f"{head}data: {text}{newline}{newline}")
    return "".join(out).encode()
