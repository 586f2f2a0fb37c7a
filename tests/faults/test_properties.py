"""Property tests for every framer and stream decoder (hypothesis).

- Any re-split of a valid stream gives the same frames and the same unified events.
- Arbitrary bytes, and valid framing around arbitrary JSON shapes, end in events or an
  ``AiLibError``: never another exception, never a hang (each example is bounded by hypothesis'
  deadline).

``max_examples`` comes from the hypothesis profile: ``faults`` (default, fast) or ``faults-long``
(``HYPOTHESIS_PROFILE=faults-long``; ``tests/faults/fuzz_long.py`` runs that).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ai_lib_sync import AiClient
from ai_lib_sync.dialects import get_dialect
from ai_lib_sync.errors import AiLibError
from ai_lib_sync.framing import FRAMERS, ndjson_frames, sse_frames
from ai_lib_sync.manifest import load_manifest, search_dirs
from tests.helpers import fixture_bytes, fixture_json
from tests.test_eventstream import event

settings.register_profile("faults", max_examples=20, deadline=2000,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("faults-long", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "20000")),
                          deadline=5000, suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "faults")
settings.load_profile(PROFILE if PROFILE.startswith("faults") else "faults")


def _bedrock(name: str) -> bytes:
    return b"".join(event(kind, payload) for kind, payload in fixture_json(f"bedrock/{name}")["events"])


def _without_comments(data: bytes) -> bytes:
    """NDJSON fixtures start with a ``# source:`` line (the doc URL); a stream has none."""
    return b"".join(line for line in data.splitlines(True) if not line.startswith(b"#"))


# provider -> valid stream bodies from the provider's documentation (fixtures carry the URL)
STREAMS: dict[str, list[bytes]] = {
    "openai": [fixture_bytes("mistral/stream_tool_calls.sse"), fixture_bytes("together/stream.sse")],
    "anthropic": [fixture_bytes(f"anthropic/{n}") for n in ("stream_text.sse", "stream_thinking.sse",
                                                             "stream_tool_use.sse")],
    "gemini": [fixture_bytes(f"gemini/{n}") for n in ("stream_text.sse", "stream_function_call.sse")],
    "cohere": [fixture_bytes(f"cohere/{n}") for n in ("stream_text.sse", "stream_tool_call.sse")],
    "ollama": [_without_comments(fixture_bytes(f"ollama/{n}")) for n in ("stream_text.ndjson",
                                                                          "stream_tool_call.ndjson")],
    "bedrock": [_bedrock(n) for n in ("stream_text.json", "stream_tool_use.json", "stream_reasoning.json")],
}
MANIFESTS = {provider: load_manifest(provider, search_dirs()) for provider in STREAMS}
# Event names each SSE dialect reacts to (so arbitrary payloads reach the interesting branches).
EVENT_NAMES = {
    "openai": [None, "message"],
    "anthropic": ["message_start", "content_block_start", "content_block_delta", "content_block_stop",
                  "message_delta", "message_stop", "error", "ping"],
    "gemini": [None, "message"],
    "cohere": ["message-start", "content-start", "content-delta", "content-end", "tool-call-start",
               "tool-call-delta", "tool-call-end", "message-end", "error"],
    "ollama": [None],
    "bedrock": ["messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop", "messageStop",
                "metadata", ":exception"],
}


def framing_of(provider: str) -> str:
    manifest = MANIFESTS[provider]
    return manifest.streaming.get("framing", get_dialect(manifest.dialect).framing)


def frames(framing: str, chunks: list[bytes]) -> list[tuple[Any, Any]]:
    return list(FRAMERS[framing](iter(chunks)))


def decode(provider: str, items: list[tuple[Any, Any]]) -> list[Any]:
    manifest = MANIFESTS[provider]
    decoder = get_dialect(manifest.dialect).stream_decoder(manifest, "test-model")
    events: list[Any] = []
    for name, data in items:
        events.extend(decoder.feed(name, data))
    events.extend(decoder.finish())
    return events


def same_events(left: list[Any], right: list[Any]) -> bool:
    """Equal up to the tool-call ids a decoder makes up when the provider sends none."""
    made_up = re.compile(r"call_[0-9a-f]{24}")
    return made_up.sub("call_", repr(left)) == made_up.sub("call_", repr(right))


def resplit(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["choices", "delta", "content", "text", "message", "type", "index", "usage",
                         "candidates", "parts", "finish_reason", "stopReason", "tool_calls", "function",
                         "arguments", "name", "id", "done", "contentBlockIndex", "start", "toolUse",
                         "input", "content_block", "usageMetadata", "error", "thinking", "tokens",
                         "prompt_eval_count", "eval_count", "inputTokens", "stop_reason"]) | st.text(max_size=8),
        children, max_size=6),
    max_leaves=20)


def only_ailib(function: Any, *args: Any) -> None:
    try:
        function(*args)
    except AiLibError:
        pass


PROVIDERS = list(STREAMS)


@pytest.mark.parametrize("provider", PROVIDERS)
@given(cuts=st.lists(st.integers(min_value=0), max_size=40), which=st.integers(min_value=0))
def test_any_resplit_gives_the_same_frames_and_events(provider: str, cuts: list[int], which: int) -> None:
    data = STREAMS[provider][which % len(STREAMS[provider])]
    framing = framing_of(provider)
    whole = frames(framing, [data])
    assert whole, "the fixture has frames"
    assert frames(framing, resplit(data, cuts)) == whole
    assert same_events(decode(provider, frames(framing, resplit(data, cuts))), decode(provider, whole))


@given(events=st.lists(st.tuples(st.sampled_from([None, "message", "delta"]), st.text(min_size=1)), max_size=6),
       endings=st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=1), cuts=st.lists(st.integers(0)))
def test_sse_any_line_endings_any_split(events: list[tuple[str | None, str]], endings: list[str],
                                        cuts: list[int]) -> None:
    """Every line ending the SSE spec allows, mixed freely, never merges or splits events."""
    events = [(name, "".join(ch for ch in text if ch not in "\r\n") or "x") for name, text in events]
    out, turn, last = [], 0, ""

    def end() -> str:
        nonlocal turn, last
        turn += 1
        choice = endings[turn % len(endings)]
        if last == "\r" and choice.startswith("\n"):  # CR then LF would be one CRLF ending
            choice = "\r"
        last = choice
        return choice

    for name, text in events:
        if name:
            out.append(f"event: {name}{end()}")
        out.append(f"data: {text}{end()}{end()}")
    data = "".join(out).encode()
    expected = [(name or "message", text) for name, text in events]
    assert list(sse_frames(iter(resplit(data, cuts)))) == expected


@pytest.mark.parametrize("framing", list(FRAMERS))
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0), max_size=10))
def test_framers_on_arbitrary_bytes_raise_only_ailib_errors(framing: str, data: bytes, cuts: list[int]) -> None:
    only_ailib(lambda: list(FRAMERS[framing](iter(resplit(data, cuts)))))


@given(junk=st.binary(min_size=1, max_size=8))
def test_invalid_utf8_is_a_typed_error(junk: bytes) -> None:
    try:
        junk.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return
    for framer, body in ((sse_frames, b"data: a" + junk + b"\n\n"), (ndjson_frames, b"{\"a\": \"" + junk + b"\"}\n")):
        with pytest.raises(AiLibError) as caught:
            list(framer(iter([body])))
        assert caught.value.kind == "stream_interrupted"


@pytest.mark.parametrize("provider", PROVIDERS)
@given(data=st.binary(max_size=400), cut=st.integers(0))
def test_streams_with_arbitrary_bytes_inside_raise_only_ailib_errors(provider: str, data: bytes, cut: int) -> None:
    valid = STREAMS[provider][0]
    at = cut % (len(valid) + 1)
    body = valid[:at] + data + valid[at:]
    only_ailib(lambda: decode(provider, frames(framing_of(provider), [body])))


class _Response:
    """What the client reads off a response when the transport is bypassed."""

    status_code = 200
    headers = {"content-type": "text/event-stream"}
    content = b""

    def close(self) -> None:
        pass


def offline_client(provider: str, body: bytes = b"", items: list[tuple[Any, Any]] = ()) -> AiClient:
    """A real client whose transport hands back ``body`` / ``items`` instead of doing HTTP:
    what reaches the caller is what the client boundary makes of the decoders' failures."""
    client = AiClient(f"{provider}/test-model", api_key="prop-test-key-0123456789", base_url="http://127.0.0.1:9",
                      max_retries=0)
    transport = client.transport
    transport.call = lambda *args, **kwargs: (_Response(), body, 0)
    transport.open_stream = lambda *args, **kwargs: _Response()
    transport.frames = lambda *args, **kwargs: iter(list(items))
    return client


@pytest.mark.parametrize("provider", PROVIDERS)
@given(items=st.lists(st.tuples(st.integers(0, 20), json_values), max_size=6))
def test_streams_of_arbitrary_json_raise_only_ailib_errors(provider: str, items: list[tuple[int, Any]]) -> None:
    names = EVENT_NAMES[provider]
    if provider == "bedrock":  # the framer hands the decoder parsed payloads
        frames_in = [(names[n % len(names)], value) for n, value in items]
    else:
        frames_in = [(names[n % len(names)], json.dumps(value)) for n, value in items]
    with offline_client(provider, items=frames_in) as client:
        only_ailib(lambda: list(client.chat().user("hi").stream()))


@pytest.mark.parametrize("provider", PROVIDERS)
@given(value=json_values)
def test_responses_of_arbitrary_json_raise_only_ailib_errors(provider: str, value: Any) -> None:
    with offline_client(provider, body=json.dumps(value).encode()) as client:
        only_ailib(lambda: client.chat().user("hi").execute())


@pytest.mark.parametrize("provider", PROVIDERS)
@given(status=st.sampled_from([200, 400, 401, 403, 404, 429, 500, 502, 503]), value=json_values | st.binary(max_size=50))
def test_error_classification_never_raises(provider: str, status: int, value: Any) -> None:
    manifest = MANIFESTS[provider]
    body = value if isinstance(value, bytes) else json.dumps(value).encode()
    info = get_dialect(manifest.dialect).classify_error(status, {}, body, manifest)
    assert isinstance(info.kind, str) and isinstance(info.message, str)
