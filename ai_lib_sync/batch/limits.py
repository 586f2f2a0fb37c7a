"""Client-side rate limits shared by every worker of a pool.

Providers limit requests and tokens per minute per account, so the limit has to be shared by
all threads, not kept per thread. ``RateLimiter`` combines:

- requests per minute and tokens per minute as GCRA token buckets (the "virtual scheduling"
  form of a token bucket): requests are paced evenly, one every ``60 / rpm`` seconds by default
  (``burst`` allows short bursts). Tokens are estimated before a call (``estimate_tokens``) and
  corrected with the real usage after it, so an underestimate delays later calls;
- a concurrency cap (``max_concurrent``);
- the provider's own signals, seen on every HTTP response through ``transport.CallScope``,
  obeyed for as long as the provider says and no longer:

  - low ``x-ratelimit-remaining-*`` values (names from the manifest's ``rate_limit_headers``)
    hold new starts until the window resets, or spread the remaining budget evenly over it;
  - 429s. One 429 is about one request: the transport already waits its ``Retry-After``
    before retrying it, and the rest of the pool carries on (a provider that sheds a few
    random requests must not halve a batch's throughput). When 429s become a sizeable share
    of recent answers (``storm_share`` of an exponentially weighted average over responses),
    the account's limit is reached: every new start is held until the latest ``Retry-After``
    (or an exponential backoff without one) and the concurrency cap is halved once per
    storm. When the hold ends, successes raise the cap by one each until it is back where it
    was (slow start), so a storm costs its duration and a short ramp, not the rest of the run.

``backend="sqlite:///PATH"`` or ``"redis://HOST:PORT/DB"`` moves the rpm/tpm buckets and the
holds into a store shared by processes (``shared_limits``): one budget for every worker of a
job, token reservations reconciled there, and a hold decided by one process (a 429 storm, an
exhausted rate-limit header) obeyed by all. Concurrency cap, storm detection and the
first-come-first-served queue stay per process. Without a backend nothing changes.
"""

from __future__ import annotations

import email.utils
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from ..errors import AiLibError
from ..types import ChatRequest

_SLACK = 0.02  # seconds
# The token bucket keeps a quarter second of unused budget: admissions reserve an estimate and
# the real usage lands a reply later, so with the request bucket's 20 ms the corrections would
# keep finding a reset bucket and capacity would leak (measured: 64 of 80 admissions/s at
# 20 ms, 79 at 200 ms). A larger grace lets an underestimated burst overshoot the provider's
# window (1 s: 1.1-1.6% of attempts rejected); benchmarks/scale_bench.py measures both.
_TOKEN_SLACK = 0.25
IMAGE_TOKENS = 85  # OpenAI's flat cost of a low-detail image; an estimate is all we need
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def estimate_tokens(request: ChatRequest) -> int:
    """A cheap upper-ish estimate of what a request costs against a tokens-per-minute limit:
    about four characters per prompt token, plus ``max_tokens`` (providers such as OpenAI
    count the completion budget when they admit a request)."""
    chars = 0
    images = 0
    for message in request.messages:
        chars += len(message.text)
        images += len(message.images)
        for call in message.tool_calls or ():
            chars += len(call.name) + len(call.arguments_json())
    for tool in request.tools or ():
        chars += len(tool.name) + len(tool.description) + len(str(tool.parameters))
    return math.ceil(chars / 4) + images * IMAGE_TOKENS + (request.max_tokens or 0)


def parse_reset(value: str | None) -> float | None:
    """Seconds until a rate-limit window resets. Accepts the forms providers send: Go-style
    durations (``1s``, ``6m0s``, ``20ms``), plain seconds, epoch seconds, RFC 3339 and HTTP dates."""
    if not value:
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, number - time.time()) if number > 1e9 else max(0.0, number)
    parts = _DURATION.findall(text)
    if parts and "".join(n + u for n, u in parts) == text:
        return sum(float(number) * _UNITS[unit] for number, unit in parts)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return max(0.0, when.timestamp() - time.time())
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(text).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _number(headers: Mapping[str, str], name: str | None) -> float | None:
    if not name:
        return None
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _base(tat: float, now: float, slack: float = _SLACK) -> float:
    """GCRA's max(TAT, now), except that a caller late by less than ``slack`` keeps its slot."""
    return tat if tat >= now - slack else now


class LimiterCancelled(Exception):
    """Raised by ``acquire`` when its cancel event is set while it waits."""


class Permit:
    """One admitted call. ``release(actual_tokens)`` frees the concurrency slot and corrects the
    token bucket with the real usage (None keeps the estimate)."""

    __slots__ = ("_limiter", "tokens", "estimate", "_released", "waited")

    def __init__(self, limiter: RateLimiter, tokens: int, estimate: int | None = None) -> None:
        self._limiter = limiter
        self.tokens = tokens  # reserved: the estimate scaled by what replies have really cost
        self.estimate = tokens if estimate is None else estimate
        self._released = False
        self.waited = 0.0  # seconds acquire() blocked before admitting this call

    def release(self, actual_tokens: int | None = None) -> None:
        if not self._released:
            self._released = True
            self._limiter._release(self.tokens, actual_tokens, self.estimate)


class RateLimiter:
    """Admission control for a pool of threads calling one or more providers.

    ``rpm``/``tpm``: requests and tokens per minute (None: unlimited). ``max_concurrent``: most
    calls in flight at once (None: unlimited). ``burst``: requests that may start back to back
    before pacing applies. ``adaptive``: react to 429s and rate-limit headers. ``max_pause``
    caps any hold derived from the provider's headers. ``low_water``: fraction of a provider
    limit below which the remaining budget is spread evenly until the window resets.
    ``storm_share``: share of recent responses that must be 429s before the pool as a whole
    holds and slows down (below it, only the limited requests wait, in the transport).
    ``clock``: seconds, monotonic (tests pass a fake one). ``backend``: None (in-process
    buckets), ``"sqlite:///PATH"`` or ``"redis://HOST:PORT/DB"`` (optional ``?name=BUDGET``),
    shared by every process that names it (``shared_limits``).
    """

    def __init__(self, rpm: float | None = None, tpm: float | None = None,
                 max_concurrent: int | None = None, *, burst: int = 1, adaptive: bool = True,
                 max_pause: float = 60.0, low_water: float = 0.1, storm_share: float = 0.25,
                 clock: Callable[[], float] = time.monotonic, backend: Any = None) -> None:
        for name, value in (("rpm", rpm), ("tpm", tpm), ("max_concurrent", max_concurrent)):
            if value is not None and (isinstance(value, bool) or not value > 0):
                from ..errors import ConfigurationError

                raise ConfigurationError(f"{name} must be a positive number or None, got {value!r}")
        self.rpm = rpm
        self.tpm = tpm
        self.max_concurrent = max_concurrent
        self.adaptive = adaptive
        self.max_pause = max_pause
        self.low_water = low_water
        self.storm_share = storm_share
        self._request_interval = 60.0 / rpm if rpm else 0.0
        self._token_interval = 60.0 / tpm if tpm else 0.0
        self._tolerance = max(0, burst - 1) * self._request_interval
        self._clock = clock
        self._backend: Any = None
        if backend is not None:
            from .shared_limits import open_budget

            self._backend = open_budget(backend, self._request_interval, self._tolerance,
                                        self._token_interval)
        self._cond = threading.Condition()
        self._waiting: deque[object] = deque()  # tickets of blocked acquire() calls, in order
        self._request_tat = 0.0  # theoretical arrival time of the next request (GCRA)
        self._token_tat = 0.0
        self._in_use = 0
        self._limit = float(max_concurrent) if max_concurrent else math.inf
        self._ceiling = self._limit  # where the cap returns to after a storm
        self._pressure = 0.0  # weighted share of 429s among recent responses
        self._hold_until = 0.0
        self._pace_interval = 0.0
        self._pace_until = 0.0
        self._next_paced = 0.0
        self._decrease_guard = 0.0
        self._backoff = 1.0
        self._avg_tokens = 0.0
        # Replies' real usage over the estimates (never below 1: a provider such as OpenAI
        # counts max_tokens at admission, so a smaller reservation would over-admit). An
        # estimator that misses the completion (3 tokens reserved, 15 used) would let each burst
        # overshoot the provider's window until the corrections land.
        self._usage_ratio = 1.0
        # counters, for benchmarks and curious users
        self.admitted = 0
        self.rate_limited = 0
        self.holds = 0

    def __repr__(self) -> str:
        return (f"RateLimiter(rpm={self.rpm}, tpm={self.tpm}, max_concurrent={self.max_concurrent}, "
                f"concurrency_limit={self.concurrency_limit})")

    @property
    def concurrency_limit(self) -> float:
        """The current (adaptive) cap on calls in flight."""
        return self._limit

    @property
    def in_flight(self) -> int:
        return self._in_use

    # --- admission --------------------------------------------------------------------------

    def acquire(self, tokens: int = 0, cancel: threading.Event | None = None) -> Permit:
        """Block until a call costing ``tokens`` may start; raise ``LimiterCancelled`` if
        ``cancel`` is set meanwhile (``interrupt()`` makes waiters look at it at once)."""
        with self._cond:
            ticket = object()
            self._waiting.append(ticket)
            started = time.monotonic()
            try:
                while True:
                    if cancel is not None and cancel.is_set():
                        raise LimiterCancelled()
                    # First come, first served: otherwise, under pacing, an early job can wait
                    # while later ones pass, and an ordered map stalls behind it.
                    admitted = self._try(tokens) if self._waiting[0] is ticket else 0.25
                    if isinstance(admitted, Permit):
                        admitted.waited = time.monotonic() - started
                        return admitted
                    self._cond.wait(min(admitted, 0.25))
            finally:
                self._waiting.remove(ticket)
                if self._waiting:
                    self._cond.notify_all()

    def try_acquire(self, tokens: int = 0) -> Permit | float:
        """Admit a call now (a ``Permit``), or say how many seconds to wait before asking again
        (``math.inf``: until a call in flight is released)."""
        with self._cond:
            return self._try(tokens)

    def _try(self, estimate: int) -> Permit | float:
        now = self._clock()
        tokens = math.ceil(estimate * self._usage_ratio) if estimate else 0
        if self._in_use >= max(1.0, self._limit):
            return math.inf
        start = max(now, self._hold_until)
        shared = self._backend
        if shared is None:
            if self._request_interval:
                start = max(start, self._request_tat - self._tolerance)
            if self._token_interval and tokens:
                start = max(start, self._token_tat)
        if now < self._pace_until:
            start = max(start, self._next_paced)
        if start > now:
            return start - now
        if shared is not None:  # last: a shared reservation, once made, is spent
            wait = self._reserve_unlocked(shared, tokens if self._token_interval else 0)
            if wait > 0:
                return wait
        self._in_use += 1
        self.admitted += 1
        # A caller that wakes a little late keeps its slot (up to _SLACK), so wake-up latency
        # does not leak capacity request after request.
        if shared is None and self._request_interval:
            self._request_tat = _base(self._request_tat, now) + self._request_interval
        if shared is None and self._token_interval and tokens:
            self._token_tat = _base(self._token_tat, now, _TOKEN_SLACK) + tokens * self._token_interval
        if now < self._pace_until:
            self._next_paced = now + self._pace_interval
        self._avg_tokens = tokens if not self._avg_tokens else 0.9 * self._avg_tokens + 0.1 * tokens
        return Permit(self, tokens, estimate)

    def _reserve_unlocked(self, shared: Any, tokens: int) -> float:
        """The shared backend's round trip (SQLite or Redis) with our lock let go, so releases
        and replies seen by other threads are not held up behind it. Only the head of the
        queue gets here from ``acquire``; the others keep waiting on the condition."""
        self._cond.release()
        try:
            return shared.reserve(tokens)
        finally:
            self._cond.acquire()

    def _release(self, estimated: int, actual: int | None, raw_estimate: int = 0) -> None:
        shared_adjustment = None
        with self._cond:
            self._in_use -= 1
            if actual is not None and raw_estimate > 0:
                ratio = min(max(actual / raw_estimate, 1.0), 64.0)
                self._usage_ratio += 0.1 * (ratio - self._usage_ratio)
            if actual is not None and self._token_interval:
                if self._backend is not None:
                    shared_adjustment = actual - estimated
                else:
                    self._token_tat += (actual - estimated) * self._token_interval
            if self._waiting:
                self._cond.notify_all()
        if shared_adjustment:  # a round trip to SQLite or Redis: never while holding the lock
            self._backend.adjust(shared_adjustment)

    def interrupt(self) -> None:
        """Wake every waiter so it re-checks its cancel event."""
        with self._cond:
            self._cond.notify_all()

    # --- feedback from the provider ----------------------------------------------------------

    def observe(self, status: int, headers: Mapping[str, str], error: AiLibError | None,
                names: Sequence[Mapping[str, str]] = ()) -> None:
        """Feed one HTTP response: its status, headers, the classified error (if any), and the
        manifests' ``rate_limit_headers`` maps that say which headers carry what."""
        if not self.adaptive:
            return
        now = self._clock()
        with self._cond:
            limited = error is not None and error.kind == "rate_limited"
            self._pressure += (float(limited) - self._pressure) / 16
            if limited:
                self.rate_limited += 1
                if self._pressure >= self.storm_share:
                    self._on_storm(now, error.retry_after)  # type: ignore[union-attr]
            elif status < 400:
                self._backoff = 1.0
                if self._limit < self._ceiling and now >= self._hold_until:
                    self._limit += 1  # slow start back to the cap before the storm
                    self._cond.notify_all()
            for mapping in names:
                if self._apply_headers(now, headers, mapping):
                    break

    def _on_storm(self, now: float, retry_after: float | None) -> None:
        """Many 429s: the account's limit is reached. Hold every start as long as the provider
        says (or back off exponentially), and halve the cap once per storm."""
        pause = retry_after if retry_after is not None else self._backoff
        self._backoff = min(self._backoff * 2, self.max_pause)
        self._hold(now, pause)
        if now >= self._decrease_guard:  # one cut per burst of simultaneous 429s
            if self._limit >= self._ceiling:
                self._ceiling = self._limit
            current = self._limit if self._limit != math.inf else max(2, self._in_use)
            self._limit = max(1.0, math.floor(current / 2))
            self._decrease_guard = now + max(pause, 1.0)

    def _hold(self, now: float, seconds: float) -> None:
        until = now + min(max(seconds, 0.0), self.max_pause)
        if until > self._hold_until:
            self._hold_until = until
            self.holds += 1
            if self._backend is not None:  # every process sharing the budget holds too
                self._backend.hold(until - now)

    def _apply_headers(self, now: float, headers: Mapping[str, str], names: Mapping[str, str]) -> bool:
        seen = False
        for kind in ("requests", "tokens"):
            remaining = _number(headers, names.get(f"{kind}_remaining"))
            if remaining is None:
                continue
            seen = True
            limit = _number(headers, names.get(f"{kind}_limit"))
            reset = parse_reset(headers.get(names.get(f"{kind}_reset") or "")) or 1.0
            reset = min(reset, self.max_pause)
            if kind == "tokens":  # in requests of the average size seen so far
                remaining = remaining / max(1.0, self._avg_tokens)
                limit = None if limit is None else limit / max(1.0, self._avg_tokens)
            if remaining < 1:
                self._hold(now, reset)
            elif limit and remaining < limit * self.low_water:
                interval = reset / remaining
                if now >= self._pace_until or interval > self._pace_interval:
                    self._pace_interval = interval
                self._pace_until = max(self._pace_until, now + reset)
        return seen

    # --- introspection -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        now = self._clock()
        with self._cond:
            return {"in_flight": self._in_use, "concurrency_limit": self._limit,
                    "held_for_s": max(0.0, self._hold_until - now), "admitted": self.admitted,
                    "pressure_429": round(self._pressure, 3),
                    "rate_limited": self.rate_limited, "holds": self.holds}
