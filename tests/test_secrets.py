"""The API key never reaches an exception, a log record, a repr or a logged URL, on any path."""

from __future__ import annotations

import json
import logging
import socket

import pytest

from ai_lib_sync import AiClient, AiLibError
from ai_lib_sync.testing import Reply

KEY = "sk-live-SECRET0123456789abcdef"


def _echoing_error(status):
    # A hostile or careless provider that echoes the key back in its error text.
    return Reply(status, {"error": {"message": f"Incorrect API key provided: {KEY}. Bearer {KEY}", "type": "x"}},
                 headers={"retry-after": "0"})


def _assert_clean(error: AiLibError, caplog) -> None:
    for text in (str(error), repr(error), error.message, error.body or "", str(error.__dict__),
                 caplog.text, "".join(str(r.args) for r in caplog.records)):
        assert KEY not in text
        assert "SECRET0123" not in text


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500, 503])
def test_http_error_paths_redact_the_key(server, status, caplog):
    caplog.set_level(logging.DEBUG, logger="ai_lib_sync")
    server.handler = lambda request: _echoing_error(status)
    client = AiClient("openai/gpt-4o", api_key=KEY, base_url=server.base_url, max_retries=1)
    client.transport.retry.initial_backoff = 0.01
    with pytest.raises(AiLibError) as caught:
        client.chat().user("hi").execute()
    assert server.last.header("authorization") == f"Bearer {KEY}"  # it was really sent
    _assert_clean(caught.value, caplog)
    for text in (repr(client), repr(client.binding), repr(client.binding.credentials),
                 repr(client.binding.prepare(client.chat().user("x").build(), False))):
        assert KEY not in text


def test_stream_error_frame_and_timeouts_redact_the_key(server, caplog):
    caplog.set_level(logging.DEBUG, logger="ai_lib_sync")
    server.enqueue(Reply.sse([{"error": {"message": f"bad key {KEY}", "type": "invalid_request_error"}}], done=False))
    client = AiClient("openai/gpt-4o", api_key=KEY, base_url=server.base_url, max_retries=0, timeout=0.3)
    with pytest.raises(AiLibError) as caught:
        list(client.chat().user("hi").stream())
    _assert_clean(caught.value, caplog)
    server.enqueue(Reply(200, {}, delay=1))
    with pytest.raises(AiLibError) as caught:
        client.chat().user("hi").execute()
    assert caught.value.kind == "timeout"
    _assert_clean(caught.value, caplog)


def test_connection_errors_redact_the_key(caplog):
    caplog.set_level(logging.DEBUG, logger="ai_lib_sync")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = AiClient("openai/gpt-4o", api_key=KEY, base_url=f"http://127.0.0.1:{port}", max_retries=0)
    with pytest.raises(AiLibError) as caught:
        client.chat().user("hi").execute()
    assert caught.value.kind == "connection"
    _assert_clean(caught.value, caplog)


def test_query_parameter_keys_stay_out_of_logged_urls_and_errors(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="ai_lib_sync")
    (tmp_path / "qkey.json").write_text(json.dumps({
        "id": "qkey", "dialect": "openai_chat",
        "endpoint": {"base_url": "https://unused.invalid", "chat_path": "/chat"},
        "auth": {"type": "query", "query_param": "key", "env": ["QKEY"]}}))
    server.enqueue(Reply(401, {"error": {"message": "bad key"}}))
    client = AiClient("qkey/m", api_key=KEY, base_url=server.base_url, manifests_dir=str(tmp_path), max_retries=0)
    with pytest.raises(AiLibError) as caught:
        client.chat().user("hi").execute()
    assert server.last.query == {"key": [KEY]}  # the provider got it
    assert "/chat" in caplog.text  # the request was logged...
    _assert_clean(caught.value, caplog)  # ...without the key


def test_missing_key_names_the_variables_and_sends_nothing(server):
    with pytest.raises(AiLibError) as caught:
        AiClient("openai/gpt-4o", base_url=server.base_url)
    assert caught.value.kind == "configuration" and "OPENAI_API_KEY" in str(caught.value)
    assert server.requests == []


def test_errors_pickle_without_losing_fields():
    import pickle

    from ai_lib_sync import RateLimitError

    error = RateLimitError("slow down", status_code=429, provider="openai", retry_after=2.0, secrets=[KEY])
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.kind, copy.status_code, copy.retry_after, str(copy)) == ("rate_limited", 429, 2.0, str(error))


def test_a_key_that_does_not_look_like_a_key_is_redacted_from_stream_error_frames(server):
    odd_key = "plain-looking-token-42"  # no sk-/AIza shape: only exact redaction can catch it
    server.enqueue(Reply.sse([{"error": {"message": f"key {odd_key} revoked", "type": "invalid_request_error"}}], done=False))
    client = AiClient("openai/gpt-4o", api_key=odd_key, base_url=server.base_url, max_retries=0)
    with pytest.raises(AiLibError) as caught:
        list(client.chat().user("hi").stream())
    for text in (str(caught.value), repr(caught.value), caught.value.body or "", str(caught.value.args)):
        assert odd_key not in text
    assert "revoked" in str(caught.value)


def test_query_keys_stay_out_of_urllib3_debug_logs_and_chained_errors(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's included
    (tmp_path / "qkey.json").write_text(json.dumps({
        "id": "qkey", "dialect": "openai_chat",
        "endpoint": {"base_url": "https://unused.invalid", "chat_path": "/chat"},
        "auth": {"type": "query", "query_param": "key", "env": ["QKEY"]}}))
    server.enqueue(Reply(200, {"id": "c", "object": "chat.completion", "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}))
    client = AiClient("qkey/m", api_key=KEY, base_url=server.base_url, manifests_dir=str(tmp_path), max_retries=0)
    assert client.chat().user("hi").execute().content == "ok"
    assert "urllib3.connectionpool" in {record.name for record in caplog.records}
    assert KEY not in caplog.text
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = AiClient("qkey/m", api_key=KEY, base_url=f"http://127.0.0.1:{port}", manifests_dir=str(tmp_path),
                       max_retries=0)
    with pytest.raises(AiLibError) as caught:
        refused.chat().user("hi").execute()
    error = caught.value
    assert error.__context__ is None and error.__cause__ is None  # no requests exception, no headers
    _assert_clean(error, caplog)
