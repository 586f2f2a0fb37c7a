"""Client hooks: callables that see every call, for logging, metrics and tracing.

``AiClient(..., hooks={"on_request": f, "on_response": f, "on_retry": f, "on_error": f,
"on_stream_end": f})``; a value may also be a list of callables, and ``hooks`` may be a list
of such mappings (your own plus ``integrations.otel.otel_hooks()``, say). Every hook gets one
``HookEvent``; the events of one call share ``event.call``, whose ``data`` dict a hook may use
to carry state from ``on_request`` to the end of the call (a span, a start time).

When they fire: ``on_request`` once per call, before the first attempt; ``on_retry`` before
each retry, with the error that caused it; then exactly one of ``on_response`` (a call that
returned), ``on_stream_end`` (a stream that ended; ``response`` and ``stats`` are None when
the caller left it early) or ``on_error`` (the call or stream failed). A hook that raises is
logged and never breaks the call. Hooks run in the calling thread, inline: keep them quick.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import AiLibError, ConfigurationError
from .types import CallStats, ChatRequest, ChatResponse

logger = logging.getLogger("ai_lib_sync")

HOOK_NAMES = ("on_request", "on_response", "on_retry", "on_error", "on_stream_end")

Hook = Callable[["HookEvent"], Any]


@dataclass
class CallContext:
    """One call, as every hook event of it sees it."""

    provider: str
    model: str
    stream: bool
    started: float = field(default_factory=time.perf_counter)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class HookEvent:
    name: str
    call: CallContext
    request: ChatRequest
    response: ChatResponse | None = None
    stats: CallStats | None = None
    error: AiLibError | None = None
    retry_number: int | None = None


class Hooks:
    """The validated hook table of one client. Falsy when empty, so calls pay nothing then."""

    __slots__ = ("_table",)

    def __init__(self, hooks: Mapping[str, Hook | Iterable[Hook]] | Iterable[Mapping[str, Any]] | None = None) -> None:
        self._table: dict[str, list[Hook]] = {}
        if hooks is None:
            return
        mappings = [hooks] if isinstance(hooks, Mapping) else list(hooks)
        for mapping in mappings:
            if not isinstance(mapping, Mapping):
                raise ConfigurationError(f"hooks must be a mapping of hook names to callables, got {mapping!r}")
            for name, value in mapping.items():
                if name not in HOOK_NAMES:
                    raise ConfigurationError(f"unknown hook {name!r}; known: {', '.join(HOOK_NAMES)}")
                functions = [value] if callable(value) else list(value)
                if not all(callable(function) for function in functions):
                    raise ConfigurationError(f"hook {name!r} must be a callable or a list of callables")
                self._table.setdefault(name, []).extend(functions)

    def __bool__(self) -> bool:
        return bool(self._table)

    def fire(self, name: str, call: CallContext, request: ChatRequest, **details: Any) -> None:
        functions = self._table.get(name)
        if not functions:
            return
        event = HookEvent(name, call, request, **details)
        for function in functions:
            try:
                function(event)
            except Exception:  # a hook must never break the call it observes
                logger.warning("hook %s (%s) raised; the call goes on", name,
                               getattr(function, "__qualname__", repr(function)), exc_info=True)
