"""``BatchExecutor``: many chat requests on a bounded thread pool over the blocking client.

Threads because the client blocks and is thread-safe, HTTP waits release the GIL, and the
code that runs batches (scripts, notebooks, Django and Flask) is synchronous. What this adds
over a plain ``ThreadPoolExecutor``:

- input pulled lazily through a bounded window (``max_in_flight`` requests and finished-but-
  not-yet-returned results), so a generator of ten million prompts runs in flat memory;
- per-item results: a ``ChatResponse`` or the ``AiLibError`` that item ended with (or raise
  on the first error with ``raise_on_error=True``);
- client-side limits shared by all workers (``ratelimit.RateLimiter``: rpm, tpm, concurrency
  cap, slow-down on 429s and low rate-limit headers);
- progress (tqdm or a callback), checkpoint/resume (``checkpoint.Checkpoint``);
- prompt cancellation: ``shutdown(cancel=True)``, leaving ``with`` on an exception, or Ctrl-C in
  ``run`` cancels queued work and aborts in-flight HTTP calls (``transport.CallScope``), joins
  every worker and returns the results so far.

Requests may be builders (``client.chat().user(p)``), plain prompt strings, message lists,
``ChatRequest`` objects (these three use the default client: ``client=`` or ``model=``), or
OpenAI-style dicts: ``{"model": "provider/model", "messages": [...], "temperature": ...}``.
A dict's ``model`` is optional (default client) and must be a full ``provider/model`` id unless
it names the default client's model; the unified fields (temperature, top_p, max_tokens or
max_completion_tokens, stop, tools, tool_choice, response_format) go through the builder's
checks, any other key is sent as a raw provider field, and ``"stream": true`` is refused.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from functools import partial
from typing import Any

from .checkpoint import Checkpoint, request_key
from .client import AiClient, ChatBuilder
from .errors import AiLibError, ConfigurationError, InvalidRequestError
from .progress import BatchProgress, ProgressCallback, ProgressTracker
from .ratelimit import LimiterCancelled, RateLimiter, estimate_tokens
from .transport import CallScope
from .types import CallStats, ChatRequest, ChatResponse, Message

logger = logging.getLogger("ai_lib_sync")

_DICT_FIELDS = ("temperature", "top_p", "max_tokens", "stop", "tools", "tool_choice", "response_format")

Result = ChatResponse | AiLibError
_POLL = 0.1  # seconds between checks for Ctrl-C while the caller's thread waits


class BatchResults(list):
    """What ``run`` returns: one entry per input item, in input order, each a ``ChatResponse`` or
    an ``AiLibError``. When the run was cut short (Ctrl-C, ``shutdown(cancel=True)``),
    ``interrupted`` is True and items that did not finish are None."""

    interrupted: bool = False

    @property
    def errors(self) -> list[tuple[int, AiLibError]]:
        return [(index, value) for index, value in enumerate(self) if isinstance(value, AiLibError)]


class _Job:
    __slots__ = ("index", "run", "client", "request", "key", "tokens", "scope", "future", "cancelled")

    def __init__(self, index: int | None, run: _Run | None) -> None:
        self.index = index
        self.run = run
        self.client: Any = None
        self.request: ChatRequest | None = None
        self.key: str | None = None
        self.tokens = 0
        self.scope: CallScope | None = None
        self.future: Future | None = None
        self.cancelled = False


def _result(future: Future) -> Any:
    """``future.result()`` in short waits. When the kernel hands SIGINT to a worker thread, a
    lock wait without timeout in the main thread is not interrupted and sits through Ctrl-C
    until the future completes; a timed wait returns and lets Python raise KeyboardInterrupt."""
    while True:
        try:
            return future.result(timeout=_POLL)
        except FutureTimeout:
            if future.done():  # the call itself raised a TimeoutError
                raise


def _cancel(jobs: list[_Job]) -> None:
    """Cancel queued jobs first, then abort running ones: the other order lets a worker freed
    by an abort start the next queued job before its turn to be cancelled comes."""
    for job in jobs:
        job.cancelled = True
        if job.future is not None:
            job.future.cancel()
    for job in jobs:
        if job.scope is not None and not (job.future is not None and job.future.cancelled()):
            job.scope.abort()


class BatchExecutor:
    """Runs chat requests on ``max_workers`` threads. See the module docstring for the request
    forms. Options:

    - ``client`` / ``model``: the default client (``model`` creates one the executor owns and
      closes); ``client_options`` are passed to every client the executor creates.
    - ``rpm``, ``tpm``, ``max_concurrent``, ``burst``, ``adaptive``: client-side limits (or pass
      a shared ``limiter=RateLimiter(...)``); ``estimate=`` replaces the token estimator.
    - ``progress=True`` draws a bar (tqdm when installed, else a stderr line);
      ``on_progress=callback`` (or ``progress=callback``) gets a ``BatchProgress`` after each
      item, from a worker thread.
    - ``checkpoint=path`` appends each finished item to a JSONL file; ``resume=True`` skips the
      items that file shows succeeded with the same request (``checkpoint.Checkpoint``);
      without ``resume`` an existing file is started over.
    - ``raise_on_error=True``: the first failure cancels the rest and is raised.
    - ``max_in_flight``: pulled-but-not-yet-returned items (default ``4 * max_workers``).
    """

    def __init__(self, max_workers: int = 8, *, client: AiClient | None = None, model: str | None = None,
                 rpm: float | None = None, tpm: float | None = None, max_concurrent: int | None = None,
                 burst: int = 1, adaptive: bool = True, limiter: RateLimiter | None = None,
                 progress: bool | ProgressCallback = False, on_progress: ProgressCallback | None = None,
                 checkpoint: str | os.PathLike[str] | None = None, resume: bool = False,
                 raise_on_error: bool = False, max_in_flight: int | None = None,
                 estimate: Callable[[ChatRequest], int] = estimate_tokens,
                 client_options: Mapping[str, Any] | None = None) -> None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ConfigurationError(f"max_workers must be a whole number >= 1, got {max_workers!r}")
        if max_in_flight is not None and max_in_flight < 1:
            raise ConfigurationError(f"max_in_flight must be >= 1, got {max_in_flight!r}")
        self.max_workers = max_workers
        self.max_in_flight = max_in_flight or 4 * max_workers
        self.raise_on_error = raise_on_error
        self.limiter = limiter or RateLimiter(rpm, tpm, min(max_concurrent or max_workers, max_workers),
                                              burst=burst, adaptive=adaptive)
        self._estimate = estimate
        self._show_progress = progress is True
        self._on_progress = on_progress or (progress if callable(progress) else None)
        self._client_options = dict(client_options or {})
        self._client = client
        self._model = model
        self._owned: dict[str, AiClient] = {}
        self._seen: dict[int, tuple[Any, list[Mapping[str, str]]]] = {}
        self._lock = threading.Lock()
        self._live: set[_Job] = set()
        self._cancelled = threading.Event()
        self._closed = False
        self._last_run: _Run | None = None
        self._checkpoint = Checkpoint(checkpoint, resume) if checkpoint is not None else None
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="ai-lib-batch")

    def __repr__(self) -> str:
        return f"BatchExecutor(max_workers={self.max_workers}, limiter={self.limiter!r})"

    # --- public API ----------------------------------------------------------------------

    def submit(self, request: Any) -> Future:
        """Start one request; the future's ``result()`` is the ``ChatResponse`` or raises the
        ``AiLibError``. Not limited by ``max_in_flight`` (the caller holds the futures)."""
        self._check_open()
        job = self._prepare(None, request, None)
        assert job.future is not None
        return job.future

    def map(self, requests: Iterable[Any]) -> Iterator[Result]:
        """Results in input order, pulled lazily; leaving the loop early cancels the rest."""
        for _, value in self._new_run(requests, ordered=True):
            yield value

    def as_completed(self, requests: Iterable[Any]) -> Iterator[tuple[int, Result]]:
        """``(input index, result)`` pairs in completion order, pulled lazily."""
        yield from self._new_run(requests, ordered=False)

    def run(self, requests: Iterable[Any]) -> BatchResults:
        """All results in input order. Ctrl-C (or ``shutdown(cancel=True)`` from another
        thread) stops the batch promptly and returns what finished, with ``interrupted`` set."""
        results = BatchResults()
        run = self._new_run(requests, ordered=True)
        try:
            for _, value in run:
                results.append(value)
        except (KeyboardInterrupt, CancelledError) as exc:
            if isinstance(exc, KeyboardInterrupt):
                logger.warning("batch interrupted: cancelling and returning the results so far")
                self.shutdown(cancel=True)
            results.interrupted = True
            results.extend(run.leftovers())
            total = run.total
            if total is not None and len(results) < total:
                results.extend([None] * (total - len(results)))
        return results

    @property
    def progress(self) -> BatchProgress | None:
        """A snapshot of the latest ``run``/``map``/``as_completed`` call."""
        return self._last_run.tracker.state if self._last_run is not None else None

    def shutdown(self, wait: bool = True, *, cancel: bool = False) -> None:
        """Stop accepting work. ``cancel=True`` also cancels queued requests and aborts the ones
        in flight (their HTTP connections are shut down). ``wait`` joins every worker thread."""
        if cancel:
            self._cancelled.set()
            with self._lock:
                jobs = list(self._live)
            _cancel(jobs)
            self.limiter.interrupt()
        self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=cancel)
        if wait:
            with self._lock:
                owned, self._owned = list(self._owned.values()), {}
            for client in owned:
                client.close()
            if self._checkpoint is not None:
                self._checkpoint.close()

    close = shutdown

    def __enter__(self) -> BatchExecutor:
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        self.shutdown(cancel=exc_type is not None)

    # --- jobs ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this BatchExecutor is shut down")

    def _new_run(self, requests: Iterable[Any], ordered: bool) -> _Run:
        self._check_open()
        total = len(requests) if hasattr(requests, "__len__") else None  # type: ignore[arg-type]
        tracker = ProgressTracker(total, self._show_progress, self._on_progress)
        run = _Run(self, iter(requests), total, ordered, tracker)
        self._last_run = run
        return run

    def _prepare(self, index: int | None, item: Any, run: _Run | None) -> _Job:
        """Turn one input item into a job: started on the pool, or already finished (a
        restored checkpoint entry, or an item that is not a valid request)."""
        job = _Job(index, run)
        try:
            client, request = self._resolve(item)
        except AiLibError as error:
            job.future = Future()
            job.future.set_exception(error)
            self._finished(job, error, None)
            return job
        job.client, job.request = client, request
        if run is not None and self._checkpoint is not None:
            job.key = request_key(client.model_id, request)
            restored = self._checkpoint.restore(index, job.key)  # type: ignore[arg-type]
            if restored is not None:
                job.future = Future()
                job.future.set_result(restored[0])
                run.tracker.update(True, restored[1], resumed=True)
                return job
        if self.limiter.tpm:
            job.tokens = self._estimate(request)
        job.scope = CallScope(on_response=self._observer(client))
        with self._lock:
            if self._cancelled.is_set() or self._closed:
                raise CancelledError("the executor was shut down")
            self._live.add(job)
        try:
            job.future = self._pool.submit(self._work, job)
        except BaseException as exc:
            self._forget(job)
            if isinstance(exc, RuntimeError) and self._closed:  # shut down meanwhile
                raise CancelledError("the executor was shut down") from None
            raise
        job.future.add_done_callback(lambda _: self._forget(job))  # also runs when cancelled queued
        return job

    def _forget(self, job: _Job) -> None:
        with self._lock:
            self._live.discard(job)

    def _work(self, job: _Job) -> ChatResponse:
        """Runs on a worker thread: wait for the limiter, call, record."""
        if job.cancelled:
            raise CancelledError()
        permit = [self._admit(job)]

        def readmit() -> None:
            """Before each transport retry: queue again behind the pool's limits."""
            permit[0].release()
            permit[0] = self._admit(job)

        job.scope.before_retry = readmit  # type: ignore[union-attr]
        try:
            with job.scope:  # type: ignore[union-attr]
                response, stats = job.client.execute_request(job.request)
        except AiLibError as error:
            permit[0].release()
            if job.cancelled:
                raise CancelledError() from None
            self._finished(job, error, None)
            raise
        except BaseException:
            permit[0].release()
            raise
        permit[0].release(stats.total_tokens or None)
        self._finished(job, response, stats)
        return response

    def _admit(self, job: _Job) -> Any:
        try:
            return self.limiter.acquire(job.tokens, job.scope.aborted)  # type: ignore[union-attr]
        except LimiterCancelled:
            raise CancelledError() from None

    def _finished(self, job: _Job, result: Result, stats: CallStats | None) -> None:
        run = job.run
        if run is None:
            return
        ok = isinstance(result, ChatResponse)
        if self._checkpoint is not None and job.key is not None:
            self._checkpoint.record(job.index, job.key, result, stats)  # type: ignore[arg-type]
        run.tracker.update(ok, stats)
        if not ok and self.raise_on_error:
            run.fail(result)  # type: ignore[arg-type]

    def _cancel_jobs(self, run: _Run) -> None:
        with self._lock:
            jobs = [job for job in self._live if job.run is run]
        _cancel(jobs)
        self.limiter.interrupt()

    # --- requests and clients ----------------------------------------------------------------

    def _resolve(self, item: Any) -> tuple[Any, ChatRequest]:
        if isinstance(item, ChatBuilder):
            client = item._client
            self._register(client)
            return client, item.build()
        if isinstance(item, str):
            client = self._default_client()
            return client, ChatRequest(model=client.model, messages=[Message.user(item)])
        if isinstance(item, Mapping):
            return self._from_dict(item)
        if isinstance(item, ChatRequest):
            return self._default_client(), item
        if isinstance(item, (list, tuple)):
            client = self._default_client()
            return client, client.chat().messages(item).build()
        raise InvalidRequestError(
            f"a batch item must be a builder (client.chat().user(...)), a prompt string, a message "
            f"list or an OpenAI-style dict, got {type(item).__name__}")

    def _from_dict(self, data: Mapping[str, Any]) -> tuple[Any, ChatRequest]:
        fields = dict(data)
        model = fields.pop("model", None)
        client = self._client_for(model) if model else self._default_client()
        messages = fields.pop("messages", None)
        if not messages:
            raise InvalidRequestError('an OpenAI-style request needs "messages": [{"role": "user", "content": ...}]')
        if fields.pop("stream", False):
            raise InvalidRequestError('batch requests are not streamed: drop "stream"')
        fields.pop("stream_options", None)
        if "max_completion_tokens" in fields and "max_tokens" not in fields:
            fields["max_tokens"] = fields.pop("max_completion_tokens")
        builder = client.chat().messages(messages)
        for name, value in fields.items():
            if value is None:
                continue
            if name in _DICT_FIELDS:
                getattr(builder, name)(value)
            else:
                builder.param(name, value)
        return client, builder.build()

    def _default_client(self) -> Any:
        if self._client is None:
            if self._model is None:
                raise ConfigurationError(
                    "plain prompts, message lists and dicts without \"model\" need a default client: "
                    "BatchExecutor(client=...) or BatchExecutor(model='provider/model')")
            self._client = self._client_for(self._model)
        self._register(self._client)
        return self._client

    def _client_for(self, model: str) -> Any:
        default = self._client
        if default is not None and model in (default.model_id, default.model):
            self._register(default)
            return default
        if "/" not in model:
            raise ConfigurationError(
                f"model {model!r} in a batch item must be 'provider/model' (e.g. 'openai/{model}'); "
                "a bare name is accepted only when it is the default client's model")
        with self._lock:
            client = self._owned.get(model)
            if client is None:
                options = {"pool_maxsize": self.max_workers, **self._client_options}
                client = self._owned[model] = AiClient(model, **options)
        self._register(client)
        return client

    def _register(self, client: Any) -> None:
        """First sight of a client: size its connection pool to the workers, and note which
        headers carry its providers' rate-limit state."""
        if id(client) in self._seen:
            return
        transport = getattr(client, "transport", None)
        if transport is not None:
            transport.ensure_pool_size(self.max_workers)
        bindings = client._bindings() if hasattr(client, "_bindings") else []
        names = [b.manifest.rate_limit_headers for b in bindings if b.manifest.rate_limit_headers]
        with self._lock:
            self._seen.setdefault(id(client), (client, names))

    def _observer(self, client: Any) -> Callable[..., None] | None:
        if not self.limiter.adaptive:
            return None
        return partial(self.limiter.observe, names=self._seen.get(id(client), (None, []))[1])


class _Run:
    """One ``run``/``map``/``as_completed`` call: the bounded window of jobs over the input."""

    def __init__(self, executor: BatchExecutor, source: Iterator[Any], total: int | None,
                 ordered: bool, tracker: ProgressTracker) -> None:
        self.executor = executor
        self.source = source
        self.total = total
        self.ordered = ordered
        self.tracker = tracker
        self.window: deque[_Job] = deque()  # ordered: pulled, not yet returned
        self.pending: set[_Job] = set()  # unordered: pulled, not yet returned
        self.done: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.next_index = 0
        self.exhausted = False
        self.first_error: AiLibError | None = None
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[tuple[int, Result]]:
        try:
            self._fill()
            if self.ordered:
                while self.window:
                    job = self.window[0]
                    value = self._outcome(job)
                    self.window.popleft()
                    self._fill()
                    yield job.index, value  # type: ignore[misc]
            else:
                while self.pending:
                    job = self._next_done()
                    self.pending.discard(job)
                    value = self._outcome(job)
                    self._fill()
                    yield job.index, value  # type: ignore[misc]
        finally:
            _cancel([job for job in (*self.window, *self.pending) if not job.future.done()])  # type: ignore[union-attr]
            self.executor.limiter.interrupt()
            self.tracker.close()

    def _next_done(self) -> _Job:
        while True:  # short waits: see _result
            try:
                return self.done.get(timeout=_POLL)
            except queue.Empty:
                continue

    def _fill(self) -> None:
        limit = self.executor.max_in_flight
        cancelled = self.executor._cancelled
        while not self.exhausted and len(self.window) + len(self.pending) < limit:
            if self.first_error is not None or cancelled.is_set():
                return
            try:
                item = next(self.source)
            except StopIteration:
                self.exhausted = True
                return
            job = self.executor._prepare(self.next_index, item, self)
            self.next_index += 1
            if self.ordered:
                self.window.append(job)
            else:
                self.pending.add(job)
                job.future.add_done_callback(lambda _, job=job: self.done.put(job))  # type: ignore[union-attr]

    def _outcome(self, job: _Job) -> Result:
        if self.first_error is not None:
            raise self.first_error
        try:
            return _result(job.future)  # type: ignore[arg-type]
        except CancelledError:
            if self.first_error is not None:
                raise self.first_error from None
            raise
        except AiLibError as error:
            if self.executor.raise_on_error:
                raise (self.first_error or error) from None
            return error

    def fail(self, error: AiLibError) -> None:
        """raise_on_error: remember the first failure and cancel everything else of this run."""
        with self._lock:
            if self.first_error is not None:
                return
            self.first_error = error
        self.executor._cancel_jobs(self)

    def leftovers(self) -> list[Result | None]:
        """After an interruption: the window's results in order, None where unfinished."""
        values: list[Result | None] = []
        for job in self.window:
            try:  # (not futures.wait: a future cancelled in a shut-down pool never counts as done)
                error = job.future.exception(timeout=5)  # type: ignore[union-attr]
            except (CancelledError, FutureTimeout, AttributeError):
                values.append(None)
                continue
            if error is None:
                values.append(job.future.result())  # type: ignore[union-attr]
            else:
                values.append(error if isinstance(error, AiLibError) else None)
        return values
