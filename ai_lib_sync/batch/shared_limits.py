"""One requests-per-minute and tokens-per-minute budget shared by many processes.

``RateLimiter(rpm=..., tpm=..., backend=...)`` keeps its concurrency cap, its storm detection
and its first-come-first-served queue in the process; what must be common to every process of
a job lives in a backend: the two GCRA "theoretical arrival times" (requests, tokens) and the
time until which nobody may start (a cooldown). Three operations, each one atomic step:

- ``reserve(tokens)``: admit one request costing ``tokens`` now (returns 0.0), or say how many
  seconds until it could be admitted (nothing is taken then);
- ``adjust(tokens)``: the reply's real usage minus the reservation; positive pushes the token
  budget later, negative gives tokens back;
- ``hold(seconds)``: a ``Retry-After`` or an exhausted rate-limit header seen by one process
  stops new starts in every process for that long.

Backends: ``"sqlite:///PATH"`` (stdlib; processes on one machine: gunicorn workers, several
scripts; WAL, each step one ``BEGIN IMMEDIATE`` transaction) and ``"redis://HOST:PORT/DB"``
(extra ``[redis]``; machines; each step one Lua script run atomically by Redis, on Redis'
own clock so machines need not agree on the time). ``?name=NAME`` in the URL names the budget
(default ``default``), so one file or Redis holds several accounts.

Why not pyrate-limiter or limits (both measured, ``benchmarks/limits_bench.py``): both admit
weighted hits atomically, but neither can give tokens back (pyrate-limiter asserts weights
>= 0; limits has no refund), so a reservation cannot be reconciled with a reply that used less
than estimated; neither holds a shared cooldown; requests and tokens are two separate buckets,
so a request admitted by one and refused by the other has spent a request slot for nothing;
limits has no SQLite storage and no blocking wait, and pyrate-limiter's SQLite bucket is a log
with one row per unit of weight, which a tokens-per-minute budget turns into hundreds of rows
per request. Figures (4 processes, each call reserving 200 tokens and using 100): ours admit
1.00 of the request limit (SQLite 16 us, Redis ~300 us per admission + settlement); pyrate-limiter
0.43-0.50 and limits 0.50 (the unreturned half of each reservation). What is left is small: one row or hash and the same arithmetic as the in-process
buckets (``limits.RateLimiter``).

Every step is bounded: SQLite's busy timeout and Redis' socket timeouts are a few seconds; a
backend that fails raises ``LimiterBackendError`` (kind ``connection``, retryable) instead of
blocking (from ``reserve``; ``adjust`` and ``hold`` log it and carry on: a reply already
received must not fail because its bookkeeping did). Connections are per process: after
``fork`` the child opens its own.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit, urlunsplit

from ..errors import APIConnectionError, ConfigurationError

logger = logging.getLogger("ai_lib_sync")

SLACK = 0.02  # seconds; the same grace as the in-process buckets (limits._SLACK)
TOKEN_SLACK = 0.25  # the token bucket's grace, as limits._TOKEN_SLACK (a reply corrects it later)
_TTL = 3600  # seconds an idle Redis budget is kept


class LimiterBackendError(APIConnectionError):
    """The shared rate-limit store could not be reached or failed a step."""


class SharedBudget(Protocol):
    """What ``RateLimiter`` needs from a backend. Intervals are seconds per request and per
    token; ``tolerance`` is how far ahead of schedule a burst may start."""

    def reserve(self, tokens: int) -> float: ...

    def adjust(self, tokens: int) -> None: ...

    def hold(self, seconds: float) -> None: ...

    def close(self) -> None: ...


def _quietly(action: Any, what: str) -> None:
    try:
        action()
    except LimiterBackendError as exc:
        logger.warning("shared rate limit: could not %s: %s", what, exc.message)


def redact_url(url: str) -> str:
    """``url`` without its password (Redis URLs may carry one)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def step(state: tuple[float, float, float], now: float, tokens: int, request_interval: float,
         tolerance: float, token_interval: float) -> tuple[float, tuple[float, float, float]]:
    """One reservation on ``(request_tat, token_tat, hold_until)``: (0.0, new state) when
    admitted, else (seconds to wait, the same state). Mirrored by the Redis script."""
    request_tat, token_tat, hold_until = state
    start = max(now, hold_until)
    if request_interval:
        start = max(start, request_tat - tolerance)
    if token_interval and tokens:
        start = max(start, token_tat)
    if start > now:
        return start - now, state
    if request_interval:
        request_tat = (request_tat if request_tat >= now - SLACK else now) + request_interval
    if token_interval and tokens:
        token_tat = (token_tat if token_tat >= now - TOKEN_SLACK else now) + tokens * token_interval
    return 0.0, (request_tat, token_tat, hold_until)


class _PerProcess:
    """A connection opened lazily, once per process (never used across ``fork``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = -1
        self._handle: Any = None
        self._orphans: list[Any] = []  # a parent's handles, never closed by the child

    def _open(self) -> Any:
        raise NotImplementedError

    def _get(self) -> Any:
        if self._pid != os.getpid():
            if self._handle is not None:
                self._orphans.append(self._handle)
            self._handle = self._open()
            self._pid = os.getpid()
        return self._handle


class SQLiteBudget(_PerProcess):
    """The budget in one row of a SQLite file (WAL), for processes on one machine."""

    def __init__(self, path: str, name: str, request_interval: float, tolerance: float,
                 token_interval: float, timeout: float = 5.0) -> None:
        super().__init__()
        if not path:
            raise ConfigurationError("backend='sqlite:///PATH' needs a file path")
        self.path = path
        self.name = name
        self.request_interval = request_interval
        self.tolerance = tolerance
        self.token_interval = token_interval
        self.timeout = timeout
        self._get()  # fail early on a path that cannot be opened

    def __repr__(self) -> str:
        return f"SQLiteBudget({self.path!r}, name={self.name!r})"

    def _open(self) -> sqlite3.Connection:
        try:
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # the state is worth nothing after a crash
            db.execute("CREATE TABLE IF NOT EXISTS ai_lib_sync_limits (name TEXT PRIMARY KEY, "
                       "request_tat REAL NOT NULL, token_tat REAL NOT NULL, hold_until REAL NOT NULL)")
            db.execute("INSERT OR IGNORE INTO ai_lib_sync_limits VALUES (?, 0, 0, 0)", (self.name,))
        except (sqlite3.Error, OSError) as exc:
            raise LimiterBackendError(f"rate-limit backend sqlite:///{self.path}: {exc}",
                                      retryable=False) from None
        return db

    def _transaction(self, change: Any) -> Any:
        with self._lock:
            try:
                db = self._get()
                db.execute("BEGIN IMMEDIATE")
                try:
                    row = db.execute("SELECT request_tat, token_tat, hold_until FROM ai_lib_sync_limits "
                                     "WHERE name = ?", (self.name,)).fetchone() or (0.0, 0.0, 0.0)
                    result, state = change(tuple(row), time.time())
                    if state != tuple(row):
                        db.execute("UPDATE ai_lib_sync_limits SET request_tat = ?, token_tat = ?, "
                                   "hold_until = ? WHERE name = ?", (*state, self.name))
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise LimiterBackendError(f"rate-limit backend sqlite:///{self.path}: {exc}") from None
            return result

    def reserve(self, tokens: int) -> float:
        return self._transaction(lambda state, now: step(
            state, now, tokens, self.request_interval, self.tolerance, self.token_interval))

    def adjust(self, tokens: int) -> None:
        if tokens and self.token_interval:
            shift = tokens * self.token_interval
            _quietly(lambda: self._transaction(lambda s, now: (None, (s[0], s[1] + shift, s[2]))),
                     "reconcile tokens")

    def hold(self, seconds: float) -> None:
        _quietly(lambda: self._transaction(lambda s, now: (None, (s[0], s[1], max(s[2], now + seconds)))),
                 "record a hold")

    def close(self) -> None:
        with self._lock:
            if self._handle is not None and self._pid == os.getpid():
                self._handle.close()
            self._handle, self._pid = None, -1


# KEYS[1]: the budget's hash. ARGV: operation, tokens (or seconds), request interval,
# tolerance, token interval, slack, ttl, token slack. Numbers go out as strings: a Lua number returned to
# Redis is truncated to an integer. Same arithmetic as ``step``.
_SCRIPT = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local s = redis.call('HMGET', KEYS[1], 'r', 't', 'h')
local r, t, h = tonumber(s[1]) or 0, tonumber(s[2]) or 0, tonumber(s[3]) or 0
local op, amount = ARGV[1], tonumber(ARGV[2])
local ri, tol, ti, slack = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local token_slack = tonumber(ARGV[8])
if op == 'reserve' then
  local start = math.max(now, h)
  if ri > 0 then start = math.max(start, r - tol) end
  if ti > 0 and amount > 0 then start = math.max(start, t) end
  if start > now then return string.format('%.6f', start - now) end
  if ri > 0 then if r < now - slack then r = now end r = r + ri end
  if ti > 0 and amount > 0 then if t < now - token_slack then t = now end t = t + amount * ti end
elseif op == 'adjust' then
  t = t + amount * ti
elseif op == 'hold' then
  h = math.max(h, now + amount)
end
redis.call('HSET', KEYS[1], 'r', string.format('%.6f', r), 't', string.format('%.6f', t),
           'h', string.format('%.6f', h))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
return '0'
"""


class RedisBudget(_PerProcess):
    """The budget in one Redis hash, updated by one Lua script (extra ``[redis]``)."""

    def __init__(self, url: str, name: str, request_interval: float, tolerance: float,
                 token_interval: float, timeout: float = 5.0) -> None:
        super().__init__()
        try:
            import redis  # noqa: F401
        except ImportError:
            raise ConfigurationError("backend='redis://...' needs the redis package: "
                                     "pip install 'ai-lib-sync[redis]'") from None
        self.url = url
        self.name = name
        self.key = f"ai-lib-sync:limits:{name}"
        self.request_interval = request_interval
        self.tolerance = tolerance
        self.token_interval = token_interval
        self.timeout = timeout
        self._script: Any = None

    def __repr__(self) -> str:
        return f"RedisBudget({redact_url(self.url)!r}, name={self.name!r})"

    def _open(self) -> Any:
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=self.timeout,
                                      socket_connect_timeout=self.timeout)
        self._script = client.register_script(_SCRIPT)
        return client

    def _run(self, op: str, amount: float) -> float:
        import redis

        try:
            with self._lock:
                self._get()
                script = self._script
            reply = script(keys=[self.key], args=[op, repr(float(amount)), repr(self.request_interval),
                                                  repr(self.tolerance), repr(self.token_interval),
                                                  repr(SLACK), _TTL, repr(TOKEN_SLACK)])
        except redis.RedisError as exc:
            raise LimiterBackendError(f"rate-limit backend {redact_url(self.url)}: "
                                      f"{type(exc).__name__}") from None
        return float(reply)

    def reserve(self, tokens: int) -> float:
        return self._run("reserve", tokens)

    def adjust(self, tokens: int) -> None:
        if tokens and self.token_interval:
            _quietly(lambda: self._run("adjust", tokens), "reconcile tokens")

    def hold(self, seconds: float) -> None:
        _quietly(lambda: self._run("hold", seconds), "record a hold")

    def close(self) -> None:
        with self._lock:
            if self._handle is not None and self._pid == os.getpid():
                self._handle.close()
            self._handle, self._pid = None, -1


def open_budget(spec: Any, request_interval: float, tolerance: float, token_interval: float) -> Any:
    """A backend from ``RateLimiter(backend=...)``: "sqlite:///PATH", "redis://HOST:PORT/DB"
    (both with an optional ``?name=NAME``), or an object with ``reserve``/``adjust``/``hold``."""
    if not isinstance(spec, str):
        if all(callable(getattr(spec, name, None)) for name in ("reserve", "adjust", "hold")):
            return spec
        raise ConfigurationError(f"backend must be 'sqlite:///PATH', 'redis://HOST:PORT/DB' or an object "
                                 f"with reserve/adjust/hold, got {type(spec).__name__}")
    base, _, query = spec.partition("?")
    name = (parse_qs(query).get("name") or ["default"])[0]
    if base.startswith("sqlite:///"):
        return SQLiteBudget(base[len("sqlite:///"):], name, request_interval, tolerance, token_interval)
    if base.startswith(("redis://", "rediss://", "unix://")):
        return RedisBudget(base, name, request_interval, tolerance, token_interval)
    raise ConfigurationError(f"backend must be 'sqlite:///PATH' or 'redis://HOST:PORT/DB', "
                             f"got {redact_url(spec)!r}")
