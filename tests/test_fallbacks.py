"""``AiClient(..., fallbacks=[...])``: on fallback-worthy errors the next model answers, and the
response and stats say which one did. Streams fall back only before their first event.

The primary model is reached through an explicit ``base_url`` (``/primary/v1``); OpenAI fallbacks
name their own endpoint (``/fallback/v1``) and key; the ``mock`` provider uses its embedded echo
server."""

from __future__ import annotations

import socket

import pytest

from ai_lib_sync import AiClient, BatchExecutor
from ai_lib_sync.errors import (
    AuthenticationError,
    InvalidRequestError,
    QuotaExhaustedError,
    ServerError,
    StreamInterruptedError,
)
from ai_lib_sync.testing import Reply, openai_echo

OVERLOADED = Reply(503, {"error": {"message": "overloaded", "type": "server_error"}})


@pytest.fixture
def fallback_env(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fallback-key")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url + "/fallback/v1")
    return server


def routed(primary_reply: Reply | None = None):
    """Requests for the primary model get ``primary_reply`` (echo when None); everything else is echoed."""
    def handler(request):
        primary = request.path.startswith("/primary") and (request.json or {}).get("model") == "gpt-4o"
        if primary and primary_reply is not None:
            return primary_reply
        return openai_echo(request)
    return handler


def elsewhere(server, model: str) -> dict:
    """An OpenAI fallback with its own endpoint and key (a same-provider fallback given as a plain
    id would share the primary's explicit base_url and key)."""
    return {"model": model, "base_url": server.base_url + "/fallback/v1", "api_key": "sk-fallback-key"}


def primary_client(make_client, server, fallbacks, **kwargs) -> AiClient:
    fallbacks = [elsewhere(server, spec) if isinstance(spec, str) and spec.startswith("openai/") else spec
                 for spec in fallbacks]
    return make_client("openai/gpt-4o", base_url=server.base_url + "/primary/v1", fallbacks=fallbacks, **kwargs)


@pytest.mark.parametrize("reply", [
    OVERLOADED,
    Reply(500, {"error": {"message": "boom", "type": "server_error"}}),
    Reply(429, {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}},
          headers={"retry-after": "0"}),
], ids=["overloaded", "server_error", "rate_limited"])
def test_fallback_answers_and_says_so(fallback_env, make_client, reply):
    server = fallback_env
    server.handler = routed(reply)
    client = primary_client(make_client, server, ["openai/gpt-4o-mini"])
    response, stats = client.chat().user("hello").execute_with_stats()
    assert response.content == "Echo: hello"
    assert (response.provider, response.model) == ("openai", "gpt-4o-mini")
    assert (stats.provider, stats.model) == ("openai", "gpt-4o-mini")
    assert [request.path for request in server.requests] == ["/primary/v1/chat/completions",
                                                             "/fallback/v1/chat/completions"]
    primary, fallback = server.requests
    assert primary.header("authorization") == "Bearer test-key-123456"
    assert fallback.header("authorization") == "Bearer sk-fallback-key"
    assert primary.json["model"] == "gpt-4o" and fallback.json["model"] == "gpt-4o-mini"


def test_rate_limits_fall_back_only_after_retries(fallback_env, make_client):
    server = fallback_env
    limited = Reply(429, {"error": {"message": "slow down", "type": "requests"}}, headers={"retry-after-ms": "1"})
    server.handler = routed(limited)
    client = primary_client(make_client, server, ["openai/gpt-4o-mini"], max_retries=2)
    response = client.chat().user("hi").execute()
    assert response.model == "gpt-4o-mini"
    assert [request.path.split("/")[1] for request in server.requests] == ["primary"] * 3 + ["fallback"]


def test_fallback_to_another_provider(server, make_client):
    server.handler = routed(OVERLOADED)
    client = primary_client(make_client, server, ["mock/echo"])
    response, stats = client.chat().user("across providers").execute_with_stats()
    assert response.content == "Echo: across providers"
    assert (response.provider, response.model) == ("mock", "echo")
    assert (stats.provider, stats.model) == ("mock", "echo")
    assert stats.cost_usd == 0.0  # the mock manifest's price, not gpt-4o's
    assert len(server.requests) == 1  # the mock provider answered from its own server


def test_chain_tries_each_model_in_order(fallback_env, make_client):
    server = fallback_env

    def handler(request):
        if request.path.startswith("/primary") or request.json["model"] == "gpt-4o-mini":
            return OVERLOADED
        return openai_echo(request)

    server.handler = handler
    client = primary_client(make_client, server, ["openai/gpt-4o-mini", "openai/gpt-4.1-mini"])
    response = client.chat().user("third time").execute()
    assert response.model == "gpt-4.1-mini"
    assert [request.json["model"] for request in server.requests] == ["gpt-4o", "gpt-4o-mini", "gpt-4.1-mini"]


def test_when_every_model_fails_the_last_error_is_raised(fallback_env, make_client):
    server = fallback_env
    server.handler = lambda request: OVERLOADED
    client = primary_client(make_client, server, ["openai/gpt-4o-mini"])
    with pytest.raises(ServerError) as caught:
        client.chat().user("nobody home").execute()
    assert caught.value.kind == "overloaded"
    assert caught.value.model == "gpt-4o-mini"
    assert len(server.requests) == 2


@pytest.mark.parametrize("reply, error", [
    (Reply(400, {"error": {"message": "bad", "type": "invalid_request_error"}}), InvalidRequestError),
    (Reply(401, {"error": {"message": "no key", "type": "invalid_request_error"}}), AuthenticationError),
    (Reply(429, {"error": {"message": "quota", "type": "insufficient_quota", "code": "insufficient_quota"}}),
     QuotaExhaustedError),
], ids=["invalid_request", "authentication", "quota_exhausted"])
def test_other_errors_do_not_fall_back(fallback_env, make_client, reply, error):
    server = fallback_env
    server.handler = routed(reply)
    client = primary_client(make_client, server, ["openai/gpt-4o-mini"])
    with pytest.raises(error):
        client.chat().user("hi").execute()
    assert len(server.requests) == 1


def test_connection_failure_falls_back(fallback_env, make_client):
    server = fallback_env
    server.handler = openai_echo
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    client = make_client("openai/gpt-4o", base_url=f"http://127.0.0.1:{dead}/v1",
                         fallbacks=[elsewhere(server, "openai/gpt-4o-mini")])
    response = client.chat().user("anyone?").execute()
    assert (response.provider, response.model, response.content) == ("openai", "gpt-4o-mini", "Echo: anyone?")


def test_timeout_falls_back(fallback_env, make_client):
    server = fallback_env
    slow = Reply(200, {"choices": []}, delay=3)
    server.handler = routed(slow)
    client = primary_client(make_client, server, ["openai/gpt-4o-mini"], timeout=0.5)
    response = client.chat().user("too slow").execute()
    assert response.model == "gpt-4o-mini"


def test_stream_falls_back_before_its_first_event(fallback_env, make_client):
    server = fallback_env
    server.handler = routed(OVERLOADED)
    client = primary_client(make_client, server, ["openai/gpt-4o-mini"])
    stream = client.chat().user("stream me").stream()
    text = "".join(event.as_content_delta.text for event in stream if event.is_content_delta)
    assert text == "Echo: stream me"
    response = stream.final_response()
    assert (response.provider, response.model) == ("openai", "gpt-4o-mini")
    assert (stream.stats.provider, stream.stats.model) == ("openai", "gpt-4o-mini")
    assert [request.path.split("/")[1] for request in server.requests] == ["primary", "fallback"]
    assert all(request.json["stream"] is True for request in server.requests)


def test_stream_does_not_fall_back_after_its_first_event(fallback_env, make_client):
    server = fallback_env
    chunk = {"id": "c", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "Once"}, "finish_reason": None}]}
    server.handler = routed(Reply.sse([chunk, chunk], cut_after=1))
    client = primary_client(make_client, server, ["openai/gpt-4o-mini"])
    seen = []
    with pytest.raises(StreamInterruptedError) as caught:
        for event in client.chat().user("story").stream():
            seen.append(event)
    assert [event.as_content_delta.text for event in seen] == ["Once"]
    assert caught.value.partial_content == "Once"
    assert caught.value.model == "gpt-4o"
    assert len(server.requests) == 1


def test_stream_falls_back_across_providers(server, make_client):
    server.handler = routed(Reply(429, {"error": {"message": "x", "type": "requests"}}))
    client = primary_client(make_client, server, ["mock/echo"])
    stream = client.chat().user("to the mock").stream()
    assert stream.text() == "Echo: to the mock"
    assert (stream.final_response().provider, stream.stats.provider, stream.stats.model) == ("mock", "mock", "echo")


def test_batch_results_say_which_model_answered(fallback_env, make_client):
    server = fallback_env

    def handler(request):
        if request.path.startswith("/primary") and "odd" in request.json["messages"][-1]["content"]:
            return OVERLOADED
        return openai_echo(request)

    server.handler = handler
    client = primary_client(make_client, server, ["openai/gpt-4o-mini"])
    prompts = ["odd 1" if i % 2 else f"even {i}" for i in range(8)]
    with BatchExecutor(max_workers=4, client=client) as executor:
        results = executor.run(prompts)
    assert [result.model for result in results] == ["gpt-4o" if i % 2 == 0 else "gpt-4o-mini" for i in range(8)]
    assert all(result.content == f"Echo: {prompt}" for result, prompt in zip(results, prompts, strict=True))


def test_a_same_provider_fallback_shares_the_explicit_key_and_base_url(server, make_client):
    server.handler = routed(OVERLOADED)
    client = make_client("openai/gpt-4o", base_url=server.base_url + "/primary/v1", api_key="sk-explicit",
                         fallbacks=["openai/gpt-4o-mini"])
    response = client.chat().user("hello").execute()
    assert response.model == "gpt-4o-mini"
    assert server.last.path == "/primary/v1/chat/completions"
    assert server.last.header("authorization") == "Bearer sk-explicit"


def test_a_fallback_may_carry_its_own_key_and_base_url(server, make_client):
    server.handler = routed(OVERLOADED)
    client = primary_client(make_client, server, [
        {"model": "deepseek/deepseek-chat", "api_key": "sk-deepseek", "base_url": server.base_url + "/ds"}])
    assert client.chat().user("hello").execute().provider == "deepseek"
    assert server.last.path == "/ds/chat/completions"
    assert server.last.header("authorization") == "Bearer sk-deepseek"


def test_fallback_on_adds_context_length_and_quota(server, make_client):
    too_long = Reply(400, {"error": {"message": "This model's maximum context length is 8192 tokens",
                                     "code": "context_length_exceeded"}})
    server.handler = routed(too_long)
    strict = primary_client(make_client, server, ["openai/gpt-4o-mini"])
    with pytest.raises(InvalidRequestError) as caught:
        strict.chat().user("hello").execute()
    assert caught.value.kind == "context_length"
    lenient = primary_client(make_client, server, ["openai/gpt-4o-mini"],
                             fallback_on={"context_length", "quota_exhausted", "overloaded"})
    assert lenient.fallbacks[0].endpoint.base_url.endswith("/fallback/v1")
    assert lenient.chat().user("hello").execute().model == "gpt-4o-mini"


def test_fallback_configuration_is_checked_up_front(make_client):
    from ai_lib_sync import ConfigurationError

    with pytest.raises(ConfigurationError, match="unknown error kinds"):
        make_client("openai/gpt-4o", fallbacks=["openai/gpt-4o-mini"], fallback_on={"bad_luck"})
    with pytest.raises(ConfigurationError, match="needs a 'model'"):
        make_client("openai/gpt-4o", fallbacks=[{"api_key": "x"}])
    with pytest.raises(ConfigurationError, match="unknown provider"):
        make_client("openai/gpt-4o", fallbacks=["nope/x"])
