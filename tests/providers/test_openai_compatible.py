"""The common part of every OpenAI-compatible manifest, one parametrized table.

For each provider: the request it would receive (path, query, auth header, body with or without
``model``, ``stream``/``stream_options``), the parsing of a documented response and stream (through
a real loopback HTTP server), the same stream split at awkward byte boundaries, and where the key
and base URL come from.
"""

from __future__ import annotations

import pytest

from ai_lib_sync import AiClient
from ai_lib_sync.errors import ConfigurationError, InvalidRequestError
from ai_lib_sync.manifest import builtin_dir, load_manifest
from ai_lib_sync.testing import Reply
from tests.helpers import awkward_chunks, decode_stream, fixture_bytes, fixture_json, kinds, text_of

from .table import PROVIDERS, WITH_DOC_FIXTURES, Expect, request_path

KEY = "test-key-123456"


def builtin_manifest(provider: str):
    return load_manifest(provider, [builtin_dir()])


def model_id(expect: Expect) -> str:
    return f"{expect.provider}/{expect.model}"


def expected_query(expect: Expect) -> dict[str, list[str]]:
    return {"api-version": ["2024-10-21"]} if expect.provider == "azure" else {}


def assert_auth(expect: Expect, request, key: str = KEY) -> None:
    assert request.header(expect.auth_header) == expect.auth_prefix + key
    if expect.auth_header != "authorization":
        assert request.header("authorization") is None


def sse_reply(data: bytes) -> Reply:
    return Reply(chunks=awkward_chunks(data, (97, 13, 7, 29)), headers={"Content-Type": "text/event-stream"})


@pytest.mark.parametrize("expect", PROVIDERS, ids=str)
def test_default_base_url_is_the_documented_one(expect: Expect) -> None:
    client = AiClient(model_id(expect), api_key=KEY, environ=dict(expect.extra_env))
    try:
        assert client.base_url == expect.base_url.rstrip("/")
        assert client.provider == expect.provider
        assert client.manifest.data["docs"].startswith("https://")
    finally:
        client.close()


@pytest.mark.parametrize("expect", WITH_DOC_FIXTURES, ids=str)
def test_non_streamed_request_and_documented_response(expect: Expect, server, make_client) -> None:
    server.enqueue(Reply(200, fixture_json(f"{expect.provider}/chat.json")))
    client = make_client(model_id(expect), prefix=expect.prefix)
    response, stats = (client.chat().system("Réponds brièvement.").user("héllo 世界?")
                       .temperature(0.5).max_tokens(64).execute_with_stats())

    request = server.last
    assert request.method == "POST"
    assert request.path == request_path(expect)
    assert request.query == expected_query(expect)
    assert_auth(expect, request)
    assert request.header("content-type") == "application/json"
    for name, value in expect.headers.items():
        assert request.header(name) == value
    body = request.json
    assert body["messages"] == [{"role": "system", "content": "Réponds brièvement."},
                                {"role": "user", "content": "héllo 世界?"}]
    assert ("model" in body) is (expect.provider != "azure")
    if "model" in body:
        assert body["model"] == expect.model
    assert body["temperature"] == 0.5 and body["max_tokens"] == 64
    assert "stream" not in body and "stream_options" not in body

    assert response.content == "héllo 世界"
    assert response.finish_reason == "stop"
    assert response.tool_calls == []
    assert response.provider == expect.provider
    usage = response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == expect.usage
    assert response.thinking == expect.thinking
    assert (stats.prompt_tokens, stats.completion_tokens, stats.total_tokens) == expect.usage
    # billed at the shipped catalog price of the model, or None where the catalog has none
    assert stats.cost_usd == builtin_manifest(expect.provider).usage_cost_usd(expect.model, usage)


@pytest.mark.parametrize("expect", WITH_DOC_FIXTURES, ids=str)
def test_streamed_request_and_documented_stream(expect: Expect, server, make_client) -> None:
    server.enqueue(sse_reply(fixture_bytes(f"{expect.provider}/stream.sse")))
    client = make_client(model_id(expect), prefix=expect.prefix)
    with client.chat().user("héllo").stream() as stream:
        events = list(stream)
        final = stream.final_response()

    request = server.last
    assert request.path == request_path(expect)
    assert request.query == expected_query(expect)
    assert_auth(expect, request)
    assert request.header("accept") == "text/event-stream"
    body = request.json
    assert body["stream"] is True
    if expect.stream_options:
        assert body["stream_options"] == {"include_usage": True}
    else:
        assert "stream_options" not in body
    assert ("model" in body) is (expect.provider != "azure")

    assert text_of(events) == "héllo 世界"
    assert kinds(events).count("finish") == 1
    assert events[-1].finish_reason == "stop"
    assert final.content == "héllo 世界"
    assert final.thinking == expect.thinking
    if not expect.stream_usage:  # the provider documents no usage in streams: none is invented
        assert "usage" not in kinds(events)
        assert final.usage.total_tokens == 0
        return
    assert kinds(events)[-2:] == ["usage", "finish"]
    usage = events[-2].usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == expect.usage
    assert final.usage == usage


@pytest.mark.parametrize("expect", WITH_DOC_FIXTURES, ids=str)
def test_stream_split_at_awkward_byte_boundaries(expect: Expect) -> None:
    data = fixture_bytes(f"{expect.provider}/stream.sse")
    pieces = split_everywhere(data)
    # The split must really cut lines and multi-byte characters, or this test proves nothing.
    assert any(not piece.endswith(b"\n") for piece in pieces)
    assert any(_cuts_a_character(piece) for piece in pieces)
    whole = decode_stream(expect.provider, data, awkward=False)
    split = decode_stream(expect.provider, pieces)
    assert split == whole
    assert text_of(split) == "héllo 世界"


def split_everywhere(data: bytes) -> list[bytes]:
    """Cut inside every multi-byte UTF-8 character (right after its lead byte), then cut each
    piece again into uneven small chunks so that lines break mid-way too."""
    cuts = [i for i in range(1, len(data)) if 0x80 <= data[i] < 0xC0 and data[i - 1] >= 0xC0]
    pieces = [data[start:end] for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    return [chunk for piece in pieces for chunk in awkward_chunks(piece)]


def _cuts_a_character(piece: bytes) -> bool:
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@pytest.mark.parametrize("expect", [e for e in PROVIDERS if e.max_stop is not None], ids=str)
def test_documented_stop_sequence_limit(expect: Expect, server, make_client) -> None:
    server.enqueue(Reply(200, fixture_json(f"{expect.provider}/chat.json")))
    client = make_client(model_id(expect), prefix=expect.prefix)
    stops = [f"s{i}" for i in range(expect.max_stop + 1)]
    client.chat().user("x").stop(stops[:-1]).execute()
    assert server.last.json["stop"] == stops[:-1]
    with pytest.raises(InvalidRequestError, match="stop"):
        client.chat().user("x").stop(stops).execute()
    assert len(server.requests) == 1


@pytest.mark.parametrize("expect", [e for e in PROVIDERS if not e.optional_key], ids=str)
def test_missing_key_names_the_variables_before_any_request(expect: Expect, server) -> None:
    with pytest.raises(ConfigurationError) as caught:
        AiClient(model_id(expect), base_url=server.base_url + expect.prefix, environ=dict(expect.extra_env))
    for name in expect.key_env:
        assert name in str(caught.value)
    assert server.requests == []


@pytest.mark.parametrize("expect", [e for e in PROVIDERS if e.optional_key], ids=str)
def test_local_servers_work_without_a_key(expect: Expect, server) -> None:
    server.enqueue(Reply(200, fixture_json("vllm/chat.json")))
    with AiClient(model_id(expect), base_url=server.base_url + expect.prefix, environ={}, max_retries=0) as client:
        assert client.chat().user("hi").execute().content == "héllo 世界"
    assert server.last.header("authorization") is None
    assert server.last.path == expect.chat_path


@pytest.mark.parametrize("expect", PROVIDERS, ids=str)
@pytest.mark.parametrize("which", [0, -1])
def test_key_and_base_url_from_the_environment(expect: Expect, which: int, server) -> None:
    environ = {**expect.extra_env, expect.key_env[which]: "env-key-7890abcd"}
    if expect.base_url_env:
        environ[expect.base_url_env] = server.base_url + expect.prefix
        base_url = None
    else:  # Azure: the endpoint variable is the base URL
        environ["AZURE_OPENAI_ENDPOINT"] = server.base_url + "/"
        base_url = None
    server.enqueue(Reply(200, fixture_json("vllm/chat.json")))
    with AiClient(model_id(expect), base_url=base_url, environ=environ, max_retries=0) as client:
        client.chat().user("hi").execute()
    assert server.last.path == request_path(expect)
    assert_auth(expect, server.last, "env-key-7890abcd")
