"""A response cache: an identical request is answered without a network call.

``AiClient(..., cache="sqlite:///cache.db")`` (or ``"memory"``, ``"redis://host:6379/0"`` with
the ``[redis]`` extra, or any object with ``get(key)`` and ``put(key, value)``). The key is a
SHA-256 of what would go on the wire for a non-streamed call (method, URL without secrets,
JSON body: model, messages, parameters, tools) plus a fingerprint of the credentials, so two
keys never share answers and no key is ever stored. Streamed and non-streamed calls of the same
request share an entry: a stream replays the cached answer as events. Only successful answers
are stored, never errors. A hit's ``CallStats`` says ``cached=True`` and costs nothing.

SQLite runs in WAL mode with a busy timeout, one connection per thread, so threads and
processes can share one file. ``ttl`` (seconds) expires entries; ``max_entries`` keeps the
newest. Nothing is fetched or opened before the first call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from typing import Any, Protocol

from .errors import ConfigurationError
from .types import CallStats, ChatResponse

logger = logging.getLogger("ai_lib_sync")


class ResponseCache(Protocol):
    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...


def cache_key(method: str, url: str, body: bytes | None, secrets: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), url.encode(), body or b""):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    credentials = hashlib.sha256("\0".join(sorted(secrets)).encode()).digest()
    digest.update(credentials)  # a hash of a hash: the key itself is never stored
    return digest.hexdigest()


class MemoryCache:
    """In-process LRU; for tests and short scripts."""

    def __init__(self, ttl: float | None = None, max_entries: int | None = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self.ttl is not None and time.time() - entry[0] > self.ttl:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._entries[key] = (time.time(), value)
            self._entries.move_to_end(key)
            while self.max_entries is not None and len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


class SQLiteCache:
    """One SQLite file shared by threads and processes (WAL, busy timeout)."""

    def __init__(self, path: str, ttl: float | None = None, max_entries: int | None = None) -> None:
        self.path = path
        self.ttl = ttl
        self.max_entries = max_entries
        self._local = threading.local()
        self._puts = 0

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None or self._local.pid != os.getpid():  # never use a connection across fork
            self._local.pid = os.getpid()
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, created REAL NOT NULL, value TEXT NOT NULL)")
            db.execute("CREATE INDEX IF NOT EXISTS responses_created ON responses (created)")
            self._local.db = db
        return db

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._db().execute("SELECT created, value FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        if self.ttl is not None and time.time() - row[0] > self.ttl:
            self._db().execute("DELETE FROM responses WHERE key = ?", (key,))
            return None
        return json.loads(row[1])

    def put(self, key: str, value: dict[str, Any]) -> None:
        db = self._db()
        db.execute("INSERT OR REPLACE INTO responses (key, created, value) VALUES (?, ?, ?)",
                   (key, time.time(), json.dumps(value, ensure_ascii=False, separators=(",", ":"))))
        self._puts += 1
        if self.max_entries is not None and self._puts % 100 == 1:  # trimming is a scan: not every put
            db.execute("DELETE FROM responses WHERE key IN (SELECT key FROM responses ORDER BY created DESC LIMIT -1 OFFSET ?)",
                       (self.max_entries,))
        if self.ttl is not None and self._puts % 100 == 1:
            db.execute("DELETE FROM responses WHERE created < ?", (time.time() - self.ttl,))


class RedisCache:
    """Entries in Redis (extra ``[redis]``), expiring by Redis' own TTL."""

    def __init__(self, url: str, ttl: float | None = None, prefix: str = "ai-lib-sync:cache:") -> None:
        try:
            import redis
        except ImportError:
            raise ConfigurationError("cache='redis://...' needs the redis package: pip install 'ai-lib-sync[redis]'") from None
        self._redis = redis.Redis.from_url(url)
        self.ttl = ttl
        self.prefix = prefix

    def get(self, key: str) -> dict[str, Any] | None:
        value = self._redis.get(self.prefix + key)
        return None if value is None else json.loads(value)

    def put(self, key: str, value: dict[str, Any]) -> None:
        data = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        self._redis.set(self.prefix + key, data, ex=None if self.ttl is None else max(1, int(self.ttl)))


class AnswerCache:
    """The client's side of a cache store: keys from prepared requests, hits as a response and
    stats. A broken store never breaks a call: it is logged and the provider is asked."""

    def __init__(self, store: ResponseCache) -> None:
        self.store = store

    @staticmethod
    def key(prepared: Any) -> str:
        """The key of a prepared non-streamed request (its wire form; no secret in it)."""
        return cache_key(prepared.method, prepared.log_url or prepared.url, prepared.body, prepared.secrets)

    def get(self, key: str) -> tuple[ChatResponse, CallStats] | None:
        started = time.perf_counter()
        try:
            value = self.store.get(key)
            if value is None:
                return None
            response = ChatResponse.from_dict(value)
        except Exception:
            logger.warning("response cache lookup failed; calling the provider", exc_info=True)
            return None
        usage = response.usage
        latency = round((time.perf_counter() - started) * 1000.0, 3)
        return response, CallStats(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, latency,
                                   None, 0, response.provider, response.model, 0.0, None, cached=True)

    def put(self, key: str, response: ChatResponse) -> None:
        try:
            self.store.put(key, response.to_dict())
        except Exception:
            logger.warning("response cache store failed; the answer is returned uncached", exc_info=True)


def open_cache(spec: Any, ttl: float | None = None, max_entries: int | None = None) -> ResponseCache | None:
    """A cache from ``AiClient(cache=...)``: None, "memory", "sqlite:///PATH", "redis://...",
    or an object with ``get``/``put``."""
    if spec is None or spec is False:
        return None
    if isinstance(spec, str):
        if spec == "memory":
            return MemoryCache(ttl, max_entries)
        if spec.startswith("sqlite:///"):
            return SQLiteCache(spec[len("sqlite:///"):], ttl, max_entries)
        if spec.startswith(("redis://", "rediss://", "unix://")):
            return RedisCache(spec, ttl)
        raise ConfigurationError(f"cache must be 'memory', 'sqlite:///PATH', 'redis://HOST:PORT/DB' or a cache object, got {spec!r}")
    if callable(getattr(spec, "get", None)) and callable(getattr(spec, "put", None)):
        return spec
    raise ConfigurationError(f"a cache object needs get(key) and put(key, value) methods, got {spec!r}")
