"""``BatchExecutor``: many chat requests on a bounded thread pool over the blocking client.

Threads because the client blocks and is thread-safe, HTTP waits release the GIL, and the
code that runs batches (scripts, notebooks, Django and Flask) is synchronous. What this adds
over a plain ``ThreadPoolExecutor``:

- input pulled lazily: at most ``max_in_flight`` requests started and not finished, and at
  most ``max_buffered`` finished results waiting to be returned, so a generator of ten million
  prompts runs in flat memory, and ordered output (``map``, ``run``) keeps every worker busy
  while an early item retries: later results wait in the buffer, the pool does not;
- per-item results: a ``ChatResponse`` or the ``AiLibError`` that item ended with (or raise
  on the first error with ``raise_on_error=True``);
- client-side limits shared by all workers (``limits.RateLimiter``: rpm, tpm, concurrency
  cap, holds while the provider says so);
- progress with retries and throttled time (tqdm or a callback), checkpoint/resume
  (``checkpoint.Checkpoint``);
- prompt cancellation: ``shutdown(cancel=True)``, leaving ``with`` on an exception, or Ctrl-C
  cancels queued work and aborts in-flight HTTP calls (``transport.CallScope``) and joins the
  workers; ``run`` then hands back every item, unfinished ones marked (``UnfinishedError``).

Requests may be builders (``client.chat().user(p)``), plain prompt strings, message lists,
``ChatRequest`` objects (these three use the default client: ``client=`` or ``model=``), or
OpenAI-style dicts: ``{"model": "provider/model", "messages": [...], "temperature": ...}``.
A dict's ``model`` is optional (default client) and must be a full ``provider/model`` id unless
it names the default client's model; the unified fields (temperature, top_p, max_tokens or
max_completion_tokens, stop, tools, tool_choice, response_format) go through the builder's
checks, ``custom_id`` is the caller's own label (never sent: it comes back as
``result.custom_id`` on the response or error, and in checkpoint rows), any other key is sent
as a raw provider field, and ``"stream": true`` is refused. An ``AiLibError`` given as an item
stands for an input that could not be parsed: it becomes that item's result.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from ..client import AiClient, ChatBuilder
from ..errors import AiLibError, APIConnectionError, ConfigurationError, InvalidRequestError
from ..transport import CallScope
from ..types import CallStats, ChatRequest, ChatResponse, Message
from .checkpoint import Checkpoint, request_key
from .limits import LimiterCancelled, RateLimiter, estimate_tokens
from .progress import BatchProgress, ProgressCallback, ProgressTracker

logger = logging.getLogger("ai_lib_sync")

_DICT_FIELDS = ("temperature", "top_p", "max_tokens", "stop", "tools", "tool_choice", "response_format")

Result = ChatResponse | AiLibError
_POLL = 0.1  # seconds between checks for Ctrl-C while the caller's thread waits


class UnfinishedError(APIConnectionError):
    """The result of an item a cut-short run did not finish (Ctrl-C, ``shutdown(cancel=True)``,
    or a worker that did not stop in time). Its kind is ``connection`` (the call was cut off,
    as the transport reports an aborted call), it is retryable, and ``unfinished`` is True, so
    ``result.content if not isinstance(result, Exception) else result.kind`` stays safe."""

    unfinished = True

    def __init__(self, message: str = "not finished: the batch was interrupted before this item completed",
                 **kwargs: Any) -> None:
        super().__init__(message, retryable=True, **kwargs)


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``run``, re-raised after cleanup (workers joined, in-flight calls
    aborted, checkpoint flushed). ``results`` holds what ``run`` would have returned."""

    def __init__(self, results: BatchResults) -> None:
        super().__init__("batch interrupted")
        self.results = results


class BatchResults(list):
    """What ``run`` returns: one entry per input item, in input order, each a ``ChatResponse`` or
    an ``AiLibError``. When the run was cut short, ``interrupted`` is True and items that did
    not finish are ``UnfinishedError``s (``unfinished`` lists their indices)."""

    interrupted: bool = False

    @property
    def errors(self) -> list[tuple[int, AiLibError]]:
        return [(index, value) for index, value in enumerate(self) if isinstance(value, AiLibError)]

    @property
    def unfinished(self) -> list[int]:
        return [index for index, value in enumerate(self) if isinstance(value, UnfinishedError)]


class _Job:
    __slots__ = ("index", "run", "client", "request", "key", "tokens", "scope", "future", "cancelled",
                 "custom_id", "limited_at")

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
        self.custom_id: Any = None
        self.limited_at: float | None = None  # when this job's last 429 arrived


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


def _tag(result: Any, custom_id: Any) -> Any:
    if custom_id is not None:
        result.custom_id = custom_id
    return result


class BatchExecutor:
    """Runs chat requests on ``max_workers`` threads. See the module docstring for the request
    forms. Options:

    - ``client`` / ``model``: the default client (``model`` creates one the executor owns and
      closes); ``client_options`` are passed to every client the executor creates.
    - ``rpm``, ``tpm``, ``max_concurrent``, ``burst``, ``adaptive``: client-side limits (or pass
      a shared ``limiter=RateLimiter(...)``); ``estimate=`` replaces the token estimator.
    - ``progress=True`` draws a bar (tqdm when installed, else a stderr line);
      ``on_progress=callback`` (or ``progress=callback``) gets a ``BatchProgress`` (done,
      failed, retries, throttled seconds, tokens, cost) after each item, from a worker thread.
    - ``checkpoint=path`` appends each finished item to a JSONL file; ``resume=True`` skips the
      items that file shows succeeded with the same request (``checkpoint.Checkpoint``), and
      counts their tokens and cost in the progress; without ``resume`` an existing file is
      started over. ``checkpoint_raw=True`` also stores each raw provider response.
    - ``raise_on_error=True``: the first failure cancels the rest and is raised.
    - ``max_in_flight``: requests started and not yet finished (default ``2 * max_workers``);
      ``max_buffered``: finished results held until earlier items are returned in order
      (default ``64 * max_workers``). Memory is bounded by their sum.
    - ``on_interrupt``: what ``run`` does on Ctrl-C, after cancelling queued items, aborting
      in-flight calls, joining the workers and flushing the checkpoint. ``"raise"`` (default)
      re-raises it as ``BatchInterrupted`` (a ``KeyboardInterrupt`` whose ``results`` are the
      partial ``BatchResults``), so a script with several batches stops as Ctrl-C should;
      ``"return"`` returns those results instead. Either way unfinished items are
      ``UnfinishedError`` (kind ``connection``), never None.
    """

    def __init__(self, max_workers: int = 8, *, client: AiClient | None = None, model: str | None = None,
                 rpm: float | None = None, tpm: float | None = None, max_concurrent: int | None = None,
                 burst: int = 1, adaptive: bool = True, limiter: RateLimiter | None = None,
                 progress: bool | ProgressCallback = False, on_progress: ProgressCallback | None = None,
                 checkpoint: str | os.PathLike[str] | None = None, resume: bool = False,
                 checkpoint_raw: bool = False, raise_on_error: bool = False,
                 max_in_flight: int | None = None, max_buffered: int | None = None,
                 on_interrupt: str = "raise",
                 estimate: Callable[[ChatRequest], int] = estimate_tokens,
                 client_options: Mapping[str, Any] | None = None) -> None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ConfigurationError(f"max_workers must be a whole number >= 1, got {max_workers!r}")
        for name, value in (("max_in_flight", max_in_flight), ("max_buffered", max_buffered)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigurationError(f"{name} must be a whole number >= 1, got {value!r}")
        if on_interrupt not in ("raise", "return"):
            raise ConfigurationError(f'on_interrupt must be "raise" or "return", got {on_interrupt!r}')
        self.max_workers = max_workers
        self.max_in_flight = max_in_flight or 2 * max_workers
        self.max_buffered = max_buffered or 64 * max_workers
        self.on_interrupt = on_interrupt
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
        self._checkpoint = Checkpoint(checkpoint, resume, checkpoint_raw) if checkpoint is not None else None
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
        """Results in input order, pulled lazily; leaving the loop early cancels the rest.
        Ctrl-C propagates out of the loop (after the same cleanup as ``run``)."""
        for _, value in self._new_run(requests, ordered=True):
            yield value

    def as_completed(self, requests: Iterable[Any]) -> Iterator[tuple[int, Result]]:
        """``(input index, result)`` pairs in completion order, pulled lazily."""
        yield from self._new_run(requests, ordered=False)

    def run(self, requests: Iterable[Any]) -> BatchResults:
        """All results in input order.

        Cut short by ``shutdown(cancel=True)`` from another thread, it returns every item with
        ``interrupted`` set, unfinished ones as ``UnfinishedError``. Cut short by Ctrl-C, it
        cancels the rest of the batch, waits for the workers, then raises ``BatchInterrupted``
        (a ``KeyboardInterrupt`` carrying those ``results``), or returns them when the executor
        was made with ``on_interrupt="return"``."""
        results = BatchResults()
        run = self._new_run(requests, ordered=True)
        try:
            for _, value in run:
                results.append(value)
        except (KeyboardInterrupt, CancelledError) as exc:
            if isinstance(exc, KeyboardInterrupt):
                logger.warning("batch interrupted: cancelling the rest of it")
                self._cancel_jobs(run)
            results.interrupted = True
            results.extend(run.leftovers())
            total = run.total
            if total is not None and len(results) < total:
                results.extend(UnfinishedError() for _ in range(total - len(results)))
            if isinstance(exc, KeyboardInterrupt) and self.on_interrupt == "raise":
                raise BatchInterrupted(results) from None
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
        if isinstance(item, Mapping) and "custom_id" in item:
            item = dict(item)
            job.custom_id = item.pop("custom_id")
        try:
            if isinstance(item, AiLibError):
                raise item
            client, request = self.resolve(item)
        except AiLibError as error:
            job.future = Future()
            job.future.set_exception(_tag(error, job.custom_id))
            self._finished(job, error, None)
            return job
        job.client, job.request = client, request
        if run is not None and self._checkpoint is not None:
            job.key = request_key(client.model_id, request)
            restored = self._checkpoint.restore(index, job.key)  # type: ignore[arg-type]
            if restored is not None:
                job.future = Future()
                job.future.set_result(_tag(restored[0], job.custom_id))
                run.tracker.update(True, restored[1], resumed=True)
                return job
        if self.limiter.tpm:
            job.tokens = self._estimate(request)
        job.scope = CallScope(on_response=self._observer(client, job))
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
        tracker = job.run.tracker if job.run is not None else None

        def readmit() -> None:
            """Before each transport retry: count it, and queue again behind the pool's limits."""
            if tracker is not None:
                waited = time.monotonic() - job.limited_at if job.limited_at is not None else 0.0
                tracker.retried(waited)
            job.limited_at = None
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
            self._finished(job, _tag(error, job.custom_id), None)
            raise
        except BaseException:
            permit[0].release()
            raise
        permit[0].release(stats.total_tokens or None)
        self._finished(job, _tag(response, job.custom_id), stats)
        return response

    def _admit(self, job: _Job) -> Any:
        try:
            permit = self.limiter.acquire(job.tokens, job.scope.aborted)  # type: ignore[union-attr]
        except LimiterCancelled:
            raise CancelledError() from None
        if permit.waited and job.run is not None:
            job.run.tracker.throttled(permit.waited)
        return permit

    def _finished(self, job: _Job, result: Result, stats: CallStats | None) -> None:
        run = job.run
        if run is None:
            return
        ok = isinstance(result, ChatResponse)
        if self._checkpoint is not None and job.index is not None:
            self._checkpoint.record(job.index, job.key, result, stats, job.custom_id)
        run.tracker.update(ok, stats)
        if not ok and self.raise_on_error:
            run.fail(result)  # type: ignore[arg-type]

    def _cancel_jobs(self, run: _Run) -> None:
        with self._lock:
            jobs = [job for job in self._live if job.run is run]
        _cancel(jobs)
        self.limiter.interrupt()

    # --- requests and clients ----------------------------------------------------------------

    def resolve(self, item: Any) -> tuple[Any, ChatRequest]:
        """The client and unified request of one item, in any of the forms ``map`` takes (the
        provider Batch API path normalises its items through here too)."""
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

    def _observer(self, client: Any, job: _Job) -> Callable[..., None]:
        """Every HTTP response of the job: note when a 429 arrived (the retry's wait is
        throttled time), and feed the adaptive limiter."""
        names = self._seen.get(id(client), (None, []))[1]
        limiter = self.limiter if self.limiter.adaptive else None

        def observe(status: int, headers: Mapping[str, str], error: AiLibError | None) -> None:
            if error is not None and error.kind == "rate_limited":
                job.limited_at = time.monotonic()
            if limiter is not None:
                limiter.observe(status, headers, error, names=names)

        return observe


class _Run:
    """One ``run``/``map``/``as_completed`` call: the bounded window of jobs over the input.

    Only the caller's thread touches the window; workers report finished jobs through the
    ``done`` queue. ``running`` counts pulled jobs whose completion the caller has not seen
    yet: new input is pulled while it is below ``max_in_flight`` and the finished results
    waiting for an earlier item stay below ``max_buffered``."""

    def __init__(self, executor: BatchExecutor, source: Iterator[Any], total: int | None,
                 ordered: bool, tracker: ProgressTracker) -> None:
        self.executor = executor
        self.source = source
        self.total = total
        self.ordered = ordered
        self.tracker = tracker
        self.window: deque[_Job] = deque()  # ordered: pulled, not yet returned
        self.ready: deque[_Job] = deque()  # unordered: finished, not yet returned
        self.done: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.running = 0
        self.next_index = 0
        self.exhausted = False
        self.first_error: AiLibError | None = None
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[tuple[int, Result]]:
        try:
            while True:
                self._fill()
                if self.ordered and self.window:
                    job = self.window[0]
                    if not job.future.done():  # type: ignore[union-attr]
                        self._wait()
                        continue
                    self.window.popleft()
                elif not self.ordered and self.ready:
                    job = self.ready.popleft()
                elif self.running:  # finished, but the done callback has not reported it yet
                    self._wait()
                    continue
                elif self.exhausted:
                    return
                else:  # nothing left in flight and no more input will be pulled
                    if self.first_error is not None:
                        raise self.first_error
                    raise CancelledError("the executor was shut down")
                yield job.index, self._outcome(job)  # type: ignore[misc]
        finally:
            self.executor._cancel_jobs(self)  # whatever is still queued or running
            self.tracker.close()

    def _wait(self) -> None:
        """Block until some job finishes (short waits: see _result)."""
        try:
            job = self.done.get(timeout=_POLL)
        except queue.Empty:
            return
        self._seen(job)

    def _drain(self) -> None:
        while True:
            try:
                self._seen(self.done.get_nowait())
            except queue.Empty:
                return

    def _seen(self, job: _Job) -> None:
        self.running -= 1
        if not self.ordered:
            self.ready.append(job)

    def _fill(self) -> None:
        self._drain()
        executor = self.executor
        while not self.exhausted and self.running < executor.max_in_flight:
            buffered = len(self.window) - self.running if self.ordered else len(self.ready)
            if buffered >= executor.max_buffered:
                return
            if self.first_error is not None or executor._cancelled.is_set():
                return
            try:
                item = next(self.source)
            except StopIteration:
                self.exhausted = True
                return
            job = executor._prepare(self.next_index, item, self)
            self.next_index += 1
            self.running += 1
            if self.ordered:
                self.window.append(job)
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

    def leftovers(self) -> list[Result]:
        """After an interruption: the window's results in order, ``UnfinishedError`` where an
        item did not finish. Waits (briefly) for aborted calls to come back, so no worker is
        still writing when the caller gets the results."""
        values: list[Result] = []
        for job in self.window:
            try:  # (not futures.wait: a future cancelled in a shut-down pool never counts as done)
                error = job.future.exception(timeout=5)  # type: ignore[union-attr]
            except (CancelledError, FutureTimeout, AttributeError):
                values.append(_tag(UnfinishedError(), job.custom_id))
                continue
            if error is None:
                values.append(job.future.result())  # type: ignore[union-attr]
            elif isinstance(error, AiLibError) and not job.cancelled:
                values.append(error)
            else:
                values.append(_tag(UnfinishedError(), job.custom_id))
        return values
