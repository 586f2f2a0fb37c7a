"""``client.embed()``: input checks before any I/O, the split plan, failures, the pool, the CLI."""

from __future__ import annotations

import argparse
import json
import threading
import time

import pytest

from ai_lib_sync import EmbeddingResponse
from ai_lib_sync.embeddings import plan
from ai_lib_sync.errors import AiLibError, ConfigurationError, InvalidRequestError, ServerError
from ai_lib_sync.testing import Reply
from tests.providers.test_embeddings_providers import FAMILIES, openai_echo

BAD_INPUTS = [[], "just a string", ["ok", 3], ["ok", None], ["ok", "  "], [b"bytes"], {"a": "b"}, 42]


@pytest.mark.parametrize("family", FAMILIES, ids=str)
@pytest.mark.parametrize("texts", BAD_INPUTS, ids=repr)
def test_bad_input_is_refused_before_any_request(family, texts, server, make_client) -> None:
    client = make_client(family.model_id, prefix=family.prefix)
    with pytest.raises(InvalidRequestError):
        client.embed(texts)
    assert server.requests == []


@pytest.mark.parametrize("call, message", [
    (lambda c: c.embed(["a"], dimensions=0), "positive integer"),
    (lambda c: c.embed(["a"], dimensions=True), "positive integer"),
    (lambda c: c.embed(["a"], input_type="banana"), "input_type"),
    (lambda c: c.embed(["a"], max_inputs=3), "manifest setting"),
])
def test_bad_options_are_refused_before_any_request(call, message, server, make_client) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        call(make_client("cohere/embed-v4.0"))
    assert server.requests == []


def test_manifest_limits_on_dimensions(server, make_client) -> None:
    with pytest.raises(InvalidRequestError, match="256, 512, 1024"):
        make_client("bedrock/amazon.titan-embed-text-v2:0").embed(["a"], dimensions=300)
    with pytest.raises(InvalidRequestError, match="does not let you choose"):
        make_client("llamacpp/m", prefix="/v1").embed(["a"], dimensions=64)
    assert server.requests == []


def test_symmetric_providers_ignore_a_unified_input_type(server, make_client) -> None:
    server.handler = openai_echo
    make_client("openai/text-embedding-3-small", prefix="/v1").embed(["t0"], input_type="document")
    assert server.last.json == {"model": "text-embedding-3-small", "input": ["t0"]}


def test_native_input_type_passes_through(server, make_client) -> None:
    server.enqueue(Reply(200, {"embeddings": {"float": [[1.0]]}, "meta": {}}))
    make_client("cohere/embed-english-v3.0").embed(["t0"], input_type="classification")
    assert server.last.json["input_type"] == "classification"


def test_provider_without_embeddings(server, make_client) -> None:
    with pytest.raises(ConfigurationError, match="offers no embeddings"):
        make_client("anthropic/claude-3-5-haiku-20241022").embed(["a"])
    assert server.requests == []


def test_plan_respects_count_and_token_limits() -> None:
    texts = ["aa", "bb", "cc", "dd", "e"]
    assert plan(texts, {"max_inputs": 2}) == [(0, 2), (2, 4), (4, 5)]
    assert plan(texts, {"max_tokens_per_request": 5}) == [(0, 2), (2, 5)]  # aa+bb+cc is 6 bytes
    assert plan(["é" * 3, "a"], {"max_tokens_per_request": 6}) == [(0, 1), (1, 2)]  # bytes, not chars
    assert plan(["x" * 50, "a"], {"max_tokens_per_request": 10}) == [(0, 1), (1, 2)]  # too long alone
    assert plan(texts, {}) == [(0, 5)]


def test_a_failing_piece_fails_the_call_with_a_typed_error(server, make_client) -> None:
    def handler(request):
        if request.json["input"][0] == "t10":
            return Reply(500, {"error": {"message": "boom test-key-123456", "type": "server_error"}})
        return openai_echo(request)

    server.handler = handler
    with pytest.raises(ServerError) as caught:
        make_client("dashscope/text-embedding-v4", prefix="/compatible-mode/v1").embed([f"t{i}" for i in range(25)])
    assert caught.value.provider == "dashscope"
    assert "test-key-123456" not in str(caught.value) and "test-key-123456" not in (caught.value.body or "")


def test_wrong_number_of_vectors_is_a_server_error(server, make_client) -> None:
    server.enqueue(Reply(200, {"object": "list", "model": "m", "data": [{"index": 0, "embedding": [1.0]}]}))
    with pytest.raises(ServerError, match="asked for 2 embeddings"):
        make_client("openai/text-embedding-3-small", prefix="/v1").embed(["t0", "t1"])


def test_unreadable_body_is_a_server_error(server, make_client) -> None:
    server.enqueue(Reply(200, "not json", headers={"Content-Type": "application/json"}))
    with pytest.raises(AiLibError) as caught:
        make_client("ollama/all-minilm").embed(["t0"])
    assert caught.value.kind == "server_error"


def test_many_pieces_run_a_few_at_a_time(server, make_client) -> None:
    """50 texts at 10 per request: 5 requests, at most 4 in flight, all overlapping some."""
    lock, state = threading.Lock(), {"now": 0, "peak": 0}

    def handler(request):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return openai_echo(request)

    server.handler = handler
    result = make_client("dashscope/text-embedding-v4", prefix="/compatible-mode/v1").embed(
        [f"t{i}" for i in range(50)])
    assert len(server.requests) == 5 and 2 <= state["peak"] <= 4
    assert [vec[0] for vec in result.vectors] == [float(i) for i in range(50)]
    assert isinstance(result, EmbeddingResponse) and len(result) == 50
    assert result.stats.prompt_tokens == 50 and result.stats.cost_usd is None  # no price in the manifest


def test_inside_a_call_scope_pieces_stay_on_the_callers_thread(server, make_client) -> None:
    from ai_lib_sync.transport import CallScope

    threads = []

    def handler(request):
        threads.append(threading.current_thread().name)
        return openai_echo(request)

    server.handler = handler
    client = make_client("dashscope/text-embedding-v4", prefix="/compatible-mode/v1")
    with CallScope():
        result = client.embed([f"t{i}" for i in range(25)])
    assert len(server.requests) == 3 and len(result.vectors) == 25


def test_result_serialises(server, make_client) -> None:
    server.handler = openai_echo
    data = make_client("openai/text-embedding-3-small", prefix="/v1").embed(["t1"]).to_dict()
    assert data["vectors"] == [[1.0, 0.5]] and data["provider"] == "openai"


# --- CLI -----------------------------------------------------------------------------------


def run_cli(argv: list[str]) -> int:
    from ai_lib_sync import cli_embed

    parser = argparse.ArgumentParser()
    cli_embed.add_parser(parser.add_subparsers())
    args = parser.parse_args(["embed", *argv])
    return args.run(args)


def test_cli_embeds_jsonl_in_order(server, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "test-key-123456")
    monkeypatch.setenv("DASHSCOPE_BASE_URL", server.base_url + "/compatible-mode/v1")
    server.handler = openai_echo
    source = tmp_path / "in.jsonl"
    source.write_text('"t0"\n\n{"id": "x", "text": "t1"}\n' + "".join(f'"t{i}"\n' for i in range(2, 23)))
    target = tmp_path / "out.jsonl"
    assert run_cli(["-m", "dashscope/text-embedding-v4", "-i", str(source), "-o", str(target)]) == 0
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [line["id"] for line in lines][:3] == [0, "x", 2]
    assert [line["embedding"][0] for line in lines] == [float(i) for i in range(23)]
    assert len(server.requests) == 3
    assert "texts=23 tokens=23" in capsys.readouterr().err


def test_cli_bad_line_fails_before_any_request(server, tmp_path, capsys) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('"ok"\n{"text": 5}\n')
    assert run_cli(["-m", "openai/text-embedding-3-small", "-i", str(source)]) == 2
    assert "line 2" in capsys.readouterr().err and server.requests == []
