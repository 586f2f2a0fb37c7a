"""One scenario table over every dialect, through the public API only.

Each provider family has a fake (``ai_lib_sync/fakes/``) that reads requests strictly in its provider's
documented wire format and answers in it. Every scenario runs against every fake, streamed and
not, and must give the same unified result (content, finish reason, usage, tool calls, thinking,
event sequence, error class and kind), while every fake must have seen the same conversation in
its own terms (path, auth, system placement, roles, image blocks, tool-result shape, max-tokens
field). A dialect that speaks the wrong shape is rejected by its fake; one that decodes wrongly
gives a different unified result. Together that proves both directions of every dialect.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ai_lib_sync import AiClient, AiLibError, ChatBuilder, ChatResponse, Message, StreamEvent, Tool
from ai_lib_sync.errors import ERROR_CLASSES
from ai_lib_sync.fakes import Answer, Call, ErrorCase, FakeProvider, fake_class
from ai_lib_sync.fakes.base import PNG, PNG_DATA_URL
from ai_lib_sync.manifest import load_manifest, manifest_for_api, search_dirs
from ai_lib_sync.testing import LoopbackServer

KEY = "cross-test-key-0123456789"
# setup -> (model id, the path of its documented base URL, its key, the API it calls) that the
# strict fakes check
SETUPS = {"openai": ("openai/gpt-4o", "/v1", KEY, None),
          "openai-responses": ("openai/gpt-4.1", "/v1", KEY, "responses"),
          "anthropic": ("anthropic/claude-3-5-sonnet-20241022", "", KEY, None),
          "gemini": ("gemini/gemini-2.5-flash", "", KEY, None),
          "cohere": ("cohere/command-r-plus-08-2024", "", KEY, None), "ollama": ("ollama/llama3.2", "", None, None),
          "bedrock": ("bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0", "", "ABSKcrossTestBedrockKey0123456789",
                      None)}


def dialect_of(setup: str) -> str:
    """The dialect the client of ``setup`` speaks, as its manifest says."""
    model_id, _, _, api = SETUPS[setup]
    provider, model = model_id.split("/", 1)
    return manifest_for_api(load_manifest(provider, search_dirs()), model, api).dialect


FAKES: dict[str, type[FakeProvider]] = {setup: fake_class(dialect_of(setup)) for setup in SETUPS}
PROVIDERS = list(FAKES)
MODES = ["execute", "stream"]
WEATHER = Tool("get_weather", "The current weather in a city.",
               {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
NOT_RETRYABLE = {"authentication", "permission", "not_found", "invalid_request", "context_length",
                 "quota_exhausted", "content_filter"}


@dataclass
class Scenario:
    """One request and answer, and the unified results every provider must agree on."""

    id: str
    build: Callable[[ChatBuilder, Path], ChatBuilder]  # (builder, a scratch directory)
    answer: Answer
    turns: list[tuple]  # what every provider must have received, in unified terms
    content: str
    finish: str
    usage: tuple[int, int, int]
    system: str | None = None
    thinking: str | None = None
    max_tokens: int | None = None  # the limit the provider must have received (None: not checked)
    needs: str | None = None  # a provider capability: "thinking", "content_filter"


def png_file(directory: Path) -> Path:
    path = directory / "pixel.png"
    path.write_bytes(PNG)
    return path


SCENARIOS = [
    Scenario("plain_chat", lambda chat, _: chat.user("Hello"),
             Answer(["Hello", " there", "!"], usage=(9, 3)),
             [("user", "Hello")], "Hello there!", "stop", (9, 3, 12)),
    Scenario("system_multi_turn",
             lambda chat, _: chat.system("Be terse.").user("Hi").assistant("Hello!").user("Name a colour."),
             Answer(["Blue", "."], usage=(21, 2)),
             [("user", "Hi"), ("assistant", "Hello!"), ("user", "Name a colour.")], "Blue.", "stop", (21, 2, 23),
             system="Be terse."),
    Scenario("image_input", lambda chat, _: chat.user("What is in this image?", images=[PNG_DATA_URL]),
             Answer(["A single", " pixel."], usage=(270, 4)),
             [("user", "What is in this image?"), ("image", PNG)], "A single pixel.", "stop", (270, 4, 274)),
    Scenario("image_file", lambda chat, tmp: chat.user("And this one?", images=[str(png_file(tmp))]),
             Answer(["The same", " pixel."], usage=(268, 4)),
             [("user", "And this one?"), ("image", PNG)], "The same pixel.", "stop", (268, 4, 272)),
    Scenario("max_tokens_finish", lambda chat, _: chat.user("Count to ten.").max_tokens(3),
             Answer(["One", ",", " two", ",", " three"], usage=(8, 5)),
             [("user", "Count to ten.")], "One, two", "length", (8, 3, 11), max_tokens=3),
    Scenario("thinking", lambda chat, _: chat.user("What is 2 + 2?"),
             Answer(["4", "."], thinking=["Two plus two", " is four."], thinking_tokens=6, usage=(12, 8)),
             [("user", "What is 2 + 2?")], "4.", "stop", (12, 8, 20), thinking="Two plus two is four.",
             needs="thinking"),
    Scenario("content_filter_finish", lambda chat, _: chat.user("Write something hateful."),
             Answer([], finish="content_filter", usage=(7, 0)),
             [("user", "Write something hateful.")], "", "content_filter", (7, 0, 7), needs="content_filter"),
]


# --- the rig: one loopback server per provider, a fresh fake and client per test --------------


@pytest.fixture(scope="module")
def servers():
    started: dict[str, LoopbackServer] = {}
    yield started
    for server in started.values():
        server.close()


@pytest.fixture
def rig(request, servers):
    """(fake, client) for the setup named by the parameter. Afterwards the fake must have
    accepted every request and given every answer it was scripted with."""
    model_id, prefix, key, api = SETUPS[request.param]
    fake = FAKES[request.param](model=model_id.split("/", 1)[1], key=key, prefix=prefix, strict=True)
    server = servers.get(fake.family) or servers.setdefault(fake.family, LoopbackServer())
    server.handler = fake
    client = AiClient(model_id, base_url=server.base_url + prefix, api_key=fake.key, api=api,
                      max_retries=0, timeout=10)
    yield fake, client
    client.close()
    assert fake.problems == [], f"{fake.family} rejected a request: {fake.problems}"
    assert not fake.answers, f"{fake.family}: the client sent fewer requests than scripted"


def run(chat: ChatBuilder, mode: str) -> tuple[ChatResponse, list[StreamEvent] | None]:
    if mode == "execute":
        return chat.execute(), None
    with chat.stream() as stream:
        events = list(stream)
    return stream.final_response(), events


def unified(response: ChatResponse) -> tuple:
    usage = response.usage
    calls = [(call.name, call.arguments) for call in response.tool_calls]
    return (response.content, response.finish_reason, (usage.prompt_tokens, usage.completion_tokens,
            usage.total_tokens), response.thinking, calls)


def collapsed_kinds(events: list[StreamEvent]) -> list[str]:
    """Event kinds with runs of one kind folded to one (providers cut deltas differently)."""
    kinds = [event.kind for event in events]
    return [kind for position, kind in enumerate(kinds) if position == 0 or kind != kinds[position - 1]]


def check_stream(events: list[StreamEvent], answer: Answer, response: ChatResponse) -> None:
    """Deltas as they came, each tool call started/delta/ended, one usage, finish last, once."""
    expected = (["thinking_delta"] if answer.thinking else []) + (["content_delta"] if answer.text else [])
    if answer.call:
        expected += ["tool_call_started", "tool_call_delta", "tool_call_ended"]
    assert collapsed_kinds(events) == [*expected, "usage", "finish"]
    assert [event.text for event in events if event.is_content_delta] == answer.text
    assert [event.text for event in events if event.is_thinking_delta] == answer.thinking
    (usage,) = [event.as_usage.usage for event in events if event.is_usage]
    assert usage == response.usage
    (finish,) = [event.as_finish.finish_reason for event in events if event.is_finish]
    assert finish == response.finish_reason


# --- single-turn scenarios -------------------------------------------------------------------


def _applicable() -> list:
    return [pytest.param(provider, scenario, id=f"{provider}-{scenario.id}")
            for provider in PROVIDERS for scenario in SCENARIOS
            if scenario.needs is None or getattr(FAKES[provider], scenario.needs)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("rig", "scenario"), _applicable(), indirect=["rig"])
def test_scenario(rig, scenario: Scenario, mode: str, tmp_path: Path):
    fake, client = rig
    fake.answer(scenario.answer)
    response, events = run(scenario.build(client.chat(), tmp_path), mode)

    (seen,) = fake.seen
    assert seen.stream == (mode == "stream")
    assert (seen.system, seen.turns, seen.tools) == (scenario.system, scenario.turns, [])
    if scenario.max_tokens is not None:
        assert seen.max_tokens == scenario.max_tokens

    assert unified(response) == (scenario.content, scenario.finish, scenario.usage, scenario.thinking, [])
    assert response.provider == client.provider
    if events is not None:
        check_stream(events, scenario.answer.limited(seen.max_tokens), response)


# --- tool call round trip --------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rig", PROVIDERS, indirect=True)
def test_tool_call_round_trip(rig, mode: str):
    fake, client = rig
    question = "What is the weather in Paris?"
    made = Call("get_weather", {"city": "Paris"}, fake.call_id)
    fake.answer(Answer(call=made, finish="tool_calls", usage=(52, 14)),
                Answer(["It is 21 °C", " in Paris."], usage=(80, 9)))

    first, events = run(client.chat().user(question).tools([WEATHER]).tool_choice("auto"), mode)
    assert unified(first) == ("", "tool_calls", (52, 14, 66), None, [("get_weather", {"city": "Paris"})])
    (call,) = first.tool_calls
    assert call.id and call.id == (made.id or call.id)  # the provider's id, or one made up where it sends none
    if events is not None:
        check_stream(events, Answer(call=made), first)
        (started,) = [event.as_tool_call_started for event in events if event.is_tool_call_started]
        assert (started.index, started.id, started.name) == (0, call.id, "get_weather")
        fragments = "".join(event.arguments_fragment for event in events if event.is_tool_call_delta)
        assert json.loads(fragments) == {"city": "Paris"}

    result = {"temp_c": 21, "sky": "clear"}
    if mode == "execute":
        follow_up = (client.chat().user(question).tools([WEATHER])
                     .assistant(None, tool_calls=first.tool_calls).tool_result(call.id, result))
    else:
        follow_up = client.chat().tools([WEATHER]).messages([
            Message.user(question), Message.assistant(None, tool_calls=first.tool_calls), Message.tool(call.id, result)])
    final, events = run(follow_up, mode)
    assert unified(final) == ("It is 21 °C in Paris.", "stop", (80, 9, 89), None, [])
    if events is not None:
        check_stream(events, Answer(["It is 21 °C", " in Paris."]), final)

    asked, answered = fake.seen
    declared = ("get_weather", WEATHER.description, WEATHER.parameters)
    assert (asked.tools, answered.tools) == ([declared], [declared])
    assert asked.turns == [("user", question)]
    assert answered.turns == [("user", question), ("call", "get_weather", {"city": "Paris"}),
                              ("result", "get_weather", result)]


# --- documented errors -----------------------------------------------------------------------


ERROR_CASES = [pytest.param(provider, kind, id=f"{provider}-{kind}")
               for provider in PROVIDERS for kind in FAKES[provider].errors]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("rig", "kind"), ERROR_CASES, indirect=["rig"])
def test_documented_error(rig, kind: str, mode: str):
    fake, client = rig
    case = fake.errors[kind]
    fake.answer(Answer(error=kind))
    with pytest.raises(AiLibError) as caught:
        run(client.chat().user("Hello"), mode)
    error = caught.value
    assert type(error) is ERROR_CLASSES[kind]
    assert (error.kind, error.status_code, error.retry_after) == (kind, case.status, case.retry_after)
    assert (error.provider, error.model) == (client.provider, fake.model)
    if kind in NOT_RETRYABLE:
        assert not error.retryable
    elif kind in ("rate_limited", "overloaded"):
        assert error.retryable
    if fake.key:
        assert fake.key not in f"{error} {error!r} {error.body}"


STREAM_FAILURES = [provider for provider in PROVIDERS if FAKES[provider].stream_failure]


@pytest.mark.parametrize("rig", STREAM_FAILURES, indirect=True)
def test_error_frame_inside_a_stream(rig):
    fake, client = rig
    kind = fake.stream_failure
    fake.answer(Answer(["Partial", " answer"], fail=kind))
    received: list[StreamEvent] = []
    with pytest.raises(AiLibError) as caught:
        for event in client.chat().user("Hello").stream():
            received.append(event)
    assert type(caught.value) is ERROR_CLASSES[kind] and caught.value.kind == kind
    assert caught.value.provider == client.provider
    assert caught.value.partial_content == "Partial answer"
    assert [event.text for event in received if event.is_content_delta] == ["Partial", " answer"]
    assert not any(event.is_finish or event.is_usage for event in received)


def test_the_table_covers_every_dialect():
    """A new dialect without a fake here would silently escape the table."""
    from ai_lib_sync.dialects import dialect_names

    assert {dialect_of(setup) for setup in PROVIDERS} == set(dialect_names())


@pytest.mark.parametrize("rig", ["openai"], indirect=True)
def test_openai_overloaded_503_with_server_error_type(rig):
    """503 means overloaded even when the body names the generic type server_error."""
    fake, client = rig
    fake.errors = {"overloaded": ErrorCase(503, {"error": {
        "message": "The engine is currently overloaded, please try again later.", "type": "server_error",
        "param": None, "code": None}})}
    fake.answer(Answer(error="overloaded"))
    with pytest.raises(AiLibError) as caught:
        client.chat().user("Hello").execute()
    assert caught.value.kind == "overloaded"


@pytest.mark.parametrize("rig", ["openai-responses"], indirect=True)
def test_responses_error_event_of_a_request_kind(rig):
    """An ``error`` event classified as a request error (a ValueError too) keeps its kind."""
    fake, client = rig
    fake.answer(Answer(["Partial"], fail="context_length"))
    with pytest.raises(AiLibError) as caught:
        list(client.chat().user("Hello").stream())
    assert caught.value.kind == "context_length" and caught.value.partial_content == "Partial"
