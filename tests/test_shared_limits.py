"""RateLimiter(backend=...): one rpm/tpm budget shared by processes (SQLite) and machines (Redis).

Every test that says "another process" uses a second limiter with its own connection to the
store, and the multi-process tests use real processes (fork, after the parent has used the
store: a connection must never cross a fork)."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from ai_lib_sync import BatchExecutor
from ai_lib_sync.batch import RateLimiter
from ai_lib_sync.batch.limits import LimiterCancelled
from ai_lib_sync.batch.shared_limits import LimiterBackendError, redact_url
from ai_lib_sync.errors import ConfigurationError, RateLimitError
from ai_lib_sync.testing import openai_echo

from .redis_server import redis_url  # noqa: F401  (fixture)

HEADERS = {"requests_remaining": "x-ratelimit-remaining-requests",
           "requests_reset": "x-ratelimit-reset-requests"}


@pytest.fixture(params=["sqlite", "redis"])
def backend(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'limits.db'}"
    url = request.getfixturevalue("redis_url")
    import redis

    redis.Redis.from_url(url).flushdb()
    return url


def test_reservation_is_reconciled_with_real_usage_for_every_process(backend):
    one = RateLimiter(tpm=6000, backend=backend)  # 100 tokens a second
    other = RateLimiter(tpm=6000, backend=backend)
    permit = one.acquire(100)
    assert 0.8 < other.try_acquire(100) <= 1.0  # the estimate is spent for everyone
    permit.release(actual_tokens=10)  # the reply used less: 90 tokens come back
    assert other.try_acquire(100) <= 0.15
    more = other.acquire(100)
    more.release(actual_tokens=300)  # and used more than estimated: 200 more are owed
    assert 2.5 < one.try_acquire(100) <= 3.1


def test_requests_per_minute_are_shared(backend):
    one = RateLimiter(rpm=60, backend=backend)
    other = RateLimiter(rpm=60, backend=backend)
    one.acquire().release()
    wait = other.try_acquire()
    assert isinstance(wait, float) and 0.9 < wait <= 1.0


def test_a_429_storm_in_one_process_holds_every_process(backend):
    stormy = RateLimiter(rpm=6000, backend=backend)
    calm = RateLimiter(rpm=6000, backend=backend)
    for _ in range(6):  # enough 429s among recent answers to count as a storm
        stormy.observe(429, {}, RateLimitError("slow down", status_code=429, retry_after=2.0))
    wait = calm.try_acquire()
    assert isinstance(wait, float) and 1.8 < wait <= 2.0


def test_a_single_429_holds_nobody(backend):
    one = RateLimiter(rpm=6000, backend=backend)
    other = RateLimiter(rpm=6000, backend=backend)
    one.observe(429, {}, RateLimitError("slow down", status_code=429, retry_after=5.0))
    assert not isinstance(other.try_acquire(), float)


def test_an_exhausted_rate_limit_header_holds_every_process(backend):
    one = RateLimiter(rpm=6000, backend=backend)
    other = RateLimiter(rpm=6000, backend=backend)
    one.observe(200, {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s"},
                None, names=[HEADERS])
    wait = other.try_acquire()
    assert isinstance(wait, float) and 1.3 < wait <= 1.5


def test_a_wait_on_a_shared_hold_is_cancellable(backend):
    one = RateLimiter(rpm=6000, backend=backend, max_pause=30)
    other = RateLimiter(rpm=6000, backend=backend)
    one.observe(200, {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "30s"},
                None, names=[HEADERS])
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(LimiterCancelled):
        other.acquire(cancel=cancel)
    assert time.monotonic() - started < 1.5  # liveness bound, not a performance figure


def _spend(limiter: RateLimiter, seconds: float, out) -> None:
    count = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        wait = limiter.try_acquire()
        if isinstance(wait, float):
            time.sleep(max(0.0, min(wait, deadline - time.monotonic(), 0.05)))
            continue
        count += 1
        wait.release()
    out.put(count)


@pytest.mark.parametrize("processes", [4])
def test_processes_sharing_sqlite_stay_within_one_budget(tmp_path, processes):
    limiter = RateLimiter(rpm=1200, backend=f"sqlite:///{tmp_path / 'limits.db'}")  # 20 a second
    limiter.acquire().release()  # the parent has used its connection before forking
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    seconds = 2.0
    workers = [context.Process(target=_spend, args=(limiter, seconds, out)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    counts = [out.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
        assert worker.exitcode == 0
    # The parent's call spent one slot just before the window; 20/s for 2 s, plus one for the
    # boundary of the window, is the most the budget allows.
    assert sum(counts) <= 20 * seconds + 1
    assert sum(counts) >= 20 * seconds * 0.7  # and the budget is used (liveness)
    assert all(count > 0 for count in counts)  # every process got a share


def test_processes_sharing_redis_stay_within_one_budget(redis_url):  # noqa: F811
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    limiter = RateLimiter(rpm=1200, backend=redis_url + "?name=procs")
    limiter.acquire().release()
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    workers = [context.Process(target=_spend, args=(limiter, 2.0, out)) for _ in range(3)]
    for worker in workers:
        worker.start()
    counts = [out.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
    assert 28 <= sum(counts) <= 41 and all(counts)


def test_budgets_with_different_names_are_separate(tmp_path):
    path = tmp_path / "limits.db"
    RateLimiter(rpm=60, backend=f"sqlite:///{path}?name=a").acquire().release()
    assert not isinstance(RateLimiter(rpm=60, backend=f"sqlite:///{path}?name=b").try_acquire(), float)
    assert isinstance(RateLimiter(rpm=60, backend=f"sqlite:///{path}?name=a").try_acquire(), float)


def test_executor_runs_over_a_shared_budget(server, make_client, tmp_path):
    server.handler = openai_echo
    client = make_client("openai/gpt-4o", prefix="/v1")
    limiter = RateLimiter(rpm=6000, tpm=600_000, max_concurrent=4,
                          backend=f"sqlite:///{tmp_path / 'limits.db'}")
    with BatchExecutor(4, client=client, limiter=limiter) as executor:
        results = executor.run([f"prompt {i}" for i in range(12)])
    assert [r.content for r in results] == [f"Echo: prompt {i}" for i in range(12)]
    bodies = sorted(r.json["messages"][0]["content"] for r in server.requests)
    assert bodies == sorted(f"prompt {i}" for i in range(12))
    assert {r.path for r in server.requests} == {"/v1/chat/completions"}
    assert limiter.admitted == 12


def test_bad_backends_are_refused_before_any_call(tmp_path):
    with pytest.raises(ConfigurationError, match="sqlite:///PATH"):
        RateLimiter(rpm=60, backend="postgres://db/limits")
    with pytest.raises(ConfigurationError, match="reserve/adjust/hold"):
        RateLimiter(rpm=60, backend=object())
    with pytest.raises(LimiterBackendError):
        RateLimiter(rpm=60, backend=f"sqlite:///{tmp_path}")  # a directory, not a file


def test_an_unreachable_redis_fails_the_call_without_leaking_the_password():
    from .redis_server import free_port

    pytest.importorskip("redis")
    limiter = RateLimiter(rpm=60, backend=f"redis://user:s3cret-pw@127.0.0.1:{free_port()}/0")
    assert "s3cret-pw" not in repr(limiter._backend)
    with pytest.raises(LimiterBackendError) as caught:
        limiter.try_acquire()
    assert caught.value.kind == "connection" and "s3cret-pw" not in str(caught.value)
    assert redact_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"


class _SlowBudget:
    """A shared backend whose reservation blocks until the test lets it go."""

    def __init__(self) -> None:
        self.entered, self.proceed = threading.Event(), threading.Event()

    def reserve(self, tokens: int) -> float:
        self.entered.set()
        self.proceed.wait(5)
        return 0.0

    def adjust(self, tokens: int) -> None:
        pass

    def hold(self, seconds: float) -> None:
        pass


def test_a_slow_shared_reservation_does_not_hold_up_releases():
    """The backend's round trip runs with the limiter's lock let go: a call finishing in another
    thread settles at once instead of queueing behind it."""
    budget = _SlowBudget()
    limiter = RateLimiter(rpm=6000, tpm=600_000, backend=budget)
    budget.proceed.set()
    first = limiter.acquire(10)
    budget.proceed.clear()
    budget.entered.clear()
    waiter = threading.Thread(target=lambda: limiter.acquire(10).release(10))
    waiter.start()
    assert budget.entered.wait(5)  # the second admission is inside the backend's reserve
    started = time.monotonic()
    first.release(12)
    released_in = time.monotonic() - started
    assert limiter.in_flight == 0
    budget.proceed.set()
    waiter.join(5)
    assert not waiter.is_alive() and limiter.admitted == 2
    assert released_in < 1.0  # with the lock held through reserve it would wait the full 5 s
