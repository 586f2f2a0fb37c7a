"""``AiFake``: one loopback server that stands in for every provider family at once.

A test queues what "the model" answers; each request is answered in the wire format of the
family whose endpoint it called (``/chat/completions`` -> OpenAI-compatible, ``/v1/messages`` ->
Anthropic, ``:generateContent`` -> Gemini, ``/v2/chat`` -> Cohere, ``/api/chat`` -> Ollama,
``/model/.../converse`` -> Bedrock), streamed if the request asked for a stream. While started,
every ``AiClient`` in the process talks to it (see ``redirect``), including clients built at
import time.

Script (each call returns the fake, so calls chain)::

    fake.reply("Hello there")                        # text; a stream gets it word by word
    fake.reply(["Hel", "lo"], thinking="hmm")        # exact stream pieces; reasoning text
    fake.tool_call("get_weather", {"city": "Paris"}) # a tool call (finish_reason tool_calls)
    fake.error(429, retry_after=2)                   # the family's documented 429, Retry-After: 2
    fake.error("context_length")                     # any error kind, documented body
    fake.reply("Partial", fail="overloaded")         # a stream that breaks with an error frame
    fake.raw(Reply(...))                             # bytes of your own

Scripted answers are served in order. ``family="anthropic"`` keeps an answer for requests of
that family (others skip it), for apps that call several providers. ``times=n`` serves an answer
n times. An error without ``times`` answers *every attempt of one call*: the client's retries
see the same error, so retries never turn it into a success; the next call gets the next
answer. To test recovery, say so: ``fake.error(503, times=1).reply("ok")``. Back-off and
``Retry-After`` waits are recorded in ``fake.sleeps`` instead of slept (``fake.real_sleep =
True`` to sleep).

Inspect ``fake.requests`` (``FakeRequest``: method, path, query, headers, body, ``json``,
``family``, ``call`` (retries of one call share it), and ``seen``, the request as the provider
understood it: system, turns, tools, max_tokens, stream, model). ``fake.verify()`` fails on
requests the fake rejected or had no answer for, and on answers never asked for.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..testing import LoopbackServer, RecordedRequest, Reply
from . import fake_class, family_of
from .base import Answer, Call, FakeProvider, Seen
from .redirect import CALL_HEADER, Environment, Redirect, fake_environment

# An error given as an HTTP status means the kind our classifier gives that status.
STATUS_KINDS = {400: "invalid_request", 401: "authentication", 402: "quota_exhausted", 403: "permission",
                404: "not_found", 408: "timeout", 413: "context_length", 422: "invalid_request",
                429: "rate_limited", 500: "server_error", 502: "server_error", 503: "overloaded",
                504: "timeout", 529: "overloaded"}


@dataclass(repr=False)  # RecordedRequest's repr, which hides keys
class FakeRequest(RecordedRequest):
    """A request the fake received, with the family that answered it and its unified view."""

    family: str | None = None
    call: int | None = None
    seen: Seen | None = None

    @property
    def model(self) -> str | None:
        return self.seen.model if self.seen else None

    @property
    def stream(self) -> bool:
        return bool(self.seen and self.seen.stream)

    @property
    def prompt(self) -> str | None:
        """The text of the last user turn."""
        return self.seen.last_user_text if self.seen else None


@dataclass
class _Entry:
    answer: Answer | None
    raw: Reply | None
    family: str | None
    times: int | None  # None: every attempt of the first call it serves
    served: int = 0
    bound: Any = field(default=None)  # the call a times=None entry serves
    label: str = ""


def _pieces(text: str | Sequence[str] | None) -> list[str]:
    """A string splits into word pieces (leading spaces kept), as a provider streams tokens."""
    if text is None:
        return []
    if not isinstance(text, str):
        return [str(piece) for piece in text]
    pieces = re.findall(r"\s*\S+", text)
    rest = text[len("".join(pieces)):]
    if rest:
        pieces = [*pieces[:-1], (pieces[-1] if pieces else "") + rest]
    return pieces


def _call(spec: Any) -> Call:
    if isinstance(spec, Call):
        return spec
    if isinstance(spec, dict):
        return Call(spec["name"], dict(spec.get("arguments") or {}), spec.get("id", ""))
    if isinstance(spec, (tuple, list)) and 2 <= len(spec) <= 3:
        return Call(*spec)
    if hasattr(spec, "name") and hasattr(spec, "arguments"):  # a ToolCall
        return Call(spec.name, dict(spec.arguments), getattr(spec, "id", "") or "")
    raise TypeError(f"a tool call is Call(name, arguments), (name, arguments) or a dict, got {spec!r}")


class AiFake:
    """A scripted stand-in for every provider family, over loopback. See the module docstring."""

    def __init__(self, *, strict: bool = True, real_sleep: bool = False) -> None:
        self.strict = strict
        self.real_sleep = real_sleep
        self.requests: list[FakeRequest] = []
        self.problems: list[str] = []
        self.sleeps: list[float] = []
        self.issued_keys: set[str] = set()
        self._script: list[_Entry] = []
        self._fakes: dict[str, FakeProvider] = {}
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._handle)
        self._redirect: Redirect | None = None
        self._environment: Environment | None = None

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._server.base_url

    def url(self, family: str = "openai") -> str:
        """The base URL to give a client of ``family`` explicitly (the documented base URL's
        path included: ``/v1`` for OpenAI-compatible providers)."""
        return self.base_url + fake_class(family).prefix_default

    def start(self, environment: bool = True) -> AiFake:
        """Redirect every client to the fake; with ``environment``, also set fake keys and
        base URLs in ``os.environ`` for clients built from now on."""
        self._redirect = Redirect(self).start()
        if environment:
            values = fake_environment(self.base_url)
            self.issued_keys |= {value for name, value in values.items() if value.startswith("ai-fake-key-")}
            self._environment = Environment(values).start()
        return self

    def stop(self) -> None:
        if self._environment is not None:
            self._environment.stop()
            self._environment = None
        if self._redirect is not None:
            self._redirect.stop()
            self._redirect = None

    def close(self) -> None:
        self.stop()
        self._server.close()

    def __enter__(self) -> AiFake:
        return self.start()

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        self.close()
        if exc_type is None and self.strict:
            self.verify()

    # --- script -----------------------------------------------------------------------------

    def reply(self, text: str | Sequence[str] = "", *, thinking: str | Sequence[str] | None = None,
              tool_calls: Iterable[Any] = (), finish: str | None = None, usage: tuple[int, int] | None = None,
              fail: str | None = None, family: str | None = None, times: int | None = 1,
              delay: float = 0.0, chunk_delay: float = 0.0) -> AiFake:
        """Queue an answer. ``usage`` is (prompt, completion) tokens; by default (10, one per
        piece). ``fail`` (streams) sends the text, then the family's mid-stream error of that
        kind (a family that documents none breaks the connection off)."""
        pieces, reasoning = _pieces(text), _pieces(thinking)
        calls = [_call(spec) for spec in tool_calls]
        answer = Answer(pieces, reasoning, finish=finish or ("tool_calls" if calls else "stop"),
                        usage=usage or (10, max(1, len(pieces) + len(reasoning))), fail=fail, calls=calls,
                        delay=delay, chunk_delay=chunk_delay)
        return self._queue(_Entry(answer, None, family, self._times(times), label=f"reply {''.join(pieces)!r}"))

    def tool_call(self, name: str, arguments: dict[str, Any] | None = None, *, id: str = "",
                  text: str = "", **options: Any) -> AiFake:
        """Queue an answer that calls one tool (``reply(tool_calls=[...])`` for several)."""
        return self.reply(text, tool_calls=[Call(name, dict(arguments or {}), id)], **options)

    def error(self, status_or_kind: int | str = 500, *, retry_after: float | None = None,
              family: str | None = None, times: int | None = None, delay: float = 0.0) -> AiFake:
        """Queue the family's documented error: an HTTP status (429, 503, ...) or an error kind
        ("rate_limited", "context_length", "quota_exhausted", ...). ``retry_after`` sends the
        family's retry hint (``Retry-After``, or Gemini's RetryInfo); None sends none."""
        from ..errors import KINDS

        if isinstance(status_or_kind, bool) or not isinstance(status_or_kind, (int, str)):
            raise TypeError(f"error() takes an HTTP status or an error kind, got {status_or_kind!r}")
        if isinstance(status_or_kind, int):
            if not 400 <= status_or_kind <= 599:
                raise ValueError(f"an error status is 400..599, got {status_or_kind}")
            kind, status = STATUS_KINDS.get(status_or_kind, "server_error" if status_or_kind >= 500
                                            else "invalid_request"), status_or_kind
        else:
            if status_or_kind not in KINDS:
                raise ValueError(f"unknown error kind {status_or_kind!r}; kinds: {', '.join(KINDS)}")
            kind, status = status_or_kind, None
        if retry_after is not None and (isinstance(retry_after, bool) or not retry_after >= 0):
            raise ValueError(f"retry_after is seconds >= 0, got {retry_after!r}")
        answer = Answer(error=kind, status=status, retry_after=retry_after, delay=delay)
        return self._queue(_Entry(answer, None, family, self._times(times, error=True),
                                  label=f"error {status_or_kind!r}"))

    def raw(self, reply: Reply, *, family: str | None = None, times: int | None = 1) -> AiFake:
        """Queue a reply of your own bytes (still recorded, still counted)."""
        return self._queue(_Entry(None, reply, family, self._times(times), label=f"raw {reply.status}"))

    @staticmethod
    def _times(times: int | None, error: bool = False) -> int | None:
        if times is None:
            return None
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times is a whole number >= 1 (or None: every retry of one call), got {times!r}")
        return times

    def _queue(self, entry: _Entry) -> AiFake:
        if entry.family is not None:
            entry.family = fake_class(entry.family).family  # also accepts dialect names; checks it
        with self._lock:
            self._script.append(entry)
        return self

    def _take(self, family: str, call: int | None) -> _Entry | None:
        with self._lock:
            for entry in list(self._script):
                if entry.family not in (None, family):
                    continue
                if entry.times is None:
                    if entry.served and entry.bound != call:
                        self._script.remove(entry)  # its call is over
                        continue
                    entry.bound = call
                elif entry.served + 1 >= entry.times:
                    self._script.remove(entry)
                entry.served += 1
                return entry
        return None

    # --- inspection -------------------------------------------------------------------------

    @property
    def last(self) -> FakeRequest:
        if not self.requests:
            raise AssertionError("the fake received no request")
        return self.requests[-1]

    def calls(self) -> list[list[FakeRequest]]:
        """The requests grouped by call: a call retried twice is one group of three."""
        groups: dict[Any, list[FakeRequest]] = {}
        for position, request in enumerate(self.requests):
            groups.setdefault(request.call if request.call is not None else f"#{position}", []).append(request)
        return list(groups.values())

    def verify(self) -> None:
        """Fail on requests the fake rejected or had no answer for, and on unused answers."""
        with self._lock:
            unused = [entry.label for entry in self._script if not entry.served]
        problems = list(self.problems)
        if unused:
            problems.append(f"scripted but never requested: {', '.join(unused)}")
        if problems:
            raise AssertionError("ai_fake: " + "; ".join(problems))

    # --- the server side --------------------------------------------------------------------

    def _fake(self, family: str) -> FakeProvider:
        with self._lock:
            fake = self._fakes.get(family)
            if fake is None:
                fake = self._fakes[family] = fake_class(family)()
            return fake

    def _handle(self, recorded: RecordedRequest) -> Reply:
        headers = dict(recorded.headers)
        tag = headers.pop(CALL_HEADER, None)
        call = int(tag) if tag and tag.isdigit() else None
        family = family_of(recorded.path)
        request = FakeRequest(recorded.method, recorded.path, recorded.query, headers, recorded.body, family, call)
        with self._lock:
            self.requests.append(request)
        where = f"{request.method} {request.path}"
        if family is None:
            return self._problem(404, f"{where}: no provider family has this endpoint")
        fake = self._fake(family)
        try:
            request.seen = fake.read(request)
        except (AssertionError, KeyError, TypeError, ValueError, IndexError) as exc:
            return self._problem(400, f"{where}: not a valid {family} request ({type(exc).__name__}: {exc})")
        entry = self._take(family, call)
        if entry is None:
            return self._problem(418, f"{where}: no reply scripted for this {family} request")
        if entry.raw is not None:
            return entry.raw
        try:
            return fake.render(entry.answer, request.seen)
        except (KeyError, ValueError, TypeError, StopIteration) as exc:
            return self._problem(418, f"{where}: cannot say {entry.label} in {family} terms ({type(exc).__name__}: {exc})")

    def _problem(self, status: int, message: str) -> Reply:
        with self._lock:
            self.problems.append(message)
        # 4xx outside every retry list: the client raises at once, and verify() tells why.
        return Reply(status, {"error": {"message": "ai_fake: " + message, "type": "ai_fake"}})
