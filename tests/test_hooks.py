"""Client hooks and the OpenTelemetry spans built on them."""

from __future__ import annotations

import logging

import pytest

from ai_lib_sync import AiClient
from ai_lib_sync.errors import AiLibError, ConfigurationError
from ai_lib_sync.testing import Reply

COMPLETION = {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-2024-08-06",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8}}
CHUNKS = [
    {"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": None}]},
    {"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
     "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}},
]


def recorder():
    seen = []
    hooks = {name: (lambda event, name=name: seen.append(event))
             for name in ("on_request", "on_response", "on_retry", "on_error", "on_stream_end")}
    return seen, hooks


def test_hooks_see_request_retry_and_response_of_one_call(server, make_client):
    seen, hooks = recorder()
    server.enqueue(Reply(503, {"error": {"message": "busy"}}), Reply(200, COMPLETION))
    client = make_client("openai/gpt-4o", prefix="/v1", hooks=hooks, max_retries=1)
    client.transport.retry.initial_backoff = 0.01
    response = client.chat().user("hello").temperature(0.5).execute()
    assert [event.name for event in seen] == ["on_request", "on_retry", "on_response"]
    assert seen[0].request.messages[0].content == "hello" and seen[0].request.temperature == 0.5
    assert seen[1].error.kind == "overloaded" and seen[1].retry_number == 1
    assert seen[2].response is response and seen[2].stats.retries == 1
    assert len({id(event.call) for event in seen}) == 1  # one context per call


def test_on_error_fires_once_for_a_failed_call(server, make_client):
    seen, hooks = recorder()
    server.enqueue(Reply(400, {"error": {"message": "bad", "type": "invalid_request_error"}}))
    client = make_client("openai/gpt-4o", prefix="/v1", hooks=hooks)
    with pytest.raises(AiLibError):
        client.chat().user("hello").execute()
    assert [event.name for event in seen] == ["on_request", "on_error"]
    assert seen[1].error.kind == "invalid_request"


def test_stream_hooks_end_with_the_assembled_response_or_none_when_left_early(server, make_client):
    seen, hooks = recorder()
    server.enqueue(Reply.sse(CHUNKS), Reply.sse(CHUNKS))
    client = make_client("openai/gpt-4o", prefix="/v1", hooks=hooks)
    stream = client.chat().user("hello").stream()
    assert stream.text() == "a"
    assert [event.name for event in seen] == ["on_request", "on_stream_end"]
    assert seen[1].response.content == "a" and seen[1].stats.total_tokens == 4
    seen.clear()
    for _event in client.chat().user("again").stream():
        break
    assert [event.name for event in seen] == ["on_request", "on_stream_end"]
    assert seen[1].response is None


def test_a_hook_that_raises_is_logged_and_never_breaks_the_call(server, make_client, caplog):
    def broken(event):
        raise RuntimeError("hook bug")

    server.enqueue(Reply(200, COMPLETION))
    client = make_client("openai/gpt-4o", prefix="/v1", hooks={"on_request": broken, "on_response": [broken, broken]})
    with caplog.at_level(logging.WARNING, logger="ai_lib_sync"):
        assert client.chat().user("hello").execute().content == "hi"
    raised = [record for record in caplog.records if record.exc_info and "hook bug" in str(record.exc_info[1])]
    assert len(raised) == 3


def test_unknown_hook_names_are_a_configuration_error():
    with pytest.raises(ConfigurationError, match="on_reqest"):
        AiClient("openai/gpt-4o", api_key="sk-test", hooks={"on_reqest": print})
    with pytest.raises(ConfigurationError):
        AiClient("openai/gpt-4o", api_key="sk-test", hooks={"on_request": "not callable"})


def test_otel_spans_carry_the_genai_attributes(server, make_client):
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from ai_lib_sync.integrations.otel import otel_hooks

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    server.enqueue(Reply(200, COMPLETION), Reply(429, {"error": {"message": "slow", "type": "requests"}}))
    client = make_client("openai/gpt-4o", prefix="/v1", hooks=otel_hooks(provider))
    client.chat().user("hello").max_tokens(20).execute()
    with pytest.raises(AiLibError):
        client.chat().user("hello").execute()
    ok, failed = exporter.get_finished_spans()
    assert ok.name == "chat gpt-4o"
    assert ok.attributes["gen_ai.operation.name"] == "chat"
    assert ok.attributes["gen_ai.provider.name"] == "openai"
    assert ok.attributes["gen_ai.request.model"] == "gpt-4o"
    assert ok.attributes["gen_ai.request.max_tokens"] == 20
    assert ok.attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert ok.attributes["gen_ai.response.id"] == "chatcmpl-1"
    assert ok.attributes["gen_ai.usage.input_tokens"] == 7
    assert ok.attributes["gen_ai.usage.output_tokens"] == 1
    assert tuple(ok.attributes["gen_ai.response.finish_reasons"]) == ("stop",)
    assert failed.attributes["error.type"] == "rate_limited"
    assert failed.status.status_code.name == "ERROR"


def test_otel_hooks_are_empty_without_the_package(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_otel(name, *args, **kwargs):
        if name.startswith("opentelemetry"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_otel)
    from ai_lib_sync.integrations.otel import otel_hooks

    assert otel_hooks() == {}
