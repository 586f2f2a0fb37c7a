"""Chat requests over a Dask collection, one rate budget for the whole cluster.

    from ai_lib_sync.integrations.dask import map_chat
    records = map_chat(bag, model="openai/gpt-4o-mini", rpm=5000, tpm=2_000_000, temperature=0)
    records.to_dataframe().to_parquet(...)

``collection`` is a ``dask.bag.Bag`` of requests (prompt strings, or OpenAI-style dicts with an
optional ``custom_id``): the result is a Bag of records, one dict per request in the same order
(``integrations.records``: content, finish_reason, prompt/completion/total tokens, cost_usd,
error kind, error_message, custom_id). Or a ``dask.dataframe`` Series of prompts: the result is
a dask DataFrame of those records with the Series' index. Lazy, like any Dask collection.

In each worker process one ``AiClient`` per (model, client_options) is made on first use and
reused by every partition that process runs (a process-level cache); a partition runs on a
``BatchExecutor`` of ``threads`` threads over it. ``estimate`` replaces the executor's token
estimator (a picklable callable). Extra keyword arguments (``temperature``, ``max_tokens``,
...) apply to every request.

The limit (``rpm``, ``tpm``) holds across all workers. ``limiter=`` chooses where the budget lives:

- ``"actor"`` (default with a ``distributed`` client): a small Dask actor on one worker holds
  the budget; every admission is one actor call. Nothing to run beside Dask.
- ``"redis://HOST:PORT/DB"`` / ``"sqlite:///PATH"``: the shared backends of
  ``RateLimiter(backend=...)`` (``batch.shared_limits``); SQLite only when every worker is on
  one machine. Also the default (a temporary SQLite file) without a distributed client, where
  Dask's own schedulers run on one machine.

Both were measured (``benchmarks/scale_bench.py``, RESULTS.md section 7; LocalCluster of 2
workers, a rolling limit of 80 requests/s). Both stayed under the limit and used most of it: the
actor 0.959 of it with 0.41% of attempts rejected, Redis 0.973 with 0.58%. The actor stays the
default because it works on any cluster with nothing else to run. Pass ``limiter="redis://..."``
where a Redis is at hand, or when many workers make one actor a bottleneck: each admission and
each settlement is one actor call.

Dask is imported only here (extra ``[dask]``); without it ``map_chat`` raises
``ConfigurationError`` naming the extra.

On CPython 3.11 before 3.11.9 a worker process can deadlock for good when Dask's statistical
profiler (``sys._current_frames()`` every 10 ms) meets the garbage collector while threads
start and stop (python/cpython#116969, dask/distributed#8616), which is what a partition's
thread pool does. We hit it in the benchmark under load: a worker stopped mid-run with every
thread parked. On those interpreters each worker that runs ``map_chat`` stops its profiler
once (a diagnostic only) and logs a warning; upgrading Python removes the need.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigurationError
from .records import DTYPES, FIELDS, record, with_options

logger = logging.getLogger(__name__)

_LOCK = threading.Lock()
_PROFILER_STOPPED: set[int] = set()  # pids whose Dask profiler we stopped
# The interpreters with the profiler/GC deadlock (fixed in 3.11.9 by gh-106883's backport).
_PROFILER_DEADLOCKS = sys.implementation.name == "cpython" and (3, 11) <= sys.version_info[:3] < (3, 11, 9)
_CLIENTS: dict[tuple[Any, ...], Any] = {}  # per worker process: reused across partitions
_LIMITERS: dict[tuple[Any, ...], Any] = {}


def _dask() -> Any:
    try:
        import dask
        import dask.bag
    except ImportError:
        raise ConfigurationError("map_chat needs Dask: pip install 'ai-lib-sync[dask]'") from None
    return dask


class BudgetActor:
    """The cluster's budget, on one worker: the in-process arithmetic of ``shared_limits``
    (``step``) behind three methods. Dask runs an actor's methods one at a time."""

    def __init__(self, request_interval: float, tolerance: float, token_interval: float) -> None:
        self.intervals = (request_interval, tolerance, token_interval)
        self.state = (0.0, 0.0, 0.0)

    def reserve(self, tokens: int) -> float:
        from ..batch.shared_limits import step

        wait, self.state = step(self.state, time.time(), tokens, *self.intervals)
        return wait

    def adjust(self, tokens: int) -> None:
        request_tat, token_tat, hold_until = self.state
        self.state = (request_tat, token_tat + tokens * self.intervals[2], hold_until)

    def hold(self, seconds: float) -> None:
        request_tat, token_tat, hold_until = self.state
        self.state = (request_tat, token_tat, max(hold_until, time.time() + seconds))


class ActorBudget:
    """A ``RateLimiter`` backend that asks the cluster's ``BudgetActor`` (every call bounded)."""

    def __init__(self, actor: Any, timeout: float = 10.0) -> None:
        self.actor = actor
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"ActorBudget({getattr(self.actor, 'key', '?')!r})"

    def bind(self) -> ActorBudget:
        """A copy whose actor handle talks through this worker (call it in a task): the
        executor's threads are not Dask task threads, where an unbound handle finds no worker."""
        from distributed import get_worker
        from distributed.actor import Actor

        cls, address, key = self.actor.__reduce__()[1]
        return ActorBudget(Actor(cls, address, key, worker=get_worker()), self.timeout)

    def _call(self, name: str, *args: Any) -> Any:
        from ..batch.shared_limits import LimiterBackendError

        try:
            return getattr(self.actor, name)(*args).result(timeout=self.timeout)
        except Exception as exc:  # the actor's worker died, or the call timed out
            raise LimiterBackendError(f"rate-limit actor: {type(exc).__name__}: {exc}") from None

    def reserve(self, tokens: int) -> float:
        return float(self._call("reserve", tokens))

    def adjust(self, tokens: int) -> None:
        from ..batch.shared_limits import _quietly

        _quietly(lambda: self._call("adjust", tokens), "reconcile tokens")

    def hold(self, seconds: float) -> None:
        from ..batch.shared_limits import _quietly

        _quietly(lambda: self._call("hold", seconds), "record a hold")

    def close(self) -> None:
        pass


class _Plan:
    """Everything a partition needs, small and picklable (sent with every task)."""

    def __init__(self, model: str | None, client_options: Mapping[str, Any], rpm: float | None,
                 tpm: float | None, budget: Any, budget_key: str, threads: int,
                 request_options: Mapping[str, Any], estimate: Any = None) -> None:
        self.model = model
        self.client_options = dict(client_options)
        self.rpm, self.tpm = rpm, tpm
        self.budget = budget  # a backend URL or an ActorBudget
        self.budget_key = budget_key
        self.threads = threads
        self.request_options = dict(request_options)
        self.estimate = estimate

    def client(self) -> Any:
        from ..client import AiClient

        key = (self.model, repr(sorted(self.client_options.items())))
        with _LOCK:
            client = _CLIENTS.get(key)
            if client is None:
                options = {"pool_maxsize": self.threads, **self.client_options}
                client = _CLIENTS[key] = AiClient(self.model, **options)
        return client

    def limiter(self) -> Any:
        from ..batch import RateLimiter

        key = (self.budget_key, self.rpm, self.tpm)
        with _LOCK:
            limiter = _LIMITERS.get(key)
            if limiter is None:
                budget = self.budget.bind() if isinstance(self.budget, ActorBudget) else self.budget
                limiter = _LIMITERS[key] = RateLimiter(self.rpm, self.tpm, backend=budget)
        return limiter

    def run(self, items: list[Any]) -> list[dict[str, Any]]:
        from ..batch import BatchExecutor

        if _PROFILER_DEADLOCKS:
            _stop_worker_profiler()
        client = self.client()
        requests = [with_options(item, self.request_options) for item in items]
        limiter = self.limiter() if (self.rpm or self.tpm) else None
        extra = {"estimate": self.estimate} if self.estimate is not None else {}
        with BatchExecutor(self.threads, client=client, limiter=limiter, **extra) as executor:
            return [record(result, client) for result in executor.run(requests)]


def _stop_worker_profiler() -> None:
    """Stop this worker's statistical profiler, once per process (see the module docstring)."""
    with _LOCK:
        if os.getpid() in _PROFILER_STOPPED:
            return
        _PROFILER_STOPPED.add(os.getpid())
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not in a distributed worker: no profiler thread
        return
    callbacks = [worker.periodic_callbacks.get(name) for name in ("profile", "profile-cycle")]
    callbacks = [callback for callback in callbacks if callback is not None and callback.is_running()]
    if not callbacks:
        return
    stopped = threading.Event()

    def stop() -> None:  # on the worker's event loop, where its callbacks run
        for callback in callbacks:
            callback.stop()
        stopped.set()

    worker.loop.add_callback(stop)
    stopped.wait(10.0)
    logger.warning("ai_lib_sync map_chat: stopped the Dask profiler of worker %s: on Python %s it can "
                   "deadlock the worker (python/cpython#116969); Python 3.11.9 or newer needs no such step",
                   worker.address, sys.version.split()[0])


def _bag_partition(items: Any, plan: _Plan) -> list[dict[str, Any]]:
    return plan.run(list(items))


def _series_partition(series: Any, plan: _Plan) -> Any:
    import pandas

    rows = plan.run(series.tolist())
    return pandas.DataFrame(rows, columns=list(FIELDS), index=series.index).astype(DTYPES)


def _distributed_client() -> Any:
    try:
        from distributed import get_client
    except ImportError:
        return None
    try:
        return get_client()
    except ValueError:  # no client in this process
        return None


def map_chat(collection: Any, *, model: str | None = None, rpm: float | None = None,
             tpm: float | None = None, client_options: Mapping[str, Any] | None = None,
             limiter: str | None = None, threads: int = 16, estimate: Any = None,
             **request_options: Any) -> Any:
    """Run every request of a Bag (or prompt of a Series) and return their records, lazily.
    See the module docstring."""
    dask = _dask()
    if model is None:
        raise ConfigurationError("map_chat needs model='provider/model'")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigurationError(f"threads must be a whole number >= 1, got {threads!r}")
    for name, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None and (isinstance(value, bool) or not value > 0):
            raise ConfigurationError(f"{name} must be a positive number or None, got {value!r}")
    budget, budget_key = _budget(limiter, rpm, tpm)
    plan = _Plan(model, client_options or {}, rpm, tpm, budget, budget_key, threads, request_options, estimate)
    if isinstance(collection, dask.bag.Bag):
        return collection.map_partitions(_bag_partition, plan)
    try:
        import dask.dataframe as dd
    except ImportError:
        dd = None
    if dd is not None and isinstance(collection, dd.Series):
        import pandas

        meta = pandas.DataFrame({name: pandas.Series(dtype=dtype) for name, dtype in DTYPES.items()})
        return collection.map_partitions(_series_partition, plan, meta=meta)
    raise ConfigurationError(f"map_chat takes a dask.bag.Bag or a dask.dataframe Series, "
                             f"got {type(collection).__name__}")


def _budget(limiter: str | None, rpm: float | None, tpm: float | None) -> tuple[Any, str]:
    """Where the cluster's budget lives: (a backend for ``RateLimiter``, a key naming it)."""
    if not (rpm or tpm):
        return None, ""
    run = uuid.uuid4().hex[:12]  # one budget per map_chat call, unless the URL names one
    if limiter is None or limiter == "actor":
        client = _distributed_client()
        if client is not None:
            request_interval = 60.0 / rpm if rpm else 0.0
            token_interval = 60.0 / tpm if tpm else 0.0
            actor = client.submit(BudgetActor, request_interval, 0.0, token_interval, actor=True,
                                  pure=False).result(timeout=60)
            return ActorBudget(actor), f"actor:{run}"
        if limiter == "actor":
            raise ConfigurationError('limiter="actor" needs a distributed client (distributed.Client)')
        path = os.path.join(tempfile.gettempdir(), f"ai-lib-sync-limits-{run}.db")
        limiter = f"sqlite:///{path}"
    if not isinstance(limiter, str) or not limiter.startswith(("sqlite:///", "redis://", "rediss://", "unix://")):
        raise ConfigurationError(f'limiter must be "actor", "sqlite:///PATH" or "redis://HOST:PORT/DB", '
                                 f"got {limiter!r}")
    if "name=" not in limiter:
        limiter += ("&" if "?" in limiter else "?") + f"name=map-chat-{run}"
    return limiter, limiter
