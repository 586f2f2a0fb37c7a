"""Progress of a batch: done, failed, retries, time spent throttled, tokens and cost so far,
shown as a tqdm bar when tqdm is installed (the ``progress`` extra), else as a plain line on
stderr, and always available to a callback. Retries and throttling are shown because they are
what explains a slow batch: without them a user sees the rate drop and cannot tell why.

Updates come from worker threads; one lock keeps counts consistent and calls serialized, so a
callback never runs twice at once.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..types import CallStats


@dataclass(frozen=True)
class BatchProgress:
    """A snapshot handed to progress callbacks.

    ``resumed``: items restored from a checkpoint (their tokens and cost are counted too).
    ``retries``: HTTP retries made so far. ``throttled_s``: seconds items spent waiting because
    of rate limits, summed over workers: waits in the client-side limiter (rpm, tpm, holds
    after 429 storms or exhausted rate-limit headers) plus ``Retry-After`` waits before
    retrying a 429."""

    total: int | None
    succeeded: int = 0
    failed: int = 0
    resumed: int = 0
    retries: int = 0
    throttled_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    elapsed_s: float = 0.0

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.resumed

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def summary(self) -> str:
        resumed = f" (resumed={self.resumed})" if self.resumed else ""
        return (f"ok={self.succeeded + self.resumed}{resumed} failed={self.failed} retries={self.retries} "
                f"throttled={self.throttled_s:.1f}s tokens={self.total_tokens} cost=${self.cost_usd:.4f}")


ProgressCallback = Callable[[BatchProgress], Any]


class ProgressTracker:
    """Counts finished items and reports them. ``show``: draw a bar (tqdm, else stderr text);
    ``callback``: called with a ``BatchProgress`` after every finished item."""

    def __init__(self, total: int | None, show: bool = False, callback: ProgressCallback | None = None,
                 description: str = "batch", text_interval: float = 1.0) -> None:
        self._state = BatchProgress(total)
        self._started = time.monotonic()
        self._callback = callback
        self._lock = threading.Lock()
        self._bar: Any = None
        self._text = False
        self._text_interval = text_interval
        self._last_text = 0.0
        if show:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                self._text = True
            else:
                self._bar = tqdm(total=total, desc=description, unit="req", dynamic_ncols=True,
                                 mininterval=0.2, smoothing=0.1)

    @property
    def state(self) -> BatchProgress:
        with self._lock:
            return replace(self._state, elapsed_s=time.monotonic() - self._started)

    def update(self, ok: bool, stats: CallStats | None = None, resumed: bool = False) -> None:
        with self._lock:
            state = self._state
            if resumed:
                state = replace(state, resumed=state.resumed + 1)
            elif ok:
                state = replace(state, succeeded=state.succeeded + 1)
            else:
                state = replace(state, failed=state.failed + 1)
            if stats is not None:
                state = replace(state, prompt_tokens=state.prompt_tokens + stats.prompt_tokens,
                                completion_tokens=state.completion_tokens + stats.completion_tokens,
                                cost_usd=state.cost_usd + (stats.cost_usd or 0.0))
            self._state = state = replace(state, elapsed_s=time.monotonic() - self._started)
            if self._bar is not None:
                self._bar.set_postfix_str(state.summary(), refresh=False)
                self._bar.update(1)
            elif self._text:
                self._print(state, force=False)
            if self._callback is not None:
                self._callback(state)

    def retried(self, throttled_s: float = 0.0) -> None:
        """One HTTP retry, after ``throttled_s`` seconds of waiting the provider asked for."""
        self.throttled(throttled_s, retry=True)

    def throttled(self, seconds: float, retry: bool = False) -> None:
        """Time spent held back by rate limits (and, with ``retry``, one more retry)."""
        if not seconds and not retry:
            return
        with self._lock:
            self._state = replace(self._state, retries=self._state.retries + retry,
                                  throttled_s=self._state.throttled_s + seconds)

    def _print(self, state: BatchProgress, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_text < self._text_interval:
            return
        self._last_text = now
        total = f"/{state.total}" if state.total is not None else ""
        sys.stderr.write(f"\rbatch {state.done}{total} {state.summary()} {state.elapsed_s:.1f}s")
        sys.stderr.flush()

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            elif self._text:
                self._print(self._state, force=True)
                sys.stderr.write("\n")
                self._text = False
