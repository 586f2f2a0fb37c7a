"""``client.embed()`` per provider family, through the public API against the loopback server.

For each family: the request the provider receives (path, auth header, body with the
dimensions and input-type mapping) against the provider's documentation, the documented
response (tests/fixtures/embeddings/, each with its doc URL), and splitting at the documented
per-request limit with the vectors put back in input order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from ai_lib_sync.testing import RecordedRequest, Reply
from tests.helpers import fixture_json

KEY = "test-key-123456"


def vector(text: str) -> list[float]:
    """Texts are ``t<number>``: the vector carries the number, so order is checkable."""
    return [float(text[1:]), 0.5]


def openai_echo(request: RecordedRequest) -> Reply:
    texts = request.json["input"]
    data = [{"object": "embedding", "index": i, "embedding": vector(t)} for i, t in enumerate(texts)]
    return Reply(200, {"object": "list", "data": data[::-1], "model": request.json.get("model", "deployment"),
                       "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)}})


def gemini_echo(request: RecordedRequest) -> Reply:
    if request.path.endswith(":embedContent"):
        return Reply(200, {"embedding": {"values": vector(request.json["content"]["parts"][0]["text"])}})
    return Reply(200, {"embeddings": [{"values": vector(item["content"]["parts"][0]["text"])}
                                      for item in request.json["requests"]]})


def cohere_echo(request: RecordedRequest) -> Reply:
    texts = request.json["texts"]
    return Reply(200, {"id": "x", "embeddings": {"float": [vector(t) for t in texts]}, "texts": texts,
                       "meta": {"billed_units": {"input_tokens": len(texts)}}, "response_type": "embeddings_by_type"})


def ollama_echo(request: RecordedRequest) -> Reply:
    texts = request.json["input"]
    return Reply(200, {"model": request.json["model"], "embeddings": [vector(t) for t in texts],
                       "prompt_eval_count": len(texts)})


def titan_echo(request: RecordedRequest) -> Reply:
    return Reply(200, {"embedding": vector(request.json["inputText"]), "inputTextTokenCount": 1})


def bedrock_cohere_echo(request: RecordedRequest) -> Reply:
    texts = request.json["texts"]
    return Reply(200, {"embeddings": [vector(t) for t in texts], "response_type": "embeddings_floats"},
                 headers={"X-Amzn-Bedrock-Input-Token-Count": str(len(texts))})


def openai_texts(body: dict) -> list[str]:
    return body["input"]


@dataclass(frozen=True)
class Family:
    model_id: str
    prefix: str  # path of the documented base URL
    path: str  # what the server receives
    body: Callable[[list[str]], dict]  # the documented request for these texts (with `options`)
    fixture: str
    echo: Callable[[RecordedRequest], Reply]
    texts_of: Callable[[dict], list[str]] = openai_texts
    options: dict[str, Any] = field(default_factory=dict)  # embed() keywords
    auth: tuple[str, str] = ("authorization", f"Bearer {KEY}")
    limit: int | None = None  # documented texts per request
    tokens: int | None = None  # prompt tokens of the fixture
    query: dict[str, list[str]] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.model_id.split("/")[0] + ":" + self.fixture


def openai_body(model: str | None, **fields: Any) -> Callable[[list[str]], dict]:
    return lambda texts: {**({"model": model} if model else {}), "input": texts, **fields}


DOC_RESPONSE = "embeddings/openai.json"
FAMILIES = [
    # https://platform.openai.com/docs/api-reference/embeddings/create: 2048 inputs, 300k tokens
    Family("openai/text-embedding-3-small", "/v1", "/v1/embeddings",
           openai_body("text-embedding-3-small", dimensions=256), DOC_RESPONSE, openai_echo,
           options={"dimensions": 256, "input_type": "query"}, limit=2048, tokens=8),
    # https://learn.microsoft.com/en-us/azure/ai-services/openai/reference#embeddings
    Family("azure/my-embedding", "", "/openai/deployments/my-embedding/embeddings",
           openai_body(None, dimensions=512), DOC_RESPONSE, openai_echo, options={"dimensions": 512},
           auth=("api-key", KEY), limit=2048, tokens=8, query={"api-version": ["2024-10-21"]}),
    # https://docs.mistral.ai/api/endpoint/embeddings: output_dimension
    Family("mistral/codestral-embed", "/v1", "/v1/embeddings", openai_body("codestral-embed", output_dimension=512),
           DOC_RESPONSE, openai_echo, options={"dimensions": 512}, tokens=8),
    # https://docs.together.ai/reference/embeddings
    Family("together/BAAI/bge-large-en-v1.5", "/v1", "/v1/embeddings", openai_body("BAAI/bge-large-en-v1.5"),
           DOC_RESPONSE, openai_echo, tokens=8),
    # https://deepinfra.com/docs/advanced/openai_api (embeddings through /v1/openai)
    Family("deepinfra/BAAI/bge-m3", "/v1/openai", "/v1/openai/embeddings", openai_body("BAAI/bge-m3"),
           DOC_RESPONSE, openai_echo, tokens=8),
    # https://docs.siliconflow.cn/api-reference/embeddings/create-embeddings
    Family("siliconflow/BAAI/bge-m3", "/v1", "/v1/embeddings", openai_body("BAAI/bge-m3"), DOC_RESPONSE,
           openai_echo, tokens=8),
    # https://docs.qwencloud.com/api-reference/text-embedding/openai-embedding: 10 rows, dimensions
    Family("dashscope/text-embedding-v4", "/compatible-mode/v1", "/compatible-mode/v1/embeddings",
           openai_body("text-embedding-v4", dimensions=1024), "embeddings/dashscope.json", openai_echo,
           options={"dimensions": 1024}, limit=10, tokens=184),
    # https://docs.bigmodel.cn/api-reference/模型-api/文本嵌入 (64 inputs per request)
    Family("zhipu/embedding-3", "/api/paas/v4", "/api/paas/v4/embeddings",
           openai_body("embedding-3", dimensions=256), "embeddings/zhipu.json", openai_echo,
           options={"dimensions": 256}, limit=64, tokens=123),
    # https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html (Embeddings API)
    Family("vllm/intfloat/e5-small", "/v1", "/v1/embeddings", openai_body("intfloat/e5-small"), DOC_RESPONSE,
           openai_echo, tokens=8),
    # https://lmstudio.ai/docs/app/api/endpoints/openai (/v1/embeddings)
    Family("lmstudio/text-embedding-nomic-embed-text-v1.5", "/v1", "/v1/embeddings",
           openai_body("text-embedding-nomic-embed-text-v1.5"), DOC_RESPONSE, openai_echo, tokens=8),
    # https://docs.api.nvidia.com/nim/reference/nvidia-nv-embedqa-e5-v5-infer: input_type query|passage
    Family("nvidia/nvidia/nv-embedqa-e5-v5", "/v1", "/v1/embeddings",
           openai_body("nvidia/nv-embedqa-e5-v5", input_type="passage"), DOC_RESPONSE, openai_echo,
           options={"input_type": "document"}, tokens=8),
    # https://ai.google.dev/api/embeddings: embedContent for one text
    Family("gemini/gemini-embedding-001", "", "/v1beta/models/gemini-embedding-001:embedContent",
           lambda texts: {"content": {"parts": [{"text": texts[0]}]}, "taskType": "RETRIEVAL_DOCUMENT",
                          "outputDimensionality": 768},
           "embeddings/gemini_embed_content.json", gemini_echo,
           texts_of=lambda body: [item["content"]["parts"][0]["text"] for item in body.get("requests", [body])],
           options={"dimensions": 768, "input_type": "document"}, auth=("x-goog-api-key", KEY)),
    # ... and batchEmbedContents for several (at most 100 requests in one batch)
    Family("gemini/gemini-embedding-001", "", "/v1beta/models/gemini-embedding-001:batchEmbedContents",
           lambda texts: {"requests": [{"model": "models/gemini-embedding-001",
                                        "content": {"parts": [{"text": text}]}, "taskType": "RETRIEVAL_QUERY"}
                                       for text in texts]},
           "embeddings/gemini_batch_embed_contents.json", gemini_echo,
           texts_of=lambda body: [item["content"]["parts"][0]["text"] for item in body.get("requests", [body])],
           options={"input_type": "query"}, auth=("x-goog-api-key", KEY), limit=100),
    # https://docs.cohere.com/reference/embed: 96 texts, input_type, embedding_types, output_dimension
    Family("cohere/embed-v4.0", "", "/v2/embed",
           lambda texts: {"model": "embed-v4.0", "texts": texts, "input_type": "search_query",
                          "embedding_types": ["float"], "output_dimension": 1024},
           "embeddings/cohere.json", cohere_echo, texts_of=lambda body: body["texts"],
           options={"dimensions": 1024, "input_type": "query"}, limit=96, tokens=2),
    # https://github.com/ollama/ollama/blob/main/docs/api.md#generate-embeddings
    Family("ollama/all-minilm", "", "/api/embed", lambda texts: {"model": "all-minilm", "input": texts, "dimensions": 384},
           "embeddings/ollama.json", ollama_echo, options={"dimensions": 384}, tokens=8),
    # Bedrock InvokeModel, Titan Text Embeddings v2: one inputText per request, dimensions 256/512/1024
    Family("bedrock/amazon.titan-embed-text-v2:0", "", "/model/amazon.titan-embed-text-v2%3A0/invoke",
           lambda texts: {"inputText": texts[0], "dimensions": 512}, "embeddings/bedrock_titan_v2.json",
           titan_echo, texts_of=lambda body: [body["inputText"]], options={"dimensions": 512}, limit=1, tokens=5),
    # Bedrock InvokeModel, Cohere Embed v3: 96 texts, input_type required (search_document by default)
    Family("bedrock/cohere.embed-english-v3", "", "/model/cohere.embed-english-v3/invoke",
           lambda texts: {"texts": texts, "input_type": "search_document"}, "embeddings/bedrock_cohere.json",
           bedrock_cohere_echo, texts_of=lambda body: body["texts"], limit=96),
]


def fixture_vectors(name: str) -> list[list[float]]:
    data = fixture_json(name)
    if "data" in data:
        return [item["embedding"] for item in sorted(data["data"], key=lambda item: item["index"])]
    if "embedding" in data:
        embedding = data["embedding"]
        return [embedding["values"] if isinstance(embedding, dict) else embedding]
    embeddings = data["embeddings"]
    if isinstance(embeddings, dict):
        return embeddings["float"]
    return [item["values"] if isinstance(item, dict) else item for item in embeddings]


@pytest.mark.parametrize("family", FAMILIES, ids=str)
def test_documented_request_and_response(family: Family, server, make_client) -> None:
    expected_vectors = fixture_vectors(family.fixture)
    texts = [f"t{i}" for i in range(len(expected_vectors))]
    server.enqueue(Reply(200, fixture_json(family.fixture)))
    result = make_client(family.model_id, prefix=family.prefix).embed(texts, **family.options)
    sent = server.last
    assert (sent.method, sent.path) == ("POST", family.path)
    assert sent.header(family.auth[0]) == family.auth[1]
    assert sent.header("content-type") == "application/json"
    assert sent.json == family.body(texts)
    for name, values in family.query.items():
        assert sent.query[name] == values
    assert KEY not in sent.path and "key" not in sent.query
    assert result.vectors == expected_vectors
    assert result.provider == family.model_id.split("/")[0]
    assert result.usage.prompt_tokens == (family.tokens or 0) == result.stats.prompt_tokens
    assert result.dimensions == len(expected_vectors[0])


LIMITED = [family for family in FAMILIES if family.limit]


@pytest.mark.parametrize("family", LIMITED, ids=str)
def test_split_at_the_documented_limit_and_reordered(family: Family, server, make_client) -> None:
    """2*limit+1 texts: three requests, none over the limit; the first answers last (slowest),
    yet the vectors come back in input order and the usage is summed."""
    count = 2 * family.limit + 1
    texts = [f"t{i}" for i in range(count)]

    def handler(request: RecordedRequest) -> Reply:
        first = family.texts_of(request.json)[0]
        if first == "t0":
            time.sleep(0.15)
        return family.echo(request)

    server.handler = handler
    options = {key: value for key, value in family.options.items() if key != "dimensions"}
    result = make_client(family.model_id, prefix=family.prefix).embed(texts, **options)
    sizes = [len(family.texts_of(request.json)) for request in server.requests]
    if family.limit == 1:
        assert sizes == [1, 1, 1]
    else:
        assert sorted(sizes) == sorted([family.limit, family.limit, 1])
    sent = sorted((text for request in server.requests for text in family.texts_of(request.json)),
                  key=lambda text: int(text[1:]))
    assert sent == texts
    assert [vec[0] for vec in result.vectors] == [float(i) for i in range(count)]
    if family.tokens is not None or family.echo in (bedrock_cohere_echo, titan_echo):
        assert result.usage.prompt_tokens == count


def test_openai_token_limit_splits_long_inputs(server, make_client) -> None:
    """300,000 tokens per request (counted as bytes): two 200 kB texts need two requests."""
    server.handler = lambda request: Reply(200, {"object": "list", "model": "m", "usage": {"prompt_tokens": 1},
                                                 "data": [{"index": i, "embedding": [float(len(t))]}
                                                          for i, t in enumerate(request.json["input"])]})
    texts = ["a" * 200_000, "b" * 200_000, "c"]
    result = make_client("openai/text-embedding-3-small", prefix="/v1").embed(texts)
    assert sorted(len(request.json["input"]) for request in server.requests) == [1, 2]
    assert [vec[0] for vec in result.vectors] == [200_000.0, 200_000.0, 1.0]


def test_openai_cost_from_the_manifest(server, make_client) -> None:
    server.enqueue(Reply(200, fixture_json(DOC_RESPONSE)))
    result = make_client("openai/text-embedding-3-small", prefix="/v1").embed(["t0"])
    assert result.stats.cost_usd == pytest.approx(8 * 0.02 / 1_000_000)
    assert result.model == "text-embedding-ada-002"  # the model the provider named


def test_openai_base64_vectors_are_decoded(server, make_client) -> None:
    import base64
    import struct

    packed = base64.b64encode(struct.pack("<3f", 0.5, -1.0, 2.25)).decode()
    server.enqueue(Reply(200, {"object": "list", "model": "m", "usage": {"prompt_tokens": 1, "total_tokens": 1},
                               "data": [{"object": "embedding", "index": 0, "embedding": packed}]}))
    result = make_client("openai/text-embedding-3-small", prefix="/v1").embed(["t0"], encoding_format="base64")
    assert server.last.json["encoding_format"] == "base64"
    assert result.vectors == [[0.5, -1.0, 2.25]]


def test_bedrock_cohere_tokens_from_the_invoke_header(server, make_client) -> None:
    server.enqueue(Reply(200, fixture_json("embeddings/bedrock_cohere.json"),
                         headers={"X-Amzn-Bedrock-Input-Token-Count": "4"}))
    result = make_client("bedrock/cohere.embed-english-v3").embed(["t0", "t1"], input_type="query")
    assert server.last.json == {"texts": ["t0", "t1"], "input_type": "search_query"}
    assert result.usage.prompt_tokens == 4
    assert result.stats.cost_usd == pytest.approx(4 * 0.1 / 1_000_000)


def test_bedrock_embeddings_are_sigv4_signed(make_client, server, monkeypatch) -> None:
    pytest.importorskip("botocore")
    from tests.test_dialect_bedrock import ACCESS_KEY, SECRET_KEY, resign

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    server.enqueue(Reply(200, fixture_json("embeddings/bedrock_titan_v2.json")))
    make_client("bedrock/amazon.titan-embed-text-v2:0", api_key=None).embed(["hello"])
    sent = server.last
    expected, canonical = resign(sent, server.base_url)
    assert sent.header("authorization") == expected
    assert canonical.split("\n")[1] == "/model/amazon.titan-embed-text-v2%253A0/invoke"


def test_llamacpp_real_capture(server, make_client) -> None:
    """tests/fixtures/llamacpp/llama-server-embeddings.txt: llama-server with and without
    ``--embeddings``. The capture elides the 576 floats of each vector (``... 576 floats``);
    the replay keeps the two floats it shows."""
    from tests.helpers import fixture_bytes

    raw = fixture_bytes("llamacpp/llama-server-embeddings.txt").decode()
    captures = raw.split("\n# ")
    replies, requests = [], []
    for capture in captures:
        curl = next(line for line in capture.splitlines() if line.startswith("$ curl"))
        requests.append(json.loads(curl.split("-d '", 1)[1].rstrip("'")))
        head, _, body = capture[capture.index("HTTP/1.1 "):].partition("\n\n")
        status = int(head.split()[1])
        replies.append(Reply(status, body.strip().replace(", ... 576 floats]", "]"),
                             headers={"Content-Type": "application/json; charset=utf-8"}))
    from ai_lib_sync.errors import AiLibError

    server.enqueue(replies[0])
    client = make_client("llamacpp/gemma-3-270m", prefix="/v1", api_key=None)
    with pytest.raises(AiLibError) as caught:
        client.embed(["Hello world"])
    assert "--embeddings" in str(caught.value) and caught.value.status_code == 501
    assert server.last.path == "/v1/embeddings"

    server.enqueue(replies[1])
    client = make_client("llamacpp/smollm2-135m-instruct", prefix="/v1", api_key=None)
    result = client.embed(["Hello world", "Bonjour"])
    assert server.last.json == requests[1] == {"model": "smollm2-135m-instruct", "input": ["Hello world", "Bonjour"]}
    assert server.last.header("authorization") is None
    assert result.vectors == [[-0.017678627744317055, -0.0040060048922896385],
                              [-0.024337269365787506, -0.02555098943412304]]
    assert result.usage.prompt_tokens == 4 and result.model == "smollm2-135m-instruct"
