"""Refusals and stop reasons are never dropped: ``response.refusal`` holds the refusal and
finish_reason is ``content_filter``, streamed (``final_response()``) or not.

Sources: https://platform.openai.com/docs/guides/structured-outputs#refusals (``message.refusal``,
streamed ``delta.refusal``), https://docs.claude.com/en/docs/test-and-evaluate/strengthen-guardrails/handle-streaming-refusals
(``stop_reason: "refusal"``), https://docs.claude.com/en/api/handling-stop-reasons (``pause_turn``),
https://ai.google.dev/api/generate-content#FinishReason (SAFETY, RECITATION, PROHIBITED_CONTENT, ...).
"""

from __future__ import annotations

import json

import pytest

from ai_lib_sync.testing import Reply
from tests.helpers import fixture_json

REFUSAL = "I'm sorry, I cannot assist with that request."


def named_sse(events: list[tuple[str, dict]]) -> Reply:
    frames = [f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events]
    return Reply(chunks=frames, headers={"Content-Type": "text/event-stream"})


def test_openai_refusal_is_on_the_response(server, make_client) -> None:
    server.enqueue(Reply(200, fixture_json("openai/chat_refusal.json")))
    client = make_client("openai/gpt-4o", prefix="/v1")
    response = client.chat().user("How do I make a weapon?").json_schema({"type": "object"}).execute()
    assert server.last.json["response_format"]["type"] == "json_schema"
    assert response.refusal == REFUSAL
    assert response.finish_reason == "content_filter" and response.content == ""


def test_openai_streamed_refusal_reaches_final_response(server, make_client) -> None:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
    server.enqueue(Reply.sse([
        base | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": None, "refusal": ""}}]},
        base | {"choices": [{"index": 0, "delta": {"refusal": "I'm sorry, "}}]},
        base | {"choices": [{"index": 0, "delta": {"refusal": "I cannot assist with that request."}}]},
        base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        base | {"choices": [], "usage": {"prompt_tokens": 81, "completion_tokens": 11, "total_tokens": 92}},
    ]))
    client = make_client("openai/gpt-4o", prefix="/v1")
    stream = client.chat().user("How do I make a weapon?").stream()
    events = list(stream)
    assert server.last.json["stream"] is True
    assert events[-1].is_finish and events[-1].finish_reason == "content_filter"
    final = stream.final_response()
    assert final.refusal == REFUSAL and final.finish_reason == "content_filter" and final.content == ""
    assert final.usage.total_tokens == 92


def test_anthropic_refusal_non_streamed(server, make_client) -> None:
    server.enqueue(Reply(200, {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                               "content": [{"type": "text", "text": "I can't help"}], "stop_reason": "refusal",
                               "usage": {"input_tokens": 10, "output_tokens": 3}}))
    client = make_client("anthropic/claude-sonnet-4-5")
    response = client.chat().user("...").execute()
    assert server.last.path == "/v1/messages"
    assert response.finish_reason == "content_filter" and response.refusal == "I can't help"


def test_anthropic_refusal_streamed_with_no_text(server, make_client) -> None:
    server.enqueue(named_sse([
        ("message_start", {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                                                 "content": [], "model": "claude-sonnet-4-5",
                                                                 "usage": {"input_tokens": 10, "output_tokens": 1}}}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "refusal", "stop_sequence": None},
                           "usage": {"output_tokens": 1}}),
        ("message_stop", {"type": "message_stop"}),
    ]))
    client = make_client("anthropic/claude-sonnet-4-5")
    stream = client.chat().user("...").stream()
    events = list(stream)
    assert server.last.json["stream"] is True
    assert events[-1].finish_reason == "content_filter"
    final = stream.final_response()
    assert final.finish_reason == "content_filter" and "refusal" in final.refusal


def test_anthropic_pause_turn_is_other_and_not_a_refusal(server, make_client) -> None:
    server.enqueue(Reply(200, {"id": "msg_2", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                               "content": [{"type": "text", "text": "Searching..."}], "stop_reason": "pause_turn",
                               "usage": {"input_tokens": 10, "output_tokens": 3}}))
    response = make_client("anthropic/claude-sonnet-4-5").chat().user("search").execute()
    assert response.finish_reason == "other" and response.refusal is None
    assert response.to_message().content == "Searching..."  # sent back to let the turn continue


@pytest.mark.parametrize("reason", ["SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY"])
def test_gemini_blocks_are_content_filter_with_a_refusal(server, make_client, reason) -> None:
    server.enqueue(Reply(200, {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Partial"}]}, "finishReason": reason,
                        "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH",
                                           "blocked": True}], "index": 0}],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1, "totalTokenCount": 6},
        "modelVersion": "gemini-2.5-flash"}))
    response = make_client("gemini/gemini-2.5-flash").chat().user("...").execute()
    assert server.last.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert response.finish_reason == "content_filter" and reason in response.refusal
    assert response.content == "Partial"


def test_gemini_streamed_block_reaches_final_response(server, make_client) -> None:
    chunks = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Once"}]}, "index": 0}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "RECITATION",
                         "index": 0}],
         "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}},
    ]
    server.enqueue(Reply(chunks=[f"data: {json.dumps(chunk)}\r\n\r\n" for chunk in chunks],
                         headers={"Content-Type": "text/event-stream"}))
    stream = make_client("gemini/gemini-2.5-flash").chat().user("Recite a song").stream()
    events = list(stream)
    assert server.last.query == {"alt": ["sse"]}
    assert events[-1].finish_reason == "content_filter"
    final = stream.final_response()
    assert final.content == "Once" and "RECITATION" in final.refusal


def test_gemini_other_finish_reasons_are_not_refusals(server, make_client) -> None:
    server.enqueue(Reply(200, {"candidates": [{"content": {"role": "model", "parts": [{"text": "x"}]},
                                               "finishReason": "MALFORMED_FUNCTION_CALL", "index": 0}]}))
    response = make_client("gemini/gemini-2.5-flash").chat().user("...").execute()
    assert response.finish_reason == "other" and response.refusal is None
