"""The only module that touches the network.

One ``requests.Session`` per client owns the connection pool. Every call is bounded in time:
connect and read timeouts on each attempt, a total deadline on non-streamed bodies, and an
idle timeout between stream events. Retries use tenacity with exponential backoff and jitter,
honour ``retry-after-ms``/``Retry-After`` up to a cap, and are counted for ``CallStats``.
The transport knows no provider: it sends prepared requests and frames streams as told.
"""

from __future__ import annotations

import email.utils
import http.client
import itertools
import logging
import os
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import ProxyManager

from . import watchdog
from .errors import AiLibError, APIConnectionError, APITimeoutError, StreamInterruptedError, redact
from .framing import FRAMERS
from .watchdog import shutdown_socket

logger = logging.getLogger("ai_lib_sync")

ErrorFactory = Callable[[int, Mapping[str, str], bytes], AiLibError]


@dataclass
class RetryPolicy:
    max_retries: int = 2
    statuses: tuple[int, ...] = (408, 409, 429, 500, 502, 503, 504, 529)
    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def backoff(self, retry_number: int, error: BaseException | None) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based)."""
        hinted = getattr(error, "retry_after", None)
        if hinted is not None:
            return max(0.0, float(hinted))
        ceiling = min(self.max_backoff, self.initial_backoff * 2 ** (retry_number - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # "equal jitter"

    def should_retry(self, error: BaseException) -> bool:
        if not isinstance(error, AiLibError) or not error.retryable:
            return False
        if error.retry_after is not None and error.retry_after > self.max_retry_after:
            return False  # the caller gets the error at once, with retry_after set
        return True


@dataclass
class Prepared:
    """A fully built request: what goes on the wire, plus how to explain a failure."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    make_error: ErrorFactory
    secrets: tuple[str, ...] = ()
    sign: Callable[[Prepared], None] | None = None
    log_url: str = field(default="")

    def __repr__(self) -> str:
        return f"Prepared({self.method} {self.log_url or redact(self.url, self.secrets)})"


class Timeouts:
    __slots__ = ("connect", "read", "total", "stream_idle")

    def __init__(self, total: float = 60.0, connect: float = 10.0, read: float | None = None,
                 stream_idle: float | None = None) -> None:
        for name, value in (("timeout", total), ("connect_timeout", connect), ("read_timeout", read),
                            ("stream_idle_timeout", stream_idle)):
            if value is not None and (isinstance(value, bool) or not value > 0):
                from .errors import ConfigurationError

                raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
        self.total = float(total)
        self.connect = float(min(connect, total))
        self.read = float(read if read is not None else total)
        self.stream_idle = float(stream_idle if stream_idle is not None else self.read)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """``retry-after-ms`` (OpenAI, Anthropic), else ``Retry-After`` in seconds or as an HTTP date."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# --- call scopes: cancel another thread's calls, observe responses ------------------------

_local = threading.local()


class CallScope:
    """Hooks for the HTTP calls of the thread that entered it (``with scope: ...``).

    ``abort()``, from any thread, shuts down the sockets those calls use (a read blocked on a
    slow server returns at once), cuts retry waits short and refuses new attempts: the batch
    executor and the aio wrapper cancel work with it. ``on_response(status, headers, error)``,
    if given, sees every HTTP response, retried attempts included (``error`` is the classified
    error of a status >= 400, else None): the executor's rate limiter reads rate-limit headers
    and 429s there. ``before_retry()``, if given, runs before each retry attempt (after its
    backoff) and may block: the executor re-admits retries through its limiter there, so a
    429 storm slows the retries of every thread too. The core never creates a scope; without
    one nothing changes.
    """

    def __init__(self, on_response: Callable[[int, Mapping[str, str], AiLibError | None], None] | None = None,
                 before_retry: Callable[[], None] | None = None) -> None:
        self.on_response = on_response
        self.before_retry = before_retry
        self.aborted = threading.Event()
        self._connections: list[HTTPConnection] = []
        self._lock = threading.Lock()
        self._outer: CallScope | None = None

    def __enter__(self) -> CallScope:
        self._outer = getattr(_local, "scope", None)
        _local.scope = self
        return self

    def __exit__(self, *exc: object) -> None:
        _local.scope = self._outer
        with self._lock:
            self._connections.clear()

    def abort(self) -> None:
        with self._lock:
            self.aborted.set()
            connections = list(self._connections)
        for connection in connections:
            shutdown_socket(connection)

    def track(self, connection: HTTPConnection) -> None:
        with self._lock:
            self.check()
            if connection not in self._connections:
                self._connections.append(connection)

    def check(self) -> None:
        if self.aborted.is_set():
            raise APIConnectionError("the call was cancelled", retryable=False)


def current_scope() -> CallScope | None:
    return getattr(_local, "scope", None)


def _pause(seconds: float) -> None:
    """Sleep, but wake at once when the current scope is aborted."""
    scope = current_scope()
    if scope is None:
        time.sleep(seconds)
    elif scope.aborted.wait(seconds):
        scope.check()


class _Attempt:
    """One HTTP attempt of this thread: the deadline armed on the connection it uses, and
    whether that connection came idle from the pool (a server may have closed it meanwhile)."""

    __slots__ = ("seconds", "until", "deadline", "connection", "fresh", "reused", "secrets")

    def __init__(self, seconds: float, secrets: tuple[str, ...] = ()) -> None:
        self.secrets = secrets
        self.seconds = seconds
        self.until = time.monotonic() + seconds
        self.deadline: Any = None
        self.connection: Any = None
        self.fresh = False
        self.reused = False

    def bind(self, connection: HTTPConnection) -> None:
        if connection is self.connection:
            return
        if self.deadline is not None:
            self.deadline.cancel()
        self.connection = connection
        self.deadline = watchdog.arm(max(0.0, self.until - time.monotonic()), connection)

    @property
    def late(self) -> bool:
        return self.deadline is not None and self.deadline.fired

    def disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()


def _current_attempt() -> _Attempt | None:
    return getattr(_local, "attempt", None)


class _ScopedMixin:
    """Registers each connection with the thread's scope, so ``abort()`` can reach its socket,
    and with the thread's attempt, so its deadline can."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        scope = current_scope()
        if scope is not None:
            scope.track(self)  # type: ignore[arg-type]
        attempt = _current_attempt()
        if attempt is not None:
            attempt.reused = not attempt.fresh and getattr(self, "sock", None) is not None
            attempt.bind(self)  # type: ignore[arg-type]
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def connect(self) -> None:
        attempt = _current_attempt()
        if attempt is not None:
            attempt.fresh = True
            attempt.bind(self)  # type: ignore[arg-type]
        super().connect()  # type: ignore[misc]
        scope = current_scope()
        if scope is not None and scope.aborted.is_set():  # aborted while we were connecting
            shutdown_socket(self)  # type: ignore[arg-type]
            scope.check()


class _ScopedHTTPConnection(_ScopedMixin, HTTPConnection):
    pass


class _ScopedHTTPSConnection(_ScopedMixin, HTTPSConnection):
    pass


class _ScopedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _ScopedHTTPConnection


class _ScopedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _ScopedHTTPSConnection


_SCOPED_POOLS = {"http": _ScopedHTTPPool, "https": _ScopedHTTPSPool}


class _ScopedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _SCOPED_POOLS

    def close(self) -> None:
        """Close every pooled connection now. urllib3 2's PoolManager.clear() only forgets its
        pools, leaving their sockets to the garbage collector, and an error's traceback can keep
        a pool alive long after the client was closed."""
        managers = [self.poolmanager, *self.proxy_manager.values()]
        for manager in managers:
            pools = manager.pools
            for key in pools.keys():
                pool = pools.get(key)
                if pool is not None:
                    pool.close()
        super().close()

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if isinstance(manager, ProxyManager):  # SOCKS managers keep their own pools
            manager.pool_classes_by_scheme = _SCOPED_POOLS
        return manager


class Transport:
    """Owns the session; thread-safe (requests' pool is; our state is set once under a lock).

    ``session`` may be the caller's own ``requests.Session`` (proxies, CA bundle, custom
    mounts): it is used as it is, except that plain ``HTTPAdapter`` mounts for http:// and
    https:// are replaced by ours (same pool, plus cancellation and deadlines), and it is not
    closed by ``close()``, since the caller owns it. In a forked child the pool is never
    shared with the parent: the first call there builds a new session.
    """

    def __init__(self, timeouts: Timeouts | None = None, retry: RetryPolicy | None = None,
                 pool_maxsize: int = 64, session: requests.Session | None = None) -> None:
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self.pool_maxsize = pool_maxsize
        self._user_session = session
        self._session: requests.Session | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._closed = False
        # Pool slots of streams abandoned without close(): given back by the next call, since
        # a finalizer must never take a pool lock (see ``StreamHandle.abandon``).
        self._orphaned_pools: deque[Any] = deque()

    @property
    def session(self) -> requests.Session:
        session = self._session
        if session is None or self._pid != os.getpid():
            with self._lock:
                if self._closed:
                    from .errors import ConfigurationError

                    raise ConfigurationError("this client is closed")
                if self._session is None or self._pid != os.getpid():
                    # In a forked child the inherited pool is dropped untouched: its sockets
                    # are the parent's, and a lock held at fork time would never be released.
                    self._session = self._build_session()
                    self._pid = os.getpid()
                    self._orphaned_pools.clear()
                session = self._session
        return session

    def _build_session(self) -> requests.Session:
        _redact_urllib3_logs()
        session = self._user_session
        if session is None:
            session = requests.Session()
            # Keep proxy and CA settings from the environment, but never let a ~/.netrc entry
            # replace the provider's auth header: a no-op auth object makes requests skip its
            # netrc lookup.
            session.trust_env = True
            session.auth = _keep_headers
        # Retries are ours; urllib3 must not retry behind our back.
        adapter = self._adapter()
        for prefix in ("http://", "https://"):
            if type(session.adapters.get(prefix)) is HTTPAdapter:
                session.mount(prefix, adapter)
        return session

    def _adapter(self) -> HTTPAdapter:
        return _ScopedAdapter(pool_connections=4, pool_maxsize=self.pool_maxsize,
                              max_retries=0, pool_block=False)

    def ensure_pool_size(self, size: int) -> None:
        """Grow the per-host connection pool to at least ``size`` (a thread pool of that many
        workers then reuses connections instead of opening and dropping extra ones)."""
        with self._lock:
            if size <= self.pool_maxsize:
                return
            self.pool_maxsize = size
            session = self._session
            if session is not None and self._pid == os.getpid():
                adapter = self._adapter()
                for prefix in ("http://", "https://"):
                    if isinstance(session.adapters.get(prefix), _ScopedAdapter):
                        old = session.adapters[prefix]
                        session.mount(prefix, adapter)
                        old.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            session, self._session = self._session, None
            same_process = self._pid == os.getpid()
        if session is not None and same_process and session is not self._user_session:
            session.close()

    # --- one attempt -------------------------------------------------------------------

    def _send(self, prepared: Prepared, stream: bool) -> tuple[requests.Response, _Attempt]:
        """Send one attempt and read its headers. Returns the response and the attempt, whose
        deadline (the total timeout) is still armed: the caller disarms it."""
        if prepared.sign is not None:
            prepared.sign(prepared)
        self._return_orphaned_slots()
        timeouts = self.timeouts
        read = timeouts.stream_idle if stream else min(timeouts.read, timeouts.total)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s", prepared.method, prepared.log_url or redact(prepared.url, prepared.secrets))
        session = self.session
        auth = None if session.auth is not None else _keep_headers
        overrides = self._session_overrides(session)
        failure: BaseException | None = None
        for stale_retry in (False, True):
            attempt = _Attempt(timeouts.total, prepared.secrets)
            _local.attempt = attempt
            try:
                response = session.request(
                    prepared.method, prepared.url, data=prepared.body, headers=prepared.headers,
                    timeout=(timeouts.connect, read), stream=True, allow_redirects=False, auth=auth,
                    **overrides,
                )
                failure = None
            except requests.exceptions.RequestException as exc:
                failure = exc
            finally:
                _local.attempt = None
            if failure is None:
                break
            attempt.disarm()
            if stale_retry or not attempt.reused or attempt.late or _aborted() \
                    or not _dropped_before_response(failure):
                break  # (a socket our deadline or a cancellation cut is no stale connection)
            # The server closed an idle pooled connection before reading our request: send it
            # again at once on a new connection. Not a retry: nothing reached the provider.
            logger.debug("pooled connection was closed by the server; resending on a new one")
        if failure is not None:
            # Raised outside the except block so the requests exception, which holds the
            # prepared request and its headers, is not chained as __context__.
            raise _transport_error(failure, attempt, prepared, "connection failed")
        if response.status_code >= 400:
            body = self._read_body(response, attempt, prepared, limit=1 << 20)
            response.close()  # the error's traceback keeps this frame: let it keep no socket
            error = prepared.make_error(response.status_code, response.headers, body)
            if error.retry_after is None:
                error.retry_after = parse_retry_after(response.headers)
            if response.status_code not in self.retry.statuses and error.kind not in ("rate_limited", "overloaded"):
                error.retryable = False
            _observe(response, error)
            raise error
        _observe(response, None)
        return response, attempt

    def _read_body(self, response: requests.Response, attempt: _Attempt, prepared: Prepared,
                   limit: int | None = None) -> bytes:
        chunks = []
        size = 0
        failure: BaseException | None = None
        try:
            for chunk in response.iter_content(65536):
                chunks.append(chunk)
                size += len(chunk)
                if limit is not None and size >= limit:
                    break
        except requests.exceptions.RequestException as exc:
            failure = exc
        finally:
            attempt.disarm()
        if failure is not None or attempt.late:
            response.close()
            raise _transport_error(failure, attempt, prepared, "the response broke off")
        if limit is not None and size >= limit:
            response.close()
        return b"".join(chunks)

    def _session_overrides(self, session: requests.Session) -> dict[str, Any]:
        """A caller's session settings, passed per request: requests lets REQUESTS_CA_BUNDLE
        and the proxy variables override ``session.verify`` and ``session.proxies``, which
        would silently drop the CA bundle or proxy the caller configured."""
        if session is not self._user_session:
            return {}
        overrides: dict[str, Any] = {}
        if session.verify is not True:
            overrides["verify"] = session.verify
        if session.proxies:
            overrides["proxies"] = dict(session.proxies)
        return overrides

    def _return_orphaned_slots(self) -> None:
        orphans = self._orphaned_pools
        while orphans:
            try:
                pool = orphans.popleft()
            except IndexError:
                return
            pool._put_conn(None)  # an empty slot: the pool opens a new connection there

    # --- with retries ------------------------------------------------------------------

    def call(self, prepared: Prepared, on_retry: Callable[[AiLibError, int], None] | None = None,
             ) -> tuple[requests.Response, bytes, int]:
        """Send and read a whole body. Returns (response, body, retries)."""
        return self.with_retries(lambda: self._attempt(prepared), on_retry)

    def _attempt(self, prepared: Prepared) -> tuple[requests.Response, bytes]:
        response, attempt = self._send(prepared, stream=False)
        return response, self._read_body(response, attempt, prepared)

    def with_retries(self, attempt: Callable[[], Any],
                     on_retry: Callable[[AiLibError, int], None] | None = None) -> Any:
        """Run ``attempt``; on a retryable error, retry it through tenacity.

        The first try runs outside tenacity so the common, successful call pays nothing for it.
        Returns ``attempt()``'s result with the retry count appended. ``on_retry(error, n)``
        runs before the backoff of retry ``n``.
        """
        try:
            result = attempt()
            return (*result, 0) if isinstance(result, tuple) else (result, 0)
        except AiLibError as error:
            if self.retry.max_retries < 1 or not self.retry.should_retry(error) or _aborted():
                raise
            first_error = error
        import tenacity

        policy = self.retry
        retries = 0

        def counted_attempt() -> Any:
            nonlocal retries
            retries += 1
            scope = current_scope()
            if scope is not None and scope.before_retry is not None:
                scope.before_retry()
            return attempt()

        def log_retry(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            logger.info("retry %d after %s", state.attempt_number + 1, type(error).__name__)
            if on_retry is not None and isinstance(error, AiLibError):
                on_retry(error, retries + 1)

        if on_retry is not None:
            on_retry(first_error, 1)
        _pause(policy.backoff(1, first_error))
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(policy.max_retries),
            # tenacity counts its own attempts; ours started one earlier, outside it.
            wait=lambda state: policy.backoff(state.attempt_number + 1, state.outcome.exception()),
            retry=tenacity.retry_if_exception(lambda error: policy.should_retry(error) and not _aborted()),
            sleep=_pause,
            before_sleep=log_retry,
            reraise=True,
        )
        result = retrying(counted_attempt)
        return (*result, retries) if isinstance(result, tuple) else (result, retries)

    # --- streams -----------------------------------------------------------------------

    def open_stream(self, prepared: Prepared) -> StreamHandle:
        response, attempt = self._send(prepared, stream=True)
        attempt.disarm()  # from here the idle timeout between events bounds the stream
        return StreamHandle(self, response, prepared)


class StreamHandle:
    """An open streamed response: frames it, and gives its connection back exactly once.

    The connection is detached from urllib3's pool when the stream opens, so that nothing
    urllib3 runs on its own (generator finalizers included) takes the pool's lock. It goes
    back through ``finish`` (the terminator was read: drain the rest briefly, reuse the
    connection if the body ended), ``close`` (cut it; safe from another thread) or ``abandon``
    (for finalizers: cut it without any lock and let the next call give the pool slot back).
    A finalizer that took the pool lock could run while its own thread holds it: every
    thread sharing the client would then block forever.
    """

    __slots__ = ("_transport", "response", "_prepared", "_pool", "_connection", "_once", "_lock")

    def __init__(self, transport: Transport, response: requests.Response, prepared: Prepared) -> None:
        self._transport = transport
        self.response = response
        self._prepared = prepared
        raw = response.raw
        self._pool = getattr(raw, "_pool", None)
        self._connection = getattr(raw, "_connection", None)
        if self._pool is not None:
            raw._pool = None
        self._once = itertools.count()
        self._lock = threading.Lock()  # orders "give back" against "cut" across threads

    def _claim(self) -> bool:
        """True for the first caller only: the connection is given back exactly once (the
        counter's ``next`` is atomic, so no lock is needed, finalizers included)."""
        return not next(self._once)

    @property
    def headers(self) -> Mapping[str, str]:
        return self.response.headers

    @property
    def status_code(self) -> int:
        return self.response.status_code

    def frames(self, framing: str, on_chunk: Callable[[], None] | None = None) -> Iterator[tuple[str | None, Any]]:
        """Frames of the body. Network failures become typed errors; ``on_chunk`` runs for
        every byte chunk so the caller can enforce its event-idle deadline."""
        return FRAMERS[framing](_guarded_bytes(self.response, self._prepared.secrets, on_chunk))

    def read_body(self) -> bytes:
        """The whole body (a JSON answer where events were expected), bounded by the timeout."""
        attempt = _Attempt(self._transport.timeouts.total)
        attempt.bind(self._connection)
        try:
            return self._transport._read_body(self.response, attempt, self._prepared, limit=1 << 20)
        finally:
            self.close()

    def finish(self, frames: Iterator[Any], drain_seconds: float = 0.25) -> None:
        """The terminator was read. A server may keep the connection open after it, so read
        what follows for at most ``drain_seconds``: reuse the connection if the body ended."""
        complete = False
        deadline = watchdog.arm(drain_seconds, self._connection) if self._connection is not None else None
        try:
            for _ in frames:  # anything after the terminator is not ours to decode
                pass
            complete = deadline is None or not deadline.fired
        except AiLibError:
            pass
        finally:
            if deadline is not None:
                deadline.cancel()
        if not complete:
            self.close()
            return
        with self._lock:
            if self._claim() and self._pool is not None:
                self._pool._put_conn(self._connection)

    def close(self) -> None:
        """Cut the connection now; safe from any thread, and idempotent. A connection already
        given back to the pool is left alone: another call may be using it."""
        with self._lock:
            if not self._claim():
                return
            connection = self._connection
            if connection is not None:
                shutdown_socket(connection)  # a reader blocked in another thread wakes at once
        self.response.close()
        if connection is not None:
            connection.close()
        if self._pool is not None:
            self._pool._put_conn(None)

    def abandon(self) -> None:
        """``close`` for finalizers: no lock is taken, and the pool slot is given back by the
        transport's next call."""
        if not self._claim():
            return
        connection = self._connection
        if connection is not None:
            shutdown_socket(connection)
            connection.close()
        if self._pool is not None:
            self._transport._orphaned_pools.append(self._pool)


class _RedactSecrets(logging.Filter):
    """urllib3 logs each request's URL at DEBUG, query string included, and a manifest may put
    the key there (auth type ``query``). Its records are made in the calling thread, during
    our attempt, so the attempt's secrets are at hand to take out."""

    def filter(self, record: logging.LogRecord) -> bool:
        attempt = _current_attempt()
        if attempt is not None and attempt.secrets:
            record.msg = redact(record.getMessage(), attempt.secrets)
            record.args = None
        return True


_URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry")


def _redact_urllib3_logs() -> None:
    for name in _URLLIB3_LOGGERS:
        target = logging.getLogger(name)
        if not any(isinstance(existing, _RedactSecrets) for existing in target.filters):
            target.addFilter(_RedactSecrets())


def _dropped_before_response(failure: BaseException) -> bool:
    """True when the failure is a closed or reset connection before any byte of a response."""
    seen: set[int] = set()
    pending: list[Any] = [failure]
    while pending:
        exc = pending.pop()
        if not isinstance(exc, BaseException) or id(exc) in seen:
            continue
        seen.add(id(exc))
        if isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                            ConnectionAbortedError)):
            return True
        if isinstance(exc, (requests.exceptions.Timeout, socket.timeout)):
            return False
        pending.extend(arg for arg in exc.args if isinstance(arg, BaseException))
        pending.extend(e for e in (exc.__cause__, exc.__context__) if e is not None)
    return False


def _transport_error(failure: BaseException | None, attempt: _Attempt, prepared: Prepared,
                     what: str) -> AiLibError:
    if attempt.late:
        return APITimeoutError(f"no complete response within {attempt.seconds:g}s")
    if isinstance(failure, requests.exceptions.Timeout) or "timed out" in str(failure).lower():
        return APITimeoutError(_describe(failure, "timed out"), secrets=prepared.secrets)
    return APIConnectionError(_describe(failure, what), secrets=prepared.secrets)


def _aborted() -> bool:
    scope = current_scope()
    return scope is not None and scope.aborted.is_set()


def _observe(response: requests.Response, error: AiLibError | None) -> None:
    scope = current_scope()
    if scope is not None and scope.on_response is not None:
        scope.on_response(response.status_code, response.headers, error)


def _keep_headers(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request


def _raw_chunks(response: requests.Response) -> Iterator[bytes]:
    """Body chunks as they arrive. Returns urllib3's own iterator (no generator layer of ours:
    this sits on the per-delta hot path of every stream)."""
    raw = response.raw
    if getattr(raw, "chunked", False) and raw.supports_chunked_reads():
        return raw.read_chunked(decode_content=True)
    read1 = getattr(raw, "read1", None)
    if read1 is None:  # urllib3 < 2
        return raw.stream(1024, decode_content=True)
    return iter(lambda: read1(65536, decode_content=True), b"")


def _guarded_bytes(response: requests.Response, secrets: tuple[str, ...],
                   on_chunk: Callable[[], None] | None) -> Iterator[bytes]:
    import urllib3.exceptions

    error: AiLibError | None = None
    try:
        for chunk in _raw_chunks(response):
            if on_chunk is not None:
                on_chunk()
            if chunk:
                yield chunk
    except (TimeoutError, urllib3.exceptions.ReadTimeoutError, requests.exceptions.Timeout) as exc:
        error = APITimeoutError(_describe(exc, "the stream went idle"), secrets=secrets)
    except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException, OSError,
            http.client.HTTPException) as exc:
        error = StreamInterruptedError(_describe(exc, "the stream broke off"), secrets=secrets)
    if error is not None:
        raise error  # outside the except block: nothing chained as __context__


def _describe(exc: BaseException, what: str) -> str:
    detail = str(exc)
    return f"{what}: {type(exc).__name__}: {detail[:300]}" if detail else what
