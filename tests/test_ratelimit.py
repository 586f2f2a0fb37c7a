"""The shared rate limiter: token buckets, concurrency cap, and the slow-down driven by 429s and
rate-limit headers. Decisions are checked against a fake clock (no sleeping, no timing); one
end-to-end test checks that real HTTP responses reach the limiter through the transport."""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from ai_lib_sync.batch.limits import (
    LimiterCancelled,
    Permit,
    RateLimiter,
    estimate_tokens,
    parse_reset,
)
from ai_lib_sync.errors import ConfigurationError, QuotaExhaustedError, RateLimitError
from ai_lib_sync.testing import Reply, openai_echo
from ai_lib_sync.types import ChatRequest, Message

OPENAI_NAMES = {
    "requests_limit": "x-ratelimit-limit-requests", "requests_remaining": "x-ratelimit-remaining-requests",
    "requests_reset": "x-ratelimit-reset-requests", "tokens_limit": "x-ratelimit-limit-tokens",
    "tokens_remaining": "x-ratelimit-remaining-tokens", "tokens_reset": "x-ratelimit-reset-tokens",
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def admit(limiter: RateLimiter, tokens: int = 0) -> Permit:
    permit = limiter.try_acquire(tokens)
    assert isinstance(permit, Permit), f"expected admission, got a wait of {permit}"
    return permit


def test_rpm_paces_requests_evenly(clock):
    limiter = RateLimiter(rpm=120, clock=clock)  # one every 0.5 s
    admit(limiter).release()
    assert limiter.try_acquire() == pytest.approx(0.5)
    clock.advance(0.3)
    assert limiter.try_acquire() == pytest.approx(0.2)
    clock.advance(0.2)
    admit(limiter).release()
    # Over a simulated minute (and a bit: the boundary), exactly rpm requests get in.
    started = 0
    for _ in range(6025):
        clock.advance(0.01)
        permit = limiter.try_acquire()
        if isinstance(permit, Permit):
            permit.release()
            started += 1
    assert started == 120


def test_burst_lets_requests_start_back_to_back(clock):
    limiter = RateLimiter(rpm=60, burst=3, clock=clock)
    for _ in range(3):
        admit(limiter).release()
    assert limiter.try_acquire() == pytest.approx(1.0)


def test_tpm_uses_the_estimate_then_corrects_with_real_usage(clock):
    limiter = RateLimiter(tpm=6000, clock=clock)  # 100 tokens a second
    permit = admit(limiter, tokens=100)
    assert limiter.try_acquire(tokens=10) == pytest.approx(1.0)
    permit.release(actual_tokens=300)  # the call cost three times the estimate
    assert limiter.try_acquire(tokens=10) == pytest.approx(3.0)
    clock.advance(3.0)
    # The 3x reply taught the limiter that estimates run short: it now reserves 1.2x each
    # estimate (a 0.1 step of its moving average), here 12 tokens of 10.
    admit(limiter, tokens=10).release(actual_tokens=None)  # no usage reported: the reservation stands
    assert limiter.try_acquire(tokens=10) == pytest.approx(0.12)


def test_reservations_learn_from_replies_that_cost_more_than_estimated(clock):
    limiter = RateLimiter(tpm=6000, clock=clock)  # 100 tokens a second
    for _ in range(40):  # every reply costs five times its estimate
        admit(limiter, tokens=10).release(actual_tokens=50)
        clock.advance(10.0)
    assert limiter.try_acquire(tokens=10).tokens == 50  # now reserves what replies really cost


def test_reservations_never_shrink_below_the_estimate(clock):
    limiter = RateLimiter(tpm=6000, clock=clock)
    for _ in range(20):  # replies cheaper than the estimate (max_tokens unused)
        admit(limiter, tokens=100).release(actual_tokens=10)
        clock.advance(10.0)
    assert limiter.try_acquire(tokens=100).tokens == 100


def test_tpm_overestimate_gives_the_budget_back(clock):
    limiter = RateLimiter(tpm=6000, clock=clock)
    admit(limiter, tokens=500).release(actual_tokens=100)
    assert limiter.try_acquire(tokens=1) == pytest.approx(1.0)


def test_concurrency_cap(clock):
    limiter = RateLimiter(max_concurrent=2, clock=clock)
    first, second = admit(limiter), admit(limiter)
    assert limiter.try_acquire() == math.inf
    first.release()
    first.release()  # releasing twice frees one slot only
    third = admit(limiter)
    assert limiter.try_acquire() == math.inf
    second.release()
    third.release()
    assert limiter.in_flight == 0


def storm(limiter: RateLimiter, count: int = 5, retry_after: float | None = 5.0) -> None:
    """``count`` 429s in a row: enough to cross ``storm_share`` of recent answers."""
    for _ in range(count):
        limiter.observe(429, {}, RateLimitError("slow down", status_code=429, retry_after=retry_after))


def test_a_few_429s_leave_the_pool_alone(clock):
    """A provider that sheds random requests: each limited request waits its own Retry-After
    (in the transport); the rest of the pool neither holds nor loses concurrency."""
    limiter = RateLimiter(max_concurrent=8, clock=clock)
    for number in range(300):  # 3% of answers are 429s, evenly spread
        error = RateLimitError("x", status_code=429, retry_after=1.0) if number % 33 == 0 else None
        limiter.observe(429 if error else 200, {}, error)
        assert isinstance(limiter.try_acquire(), Permit)
        limiter._release(0, None)
    assert limiter.concurrency_limit == 8
    assert limiter.rate_limited == 10 and limiter.holds == 0


def test_a_429_storm_holds_the_pool_for_retry_after_then_recovers(clock):
    limiter = RateLimiter(max_concurrent=8, clock=clock)
    storm(limiter, 4)
    assert isinstance(limiter.try_acquire(), Permit)  # four in a row: not yet a storm
    limiter._release(0, None)
    storm(limiter, 1)
    assert limiter.try_acquire() == pytest.approx(5.0)  # held as long as the provider said
    assert limiter.concurrency_limit == 4
    storm(limiter, 3)  # the rest of a burst of simultaneous 429s cuts once, not to 1
    assert limiter.concurrency_limit == 4
    clock.advance(5.0)
    permits = [admit(limiter) for _ in range(4)]
    assert limiter.try_acquire() == math.inf
    for permit in permits:
        permit.release()
    # Slow start: one more slot per success, back to the cap the storm cut, and no further.
    for expected in (5, 6, 7, 8, 8):
        limiter.observe(200, {}, None)
        assert limiter.concurrency_limit == expected


def test_429_storm_without_retry_after_backs_off_exponentially(clock):
    limiter = RateLimiter(max_concurrent=4, clock=clock)
    storm(limiter, 5, retry_after=None)
    assert limiter.try_acquire() == pytest.approx(1.0)
    clock.advance(1.0)
    storm(limiter, 1, retry_after=None)
    assert limiter.try_acquire() == pytest.approx(2.0)
    assert limiter.snapshot()["rate_limited"] == 6


def test_quota_exhaustion_is_not_a_slow_down_signal(clock):
    limiter = RateLimiter(max_concurrent=4, clock=clock)
    limiter.observe(429, {}, QuotaExhaustedError("billing", status_code=429))
    assert isinstance(limiter.try_acquire(), Permit)
    assert limiter.concurrency_limit == 4


def test_no_remaining_requests_holds_until_the_window_resets(clock):
    limiter = RateLimiter(clock=clock)
    headers = {"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "0",
               "x-ratelimit-reset-requests": "6s"}
    limiter.observe(200, headers, None, [OPENAI_NAMES])
    assert limiter.try_acquire() == pytest.approx(6.0)


def test_low_remaining_spreads_the_budget_over_the_window(clock):
    limiter = RateLimiter(clock=clock)
    headers = {"x-ratelimit-limit-requests": "1000", "x-ratelimit-remaining-requests": "20",
               "x-ratelimit-reset-requests": "10s"}
    limiter.observe(200, headers, None, [OPENAI_NAMES])
    admit(limiter).release()
    assert limiter.try_acquire() == pytest.approx(0.5)  # 20 left in 10 s: one every 0.5 s
    clock.advance(10.0)  # the window reset: no more pacing
    admit(limiter).release()
    admit(limiter).release()


def test_plenty_remaining_changes_nothing(clock):
    limiter = RateLimiter(clock=clock)
    headers = {"x-ratelimit-limit-requests": "1000", "x-ratelimit-remaining-requests": "999",
               "x-ratelimit-reset-requests": "60ms"}
    limiter.observe(200, headers, None, [OPENAI_NAMES])
    admit(limiter).release()
    admit(limiter).release()


def test_low_remaining_tokens_count_in_average_requests(clock):
    limiter = RateLimiter(clock=clock)
    admit(limiter, tokens=1000).release()
    headers = {"x-ratelimit-limit-tokens": "1000000", "x-ratelimit-remaining-tokens": "500",
               "x-ratelimit-reset-tokens": "2s"}
    limiter.observe(200, headers, None, [OPENAI_NAMES])  # half a request left
    assert limiter.try_acquire(tokens=1000) == pytest.approx(2.0)


def test_adaptive_false_ignores_feedback(clock):
    limiter = RateLimiter(max_concurrent=4, adaptive=False, clock=clock)
    limiter.observe(429, {"x-ratelimit-remaining-requests": "0"}, RateLimitError("x", retry_after=9), [OPENAI_NAMES])
    assert isinstance(limiter.try_acquire(), Permit)


def test_holds_are_capped_by_max_pause(clock):
    limiter = RateLimiter(max_pause=30, clock=clock)
    storm(limiter, 5, retry_after=3600)
    assert limiter.try_acquire() == pytest.approx(30.0)


def test_acquire_blocks_until_cancelled():
    limiter = RateLimiter(max_concurrent=1)
    held = limiter.acquire()
    cancel = threading.Event()
    outcome: list[str] = []

    def waiter() -> None:
        try:
            limiter.acquire(cancel=cancel)
            outcome.append("admitted")
        except LimiterCancelled:
            outcome.append("cancelled")

    thread = threading.Thread(target=waiter)
    thread.start()
    cancel.set()
    limiter.interrupt()
    thread.join(10)
    assert outcome == ["cancelled"]
    held.release()


def test_acquire_wakes_when_a_slot_frees():
    limiter = RateLimiter(max_concurrent=1)
    held = limiter.acquire()
    got: list[Permit] = []
    thread = threading.Thread(target=lambda: got.append(limiter.acquire()))
    thread.start()
    held.release()
    thread.join(10)
    assert len(got) == 1 and limiter.in_flight == 1


@pytest.mark.parametrize("text, seconds", [
    ("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1m30.5s", 90.5), ("2h", 7200.0),
    ("0.25", 0.25), ("17", 17.0), ("", None), ("soon", None),
])
def test_parse_reset_durations(text, seconds):
    assert parse_reset(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_parse_reset_timestamps():
    future = datetime.now(timezone.utc) + timedelta(seconds=120)
    assert 100 < parse_reset(future.isoformat().replace("+00:00", "Z")) <= 120
    assert 100 < parse_reset(str(int(time.time()) + 120)) <= 120  # epoch seconds
    assert parse_reset("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # past HTTP date


def test_estimate_tokens():
    request = ChatRequest("m", [Message.system("x" * 40), Message.user("y" * 41)], max_tokens=100)
    assert estimate_tokens(request) == 21 + 100
    assert estimate_tokens(ChatRequest("m", [Message.user("abcd")])) == 1


def test_bad_limits_are_refused():
    with pytest.raises(ConfigurationError):
        RateLimiter(rpm=0)
    with pytest.raises(ConfigurationError):
        RateLimiter(max_concurrent=-1)


class RecordingLimiter(RateLimiter):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seen: list[tuple[int, str | None, str | None, list]] = []

    def observe(self, status, headers, error, names=()) -> None:
        self.seen.append((status, headers.get("x-ratelimit-remaining-requests"),
                          error.kind if error is not None else None, list(names)))
        super().observe(status, headers, error, names)


def test_executor_feeds_real_responses_and_429s_to_the_limiter(server, make_client):
    """Every attempt, retries included, reaches the limiter with the manifest's header names."""
    from ai_lib_sync.batch import BatchExecutor

    limited = Reply(429, {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
                    headers={"retry-after-ms": "10", "x-ratelimit-remaining-requests": "0",
                             "x-ratelimit-reset-requests": "20ms"})
    server.enqueue(limited)
    server.handler = lambda request: _with_headers(openai_echo(request), {
        "x-ratelimit-limit-requests": "5000", "x-ratelimit-remaining-requests": "4999",
        "x-ratelimit-reset-requests": "12ms"})
    client = make_client("openai/gpt-4o", prefix="/v1", max_retries=2)
    limiter = RecordingLimiter(max_concurrent=4)
    with BatchExecutor(max_workers=1, client=client, limiter=limiter) as executor:
        results = executor.run(["one"])
    assert results[0].content == "Echo: one"
    assert [entry[:3] for entry in limiter.seen] == [(429, "0", "rate_limited"), (200, "4999", None)]
    assert limiter.seen[0][3] == [client.manifest.rate_limit_headers]
    assert limiter.rate_limited == 1
    assert limiter.admitted == 2  # the transport's retry was admitted through the limiter too
    assert limiter.concurrency_limit == 4  # one 429 is no storm


def test_provider_headers_hold_the_pool(server, make_client):
    """A response saying no requests remain for 20 s holds every new start (state, not time)."""
    from ai_lib_sync.batch import BatchExecutor

    server.handler = lambda request: _with_headers(openai_echo(request), {
        "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "20s"})
    client = make_client("openai/gpt-4o", prefix="/v1")
    with BatchExecutor(max_workers=2, client=client) as executor:
        assert executor.run(["a"])[0].content == "Echo: a"
        held = executor.limiter.snapshot()["held_for_s"]
        assert 10 < held <= 20
        assert executor.limiter.try_acquire() > 10


def _with_headers(reply: Reply, headers: dict[str, str]) -> Reply:
    reply.headers.update(headers)
    return reply


def test_waiters_are_admitted_first_come_first_served():
    limiter = RateLimiter(max_concurrent=1)
    held = limiter.acquire()
    order: list[str] = []
    permits: dict[str, Permit] = {}

    def waiter(name: str) -> None:
        permits[name] = limiter.acquire()
        order.append(name)

    threads = []
    for count, name in enumerate("abc", start=1):
        thread = threading.Thread(target=waiter, args=(name,))
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + 10
        while len(limiter._waiting) < count and time.monotonic() < deadline:
            time.sleep(0.001)  # each waiter queued before the next one starts
    time.sleep(0.6)  # waiters re-wait after their 0.25 s polls, reshuffling the wake-up order
    held.release()
    for name in "abc":
        deadline = time.monotonic() + 10
        while name not in permits and time.monotonic() < deadline:
            time.sleep(0.001)
        permits[name].release()
    for thread in threads:
        thread.join(10)
    assert order == ["a", "b", "c"]
