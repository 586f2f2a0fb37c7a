"""Extended thinking + tool use over several turns: the signed reasoning blocks of an answer
come back unchanged, first in the assistant turn, when ``response.to_message()`` is put back
into the history.

Rules: https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking ("Preserving
thinking blocks": thinking and redacted_thinking blocks go back unmodified, with their
signature, before the tool_use they led to) and, for Bedrock Converse,
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ReasoningTextBlock.html
("include the text and its signature unmodified"). Fixtures name their page."""

from __future__ import annotations

import base64
import json

import pytest

from ai_lib_sync.batch.checkpoint import response_from_dict, response_to_dict
from ai_lib_sync.dialects import get_dialect
from ai_lib_sync.manifest import load_manifest, search_dirs
from ai_lib_sync.testing import Reply
from ai_lib_sync.types import ChatRequest, ChatResponse, Message, MessageRole, Tool, ToolCall

from .helpers import awkward_chunks, decode_stream, fixture_bytes, fixture_json, kinds
from .test_eventstream import event

# --- Anthropic -----------------------------------------------------------------------------

CLAUDE = "claude-3-7-sonnet-20250219"
THINKING = {"type": "enabled", "budget_tokens": 10000}
WEATHER = Tool("get_weather", "Get the current weather in a given location",
               {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]})
QUESTION = "What's the weather in Paris?"
ANSWER = fixture_json("anthropic/thinking_roundtrip_message.json")
THINKING_BLOCK, REDACTED_BLOCK, TEXT_BLOCK, TOOL_USE_BLOCK = ANSWER["content"]


def anthropic_turn(client, *history: Message):
    return (client.chat().user(QUESTION).messages(history).tools([WEATHER])
            .max_tokens(16000).param("thinking", THINKING))


def anthropic_first_turn(client, server, streamed: bool) -> ChatResponse:
    if not streamed:
        server.enqueue(Reply(200, ANSWER))
        return anthropic_turn(client).execute()
    body = fixture_bytes("anthropic/thinking_roundtrip_stream.sse")
    server.enqueue(Reply(chunks=awkward_chunks(body, (7, 19, 3, 64)), headers={"Content-Type": "text/event-stream"}))
    stream = anthropic_turn(client).stream()
    events = list(stream)
    thinking = "".join(e.text for e in events if e.is_thinking_delta)
    assert thinking == THINKING_BLOCK["thinking"]  # thinking deltas still flow; signatures are not text
    assert kinds(events)[-3:] == ["tool_call_ended", "usage", "finish"]
    return stream.final_response()


@pytest.mark.parametrize("streamed", [False, True], ids=["execute", "stream"])
def test_anthropic_second_turn_echoes_thinking_blocks_first_and_unchanged(make_client, server, streamed):
    client = make_client(f"anthropic/{CLAUDE}")
    first = anthropic_first_turn(client, server, streamed)
    assert first.reasoning_blocks == [THINKING_BLOCK, REDACTED_BLOCK]
    assert (first.finish_reason, first.content, first.thinking) == (
        "tool_calls", TEXT_BLOCK["text"], THINKING_BLOCK["thinking"])
    assert [(c.id, c.name, c.arguments) for c in first.tool_calls] == [
        ("toolu_01CswdEQBMshySk6Y9DFKrfq", "get_weather", {"location": "Paris"})]
    assert THINKING_BLOCK["signature"] not in repr(first)  # long opaque tokens stay out of reprs

    server.enqueue(Reply(200, fixture_json("anthropic/message_text.json")))
    anthropic_turn(client, first.to_message(), Message.tool(first.tool_calls[0].id, {"temperature_c": 22})).execute()
    assert server.last.json == {
        "model": CLAUDE, "max_tokens": 16000, "thinking": THINKING,
        "tools": [{"name": "get_weather", "description": WEATHER.description, "input_schema": WEATHER.parameters}],
        "messages": [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": [THINKING_BLOCK, REDACTED_BLOCK, TEXT_BLOCK, TOOL_USE_BLOCK]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01CswdEQBMshySk6Y9DFKrfq",
                                          "content": '{"temperature_c": 22}'}]},
        ]}
    # Exactly as received, down to the bytes of the signature and of the non-ASCII thinking text.
    sent_blocks = json.loads(server.last.body.decode("utf-8"))["messages"][1]["content"][:2]
    assert sent_blocks[0]["signature"] == THINKING_BLOCK["signature"] and sent_blocks[1] == REDACTED_BLOCK


def test_signature_and_thinking_fragments_are_accumulated_per_block():
    def sse(*events: dict) -> bytes:
        return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()

    def delta(index: int, kind: str, text: str) -> dict:
        return {"type": "content_block_delta", "index": index, "delta": {"type": f"{kind}_delta", kind: text}}

    data = sse({"type": "message_start", "message": {"usage": {"input_tokens": 5}}},
               {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
               delta(0, "thinking", "Two "), delta(0, "thinking", "steps."),
               delta(0, "signature", "EqQBCgIYAhIM"), delta(0, "signature", "1gbcDa9GJwZA"),
               {"type": "content_block_stop", "index": 0},
               {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
               delta(1, "text", "Done."), {"type": "content_block_stop", "index": 1},
               {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}},
               {"type": "message_stop"})
    manifest = load_manifest("anthropic", search_dirs())
    decoder = get_dialect("anthropic_messages").stream_decoder(manifest, CLAUDE)
    for chunk in data.split(b"\n\n")[:-1]:
        name, payload = (line.split(": ", 1)[1] for line in chunk.decode().split("\n"))
        decoder.feed(name, payload)
    assert decoder.reasoning_blocks == [{"type": "thinking", "thinking": "Two steps.",
                                         "signature": "EqQBCgIYAhIM1gbcDa9GJwZA"}]


def test_answers_without_thinking_have_no_reasoning_blocks(make_client, server):
    client = make_client(f"anthropic/{CLAUDE}")
    server.enqueue(Reply(200, fixture_json("anthropic/message_text.json")),
                   Reply(chunks=[fixture_bytes("anthropic/stream_text.sse")], headers={"Content-Type": "text/event-stream"}))
    assert client.chat().user("Hi").execute().reasoning_blocks is None
    stream = client.chat().user("Hi").stream()
    assert stream.text() == "Hello!" and stream.final_response().reasoning_blocks is None
    message = ChatResponse(content="Hello!").to_message()
    assert (message.role, message.content, message.tool_calls, message.reasoning_blocks) == (
        MessageRole.ASSISTANT, "Hello!", None, None)


def test_to_message_is_the_assistant_turn_and_the_builder_takes_it_as_is(make_client):
    response = ChatResponse(content="", tool_calls=[ToolCall("t1", "f", {"a": 1})],
                            reasoning_blocks=[THINKING_BLOCK])
    message = response.to_message()
    assert message == Message(MessageRole.ASSISTANT, None, [ToolCall("t1", "f", {"a": 1})],
                              reasoning_blocks=[THINKING_BLOCK])
    message.reasoning_blocks.append(REDACTED_BLOCK)  # the history is the user's to edit ...
    assert response.reasoning_blocks == [THINKING_BLOCK]  # ... without touching the response
    builder = make_client(f"anthropic/{CLAUDE}").chat().user("Hi").message(message)
    assert builder.build().messages[-1] is message


def test_reasoning_blocks_survive_to_dict_and_the_batch_checkpoint():
    response = get_dialect("anthropic_messages").decode_response(
        json.dumps(ANSWER).encode(), load_manifest("anthropic", search_dirs()), CLAUDE)
    assert response.to_dict()["reasoning_blocks"] == [THINKING_BLOCK, REDACTED_BLOCK]
    assert response_from_dict(json.loads(json.dumps(response_to_dict(response)))).to_message() == response.to_message()


# --- Bedrock Converse (Claude through reasoningContent) ------------------------------------

BEDROCK_MODEL = "anthropic.claude-3-7-sonnet-20250219-v1:0"
CONVERSE = "/model/anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse"
TOP_SONG = Tool("top_song", "Get the most popular song played on a radio station.",
                {"type": "object", "properties": {"sign": {"type": "string"}}, "required": ["sign"]})
SONG_QUESTION = "What is the most popular song on WZPZ?"
CONVERSE_ANSWER = fixture_json("bedrock/thinking_roundtrip_converse.json")
SIGNED, REDACTED, BEDROCK_TEXT, TOOL_USE = CONVERSE_ANSWER["output"]["message"]["content"]


@pytest.fixture
def bedrock(make_client, monkeypatch):
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "ABSKbedrock-api-key-1234567890")
    return make_client(f"bedrock/{BEDROCK_MODEL}", api_key=None)


def bedrock_turn(client, *history: Message):
    return (client.chat().user(SONG_QUESTION).messages(history).tools([TOP_SONG])
            .max_tokens(4096).param("thinking", {"type": "enabled", "budget_tokens": 2048}))


@pytest.mark.parametrize("streamed", [False, True], ids=["converse", "converse-stream"])
def test_bedrock_second_turn_echoes_signed_reasoning_first_and_unchanged(bedrock, server, streamed):
    if streamed:
        body = b"".join(event(kind, payload)
                        for kind, payload in fixture_json("bedrock/thinking_roundtrip_stream.json")["events"])
        server.enqueue(Reply(chunks=awkward_chunks(body, (7, 64, 3, 200)),
                             headers={"Content-Type": "application/vnd.amazon.eventstream"}))
        stream = bedrock_turn(bedrock).stream()
        events = list(stream)
        assert "".join(e.text for e in events if e.is_thinking_delta) == SIGNED["reasoningContent"]["reasoningText"]["text"]
        first = stream.final_response()
    else:
        server.enqueue(Reply(200, CONVERSE_ANSWER))
        first = bedrock_turn(bedrock).execute()
    assert first.reasoning_blocks == [SIGNED, REDACTED]
    assert (first.finish_reason, first.content) == ("tool_calls", BEDROCK_TEXT["text"])

    server.enqueue(Reply(200, fixture_json("bedrock/converse_text.json")))
    result = Message.tool(first.tool_calls[0].id, {"song": "Elemental Hotel", "artist": "8 Storey Hike"})
    bedrock_turn(bedrock, first.to_message(), result).execute()
    assert server.last.path == CONVERSE
    assert server.last.json == {
        "messages": [
            {"role": "user", "content": [{"text": SONG_QUESTION}]},
            {"role": "assistant", "content": [SIGNED, REDACTED, BEDROCK_TEXT, TOOL_USE]},
            {"role": "user", "content": [{"toolResult": {
                "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                "content": [{"json": {"song": "Elemental Hotel", "artist": "8 Storey Hike"}}]}}]},
        ],
        "inferenceConfig": {"maxTokens": 4096},
        "toolConfig": {"tools": [{"toolSpec": {"name": "top_song", "description": TOP_SONG.description,
                                               "inputSchema": {"json": TOP_SONG.parameters}}}]},
        "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 2048}},
    }


def test_bedrock_unsigned_reasoning_is_not_kept_since_converse_refuses_it_back():
    """DeepSeek-R1 on Bedrock sends reasoningText without a signature; sending that back is a
    ValidationException, so only the thinking text is kept."""
    payload = {"output": {"message": {"role": "assistant", "content": [
        {"reasoningContent": {"reasoningText": {"text": "Think."}}}, {"text": "Hi."}]}}, "stopReason": "end_turn"}
    response = get_dialect("bedrock_converse").decode_response(
        json.dumps(payload).encode(), load_manifest("bedrock", search_dirs()), BEDROCK_MODEL)
    assert (response.thinking, response.reasoning_blocks) == ("Think.", None)
    events = [["contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Think."}}}],
              ["messageStop", {"stopReason": "end_turn"}]]
    decoder = get_dialect("bedrock_converse").stream_decoder(load_manifest("bedrock", search_dirs()), BEDROCK_MODEL)
    for name, data in events:
        decoder.feed(name, data)
    assert decoder.reasoning_blocks is None


def test_bedrock_redacted_content_in_pieces_is_joined_as_bytes():
    decoder = get_dialect("bedrock_converse").stream_decoder(load_manifest("bedrock", search_dirs()), BEDROCK_MODEL)
    for piece in (b"\x00\x01", b"\xfe\xff\x10"):
        decoder.feed("contentBlockDelta", {"contentBlockIndex": 0, "delta": {
            "reasoningContent": {"redactedContent": base64.b64encode(piece).decode()}}})
    assert decoder.reasoning_blocks == [{"reasoningContent": {"redactedContent": base64.b64encode(
        b"\x00\x01\xfe\xff\x10").decode()}}]


def test_bedrock_stream_decoding_is_unchanged_by_the_bookkeeping():
    data = b"".join(event(k, p) for k, p in fixture_json("bedrock/thinking_roundtrip_stream.json")["events"])
    assert kinds(decode_stream("bedrock", data)) == [
        "thinking_delta", "thinking_delta", "content_delta", "tool_call_started", "tool_call_delta",
        "tool_call_delta", "tool_call_ended", "usage", "finish"]


# --- every dialect sends only its own shapes -----------------------------------------------

ANTHROPIC_HISTORY = Message(MessageRole.ASSISTANT, "Checking.", [ToolCall("toolu_1", "get_weather", {"location": "Paris"})],
                            reasoning_blocks=[THINKING_BLOCK, REDACTED_BLOCK])
BEDROCK_HISTORY = Message(MessageRole.ASSISTANT, "Checking.", [ToolCall("toolu_1", "get_weather", {"location": "Paris"})],
                          reasoning_blocks=[SIGNED, REDACTED])


def encoded(dialect: str, provider: str, model: str, assistant: Message) -> dict:
    request = ChatRequest(model=model, tools=[WEATHER], messages=[
        Message.user(QUESTION), assistant, Message.tool("toolu_1", {"temperature_c": 22}, name="get_weather")])
    return get_dialect(dialect).encode_request(request, load_manifest(provider, search_dirs()), model, False).body


def without_reasoning(message: Message) -> Message:
    return Message(message.role, message.content, message.tool_calls)


@pytest.mark.parametrize("dialect, provider, model", [
    ("openai_chat", "openai", "gpt-4o"),
    ("gemini", "gemini", "gemini-2.0-flash"),
])
@pytest.mark.parametrize("history", [ANTHROPIC_HISTORY, BEDROCK_HISTORY], ids=["anthropic-blocks", "bedrock-blocks"])
def test_other_dialects_send_the_same_request_with_or_without_reasoning_blocks(dialect, provider, model, history):
    body = encoded(dialect, provider, model, history)
    assert body == encoded(dialect, provider, model, without_reasoning(history))
    assert "signature" not in json.dumps(body) and "redacted" not in json.dumps(body)


def test_anthropic_and_bedrock_ignore_each_others_blocks():
    anthropic = encoded("anthropic_messages", "anthropic", CLAUDE, BEDROCK_HISTORY)
    assert anthropic == encoded("anthropic_messages", "anthropic", CLAUDE, without_reasoning(BEDROCK_HISTORY))
    bedrock = encoded("bedrock_converse", "bedrock", BEDROCK_MODEL, ANTHROPIC_HISTORY)
    assert bedrock == encoded("bedrock_converse", "bedrock", BEDROCK_MODEL, without_reasoning(ANTHROPIC_HISTORY))
    # ... while their own shapes lead the assistant turn.
    assert encoded("anthropic_messages", "anthropic", CLAUDE, ANTHROPIC_HISTORY)["messages"][1]["content"][:2] == [
        THINKING_BLOCK, REDACTED_BLOCK]
    assert encoded("bedrock_converse", "bedrock", BEDROCK_MODEL, BEDROCK_HISTORY)["messages"][1]["content"][:2] == [
        SIGNED, REDACTED]


def test_reasoning_blocks_on_a_user_message_are_not_sent():
    user = Message(MessageRole.USER, QUESTION, reasoning_blocks=[THINKING_BLOCK])
    request = ChatRequest(model=CLAUDE, messages=[user])
    body = get_dialect("anthropic_messages").encode_request(
        request, load_manifest("anthropic", search_dirs()), CLAUDE, False).body
    assert body["messages"] == [{"role": "user", "content": QUESTION}]
