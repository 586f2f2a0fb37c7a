"""The only module that touches the network.

One ``requests.Session`` per client owns the connection pool. Every call is bounded in time:
connect and read timeouts on each attempt, a total deadline on non-streamed bodies, and an
idle timeout between stream events. Retries use tenacity with exponential backoff and jitter,
honour ``retry-after-ms``/``Retry-After`` up to a cap, and are counted for ``CallStats``.
The transport knows no provider: it sends prepared requests and frames streams as told.
"""

from __future__ import annotations

import email.utils
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import ProxyManager

from .errors import AiLibError, APIConnectionError, APITimeoutError, StreamInterruptedError, redact
from .framing import FRAMERS

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
            _shutdown(connection)

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


def _shutdown(connection: HTTPConnection) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _pause(seconds: float) -> None:
    """Sleep, but wake at once when the current scope is aborted."""
    scope = current_scope()
    if scope is None:
        time.sleep(seconds)
    elif scope.aborted.wait(seconds):
        scope.check()


class _ScopedMixin:
    """Registers each connection with the thread's scope, so ``abort()`` can reach its socket."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        scope = current_scope()
        if scope is not None:
            scope.track(self)  # type: ignore[arg-type]
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        scope = current_scope()
        if scope is not None and scope.aborted.is_set():  # aborted while we were connecting
            _shutdown(self)  # type: ignore[arg-type]
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

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if isinstance(manager, ProxyManager):  # SOCKS managers keep their own pools
            manager.pool_classes_by_scheme = _SCOPED_POOLS
        return manager


class Transport:
    """Owns the session; thread-safe (requests' pool is; our state is set once under a lock)."""

    def __init__(self, timeouts: Timeouts | None = None, retry: RetryPolicy | None = None,
                 pool_maxsize: int = 64) -> None:
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self.pool_maxsize = pool_maxsize
        self._session: requests.Session | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def session(self) -> requests.Session:
        session = self._session
        if session is None:
            with self._lock:
                if self._closed:
                    from .errors import ConfigurationError

                    raise ConfigurationError("this client is closed")
                if self._session is None:
                    session = requests.Session()
                    # Retries are ours; urllib3 must not retry behind our back.
                    adapter = self._adapter()
                    session.mount("http://", adapter)
                    session.mount("https://", adapter)
                    # Keep proxy and CA settings from the environment, but never let a
                    # ~/.netrc entry replace the provider's auth header: a no-op auth object
                    # makes requests skip its netrc lookup.
                    session.trust_env = True
                    session.auth = _keep_headers
                    self._session = session
                session = self._session
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
            if session is not None:
                old = session.get_adapter("http://")
                adapter = self._adapter()
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                old.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            session, self._session = self._session, None
        if session is not None:
            session.close()

    # --- one attempt -------------------------------------------------------------------

    def _send(self, prepared: Prepared, stream: bool) -> requests.Response:
        if prepared.sign is not None:
            prepared.sign(prepared)
        timeouts = self.timeouts
        read = timeouts.stream_idle if stream else min(timeouts.read, timeouts.total)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s", prepared.method, prepared.log_url or redact(prepared.url, prepared.secrets))
        try:
            response = self.session.request(
                prepared.method, prepared.url, data=prepared.body, headers=prepared.headers,
                timeout=(timeouts.connect, read), stream=True, allow_redirects=False,
            )
        except requests.exceptions.Timeout as exc:
            raise APITimeoutError(_describe(exc, "timed out"), secrets=prepared.secrets) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise APIConnectionError(_describe(exc, "connection failed"), secrets=prepared.secrets) from None
        except requests.exceptions.RequestException as exc:
            raise APIConnectionError(_describe(exc, "request failed"), secrets=prepared.secrets) from None
        if response.status_code >= 400:
            body = self._read_body(response, time.monotonic() + timeouts.total, prepared, limit=1 << 20)
            error = prepared.make_error(response.status_code, response.headers, body)
            if error.retry_after is None:
                error.retry_after = parse_retry_after(response.headers)
            if response.status_code not in self.retry.statuses and error.kind not in ("rate_limited", "overloaded"):
                error.retryable = False
            _observe(response, error)
            raise error
        _observe(response, None)
        return response

    def _read_body(self, response: requests.Response, deadline: float, prepared: Prepared,
                   limit: int | None = None) -> bytes:
        chunks = []
        size = 0
        try:
            for chunk in response.iter_content(65536):
                chunks.append(chunk)
                size += len(chunk)
                if time.monotonic() > deadline:
                    response.close()
                    raise APITimeoutError(f"no complete response within {self.timeouts.total:g}s")
                if limit is not None and size >= limit:
                    response.close()
                    break
        except requests.exceptions.RequestException as exc:
            response.close()
            kind = APITimeoutError if "timed out" in str(exc).lower() else APIConnectionError
            raise kind(_describe(exc, "the response broke off"), secrets=prepared.secrets) from None
        return b"".join(chunks)

    # --- with retries ------------------------------------------------------------------

    def call(self, prepared: Prepared) -> tuple[requests.Response, bytes, int]:
        """Send and read a whole body. Returns (response, body, retries)."""
        return self.with_retries(lambda: self._attempt(prepared))

    def _attempt(self, prepared: Prepared) -> tuple[requests.Response, bytes]:
        deadline = time.monotonic() + self.timeouts.total
        response = self._send(prepared, stream=False)
        return response, self._read_body(response, deadline, prepared)

    def with_retries(self, attempt: Callable[[], Any]) -> Any:
        """Run ``attempt``; on a retryable error, retry it through tenacity.

        The first try runs outside tenacity so the common, successful call pays nothing for it.
        Returns ``attempt()``'s result with the retry count appended.
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

    def open_stream(self, prepared: Prepared) -> requests.Response:
        return self._send(prepared, stream=True)

    def frames(self, response: requests.Response, framing: str, secrets: tuple[str, ...] = (),
               on_chunk: Callable[[], None] | None = None) -> Iterator[tuple[str | None, Any]]:
        """Frames of a streamed body. Network failures become typed errors; ``on_chunk`` runs
        for every byte chunk so the caller can enforce its event-idle deadline."""
        return FRAMERS[framing](_guarded_bytes(response, secrets, on_chunk))


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
    return iter(lambda: read1(65536), b"")


def _guarded_bytes(response: requests.Response, secrets: tuple[str, ...],
                   on_chunk: Callable[[], None] | None) -> Iterator[bytes]:
    import urllib3.exceptions

    try:
        for chunk in _raw_chunks(response):
            if on_chunk is not None:
                on_chunk()
            if chunk:
                yield chunk
    except (urllib3.exceptions.ReadTimeoutError, requests.exceptions.Timeout) as exc:
        raise APITimeoutError(_describe(exc, "the stream went idle"), secrets=secrets) from None
    except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException, OSError) as exc:
        raise StreamInterruptedError(_describe(exc, "the stream broke off"), secrets=secrets) from None


def _describe(exc: BaseException, what: str) -> str:
    detail = str(exc)
    return f"{what}: {type(exc).__name__}: {detail[:300]}" if detail else what
