"""OpenTelemetry spans for every call, as client hooks (extra ``[otel]``: opentelemetry-api).

``AiClient("openai/gpt-4o", hooks=otel_hooks())`` opens one CLIENT span per call (``chat
{model}``) with the GenAI semantic-convention attributes: operation, provider, request
parameters and model, response model and id, token usage, finish reasons, and ``error.type``
on failure. Spans go wherever the application's tracer provider sends them; with no SDK
configured the API's no-op tracer makes this nearly free. When opentelemetry-api is not
installed, ``otel_hooks()`` returns no hooks, so code written for it runs unchanged.

Only the request's parameters are recorded, never message text or keys.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from ..hooks import HookEvent

_SPAN_KEY = "otel.span"


def otel_hooks(tracer_provider: Any = None) -> dict[str, Any]:
    """Hooks that trace each call; empty when opentelemetry-api is absent."""
    try:
        from opentelemetry import trace
    except ImportError:
        return {}
    tracer = trace.get_tracer("ai_lib_sync", tracer_provider=tracer_provider)
    return {
        "on_request": lambda event: _start(tracer, event),
        "on_response": _end,
        "on_stream_end": _end,
        "on_error": _end,
    }


def _start(tracer: Any, event: HookEvent) -> None:
    from opentelemetry.trace import SpanKind

    request = event.request
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": event.call.provider,
        "gen_ai.system": event.call.provider,
        "gen_ai.request.model": event.call.model,
    }
    for name, value in (("temperature", request.temperature), ("top_p", request.top_p),
                        ("max_tokens", request.max_tokens)):
        if value is not None:
            attributes[f"gen_ai.request.{name}"] = value
    if request.stop:
        attributes["gen_ai.request.stop_sequences"] = list(request.stop)
    base_url = event.call.data.get("base_url")
    if base_url:
        parts = urlsplit(base_url)
        attributes["server.address"] = parts.hostname or ""
        if parts.port:
            attributes["server.port"] = parts.port
    span = tracer.start_span(f"chat {event.call.model}", kind=SpanKind.CLIENT, attributes=attributes)
    event.call.data[_SPAN_KEY] = span


def _end(event: HookEvent) -> None:
    span = event.call.data.pop(_SPAN_KEY, None)
    if span is None:
        return
    response, error = event.response, event.error
    if response is not None:
        span.set_attribute("gen_ai.response.model", response.model)
        span.set_attribute("gen_ai.response.finish_reasons", [response.finish_reason])
        if response.id:
            span.set_attribute("gen_ai.response.id", response.id)
        span.set_attribute("gen_ai.usage.input_tokens", response.usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", response.usage.completion_tokens)
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("error.type", error.kind)
        span.set_status(Status(StatusCode.ERROR, error.kind))
    elif response is None:  # a stream the caller left early
        span.set_attribute("error.type", "cancelled")
    span.end()
