"""Transport: retries with backoff and Retry-After, timeouts of every kind, connection reuse.

All against a real loopback server; no timing assertions beyond "it did not hang" bounds
enforced by the call's own timeouts."""

from __future__ import annotations

import email.utils
import socket
import time

import pytest

from ai_lib_sync import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    InvalidRequestError,
    QuotaExhaustedError,
    RateLimitError,
    ServerError,
)
from ai_lib_sync.errors import OverloadedError
from ai_lib_sync.testing import Reply
from ai_lib_sync.transport import RetryPolicy, parse_retry_after

OK = {"id": "x", "model": "gpt-4o", "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"},
                                                   "finish_reason": "stop"}],
      "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
RATE = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}


def test_rate_limit_is_retried_and_counted(server, make_client):
    server.enqueue(Reply(429, RATE, headers={"retry-after-ms": "10"}),
                   Reply(503, {"error": {"message": "busy"}}, headers={"retry-after": "0"}),
                   Reply(200, OK))
    response, stats = make_client("openai/gpt-4o", max_retries=2).chat().user("hi").execute_with_stats()
    assert response.content == "fine"
    assert stats.retries == 2 and len(server.requests) == 3


def test_retries_stop_at_max_retries_and_raise_the_last_error(server, make_client):
    server.enqueue(*[Reply(500, {"error": {"message": "boom", "type": "server_error"}}, headers={"retry-after": "0"})] * 3)
    with pytest.raises(ServerError) as caught:
        make_client("openai/gpt-4o", max_retries=2).chat().user("hi").execute()
    assert len(server.requests) == 3
    assert caught.value.status_code == 500 and caught.value.retryable


def test_retry_after_beyond_the_cap_raises_at_once_with_retry_after(server, make_client):
    server.enqueue(Reply(429, RATE, headers={"retry-after": "3600"}))
    with pytest.raises(RateLimitError) as caught:
        make_client("openai/gpt-4o", max_retries=2).chat().user("hi").execute()
    assert caught.value.retry_after == 3600 and len(server.requests) == 1


@pytest.mark.parametrize("status, body, error_type", [
    (400, {"error": {"message": "bad", "type": "invalid_request_error"}}, InvalidRequestError),
    (401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}, AuthenticationError),
    (429, {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}}, QuotaExhaustedError),
])
def test_errors_that_retrying_cannot_fix_are_not_retried(server, make_client, status, body, error_type):
    server.enqueue(Reply(status, body), Reply(200, OK))
    with pytest.raises(error_type) as caught:
        make_client("openai/gpt-4o", max_retries=2).chat().user("hi").execute()
    assert not caught.value.retryable and len(server.requests) == 1


def test_529_is_overloaded_and_retried(server, make_client):
    server.enqueue(Reply(529, {"error": {"message": "Overloaded"}}, headers={"retry-after": "0"}), Reply(200, OK))
    assert make_client("openai/gpt-4o", max_retries=1).chat().user("hi").execute().content == "fine"
    server.enqueue(Reply(529, {"error": {"message": "Overloaded"}}))
    with pytest.raises(OverloadedError):
        make_client("openai/gpt-4o", max_retries=0).chat().user("hi").execute()


def test_retry_after_header_forms():
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= parse_retry_after({"retry-after": future}) <= 31
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_backoff_doubles_with_jitter_and_is_capped():
    policy = RetryPolicy(initial_backoff=0.5, max_backoff=8.0)
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (9, 8.0)]:
        waits = [policy.backoff(retry, None) for _ in range(50)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
        assert len(set(waits)) > 1  # jittered
    hinted = RateLimitError("x", retry_after=2.5)
    assert policy.backoff(1, hinted) == 2.5


def test_read_timeout_bounds_a_silent_server(server, make_client):
    server.enqueue(Reply(200, OK, delay=3))
    with pytest.raises(APITimeoutError):
        make_client("openai/gpt-4o", timeout=0.5).chat().user("hi").execute()


def test_total_deadline_bounds_a_trickling_body(server, make_client):
    # Each piece arrives well within the read timeout, but the whole body never would.
    body = b'{"choices": [' + b" " * 200 + b"]}"
    server.enqueue(Reply(200, chunks=[body[i:i + 10] for i in range(0, len(body), 10)], chunk_delay=0.15))
    started = time.monotonic()
    with pytest.raises(APITimeoutError, match="no complete response within 1s"):
        make_client("openai/gpt-4o", timeout=1.0).chat().user("hi").execute()
    assert time.monotonic() - started < 2.5  # bounded: deadline plus at most one read


def test_connection_refused_is_a_connection_error_and_is_retried():
    from ai_lib_sync import AiClient

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = AiClient("openai/gpt-4o", api_key="k", base_url=f"http://127.0.0.1:{port}/v1", max_retries=1)
    client.transport.retry.initial_backoff = 0.01
    with pytest.raises(APIConnectionError) as caught:
        client.chat().user("hi").execute()
    assert caught.value.retryable and caught.value.provider == "openai"


def test_connections_are_reused(server, make_client):
    server.handler = lambda request: Reply(200, OK)
    client = make_client("openai/gpt-4o", prefix="/v1")
    for _ in range(5):
        client.chat().user("hi").execute()
    assert server.connections == 1
    assert [r.path for r in server.requests] == ["/v1/chat/completions"] * 5


def test_closed_client_refuses_calls(make_client):
    from ai_lib_sync import ConfigurationError

    client = make_client("openai/gpt-4o")
    client.close()
    with pytest.raises(ConfigurationError, match="closed"):
        client.chat().user("hi").execute()


def test_bad_timeouts_and_retries_are_configuration_errors():
    from ai_lib_sync import AiClient, ConfigurationError

    with pytest.raises(ConfigurationError, match="timeout"):
        AiClient("openai/gpt-4o", api_key="k", timeout=0)
    with pytest.raises(ConfigurationError, match="max_retries"):
        AiClient("openai/gpt-4o", api_key="k", max_retries=-1)


def test_a_netrc_entry_never_replaces_the_provider_key(server, make_client, tmp_path, monkeypatch):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))
    server.enqueue(Reply(200, OK))
    make_client("openai/gpt-4o", api_key="sk-the-real-key").chat().user("hi").execute()
    assert server.last.header("authorization") == "Bearer sk-the-real-key"
