"""Load and leaks: many mixed calls over many threads on one client, and abandoned streams.

After the load, the thread count and open file descriptors are back to their baseline and RSS
has not grown beyond a small allowance; an abandoned stream (never closed, gc disabled) gives
its connection back so the pool does not run dry.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ai_lib_sync import AiClient, AiLibError
from ai_lib_sync.testing import LoopbackServer, RecordedRequest, Reply, openai_echo

CALLS = int(os.environ.get("FAULTS_LOAD_CALLS", "10000"))
THREADS = 64


@pytest.fixture
def quiet_logs():
    """DEBUG records of 10,000 calls would pile up in pytest's log capture and blur the RSS
    figure; the secrets guard still sees every exception of this test."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)
    yield
    root.setLevel(level)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _mixed(request: RecordedRequest) -> Reply:
    """Every 10th request fails (a 500 or a 429), the rest echo."""
    text = (request.json or {}).get("messages", [{}])[-1].get("content", "")
    number = int(text.rsplit(" ", 1)[-1]) if text.rsplit(" ", 1)[-1].isdigit() else 0
    if number % 10 == 3:
        return Reply(500, {"error": {"message": "boom", "type": "server_error"}})
    if number % 10 == 7:
        return Reply(429, {"error": {"message": "slow down", "type": "rate_limit_error"}})
    reply = openai_echo(request)
    reply.chunk_delay = 0
    return reply


def _one(client: AiClient, number: int) -> str:
    chat = client.chat().user(f"call {number}")
    try:
        if number % 4 == 0:
            with chat.stream() as stream:
                return "".join(event.text for event in stream if event.is_content_delta)
        return chat.execute().content
    except AiLibError as error:
        return error.kind


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_mixed_load_on_one_client_returns_to_baseline(quiet_logs: None) -> None:
    with LoopbackServer(_mixed) as server:
        # One warm-up call first: it starts the process's one deadline watchdog thread, which
        # is meant to stay (ai_lib_sync/watchdog.py), so the baseline includes it.
        with AiClient("openai/gpt-4o", api_key="load-test-key-0123456789", base_url=server.base_url + "/v1",
                      max_retries=0) as warm:
            warm.chat().user("call 1").execute()
        gc.collect()
        threads, fds, rss = threading.active_count(), _fds(), _rss_mb()
        client = AiClient("openai/gpt-4o", api_key="load-test-key-0123456789", base_url=server.base_url + "/v1",
                          max_retries=0, timeout=10, pool_maxsize=THREADS)
        started = time.monotonic()
        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(lambda n: _one(client, n), range(CALLS)))
        elapsed = time.monotonic() - started
        client.close()
        unexpected = {n: r for n, r in enumerate(results)
                      if r != {3: "server_error", 7: "rate_limited"}.get(n % 10, f"Echo: call {n}")}
        assert not unexpected, f"{len(unexpected)} calls went wrong, e.g. {list(unexpected.items())[:5]}"
        assert results[1] == "Echo: call 1" and results[4] == "Echo: call 4"
        assert len(server.requests) == CALLS + 1  # the warm-up call too
        server.requests.clear()  # the fake's own records of 10,000 requests are not the client's
    gc.collect()
    deadline = time.monotonic() + 5
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= threads
    assert _fds() <= fds + 2, f"file descriptors {fds} -> {_fds()}"
    assert _rss_mb() - rss < 60, f"RSS {rss:.1f} -> {_rss_mb():.1f} MB"
    print(f"\n{CALLS} calls over {THREADS} threads in {elapsed:.1f}s; RSS {rss:.1f} -> {_rss_mb():.1f} MB")


def test_abandoned_streams_release_their_connection_without_gc() -> None:
    """Streams dropped half-read, with the cyclic collector off: each gives its connection
    back (or closes it) at once, so no socket is left open and the client still works."""
    with LoopbackServer(openai_echo) as server:
        client = AiClient("openai/gpt-4o", api_key="load-test-key-0123456789", base_url=server.base_url + "/v1",
                          max_retries=0, timeout=5, pool_maxsize=2)
        client.chat().user("warm up").execute()
        fds = _fds()
        gc.disable()
        try:
            for number in range(30):
                stream = client.chat().user(f"a b c d e {number}").stream()
                next(iter(stream))  # read one event, then drop the stream without close()
                del stream
            assert client.chat().user("after").execute().content == "Echo: after"
            leaked = _fds() - fds
        finally:
            gc.enable()
            client.close()
        assert leaked <= 2, f"{leaked} more file descriptors after 30 abandoned streams"
