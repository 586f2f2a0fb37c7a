"""The response cache: identical requests skip the network; errors never stick."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ai_lib_sync import AiClient
from ai_lib_sync.errors import AiLibError, ConfigurationError
from ai_lib_sync.testing import Reply, openai_echo

from .redis_server import redis_url  # noqa: F401  (fixture)


def echo_client(server, **kwargs) -> AiClient:
    server.handler = openai_echo
    kwargs.setdefault("api_key", "sk-test-cache-1")
    return AiClient("openai/gpt-4o", base_url=server.base_url + "/v1", max_retries=0, timeout=10, **kwargs)


@pytest.mark.parametrize("spec", ["memory", "sqlite"])
def test_an_identical_request_is_answered_without_a_network_call(server, tmp_path, spec):
    cache = "memory" if spec == "memory" else f"sqlite:///{tmp_path / 'cache.db'}"
    with echo_client(server, cache=cache) as client:
        first, first_stats = client.chat().user("hello").temperature(0.1).execute_with_stats()
        second, second_stats = client.chat().user("hello").temperature(0.1).execute_with_stats()
        assert len(server.requests) == 1
        assert second.content == first.content and second.usage == first.usage
        assert not first_stats.cached and second_stats.cached and second_stats.cost_usd == 0.0
        client.chat().user("hello").temperature(0.2).execute()  # another parameter: another entry
        client.chat().system("be brief").user("hello").temperature(0.1).execute()  # other messages
        assert len(server.requests) == 3


def test_streams_replay_cached_answers_and_fill_the_cache(server):
    with echo_client(server, cache="memory") as client:
        streamed = client.chat().user("story").stream()
        assert streamed.text().strip()
        assert not streamed.stats.cached
        replay = client.chat().user("story").stream()
        kinds = [event.kind for event in replay]
        assert kinds[-2:] == ["usage", "finish"] and "content_delta" in kinds
        assert replay.final_response().content == streamed.final_response().content
        assert replay.stats.cached
        assert client.chat().user("story").execute().content == streamed.final_response().content
        assert len(server.requests) == 1


def test_errors_are_never_cached(server):
    with echo_client(server, cache="memory") as client:
        server.handler = None
        server.enqueue(Reply(400, {"error": {"message": "bad", "type": "invalid_request_error"}}))
        with pytest.raises(AiLibError):
            client.chat().user("hello").execute()
        server.handler = openai_echo
        assert client.chat().user("hello").execute().content
        assert len(server.requests) == 2


def test_another_key_never_shares_an_entry_and_the_key_is_not_stored(server, tmp_path):
    path = tmp_path / "cache.db"
    with echo_client(server, cache=f"sqlite:///{path}", api_key="sk-test-cache-AAAA") as first:
        first.chat().user("hello").execute()
    with echo_client(server, cache=f"sqlite:///{path}", api_key="sk-test-cache-BBBB") as second:
        second.chat().user("hello").execute()
    assert len(server.requests) == 2
    stored = path.read_bytes() + (tmp_path / "cache.db-wal").read_bytes() if (tmp_path / "cache.db-wal").exists() else path.read_bytes()
    assert b"sk-test-cache" not in stored


def test_ttl_expires_entries(server, monkeypatch):
    import ai_lib_sync.cache as cache_module

    now = [1000.0]
    monkeypatch.setattr(cache_module.time, "time", lambda: now[0])
    with echo_client(server, cache="memory", cache_ttl=60) as client:
        client.chat().user("hello").execute()
        now[0] += 30
        client.chat().user("hello").execute()
        assert len(server.requests) == 1
        now[0] += 61
        client.chat().user("hello").execute()
        assert len(server.requests) == 2


def test_a_sqlite_cache_is_shared_with_another_process(server, tmp_path):
    path = tmp_path / "shared.db"
    with echo_client(server, cache=f"sqlite:///{path}") as client:
        expected = client.chat().user("shared").execute().content
    script = (
        "from ai_lib_sync import AiClient\n"
        f"c = AiClient('openai/gpt-4o', api_key='sk-test-cache-1', base_url='{server.base_url}/v1', cache='sqlite:///{path}')\n"
        "r, s = c.chat().user('shared').execute_with_stats()\n"
        "print(r.content, s.cached)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"{expected} True"
    assert len(server.requests) == 1


def test_a_cached_rerun_of_a_batch_makes_no_upstream_call(server, tmp_path):
    prompts = [f"prompt {number}" for number in range(1000)]
    with echo_client(server, cache=f"sqlite:///{tmp_path / 'batch.db'}") as client:
        first = client.batch([client.chat().user(p) for p in prompts], max_workers=8)
        calls = len(server.requests)
        again = client.batch([client.chat().user(p) for p in prompts], max_workers=8)
    assert calls == 1000
    assert len(server.requests) == 1000  # the re-run asked nobody
    assert [r.content for r in again] == [r.content for r in first]


def test_a_bad_cache_spec_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="sqlite"):
        AiClient("openai/gpt-4o", api_key="sk-test", cache="postgres://nope")
    with pytest.raises(ConfigurationError):
        AiClient("openai/gpt-4o", api_key="sk-test", cache=object())


def test_a_redis_cache_is_shared_and_expires_by_redis_ttl(server, redis_url):  # noqa: F811
    with echo_client(server, cache=redis_url, cache_ttl=60) as first:
        expected = first.chat().user("via redis").execute().content
    with echo_client(server, cache=redis_url) as second:  # another client, as another process would
        response, stats = second.chat().user("via redis").execute_with_stats()
    assert stats.cached and response.content == expected
    assert len(server.requests) == 1
    import redis

    keys = redis.Redis.from_url(redis_url).keys("ai-lib-sync:cache:*")
    assert len(keys) == 1 and 0 < redis.Redis.from_url(redis_url).ttl(keys[0]) <= 60
