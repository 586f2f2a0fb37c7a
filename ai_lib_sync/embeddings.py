"""``client.embed(texts)``: check the input, split it at the provider's per-request limits, send
the pieces (a few at a time on a small thread pool), and put the vectors back in input order.

Everything provider-specific comes from the manifest's ``embeddings`` section (path, limits,
dimensions field, input-type mapping; per-model overrides under ``models``) and from the
dialect's ``encode_embeddings``/``decode_embeddings``. The HTTP goes through the client's
transport, so timeouts, retries, secrets redaction and SigV4 signing are the chat path's.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .errors import AiLibError, ConfigurationError, InvalidRequestError, make_error
from .transport import current_scope
from .types import CallStats, EmbeddingResponse, Usage

if TYPE_CHECKING:  # pragma: no cover
    from .client import AiClient, ProviderBinding

# Unified input types; each manifest maps them to its wire values. Providers whose embeddings
# are symmetric (OpenAI) have no mapping: the hint is then dropped, as it changes nothing there.
INPUT_TYPES = ("query", "document", "classification", "clustering", "similarity")
# Requests in flight at once when the input needs several: enough to hide latency, few enough
# not to trip a provider's concurrency limits. The batch executor is the tool for more.
MAX_PARALLEL = 4
_LIMIT_KEYS = ("max_inputs", "max_tokens_per_request")


def embedding_spec(manifest: Any, model: str) -> dict[str, Any]:
    """The manifest's ``embeddings`` section with the first matching ``models`` entry (an exact
    name, else a glob) merged over it."""
    section = manifest.data.get("embeddings")
    if not section:
        raise ConfigurationError(f"{manifest.id} offers no embeddings (its manifest has no 'embeddings' section)")
    spec = {key: value for key, value in section.items() if key != "models"}
    models = section.get("models", {})
    override = models.get(model)
    if override is None:
        override = next((info for pattern, info in models.items()
                         if "*" in pattern and fnmatch.fnmatchcase(model, pattern)), {})
    spec.update(override)
    return spec


def check_texts(texts: Any) -> list[str]:
    if isinstance(texts, (str, bytes, bytearray)) or isinstance(texts, dict) or not isinstance(texts, Iterable):
        raise InvalidRequestError(
            f"texts must be a list of strings, got {type(texts).__name__} (to embed one text: embed([text]))")
    items = list(texts)
    if not items:
        raise InvalidRequestError("texts is empty: give at least one string to embed")
    for position, text in enumerate(items):
        if not isinstance(text, str):
            raise InvalidRequestError(f"texts[{position}] is {type(text).__name__}, not a string")
        if not text.strip():
            raise InvalidRequestError(f"texts[{position}] is empty: providers refuse empty inputs")
    return items


def check_dimensions(dimensions: Any, spec: dict[str, Any], provider: str, model: str) -> int | None:
    if dimensions is None:
        return None
    if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1:
        raise InvalidRequestError(f"dimensions must be a positive integer, got {dimensions!r}")
    if not spec.get("dimensions"):
        raise InvalidRequestError(f"{provider}/{model} does not let you choose the embedding size (dimensions)")
    allowed = spec.get("dimension_values")
    if allowed and dimensions not in allowed:
        raise InvalidRequestError(f"{provider}/{model} takes dimensions of {', '.join(map(str, allowed))}, "
                                  f"not {dimensions}")
    return dimensions


def wire_input_type(input_type: Any, spec: dict[str, Any], provider: str) -> str | None:
    """The provider's value for ``input_type`` (unified or already native), its default when
    None, or None when the provider has no such field."""
    mapping = spec.get("input_type")
    if input_type is None:
        return mapping.get("default") if mapping else None
    if not isinstance(input_type, str) or not input_type:
        raise InvalidRequestError(f"input_type must be one of {', '.join(INPUT_TYPES)}, got {input_type!r}")
    if not mapping:
        if input_type in INPUT_TYPES:
            return None
        raise InvalidRequestError(f"{provider} embeddings take no input_type; {input_type!r} is not one of "
                                  f"the unified values {', '.join(INPUT_TYPES)}")
    values = mapping.get("values", {})
    if input_type in values:
        return values[input_type]
    if input_type in values.values():
        return input_type
    raise InvalidRequestError(f"{provider} embeddings take input_type {', '.join(values)} "
                              f"(or {', '.join(sorted(set(values.values())))}), not {input_type!r}")


def plan(texts: list[str], spec: dict[str, Any]) -> list[tuple[int, int]]:
    """``(start, end)`` slices that respect the per-request limits: ``max_inputs`` texts and
    ``max_tokens_per_request`` tokens, counted as UTF-8 bytes (a byte-level tokenizer never
    makes more tokens than bytes, so the limit holds without the provider's tokenizer). A text
    over the token limit by itself travels alone; the provider then decides."""
    max_inputs = spec.get("max_inputs") or len(texts)
    max_tokens = spec.get("max_tokens_per_request")
    slices: list[tuple[int, int]] = []
    start, tokens = 0, 0
    for position, text in enumerate(texts):
        size = len(text.encode("utf-8")) if max_tokens else 0
        if position > start and (position - start >= max_inputs or (max_tokens and tokens + size > max_tokens)):
            slices.append((start, position))
            start, tokens = position, 0
        tokens += size
    slices.append((start, len(texts)))
    return slices


def embed(client: AiClient, texts: Iterable[str], dimensions: int | None = None,
          input_type: str | None = None, **options: Any) -> EmbeddingResponse:
    """See ``AiClient.embed``. Every check runs before the first request is sent."""
    binding = client.binding
    items = check_texts(texts)
    spec = embedding_spec(binding.manifest, binding.model)
    for key in _LIMIT_KEYS:
        if key in options:
            raise InvalidRequestError(f"{key} is a manifest setting (embeddings.{key}), not a request option")
    if not hasattr(binding.dialect, "encode_embeddings"):
        raise ConfigurationError(f"the {binding.manifest.dialect} dialect has no embeddings")
    request = {"dimensions": check_dimensions(dimensions, spec, binding.provider, binding.model),
               "input_type": wire_input_type(input_type, spec, binding.provider), "extra": options}
    slices = plan(items, spec)
    started = time.perf_counter()

    def send(piece: tuple[int, int]) -> tuple[list[list[float]], int | None, str | None, int, str | None]:
        return _send(client, binding, spec, items[piece[0]:piece[1]], request)

    # Inside a call scope (batch executor, aio) the caller already runs calls in parallel, and
    # its cancel/abort hooks are per thread: stay on the caller's thread there.
    if len(slices) == 1 or current_scope() is not None:
        results = [send(piece) for piece in slices]
    else:
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(slices)),
                                thread_name_prefix="ai-lib-sync-embed") as pool:
            futures = [pool.submit(send, piece) for piece in slices]
            try:
                results = [future.result() for future in futures]
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    vectors: list[list[float]] = []
    tokens, retries, counted = 0, 0, True
    for chunk_vectors, chunk_tokens, _, chunk_retries, _ in results:
        vectors.extend(chunk_vectors)
        retries += chunk_retries
        if chunk_tokens is None:
            counted = False
        else:
            tokens += chunk_tokens
    model = results[0][2] or binding.model
    usage = Usage.of(tokens, 0)
    latency = (time.perf_counter() - started) * 1000.0
    stats = CallStats(usage.prompt_tokens, 0, usage.total_tokens, round(latency, 3), None, retries,
                      binding.provider, model, None, results[0][4])
    if counted:
        binding.priced(stats, usage)
    return EmbeddingResponse(vectors, usage, model, binding.provider, stats)


def _send(client: AiClient, binding: ProviderBinding, spec: dict[str, Any], texts: list[str],
          request: dict[str, Any]) -> tuple[list[list[float]], int | None, str | None, int, str | None]:
    """One request: (vectors, tokens or None, model the provider named, retries, request id)."""
    from .client import _request_id

    dialect = binding.dialect
    wire = dialect.encode_embeddings(texts, binding.manifest, binding.model, spec, **request)
    prepared = binding.prepare_wire(wire)
    try:
        response, body, retries = client.transport.call(prepared)
        vectors, tokens, model = dialect.decode_embeddings(body, response.headers, binding.manifest,
                                                           binding.model, spec)
    except AiLibError as error:
        raise binding.stamp(error) from None
    except ValueError as exc:
        raise binding.stamp(make_error("server_error", f"the provider sent an unreadable response: {exc}")) from None
    if len(vectors) != len(texts):
        raise binding.stamp(make_error(
            "server_error", f"asked for {len(texts)} embeddings, the provider sent {len(vectors)}"))
    return vectors, tokens, model, retries, _request_id(response.headers)
