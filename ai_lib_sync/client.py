"""``AiClient``, the chat builder and the stream object: the public, blocking surface.

Data flows one way: builder -> ``ChatRequest`` -> checks and manifest rules -> dialect encode
-> transport -> dialect decode -> ``ChatResponse`` or stream events. Nothing here knows a
provider by name; everything provider-specific comes from the manifest and its dialect.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from .dialects import get_dialect
from .dialects.base import json_or_none
from .errors import (
    KINDS,
    AiLibError,
    ConfigurationError,
    InvalidRequestError,
    StreamInterruptedError,
    make_error,
    redact,
)
from .hooks import CallContext, Hooks
from .manifest import Manifest, load_manifest, manifest_for_api, search_dirs, split_model_id
from .params import apply_manifest_rules, check_reasoning, check_request
from .resolve import Credentials, Endpoint, environment, resolve_credentials, resolve_endpoint
from .transport import Prepared, RetryPolicy, StreamHandle, Timeouts, Transport
from .types import (
    CallStats,
    ChatRequest,
    ChatResponse,
    EmbeddingResponse,
    Message,
    Reasoning,
    StreamEvent,
    Tool,
    ToolCall,
    Usage,
    response_events,
)

logger = logging.getLogger("ai_lib_sync")

__version__ = "0.1.0"
USER_AGENT = f"ai-lib-sync/{__version__}"
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "x-goog-request-id")
# Errors after which trying the next model of ``fallbacks`` makes sense by default; add
# "context_length" (a model with a larger window) or "quota_exhausted" with ``fallback_on``.
FALLBACK_KINDS = frozenset({"rate_limited", "overloaded", "server_error", "timeout", "connection"})


class ProviderBinding:
    """One model id resolved against its manifest: dialect, endpoint, credentials."""

    def __init__(self, model_id: str, *, api_key: str | None, base_url: str | None,
                 dirs: list, environ: Mapping[str, str], url_params: Mapping[str, str] | None,
                 headers: Mapping[str, str] | None, api: str | None = None) -> None:
        provider, model = split_model_id(model_id)
        self.manifest: Manifest = manifest_for_api(load_manifest(provider, dirs), model, api)
        self.provider = self.manifest.id
        self.model = model
        self.model_id = f"{self.provider}/{model}"
        self.dialect = get_dialect(self.manifest.dialect)
        self.credentials: Credentials = resolve_credentials(self.manifest, api_key, environ)
        self.endpoint: Endpoint = resolve_endpoint(self.manifest, base_url, environ, url_params)
        self.extra_headers = {**self.manifest.headers, **(headers or {})}
        self.framing = self.manifest.streaming.get("framing", self.dialect.framing)
        self._signer = None
        if self.credentials.signer:
            from .aws_auth import make_signer

            self._signer = make_signer(self.manifest, self.endpoint.base_url, environ)

    def __repr__(self) -> str:
        return f"ProviderBinding({self.model_id!r}, base_url={self.endpoint.base_url!r})"

    def shape(self, request: ChatRequest) -> ChatRequest:
        """The request as the manifest's parameter rules reshape it for this model and the API
        version this binding actually sends (a fallback's model, a user's ``api-version``)."""
        return apply_manifest_rules(request, self.manifest, self.model, self.endpoint.query)

    def prepare(self, request: ChatRequest, stream: bool) -> Prepared:
        wire = self.dialect.encode_request(self.shape(request), self.manifest, self.model, stream)
        return self.prepare_wire(wire)

    def prepare_wire(self, wire: Any) -> Prepared:
        """A dialect's ``HttpRequest`` made sendable: base URL, query, credentials, signer.
        Chat and embeddings requests both come through here."""
        query = {**wire.query, **self.endpoint.query}
        log_query = "&".join(f"{k}={v}" for k, v in query.items())
        query.update(self.credentials.query)
        url = self.endpoint.base_url + wire.url_path
        log_url = url + ("?" + log_query if log_query else "")
        if query:
            from urllib.parse import urlencode

            url += "?" + urlencode(query)
        headers = {"User-Agent": USER_AGENT, **wire.headers, **self.extra_headers, **self.credentials.headers}
        body = None if wire.body is None else _json_body(wire.body)
        return Prepared(wire.method, url, headers, body, self.make_error, self.credentials.secrets,
                        self._signer, log_url)

    def make_error(self, status: int, headers: Mapping[str, str], body: bytes) -> AiLibError:
        info = self.dialect.classify_error(status, headers, body, self.manifest)
        return make_error(
            info.kind, info.message, status_code=status, provider=self.provider, model=self.model,
            retry_after=info.retry_after, request_id=_request_id(headers), code=info.code,
            body=body.decode("utf-8", "replace")[:4000], secrets=self.credentials.secrets,
        )

    def stamp(self, error: AiLibError) -> AiLibError:
        """Fill in who failed, for errors raised below the binding (transport, decoders), and
        redact this binding's secrets: a stream error frame may echo the key verbatim."""
        error.provider = error.provider or self.provider
        error.model = error.model or self.model
        secrets = self.credentials.secrets
        if secrets:
            error.message = redact(error.message, secrets)
            error.args = (error.message,)
            if error.body:
                error.body = redact(error.body, secrets)
        return error

    def priced(self, stats: CallStats, usage: Usage) -> CallStats:
        """Fill in what the call cost: ``cost_usd`` for USD prices, and ``cost``/``currency``
        in whatever currency the catalog prices this model."""
        return self.manifest.fill_cost(stats, self.model, usage)

    def close(self) -> None:
        if self.endpoint.embedded is not None:
            self.endpoint.embedded.close()


def _json_body(body: Any) -> bytes:
    """The request body as JSON, or a clear error before any I/O (a tool schema or a raw
    ``param`` holding a set, an object, NaN...)."""
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"the request cannot be sent as JSON: {exc} (check tool schemas and "
                                  "param() values)") from None


def _request_id(headers: Mapping[str, str]) -> str | None:
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


class AiClient:
    """A blocking client for one model id (``provider/model``), safe to share between threads.

    ``timeout`` bounds each attempt of a non-streamed call (connect + whole body) and is the
    default idle limit between stream events; ``max_retries`` retries rate limits, overloads,
    5xx, timeouts and connection failures with backoff; ``fallbacks`` are models tried in
    order when the model fails with an error of a kind in ``fallback_on`` (streams: only before
    the first event). A fallback is a model id, or a dict ``{"model", "api_key", "base_url"}``;
    one of the same provider as the main model shares its explicit ``api_key`` and ``base_url``.

    ``session``: your own ``requests.Session`` (proxies, CA bundle, mounts; see ``Transport``).
    ``api``: one of the APIs the manifest declares besides chat (``"responses"``). ``hooks``:
    see ``hooks.py``. ``cache``: ``"memory"``, ``"sqlite:///PATH"``, ``"redis://..."`` or a
    cache object, with ``cache_ttl`` seconds and ``cache_max_entries`` (see ``cache.py``).
    """

    def __init__(self, model: str, *, api_key: str | None = None, base_url: str | None = None,
                 timeout: float = 60.0, connect_timeout: float = 10.0,
                 stream_idle_timeout: float | None = None, max_retries: int = 2,
                 max_retry_after: float = 60.0, fallbacks: Sequence[str | Mapping[str, Any]] = (),
                 fallback_on: Iterable[str] = FALLBACK_KINDS,
                 manifests_dir: str | Sequence[str] | None = None,
                 headers: Mapping[str, str] | None = None, url_params: Mapping[str, str] | None = None,
                 pool_maxsize: int = 64, environ: Mapping[str, str] | None = None,
                 session: Any = None, api: str | None = None,
                 hooks: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
                 cache: Any = None, cache_ttl: float | None = None,
                 cache_max_entries: int | None = None) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError(f"max_retries must be a whole number >= 0, got {max_retries!r}")
        self.hooks = Hooks(hooks)
        self.cache = self._answers = None
        if cache is not None:
            from .cache import AnswerCache, open_cache

            self.cache = open_cache(cache, cache_ttl, cache_max_entries)
            self._answers = AnswerCache(self.cache) if self.cache is not None else None
        self._environ = environ if environ is not None else environment()
        self._dirs = search_dirs(manifests_dir, self._environ)
        self._binding_args = {"headers": headers, "url_params": url_params}
        self.binding = ProviderBinding(model, api_key=api_key, base_url=base_url, dirs=self._dirs,
                                       environ=self._environ, api=api, **self._binding_args)
        self.fallback_on = frozenset(fallback_on)
        unknown = self.fallback_on - set(KINDS)
        if unknown:
            raise ConfigurationError(f"fallback_on has unknown error kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
        # Resolved now, so a fallback's configuration error surfaces here, not mid-outage.
        self.fallbacks = [self._fallback_binding(spec, api_key, base_url) for spec in fallbacks]
        manifest_retry = self.binding.manifest.retry
        self.transport = Transport(
            Timeouts(total=timeout, connect=connect_timeout, stream_idle=stream_idle_timeout),
            RetryPolicy(max_retries=max_retries,
                        statuses=self.binding.manifest.retry_statuses,
                        initial_backoff=manifest_retry.get("backoff_initial_s", 0.5),
                        max_backoff=manifest_retry.get("backoff_max_s", 8.0),
                        max_retry_after=manifest_retry.get("max_retry_after_s", max_retry_after)),
            pool_maxsize=pool_maxsize, session=session,
        )

    @classmethod
    def create(cls, model: str, **kwargs: Any) -> AiClient:
        """The seed's spelling of the constructor."""
        return cls(model, **kwargs)

    # --- identity -------------------------------------------------------------------------

    @property
    def provider(self) -> str:
        return self.binding.provider

    @property
    def model(self) -> str:
        return self.binding.model

    @property
    def model_id(self) -> str:
        return self.binding.model_id

    @property
    def manifest(self) -> Manifest:
        return self.binding.manifest

    @property
    def base_url(self) -> str:
        return self.binding.endpoint.base_url

    def __repr__(self) -> str:
        return f"AiClient({self.model_id!r}, base_url={self.base_url!r})"

    # --- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        self.transport.close()
        for binding in self._bindings():
            binding.close()

    def __enter__(self) -> AiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests -------------------------------------------------------------------------

    def chat(self) -> ChatBuilder:
        return ChatBuilder(self)

    def embed(self, texts: Iterable[str], dimensions: int | None = None, input_type: str | None = None,
              **options: Any) -> EmbeddingResponse:
        """Embed ``texts`` (vectors in input order; split into several requests past the
        provider's limits). ``input_type``: query, document, classification, clustering,
        similarity, or the provider's own value; ``options`` are raw body fields."""
        from .embeddings import embed

        return embed(self, texts, dimensions=dimensions, input_type=input_type, **options)

    def batch(self, requests: Iterable[Any], max_workers: int = 8, **options: Any) -> list[Any]:
        """Run many requests on a thread pool; results in input order (see ``BatchExecutor``)."""
        from .batch import BatchExecutor

        with BatchExecutor(max_workers=max_workers, client=self, **options) as executor:
            return executor.run(requests)

    def submit_batch(self, requests: Iterable[Any], journal: Any = None, **options: Any) -> Any:
        """Submit ``requests`` (the forms ``batch()`` takes) to the provider's own Batch API,
        usually at half price, and return a ``BatchJob`` (``wait()``, ``results()``, ``cancel()``).
        With ``journal`` (a SQLite path) the same call after a crash, or ``BatchJob.resume``,
        reattaches to the job instead of paying for it twice (see ``batch.provider_jobs``)."""
        from .batch.provider_jobs import submit_batch

        return submit_batch(self, requests, journal=journal, **options)

    def _fallback_binding(self, spec: str | Mapping[str, Any], api_key: str | None,
                          base_url: str | None) -> ProviderBinding:
        options = {"model": spec} if isinstance(spec, str) else dict(spec)
        if "model" not in options:
            raise ConfigurationError(f"a fallback needs a 'model' (provider/model), got {spec!r}")
        same_provider = split_model_id(options["model"])[0] == split_model_id(self.model_id)[0]
        return ProviderBinding(
            options["model"],
            api_key=options.get("api_key", api_key if same_provider else None),
            base_url=options.get("base_url", base_url if same_provider else None),
            dirs=self._dirs, environ=self._environ, **self._binding_args)

    def _bindings(self) -> list[ProviderBinding]:
        return [self.binding, *self.fallbacks]

    def execute_request(self, request: ChatRequest) -> tuple[ChatResponse, CallStats]:
        check_request(request)
        hooks = self.hooks
        if not hooks:
            return self._answer(request, None)
        call = CallContext(self.provider, self.model, stream=False)
        hooks.fire("on_request", call, request)
        try:
            response, stats = self._answer(request, call)
        except AiLibError as error:
            hooks.fire("on_error", call, request, error=error)
            raise
        hooks.fire("on_response", call, request, response=response, stats=stats)
        return response, stats

    def _answer(self, request: ChatRequest, call: CallContext | None) -> tuple[ChatResponse, CallStats]:
        answers = self._answers
        if answers is None:
            return self._execute_with_fallbacks(request, call)
        key = answers.key(self.binding.prepare(request, stream=False))
        hit = answers.get(key)
        if hit is not None:
            return hit
        response, stats = self._execute_with_fallbacks(request, call)
        answers.put(key, response)
        return response, stats

    def _execute_with_fallbacks(self, request: ChatRequest,
                                call: CallContext | None) -> tuple[ChatResponse, CallStats]:
        bindings = self._bindings()
        on_retry = None if call is None else self._retry_hook(call, request)
        for position, binding in enumerate(bindings):
            try:
                return self._execute_on(binding, request, on_retry)
            except AiLibError as error:
                if position + 1 == len(bindings) or error.kind not in self.fallback_on:
                    raise
        raise AssertionError("unreachable")

    def _retry_hook(self, call: CallContext, request: ChatRequest) -> Any:
        def on_retry(error: AiLibError, number: int) -> None:
            self.hooks.fire("on_retry", call, request, error=error, retry_number=number)

        return on_retry

    def _execute_on(self, binding: ProviderBinding, request: ChatRequest,
                    on_retry: Any = None) -> tuple[ChatResponse, CallStats]:
        prepared = binding.prepare(request, stream=False)
        started = time.perf_counter()
        failure: AiLibError | None = None
        try:
            response, body, retries = self.transport.call(prepared, on_retry)
            chat_response = binding.dialect.decode_response(body, binding.manifest, binding.model)
        except AiLibError as error:
            failure = error
        except Exception as exc:  # a decoder choked on an unexpected shape: still a typed error
            failure = _unreadable(exc)
        if failure is not None:
            raise binding.stamp(failure)  # outside the except block: nothing chained
        latency = (time.perf_counter() - started) * 1000.0
        usage = chat_response.usage
        stats = binding.priced(CallStats(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens,
                                         round(latency, 3), None, retries, binding.provider, chat_response.model,
                                         None, _request_id(response.headers)), usage)
        return chat_response, stats

    def stream_request(self, request: ChatRequest) -> ChatStream:
        check_request(request)
        return ChatStream(self, request)


class ChatBuilder:
    """Fluent request builder. Each method returns the builder; ``execute``/``stream`` send."""

    def __init__(self, client: AiClient) -> None:
        self._client = client
        self._messages: list[Message] = []
        self._fields: dict[str, Any] = {}
        self._extra: dict[str, Any] = {}

    # messages
    def system(self, content: str) -> ChatBuilder:
        self._messages.append(Message.system(content))
        return self

    def user(self, content: str | list, images: list[str] | None = None) -> ChatBuilder:
        self._messages.append(Message.user(content, images=images))
        return self

    def assistant(self, content: str | None = None, tool_calls: list[ToolCall] | None = None) -> ChatBuilder:
        self._messages.append(Message.assistant(content, tool_calls))
        return self

    def tool_result(self, tool_call_id: str, content: Any, name: str | None = None) -> ChatBuilder:
        self._messages.append(Message.tool(tool_call_id, content, name))
        return self

    def messages(self, messages: Iterable[Message | dict[str, Any]]) -> ChatBuilder:
        self._messages.extend(Message.from_any(message) for message in messages)
        return self

    def message(self, message: Message | dict[str, Any]) -> ChatBuilder:
        self._messages.append(Message.from_any(message))
        return self

    # parameters
    def temperature(self, value: float) -> ChatBuilder:
        self._fields["temperature"] = _number("temperature", value)
        return self

    def top_p(self, value: float) -> ChatBuilder:
        self._fields["top_p"] = _number("top_p", value)
        return self

    def max_tokens(self, value: int) -> ChatBuilder:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequestError(f"max_tokens must be a positive integer, got {value!r}")
        self._fields["max_tokens"] = value
        return self

    def stop(self, value: str | list[str]) -> ChatBuilder:
        stops = [value] if isinstance(value, str) else list(value)
        if not all(isinstance(item, str) and item for item in stops):
            raise InvalidRequestError(f"stop must be a non-empty string or a list of them, got {value!r}")
        self._fields["stop"] = stops
        return self

    def tools(self, tools: Iterable[Tool | dict[str, Any]]) -> ChatBuilder:
        self._fields["tools"] = [Tool.from_any(tool) for tool in tools]
        return self

    def tool_choice(self, choice: str | dict[str, Any]) -> ChatBuilder:
        if isinstance(choice, dict):  # OpenAI's {"type": "function", "function": {"name": ...}}
            choice = (choice.get("function") or {}).get("name") or choice.get("type", "")
        if not isinstance(choice, str) or not choice:
            raise InvalidRequestError(f"tool_choice must be 'auto', 'none', 'required' or a tool name, got {choice!r}")
        self._fields["tool_choice"] = choice
        return self

    def response_format(self, value: dict[str, Any] | str) -> ChatBuilder:
        if isinstance(value, str):
            value = {"type": value}
        self._fields["response_format"] = value
        return self

    def json_schema(self, schema_or_dataclass: Any, name: str | None = None, strict: bool = True) -> ChatBuilder:
        """Ask for JSON matching a JSON-schema dict or a dataclass type (its schema is derived,
        see ``ai_lib_sync.structured``); ``name`` defaults to the class name, else "response".
        Each dialect sends it the provider's way; ``response.parse(cls)`` reads the reply."""
        from .structured import response_format_for

        return self.response_format(response_format_for(schema_or_dataclass, name, strict))

    def reasoning(self, effort: str | None = None, budget_tokens: int | None = None) -> ChatBuilder:
        """Ask a reasoning model to think: ``effort`` low/medium/high and/or a token budget.
        Each dialect maps it to the provider's control (OpenAI ``reasoning_effort``, Anthropic
        ``thinking``, Gemini ``thinkingConfig``, ...); see manifests/README.md."""
        reasoning = Reasoning(effort, budget_tokens)
        check_reasoning(reasoning)
        self._fields["reasoning"] = reasoning
        return self

    def param(self, name: str, value: Any) -> ChatBuilder:
        """A raw provider field, sent as-is in the request body."""
        self._extra[name] = value
        return self

    # sending
    def build(self) -> ChatRequest:
        return ChatRequest(model=self._client.model, messages=list(self._messages),
                           extra=dict(self._extra), **self._fields)

    def execute(self) -> ChatResponse:
        return self._client.execute_request(self.build())[0]

    def execute_with_stats(self) -> tuple[ChatResponse, CallStats]:
        return self._client.execute_request(self.build())

    def execute_parsed(self, cls: type, repair_retries: int = 1) -> Any:
        """Send with ``cls``'s schema (unless ``json_schema(cls, ...)`` already set it) and return
        the reply as an instance of ``cls``. A reply that does not fit is answered with a new
        request carrying it and the problems found, up to ``repair_retries`` times; then
        ``StructuredOutputError`` (kind invalid_request; ``raw_text``, ``problems``) is raised.
        A refusal raises ``ContentFilterError`` at once."""
        from dataclasses import replace

        from . import structured

        if isinstance(repair_retries, bool) or not isinstance(repair_retries, int) or repair_retries < 0:
            raise InvalidRequestError(f"repair_retries must be a whole number >= 0, got {repair_retries!r}")
        wanted = structured.response_format_for(cls)
        request = self.build()
        current = request.response_format or {}
        if (current.get("json_schema") or {}).get("schema") != wanted["json_schema"]["schema"]:
            request = replace(request, response_format=wanted)
        for attempt in range(repair_retries + 1):
            response = self._client.execute_request(request)[0]
            try:
                return structured.parse_response(cls, response)
            except structured.StructuredOutputError as error:
                if attempt == repair_retries:
                    error.attempts = attempt + 1
                    raise
                request = replace(request, messages=[*request.messages, Message.assistant(response.content or "(empty reply)"),
                                                     Message.user(structured.repair_prompt(error.problems))])
        raise AssertionError("unreachable")

    def stream(self) -> ChatStream:
        return self._client.stream_request(self.build())

    execute_stream = stream


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequestError(f"{name} must be a number, got {value!r}")
    return float(value)


class ChatStream:
    """A plain generator of unified events, opened on first iteration.

    Leaving it early by any route (``break``, dropping it, an exception in the loop body,
    ``close()`` from any thread, the ``with`` block, a WSGI server closing the response)
    closes the connection at once. Nothing here relies on the garbage collector: the event
    generator never refers back to this object, so dropping the last reference finalizes it
    on the spot. After exhaustion, ``final_response()`` and ``stats`` hold the assembled
    result. Retries and fallbacks happen only before the first event has been yielded.
    """

    __slots__ = ("_state", "_events", "__weakref__")

    def __init__(self, client: AiClient, request: ChatRequest) -> None:
        self._state = state = _StreamState()
        if not client.hooks:
            self._events = _stream_events(client, request, state)
            return
        call = CallContext(client.provider, client.model, stream=True)
        events = _stream_events(client, request, state, client._retry_hook(call, request))
        self._events = _observed(events, client.hooks, call, request, state)

    def __iter__(self) -> Iterator[StreamEvent]:
        return self._events

    def __next__(self) -> StreamEvent:
        return next(self._events)

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def stats(self) -> CallStats | None:
        return self._state.stats

    def close(self) -> None:
        """Stop the stream and release its connection. Safe from another thread: if the stream
        is being read there, its connection is cut and the reader gets an error at once."""
        state = self._state
        state.closing = True
        try:
            self._events.close()
        except ValueError:  # "generator already executing": another thread is reading it
            pass
        if state.handle is not None:
            state.handle.close()

    def final_response(self) -> ChatResponse:
        if self._state.response is None:
            raise InvalidRequestError("final_response() is available once the stream is exhausted")
        return self._state.response

    def text(self) -> str:
        """Consume the stream and return the text (convenience)."""
        for _ in self:
            pass
        return self.final_response().content


class _StreamState:
    """What the event generator shares with its ``ChatStream`` (never the stream itself)."""

    __slots__ = ("handle", "response", "stats", "closing")

    def __init__(self) -> None:
        self.handle: StreamHandle | None = None
        self.response: ChatResponse | None = None
        self.stats: CallStats | None = None
        self.closing = False


def _unreadable(exc: BaseException) -> AiLibError:
    """A decoder choked on what the provider sent: a typed error, never the raw exception."""
    return make_error("server_error", f"the provider sent an unreadable response ({type(exc).__name__}: {exc})"[:500],
                      retryable=False)


def _open_stream(client: AiClient, binding: ProviderBinding, request: ChatRequest,
                 state: _StreamState) -> tuple[StreamHandle, Iterator[Any], Any, list[StreamEvent], _IdleClock]:
    """Open the HTTP stream and read up to the first event, so that failures before it can
    be retried or fall back. Returns (handle, frames, decoder, first events, idle clock)."""
    transport = client.transport
    prepared = binding.prepare(request, stream=True)
    handle = state.handle = transport.open_stream(prepared)
    decoder = binding.dialect.stream_decoder(binding.manifest, binding.model)
    clock = _IdleClock(transport.timeouts.stream_idle)
    error: AiLibError | None = None
    try:
        # (NDJSON is JSON line by line: its framer reads such a body as it is.)
        if binding.framing != "ndjson" and handle.headers.get("content-type", "").startswith("application/json"):
            # A whole JSON body where events were expected: an error, or a server that
            # ignored "stream": the answer is replayed as the events it would have streamed.
            body = handle.read_body()
            payload = json_or_none(body)
            if not isinstance(payload, dict) or payload.get("error"):  # (Responses: "error": null)
                raise binding.make_error(handle.status_code, handle.headers, body)
            events = response_events(binding.dialect.decode_response(body, binding.manifest, binding.model))
            decoder.done = True
            return handle, iter(()), decoder, events, clock
        frames = handle.frames(binding.framing, clock.check)
        for event_name, data in frames:
            events = decoder.feed(event_name, data)
            if events:
                return handle, frames, decoder, events, clock
        return handle, frames, decoder, decoder.finish(), clock
    except AiLibError as exc:
        handle.close()
        raise binding.stamp(exc) from None
    except Exception as exc:
        handle.close()
        error = binding.stamp(_unreadable(exc))
    except BaseException:
        handle.close()
        raise
    raise error  # outside the except block: the raw exception is not chained


def _observed(events: Iterator[StreamEvent], hooks: Hooks, call: CallContext, request: ChatRequest,
              state: _StreamState) -> Iterator[StreamEvent]:
    """The client's hooks around a stream: on_request first, then on_stream_end or on_error."""
    hooks.fire("on_request", call, request)
    try:
        yield from events
    except AiLibError as error:
        hooks.fire("on_error", call, request, error=error)
        raise
    except GeneratorExit:  # the caller left early
        hooks.fire("on_stream_end", call, request)
        raise
    hooks.fire("on_stream_end", call, request, response=state.response, stats=state.stats)


def _stream_events(client: AiClient, request: ChatRequest, state: _StreamState,
                   on_retry: Any = None) -> Iterator[StreamEvent]:
    started = time.perf_counter()
    answers, cache_key = client._answers, None
    if answers is not None:
        cache_key = answers.key(client.binding.prepare(request, stream=False))
        hit = answers.get(cache_key)
        if hit is not None:  # replay the cached answer as the events its stream carried
            state.response, state.stats = hit
            yield from response_events(hit[0])
            return
    bindings = client._bindings()
    for position, binding in enumerate(bindings):
        try:
            handle, frames, decoder, first, clock, retries = client.transport.with_retries(
                lambda binding=binding: _open_stream(client, binding, request, state), on_retry)
            break
        except AiLibError as error:
            binding.stamp(error)
            if position + 1 == len(bindings) or error.kind not in client.fallback_on:
                raise
    content: list[str] = []
    thinking: list[str] = []
    tool_calls: dict[int, ToolCall] = {}
    usage = Usage()
    finish = "other"
    first_token_ms: float | None = None
    pending = first
    failure: AiLibError | None = None
    try:
        while True:
            for event in pending:
                kind = event.kind
                if kind == "content_delta":
                    content.append(event.text)
                elif kind == "thinking_delta":
                    thinking.append(event.text)
                elif kind == "tool_call_ended":
                    tool_calls[event.index] = event.tool_call
                elif kind == "usage":
                    usage = event.usage
                elif kind == "finish":
                    finish = event.finish_reason
                if first_token_ms is None and kind != "usage" and kind != "finish":
                    first_token_ms = (time.perf_counter() - started) * 1000.0
                yield event
            if pending:
                clock.reset()
            if decoder.done:
                # The terminator was read: return now, even if the server keeps the
                # connection open after it (the rest is drained briefly, then cut).
                handle.finish(frames)
                break
            try:
                event_name, data = next(frames)
            except StopIteration:
                pending = decoder.finish()
                frames = iter(())
                if not pending and not decoder.done:
                    handle.finish(frames)
                    break
                continue
            pending = decoder.feed(event_name, data)
    except GeneratorExit:
        # Left early. From close() the pool may be touched; from a finalizer it must not be.
        if state.closing:
            handle.close()
        else:
            handle.abandon()
        raise
    except AiLibError as error:
        failure = error
    except Exception as exc:
        if state.closing:  # close() from another thread pulled the connection from the reader
            failure = StreamInterruptedError(f"the stream was closed while being read ({type(exc).__name__})")
        else:
            failure = _unreadable(exc)
    if failure is not None:
        handle.close()
        binding.stamp(failure).partial_content = "".join(content)
        raise failure  # outside the except block: the raw exception is not chained
    latency = (time.perf_counter() - started) * 1000.0
    calls = [tool_calls[index] for index in sorted(tool_calls)]
    state.response = ChatResponse(
        content="".join(content), tool_calls=calls, finish_reason=finish, usage=usage,
        model=binding.model, provider=binding.provider,
        thinking="".join(thinking) or None,
        # Optional decoder attribute: blocks the provider needs echoed in the next turn.
        reasoning_blocks=getattr(decoder, "reasoning_blocks", None),
        refusal=getattr(decoder, "refusal", None) or None,  # decoders that see refusals set it
    )
    state.stats = binding.priced(CallStats(
        usage.prompt_tokens, usage.completion_tokens, usage.total_tokens,
        round(latency, 3), None if first_token_ms is None else round(first_token_ms, 3),
        retries, binding.provider, binding.model, None, _request_id(handle.headers)), usage)
    if answers is not None:
        answers.put(cache_key, state.response)


class _IdleClock:
    """Raises a timeout when no event arrived for ``limit`` seconds, even while the server
    keeps the connection busy with keep-alive comments."""

    __slots__ = ("limit", "last")

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.last = time.monotonic()

    def reset(self) -> None:
        self.last = time.monotonic()

    def check(self) -> None:
        if time.monotonic() - self.last > self.limit:
            from .errors import APITimeoutError

            raise APITimeoutError(f"no stream event for {self.limit:g}s")

