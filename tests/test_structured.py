"""Structured output into dataclasses, through every chat dialect and the public API.

Each provider case sends ``execute_parsed(Person)`` to the loopback server and checks the
request the provider would receive (path, the schema where its docs put it), then answers
with the provider's documented response envelope (fixtures named by ``_source``) carrying the
model's JSON, where the docs say it arrives (text, or the forced tool's input).
"""

from __future__ import annotations

import datetime
import enum
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import pytest
from dataclasses_json import LetterCase, dataclass_json

from ai_lib_sync.dialects.anthropic import JSON_TOOL
from ai_lib_sync.errors import AiLibError, ContentFilterError, InvalidRequestError
from ai_lib_sync.structured import StructuredOutputError, parse, schema_for, strict_schema
from ai_lib_sync.testing import Reply
from tests.helpers import fixture_json
from tests.test_eventstream import event


class Mood(enum.Enum):
    HAPPY = "happy"
    CURIOUS = "curious"


@dataclass
class Address:
    city: str
    country: str | None = None


@dataclass
class Person:
    name: str
    born: datetime.date
    mood: Mood
    address: Address
    languages: list[str]
    nickname: Optional[str] = None  # noqa: UP045 - the typing spelling must work too


PROMPT = "Extract the person: Ada Lovelace, born 10 December 1815 in London, spoke English and French."
GOOD = {"name": "Ada Lovelace", "born": "1815-12-10", "mood": "curious",
        "address": {"city": "London", "country": None}, "languages": ["English", "French"], "nickname": None}
ADA = Person("Ada Lovelace", datetime.date(1815, 12, 10), Mood.CURIOUS, Address("London"), ["English", "French"])
BAD = {"name": "Ada Lovelace", "born": "10 December 1815", "mood": "curious", "address": {"city": "London"},
       "languages": "English, French"}
BAD_PROBLEMS = ['born: expected a date string (YYYY-MM-DD), got "10 December 1815"',
                'languages: expected an array, got "English, French"']

# What schema_for(Person) must be: written out by hand, so the derivation is checked.
PLAIN = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "born": {"type": "string", "format": "date"},
        "mood": {"type": "string", "enum": ["happy", "curious"]},
        "address": {"type": "object", "properties": {"city": {"type": "string"},
                                                     "country": {"type": ["string", "null"]}},
                    "required": ["city"], "additionalProperties": False},
        "languages": {"type": "array", "items": {"type": "string"}},
        "nickname": {"type": ["string", "null"]},
    },
    "required": ["name", "born", "mood", "address", "languages"],
    "additionalProperties": False,
}
# OpenAI strict mode: every property required, the optional ones nullable.
STRICT = {**PLAIN,
          "properties": {**PLAIN["properties"],
                         "address": {**PLAIN["properties"]["address"], "required": ["city", "country"]}},
          "required": ["name", "born", "mood", "address", "languages", "nickname"]}
# Gemini's OpenAPI subset: no additionalProperties, nullable instead of type lists, no "date" format.
GEMINI = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "born": {"type": "string"},
        "mood": {"type": "string", "enum": ["happy", "curious"]},
        "address": {"type": "object", "properties": {"city": {"type": "string"},
                                                     "country": {"nullable": True, "type": "string"}},
                    "required": ["city"]},
        "languages": {"type": "array", "items": {"type": "string"}},
        "nickname": {"nullable": True, "type": "string"},
    },
    "required": ["name", "born", "mood", "address", "languages"],
}
FORCED_TOOL_DESCRIPTION = "Give the answer as a JSON object matching this input schema."
BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20241022-v2:0"
BEDROCK_NATIVE_MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


# --- where each provider carries the answer -----------------------------------------------------


def openai_text(payload: dict, answer: dict) -> dict:
    payload["choices"][0]["message"]["content"] = json.dumps(answer)
    return payload


def anthropic_text(payload: dict, answer: dict) -> dict:
    payload["content"] = [{"type": "text", "text": json.dumps(answer)}]
    return payload


def anthropic_tool(payload: dict, answer: dict) -> dict:
    # With a forced tool_choice the API prefills the turn: no text block before tool_use
    # (https://docs.anthropic.com/en/docs/build-with-claude/tool-use/overview#forcing-tool-use).
    block = next(block for block in payload["content"] if block["type"] == "tool_use")
    payload["content"] = [{**block, "name": JSON_TOOL, "input": answer}]
    return payload


def gemini_text(payload: dict, answer: dict) -> dict:
    payload["candidates"][0]["content"]["parts"] = [{"text": json.dumps(answer)}]
    return payload


def cohere_text(payload: dict, answer: dict) -> dict:
    payload["message"]["content"] = [{"type": "text", "text": json.dumps(answer)}]
    return payload


def ollama_text(payload: dict, answer: dict) -> dict:
    payload["message"]["content"] = json.dumps(answer)
    return payload


def bedrock_text(payload: dict, answer: dict) -> dict:
    payload["output"]["message"]["content"] = [{"text": json.dumps(answer)}]
    return payload


def bedrock_tool(payload: dict, answer: dict) -> dict:
    use = payload["output"]["message"]["content"][0]["toolUse"]
    payload["output"]["message"]["content"] = [{"toolUse": {**use, "name": JSON_TOOL, "input": answer}}]
    return payload


@dataclass
class Case:
    id: str
    model: str
    path: str
    fixture: str
    answer: Callable[[dict, dict], dict]
    wire: Callable[[dict], Any]  # the structured-output part of the request body
    expected: Any
    prefix: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None  # an override manifest (models the catalog lacks)


CASES = [
    Case("openai", "openai/gpt-4o", "/v1/chat/completions", "structured/openai_chat.json", openai_text,
         lambda body: body["response_format"],
         {"type": "json_schema", "json_schema": {"name": "Person", "schema": STRICT, "strict": True}}, "/v1"),
    Case("mistral", "mistral/mistral-small-latest", "/v1/chat/completions", "mistral/chat.json", openai_text,
         lambda body: body["response_format"],
         {"type": "json_schema", "json_schema": {"name": "Person", "schema": STRICT, "strict": True}}, "/v1"),
    Case("anthropic-native", "anthropic/claude-sonnet-4-5-20250929", "/v1/messages", "anthropic/message_text.json",
         anthropic_text, lambda body: (body["output_config"], "tools" in body, "tool_choice" in body),
         ({"format": {"type": "json_schema", "schema": PLAIN}}, False, False)),
    Case("anthropic-forced-tool", "anthropic/claude-3-5-haiku-20241022", "/v1/messages",
         "anthropic/message_tool_use.json", anthropic_tool,
         lambda body: (body["tools"], body["tool_choice"], "output_config" in body),
         ([{"name": JSON_TOOL, "description": FORCED_TOOL_DESCRIPTION, "input_schema": PLAIN}],
          {"type": "tool", "name": JSON_TOOL}, False)),
    Case("gemini", "gemini/gemini-2.0-flash", "/v1beta/models/gemini-2.0-flash:generateContent",
         "gemini/generate_text.json", gemini_text, lambda body: body["generationConfig"],
         {"responseMimeType": "application/json", "responseSchema": GEMINI}),
    Case("cohere", "cohere/command-a-03-2025", "/v2/chat", "cohere/chat_response.json", cohere_text,
         lambda body: body["response_format"], {"type": "json_object", "json_schema": PLAIN}),
    Case("ollama", "ollama/llama3.2", "/api/chat", "ollama/chat_response.json", ollama_text,
         lambda body: body["format"], PLAIN, options={"api_key": None}),
    Case("bedrock-forced-tool", f"bedrock/{BEDROCK_MODEL}", "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse",
         "bedrock/converse_tool_use.json", bedrock_tool, lambda body: (body["toolConfig"], "outputConfig" in body),
         ({"tools": [{"toolSpec": {"name": JSON_TOOL, "description": FORCED_TOOL_DESCRIPTION,
                                   "inputSchema": {"json": PLAIN}}}],
           "toolChoice": {"tool": {"name": JSON_TOOL}}}, False),
         options={"api_key": None}),
    Case("bedrock-native", f"bedrock/{BEDROCK_NATIVE_MODEL}",
         "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse", "bedrock/converse_text.json", bedrock_text,
         lambda body: (body["outputConfig"]["textFormat"]["type"],
                       json.loads(body["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"]),
                       body["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["name"], "toolConfig" in body),
         ("json_schema", PLAIN, "Person", False),
         options={"api_key": None},
         manifest={"id": "bedrock", "extends": "bedrock", "models": {"*anthropic.claude-sonnet-4-5*": {
             "capabilities": ["tools", "vision", "json_schema", "streaming"],
             "source": "https://docs.aws.amazon.com/bedrock/latest/userguide/claude-messages-structured-outputs.html"}}}),
]


@pytest.fixture(params=CASES, ids=lambda case: case.id)
def case(request):
    return request.param


@pytest.fixture
def client_for(make_client, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "ABSKbedrock-api-key-1234567890")

    def build(case: Case):
        options = dict(case.options)
        if case.manifest is not None:
            (tmp_path / f"{case.manifest['id']}.json").write_text(json.dumps(case.manifest))
            options["manifests_dir"] = str(tmp_path)
        return make_client(case.model, prefix=case.prefix, **options)

    return build


def reply(case: Case, answer: dict) -> Reply:
    return Reply(200, case.answer(fixture_json(case.fixture), answer))


def turns(body: dict) -> list[tuple[str, str]]:
    """(role, text) of each turn of a request body, whichever the wire family."""
    def text(content: Any) -> str:
        if isinstance(content, str):
            return content
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))

    if "contents" in body:  # Gemini
        return [({"model": "assistant"}.get(turn["role"], turn["role"]), text(turn["parts"])) for turn in body["contents"]]
    return [(message["role"], text(message["content"])) for message in body["messages"]]


# --- every dialect -----------------------------------------------------------------------------


def test_a_dataclass_round_trips_through_each_dialect(server, client_for, case):
    client = client_for(case)
    server.enqueue(reply(case, GOOD), reply(case, GOOD))
    assert client.chat().user(PROMPT).execute_parsed(Person) == ADA
    sent = server.last
    assert sent.method == "POST" and sent.path == case.path
    assert case.wire(sent.json) == case.expected
    assert turns(sent.json) == [("user", PROMPT)]

    response = client.chat().user(PROMPT).json_schema(Person).execute()
    assert response.parse(Person) == ADA
    assert case.wire(server.last.json) == case.expected
    assert len(server.requests) == 2


def test_an_invalid_reply_is_repaired_by_a_second_request_that_names_the_problems(server, client_for, case):
    client = client_for(case)
    server.enqueue(reply(case, BAD), reply(case, GOOD))
    assert client.chat().user(PROMPT).execute_parsed(Person) == ADA
    first, second = server.requests
    assert case.wire(second.json) == case.expected
    assert turns(first.json) == [("user", PROMPT)]
    history = turns(second.json)
    assert [role for role, _ in history] == ["user", "assistant", "user"]
    assert history[0] == ("user", PROMPT)
    assert json.loads(history[1][1]) == BAD  # the model's own answer, as it gave it
    for problem in BAD_PROBLEMS:
        assert problem in history[2][1]


def test_the_typed_error_comes_after_the_repairs_are_spent(server, client_for, case):
    client = client_for(case)
    still_bad = {**BAD, "languages": ["English"], "mood": "bored"}
    server.enqueue(reply(case, BAD), reply(case, still_bad))
    with pytest.raises(StructuredOutputError) as caught:
        client.chat().user(PROMPT).execute_parsed(Person)
    error = caught.value
    assert isinstance(error, InvalidRequestError) and error.kind == "invalid_request" and not error.retryable
    assert json.loads(error.raw_text) == still_bad
    assert error.problems == ['born: expected a date string (YYYY-MM-DD), got "10 December 1815"',
                              'mood: expected one of "happy", "curious", got "bored"']
    assert error.attempts == 2 and len(server.requests) == 2
    assert error.provider == client.provider


# --- repair count, refusals, truncation --------------------------------------------------------


def test_repair_retries_zero_raises_on_the_first_invalid_reply(server, make_client):
    client = make_client("openai/gpt-4o", prefix="/v1")
    server.enqueue(Reply(200, openai_text(fixture_json("structured/openai_chat.json"), BAD)))
    with pytest.raises(StructuredOutputError) as caught:
        client.chat().user(PROMPT).execute_parsed(Person, repair_retries=0)
    assert caught.value.problems == BAD_PROBLEMS and len(server.requests) == 1
    with pytest.raises(InvalidRequestError, match="repair_retries"):
        client.chat().user(PROMPT).execute_parsed(Person, repair_retries=-1)
    assert len(server.requests) == 1


def test_a_refusal_is_a_content_filter_error_without_a_re_ask(server, make_client):
    client = make_client("openai/gpt-4o", prefix="/v1")
    server.enqueue(Reply(200, fixture_json("openai/chat_refusal.json")))
    with pytest.raises(ContentFilterError, match="refused"):
        client.chat().user(PROMPT).execute_parsed(Person)
    assert len(server.requests) == 1


def test_a_truncated_reply_says_so(server, make_client):
    payload = fixture_json("structured/openai_chat.json")
    payload["choices"][0]["message"]["content"] = json.dumps(GOOD)[:40]
    payload["choices"][0]["finish_reason"] = "length"
    server.enqueue(Reply(200, payload))
    with pytest.raises(StructuredOutputError) as caught:
        make_client("openai/gpt-4o", prefix="/v1").chat().user(PROMPT).execute_parsed(Person, repair_retries=0)
    assert caught.value.problems[0].startswith("the reply is not valid JSON")
    assert "finish_reason 'length'" in caught.value.problems[-1] and "max_tokens" in str(caught.value)


# --- streams -----------------------------------------------------------------------------------


def test_a_streamed_json_schema_answer_parses_from_final_response(server, make_client):
    text = json.dumps(GOOD)
    chunk = fixture_json("structured/openai_stream_chunk.json")
    pieces = [text[i:i + 7] for i in range(0, len(text), 7)]
    frames = [{**chunk, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
              for piece in pieces]
    frames.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    server.enqueue(Reply.sse(frames))
    stream = make_client("openai/gpt-4o", prefix="/v1").chat().user(PROMPT).json_schema(Person).stream()
    with stream:
        deltas = [event.as_content_delta.text for event in stream if event.is_content_delta]
    assert len(deltas) == len(pieces)
    assert stream.final_response().parse(Person) == ADA
    body = server.last.json
    assert body["stream"] is True and body["response_format"]["json_schema"]["schema"] == STRICT


def test_a_bedrock_forced_tool_streams_as_content_and_parses(server, client_for):
    case = next(case for case in CASES if case.id == "bedrock-forced-tool")
    text = json.dumps(GOOD)
    events = []
    for name, payload in fixture_json("bedrock/stream_tool_use.json")["events"]:
        if name in ("contentBlockStart", "contentBlockDelta", "contentBlockStop") and payload["contentBlockIndex"] == 0:
            continue  # with a forced tool there is no text block before the tool's input
        if name == "contentBlockStart":
            payload = {**payload, "start": {"toolUse": {**payload["start"]["toolUse"], "name": JSON_TOOL}}}
        if name == "contentBlockDelta":
            continue
        events.append(event(name, payload))
        if name == "contentBlockStart":
            events += [event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": part}}})
                       for part in (text[:25], text[25:])]
    server.enqueue(Reply(chunks=events, headers={"Content-Type": "application/vnd.amazon.eventstream"}))
    stream = client_for(case).chat().user(PROMPT).json_schema(Person).stream()
    kinds = [item.kind for item in stream]
    assert kinds == ["content_delta", "content_delta", "usage", "finish"]
    final = stream.final_response()
    assert (final.tool_calls, final.finish_reason) == ([], "stop")
    assert final.parse(Person) == ADA
    assert server.last.path == case.path + "-stream"
    assert case.wire(server.last.json) == case.expected


# --- bad input: typed errors before any I/O ----------------------------------------------------


class NotADataclass:
    name: str


@dataclass
class WithAny:
    payload: Any


@dataclass
class IntKeys:
    counts: dict[int, str]


@dataclass
class Node:
    value: int
    children: list[Node] = field(default_factory=list)


@pytest.mark.parametrize("target, message", [
    (NotADataclass, "needs a dataclass type .* got NotADataclass"),
    (ADA, "needs a dataclass type"),
    (WithAny, r"WithAny\.payload: type Any has no JSON-schema form"),
    (IntKeys, r"IntKeys\.counts: JSON object keys are strings"),
    (Node, r"Node\.children\[\]: Node refers to itself"),
])
def test_bad_targets_are_refused_before_any_request(server, make_client, target, message):
    builder = make_client("openai/gpt-4o", prefix="/v1").chat().user(PROMPT)
    with pytest.raises(InvalidRequestError, match=message):
        builder.json_schema(target)
    with pytest.raises(InvalidRequestError, match=message):
        builder.execute_parsed(target)
    with pytest.raises(AiLibError, match=message):
        parse(target, "{}")
    assert server.requests == []


def test_a_bad_schema_name_is_refused(server, make_client):
    with pytest.raises(InvalidRequestError, match="schema name"):
        make_client("openai/gpt-4o", prefix="/v1").chat().user("x").json_schema(PLAIN, name="a person")
    assert server.requests == []


# --- the schema rules --------------------------------------------------------------------------


def test_schema_for_matches_the_hand_written_schema_and_strict_mode():
    assert schema_for(Person) == PLAIN
    assert strict_schema(PLAIN) == STRICT
    assert strict_schema(STRICT) == STRICT  # already strict: unchanged
    assert PLAIN["required"] == ["name", "born", "mood", "address", "languages"]  # input untouched


@dataclass_json(letter_case=LetterCase.CAMEL)
@dataclass
class Order:
    """An order line."""

    order_id: str = field(metadata={"description": "the shop's id"})
    unit_count: int = 1
    placed_at: Optional[datetime.datetime] = None  # noqa: UP045


def test_names_follow_dataclasses_json_and_defaults_fill_strict_nulls():
    schema = schema_for(Order)
    assert schema == {"description": "An order line.", "type": "object", "properties": {
        "orderId": {"type": "string", "description": "the shop's id"},
        "unitCount": {"type": "integer"},
        "placedAt": {"type": ["string", "null"], "format": "date-time"}},
        "required": ["orderId"], "additionalProperties": False}
    assert strict_schema(schema)["properties"]["unitCount"] == {"type": ["integer", "null"]}
    # strict mode answers null for "not given": the default applies
    order = parse(Order, '```json\n{"orderId": "A-1", "unitCount": null, "placedAt": "2024-05-01T10:00:00Z"}\n```')
    assert order == Order("A-1", 1, datetime.datetime(2024, 5, 1, 10, tzinfo=datetime.timezone.utc))
    assert Order.from_json(order.to_json()) == order  # the names are dataclasses-json's own
    with pytest.raises(StructuredOutputError) as caught:
        parse(Order, '{"unitCount": "two", "order_id": "A-1"}')
    assert caught.value.problems == ["orderId: missing (required)", 'unitCount: expected an integer, got "two"',
                                     "order_id: unexpected field; Order has orderId, placedAt, unitCount"]


def test_strict_mode_rewrites_what_it_can_and_moves_hints_to_descriptions():
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {"tag": {"type": "string", "minLength": 2}},
        "properties": {
            "title": {"type": "string", "maxLength": 80, "description": "Short title", "default": "x"},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}, "uniqueItems": True},
            "main": {"$ref": "#/$defs/tag", "description": "the main tag"},
            "size": {"oneOf": [{"type": "integer"}, {"type": "string", "enum": ["small", "big"]}]},
        },
        "required": ["title"],
    }
    assert strict_schema(schema) == {
        "type": "object",
        "$defs": {"tag": {"type": "string", "description": "minLength: 2"}},
        "properties": {
            "title": {"type": "string", "description": "Short title (maxLength: 80)"},
            "tags": {"type": ["array", "null"], "items": {"$ref": "#/$defs/tag"}, "description": "uniqueItems: true"},
            "main": {"type": ["string", "null"], "description": "the main tag (minLength: 2)"},  # $ref inlined
            "size": {"anyOf": [{"type": "integer"}, {"type": "string", "enum": ["small", "big"]}, {"type": "null"}]},
        },
        "required": ["title", "tags", "main", "size"],
        "additionalProperties": False,
    }


def test_a_schema_strict_mode_cannot_express_is_sent_non_strict(server, make_client, caplog):
    free_form = {"type": "object", "properties": {"labels": {"type": "object", "additionalProperties": {"type": "string"}}},
                 "required": ["labels"]}
    server.enqueue(Reply(200, openai_text(fixture_json("structured/openai_chat.json"), {"labels": {}})))
    with caplog.at_level("WARNING", logger="ai_lib_sync.dialects.openai"):
        make_client("openai/gpt-4o", prefix="/v1").chat().user("x").json_schema(free_form, name="labels").execute()
    assert server.last.json["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "labels", "schema": free_form, "strict": False}}
    assert "free-form keys" in caplog.text
    with pytest.raises(InvalidRequestError, match="object at the root"):
        strict_schema({"type": "array", "items": {"type": "string"}})
