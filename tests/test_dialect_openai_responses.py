"""The OpenAI Responses API dialect (``POST /v1/responses``), through the public ``AiClient``
against the loopback server: the request OpenAI receives, documented responses and semantic
streams (split at awkward byte boundaries), refusals, errors, a tool-call round trip and the
encrypted-reasoning round trip.

Wire shapes follow https://platform.openai.com/docs/api-reference/responses/create,
.../api-reference/responses-streaming, .../guides/function-calling, .../guides/reasoning and
.../guides/structured-outputs; each fixture names its page."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ai_lib_sync import Message
from ai_lib_sync.dialects import get_dialect
from ai_lib_sync.errors import (
    AuthenticationError,
    ConfigurationError,
    ContextLengthError,
    InvalidRequestError,
    QuotaExhaustedError,
    RateLimitError,
    StreamInterruptedError,
)
from ai_lib_sync.framing import FRAMERS
from ai_lib_sync.manifest import load_manifest, manifest_for_api, search_dirs
from ai_lib_sync.testing import Reply
from ai_lib_sync.types import (
    ContentDelta,
    FinishEvent,
    Reasoning,
    Tool,
    ToolCallDelta,
    ToolCallEnded,
    ToolCallStarted,
    Usage,
    UsageEvent,
)

from .helpers import awkward_chunks, fixture_bytes, fixture_json, kinds, text_of

KEY = "test-key-123456"
WEATHER = Tool("get_weather", "Get the current weather in a given location",
               {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]})
WEATHER_WIRE = {"type": "function", "name": "get_weather", "description": WEATHER.description,
                "parameters": WEATHER.parameters, "strict": False}
REASONING = fixture_json("openai_responses/response_reasoning_tool.json")
REASONING_ITEM, FUNCTION_CALL_ITEM = REASONING["output"]


def sse_reply(name: str, **kwargs) -> Reply:
    """A documented stream served in awkward HTTP chunks, as a real server might cut it."""
    return Reply(chunks=awkward_chunks(fixture_bytes(f"openai_responses/{name}"), (7, 19, 3, 64)),
                 headers={"Content-Type": "text/event-stream"}, **kwargs)


def decode(name: str, sizes: tuple[int, ...] = (1, 2, 3, 5, 7, 11, 13)) -> list:
    """Frame and decode a fixture stream without HTTP, as the client does."""
    manifest = manifest_for_api(load_manifest("openai", search_dirs()), "gpt-4.1", "responses")
    decoder = get_dialect(manifest.dialect).stream_decoder(manifest, "gpt-4.1")
    events = []
    for event, data in FRAMERS["sse"](iter(awkward_chunks(fixture_bytes(f"openai_responses/{name}"), sizes))):
        events.extend(decoder.feed(event, data))
    events.extend(decoder.finish())
    return events


def responses_client(make_client, model: str = "gpt-4.1", **kwargs):
    kwargs.setdefault("api", "responses")
    return make_client(f"openai/{model}", prefix="/v1", **kwargs)


# --- choosing the API --------------------------------------------------------------------


def test_api_responses_sends_the_documented_request(make_client, server):
    server.enqueue(Reply(200, fixture_json("openai_responses/response_text.json")))
    client = responses_client(make_client)
    (client.chat().system("You are a helpful assistant.").user("Tell me a three sentence bedtime story about a unicorn.")
     .temperature(0.7).top_p(0.9).max_tokens(300).execute())
    request = server.last
    assert (request.method, request.path) == ("POST", "/v1/responses")
    assert request.header("authorization") == f"Bearer {KEY}"
    assert request.header("content-type") == "application/json"
    assert request.json == {
        "model": "gpt-4.1",
        "instructions": "You are a helpful assistant.",
        "input": [{"role": "user", "content": "Tell me a three sentence bedtime story about a unicorn."}],
        "temperature": 0.7, "top_p": 0.9, "max_output_tokens": 300,
    }


@pytest.mark.parametrize("model, path", [
    ("o3-pro", "/v1/responses"), ("o1-pro-2025-03-19", "/v1/responses"), ("gpt-5-codex", "/v1/responses"),
    ("o3-deep-research", "/v1/responses"), ("gpt-4o", "/v1/chat/completions"), ("o3-mini", "/v1/chat/completions"),
])
def test_models_served_only_by_the_responses_api_use_it_by_default(make_client, server, model, path):
    body = fixture_json("openai_responses/response_text.json" if path.endswith("responses") else "azure/chat.json")
    server.enqueue(Reply(200, body))
    make_client(f"openai/{model}", prefix="/v1").chat().user("Hi").execute()
    assert server.last.path == path
    assert server.last.json["model"] == model


def test_api_chat_keeps_the_chat_completions_api_for_any_model(make_client, server):
    server.enqueue(Reply(200, fixture_json("azure/chat.json")))
    make_client("openai/o3-pro", prefix="/v1", api="chat").chat().user("Hi").execute()
    assert server.last.path == "/v1/chat/completions"


@pytest.mark.parametrize("model, api", [("openai/gpt-4.1", "assistants"), ("anthropic/claude-3-5-sonnet-20241022", "responses")])
def test_an_api_the_manifest_does_not_offer_is_a_configuration_error(make_client, server, model, api):
    with pytest.raises(ConfigurationError) as caught:
        make_client(model, api=api)
    assert "offers the APIs chat" in str(caught.value) and repr(api) in str(caught.value)
    if model.startswith("openai/"):
        assert "responses" in str(caught.value)
    assert server.requests == []


def test_azure_responses_use_the_v1_path_with_the_deployment_in_the_body(make_client, server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-10-21")  # a chat api-version must not leak onto /openai/v1
    server.enqueue(Reply(200, fixture_json("openai_responses/response_text.json")))
    client = make_client("azure/my-gpt5-codex", api="responses", base_url=server.base_url)
    client.chat().user("Hi").execute()
    assert server.last.path == "/openai/v1/responses"
    assert server.last.query == {}
    assert server.last.header("api-key") == KEY and server.last.header("authorization") is None
    assert server.last.json == {"model": "my-gpt5-codex", "input": [{"role": "user", "content": "Hi"}]}

    server.enqueue(Reply(200, fixture_json("openai_responses/response_text.json")))
    make_client("azure/gpt-5-codex", base_url=server.base_url).chat().user("Hi").execute()
    assert server.last.path == "/openai/v1/responses"


# --- request encoding ----------------------------------------------------------------------


def test_images_tools_tool_choice_and_structured_output_take_the_responses_shapes(make_client, server):
    server.enqueue(Reply(200, fixture_json("openai_responses/response_text.json")))
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
              "additionalProperties": False}
    (responses_client(make_client).chat()
     .messages([{"role": "user", "content": [
         {"type": "text", "text": "What is in this image?"},
         {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
         {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}])
     .tools([WEATHER]).tool_choice("get_weather").json_schema(schema, name="person").execute())
    body = server.last.json
    assert body["input"] == [{"role": "user", "content": [
        {"type": "input_text", "text": "What is in this image?"},
        {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"}]}]
    assert body["tools"] == [WEATHER_WIRE]
    assert body["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert body["text"] == {"format": {"type": "json_schema", "name": "person", "schema": schema, "strict": True}}


def test_json_object_tool_choice_keywords_and_later_system_messages(make_client, server):
    server.enqueue(Reply(200, fixture_json("openai_responses/response_text.json")))
    (responses_client(make_client).chat().system("Be brief.").system("Answer in JSON.").user("Hi")
     .assistant("Hello").system("Now answer in French.").user("Again")
     .tools([WEATHER]).tool_choice("required").response_format({"type": "json_object"}).execute())
    body = server.last.json
    assert body["instructions"] == "Be brief.\n\nAnswer in JSON."
    assert body["input"] == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                             {"role": "system", "content": "Now answer in French."}, {"role": "user", "content": "Again"}]
    assert body["tool_choice"] == "required"
    assert body["text"] == {"format": {"type": "json_object"}}


def test_stop_is_refused_before_any_request(make_client, server):
    with pytest.raises(InvalidRequestError, match="no stop sequences"):
        responses_client(make_client).chat().user("Hi").stop("\n").execute()
    assert server.requests == []


def test_reasoning_models_drop_sampling_settings_as_on_chat_completions(make_client, server):
    server.enqueue(Reply(200, fixture_json("openai_responses/response_text.json")))
    make_client("openai/o3-pro", prefix="/v1").chat().user("Hi").temperature(0.5).execute()
    assert "temperature" not in server.last.json


# --- responses ------------------------------------------------------------------------------


def test_text_response(make_client, server):
    server.enqueue(Reply(200, fixture_json("openai_responses/response_text.json")))
    response, stats = responses_client(make_client).chat().user("Tell me a story").execute_with_stats()
    assert response.content.startswith("In a peaceful grove beneath a silver moon")
    assert (response.finish_reason, response.model, response.id) == (
        "stop", "gpt-4.1-2025-04-14", "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b")
    assert response.usage == Usage(36, 87, 123, 0, 0)
    assert (response.refusal, response.thinking, response.tool_calls) == (None, None, [])
    assert (stats.prompt_tokens, stats.completion_tokens) == (36, 87)


def test_function_call_response(make_client, server):
    server.enqueue(Reply(200, fixture_json("openai_responses/response_function_call.json")))
    response = responses_client(make_client).chat().user("What is the weather like in Boston today?").execute()
    assert response.finish_reason == "tool_calls"
    assert [(call.id, call.name, call.arguments) for call in response.tool_calls] == [
        ("call_unLAR8MvFNptuiZK6K6HCy5k", "get_current_weather", {"location": "Boston, MA", "unit": "celsius"})]
    assert response.usage == Usage(291, 23, 314, 0, None)


def test_refusal_is_on_the_response_with_content_filter(make_client, server):
    server.enqueue(Reply(200, fixture_json("openai_responses/response_refusal.json")))
    response = responses_client(make_client, model="gpt-4o").chat().user("...").execute()
    assert response.refusal == "I'm sorry, I cannot assist with that request."
    assert (response.content, response.finish_reason) == ("", "content_filter")


def test_incomplete_at_max_output_tokens_is_length(make_client, server):
    server.enqueue(Reply(200, fixture_json("openai_responses/response_incomplete.json")))
    response = responses_client(make_client, model="o4-mini").chat().user("...").max_tokens(300).execute()
    assert response.finish_reason == "length"
    assert response.usage == Usage(24, 300, 324, 300, 0)


def test_a_failed_response_object_raises_classified(make_client, server):
    failed = {**fixture_json("openai_responses/response_text.json"), "status": "failed", "output": [],
              "error": {"code": "rate_limit_exceeded", "message": "Rate limit reached for gpt-4.1"}}
    server.enqueue(Reply(200, failed))
    with pytest.raises(RateLimitError, match="Rate limit reached"):
        responses_client(make_client).chat().user("Hi").execute()


# --- streams ------------------------------------------------------------------------------


def test_streamed_text_through_the_client(make_client, server):
    server.enqueue(sse_reply("stream_text.sse"))
    stream = responses_client(make_client).chat().user("Hi").stream()
    events = list(stream)
    assert server.last.json == {"model": "gpt-4.1", "input": [{"role": "user", "content": "Hi"}], "stream": True}
    assert server.last.header("accept") == "text/event-stream"
    assert text_of(events) == "Hi there! How can I assist you today?"
    assert kinds(events)[-2:] == ["usage", "finish"]
    assert events[-2] == UsageEvent(Usage(37, 11, 48, 0, 0)) and events[-1] == FinishEvent("stop")
    final = stream.final_response()
    assert (final.content, final.finish_reason, final.usage.total_tokens) == (events and text_of(events), "stop", 48)


@pytest.mark.parametrize("sizes", [(1,), (2, 3), (64,), (4096,)])
def test_any_split_of_the_bytes_decodes_the_same(sizes):
    assert decode("stream_reasoning_tool.sse", sizes) == decode("stream_reasoning_tool.sse", (1 << 20,))
    assert decode("stream_function_calls.sse", sizes) == decode("stream_function_calls.sse", (1 << 20,))


def test_streamed_parallel_function_calls_end_once_each_before_usage_and_finish(make_client, server):
    server.enqueue(sse_reply("stream_function_calls.sse"))
    stream = responses_client(make_client).chat().user("Weather in Boston and Paris?").tools([WEATHER]).stream()
    events = list(stream)
    started = [event for event in events if isinstance(event, ToolCallStarted)]
    assert [(e.index, e.id, e.name) for e in started] == [
        (0, "call_unLAR8MvFNptuiZK6K6HCy5k", "get_current_weather"), (1, "call_Xa9y3m2Kq8TnB4wPz7dRcEjf", "get_current_weather")]
    for index, arguments in enumerate(['{"location":"Boston, MA","unit":"celsius"}',
                                       '{"location":"Paris, France","unit":"celsius"}']):
        fragments = [e.arguments_fragment for e in events if isinstance(e, ToolCallDelta) and e.index == index]
        assert len(fragments) > 1 and "".join(fragments) == arguments
    ended = [event for event in events if isinstance(event, ToolCallEnded)]
    assert [(e.index, e.tool_call.arguments["location"]) for e in ended] == [(0, "Boston, MA"), (1, "Paris, France")]
    assert kinds(events)[-2:] == ["usage", "finish"] and events[-1] == FinishEvent("tool_calls")
    assert [call.id for call in stream.final_response().tool_calls] == [e.id for e in started]


def test_streamed_refusal(make_client, server):
    server.enqueue(sse_reply("stream_refusal.sse"))
    stream = responses_client(make_client, model="gpt-4o").chat().user("...").stream()
    events = list(stream)
    assert not any(isinstance(event, ContentDelta) for event in events)
    assert events[-1] == FinishEvent("content_filter")
    final = stream.final_response()
    assert (final.refusal, final.finish_reason) == ("I'm sorry, I cannot assist with that request.", "content_filter")


def test_streamed_incomplete_is_length(make_client, server):
    server.enqueue(sse_reply("stream_incomplete.sse"))
    events = list(responses_client(make_client).chat().user("...").max_tokens(16).stream())
    assert text_of(events) == "The first ten primes are 2, 3, 5"
    assert kinds(events)[-2:] == ["usage", "finish"] and events[-1] == FinishEvent("length")


@pytest.mark.parametrize("fixture", ["stream_error.sse", "stream_failed.sse"])
def test_error_events_raise_classified_with_the_partial_text(make_client, server, fixture):
    server.enqueue(sse_reply(fixture))
    with pytest.raises(RateLimitError) as caught:
        list(responses_client(make_client).chat().user("Tell me a story").stream())
    assert caught.value.partial_content == "Once upon"
    assert "Rate limit reached" in caught.value.message


def test_a_stream_cut_before_response_completed_is_interrupted(make_client, server):
    body = fixture_bytes("openai_responses/stream_text.sse")
    cut = body[:body.index(b"event: response.completed")]
    server.enqueue(Reply(chunks=awkward_chunks(cut, (7, 19)), headers={"Content-Type": "text/event-stream"}))
    with pytest.raises(StreamInterruptedError, match="response.completed") as caught:
        list(responses_client(make_client).chat().user("Hi").stream())
    assert caught.value.partial_content == "Hi there! How can I assist you today?"


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("status, body, error_class", [
    (400, fixture_json("openai_responses/error_context.json"), ContextLengthError),
    (401, {"error": {"message": "Incorrect API key provided: test-key***456.", "type": "invalid_request_error",
                     "param": None, "code": "invalid_api_key"}}, AuthenticationError),
    (429, {"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
                     "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}}, QuotaExhaustedError),
])
@pytest.mark.parametrize("streamed", [False, True], ids=["execute", "stream"])
def test_http_errors_are_classified_like_chat_completions(make_client, server, status, body, error_class, streamed):
    server.enqueue(Reply(status, body))
    builder = responses_client(make_client).chat().user("Hi")
    with pytest.raises(error_class) as caught:
        list(builder.stream()) if streamed else builder.execute()
    assert caught.value.status_code == status
    assert server.last.path == "/v1/responses"


# --- round trips ----------------------------------------------------------------------------


def test_tool_call_round_trip(make_client, server):
    client = responses_client(make_client)
    server.enqueue(Reply(200, fixture_json("openai_responses/response_function_call.json")))
    first = client.chat().user("What is the weather like in Boston today?").tools([WEATHER]).execute()
    call = first.tool_calls[0]
    server.enqueue(Reply(200, fixture_json("openai_responses/response_text.json")))
    (client.chat().user("What is the weather like in Boston today?").message(first.to_message())
     .tool_result(call.id, {"temperature_c": 14}).tools([WEATHER]).execute())
    assert server.last.json["input"] == [
        {"role": "user", "content": "What is the weather like in Boston today?"},
        {"type": "function_call", "call_id": "call_unLAR8MvFNptuiZK6K6HCy5k", "name": "get_current_weather",
         "arguments": '{"location":"Boston, MA","unit":"celsius"}'},
        {"type": "function_call_output", "call_id": "call_unLAR8MvFNptuiZK6K6HCy5k", "output": '{"temperature_c": 14}'},
    ]
    assert "store" not in server.last.json  # nothing to round-trip: OpenAI's default applies


def reasoning_turn(client, *history, reasoning: bool = True):
    request = client.chat().user("What's the weather in Paris?").messages(history).tools([WEATHER]).build()
    return dataclasses.replace(request, reasoning=Reasoning(effort="medium")) if reasoning else request


@pytest.mark.parametrize("streamed", [False, True], ids=["execute", "stream"])
def test_encrypted_reasoning_round_trips_unchanged_before_the_call_it_led_to(make_client, server, streamed):
    client = responses_client(make_client, model="o4-mini")
    if streamed:
        server.enqueue(sse_reply("stream_reasoning_tool.sse"))
        stream = client.stream_request(reasoning_turn(client))
        events = list(stream)
        assert kinds(events)[-3:] == ["tool_call_ended", "usage", "finish"]
        thinking = "".join(event.text for event in events if event.is_thinking_delta)
        first = stream.final_response()
        assert thinking == first.thinking
    else:
        server.enqueue(Reply(200, REASONING))
        first, _ = client.execute_request(reasoning_turn(client))
    sent = server.last.json
    assert (sent["reasoning"], sent["store"], sent["include"]) == (
        {"effort": "medium"}, False, ["reasoning.encrypted_content"])
    summaries = [part["text"] for part in REASONING_ITEM["summary"]]
    assert first.thinking == "\n\n".join(summaries)
    assert first.reasoning_blocks == [REASONING_ITEM]  # the done item: the added one's content is partial
    assert first.usage == Usage(81, 150, 231, 128, 64)
    assert REASONING_ITEM["encrypted_content"] not in repr(first)

    server.enqueue(Reply(200, fixture_json("openai_responses/response_text.json")))
    history = (first.to_message(), Message.tool(first.tool_calls[0].id, {"temperature_c": 22}))
    # Without .reasoning() on this turn the history still holds encrypted reasoning: stay stateless.
    client.execute_request(reasoning_turn(client, *history, reasoning=False))
    second = json.loads(server.last.body)
    assert (second["store"], second["include"]) == (False, ["reasoning.encrypted_content"])
    assert "reasoning" not in second
    assert second["input"] == [
        {"role": "user", "content": "What's the weather in Paris?"},
        REASONING_ITEM,
        {"type": "function_call", "call_id": FUNCTION_CALL_ITEM["call_id"], "name": "get_weather",
         "arguments": FUNCTION_CALL_ITEM["arguments"]},
        {"type": "function_call_output", "call_id": FUNCTION_CALL_ITEM["call_id"], "output": '{"temperature_c": 22}'},
    ]


def test_other_providers_reasoning_blocks_are_not_sent(make_client, server):
    server.enqueue(Reply(200, fixture_json("openai_responses/response_text.json")))
    foreign = Message.assistant("Sunny.")
    foreign.reasoning_blocks = [{"type": "thinking", "thinking": "...", "signature": "abc"}]
    responses_client(make_client).chat().user("Weather?").message(foreign).user("Thanks").execute()
    assert server.last.json["input"][1] == {"role": "assistant", "content": "Sunny."}
    assert "store" not in server.last.json


def test_budget_only_reasoning_becomes_an_effort(make_client, server):
    server.enqueue(Reply(200, fixture_json("openai_responses/response_text.json")))
    client = responses_client(make_client, model="o4-mini")
    request = dataclasses.replace(client.chat().user("Hi").build(), reasoning=Reasoning(budget_tokens=30000))
    client.execute_request(request)
    assert server.last.json["reasoning"] == {"effort": "high"}
