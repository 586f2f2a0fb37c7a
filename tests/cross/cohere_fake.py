"""A fake Cohere v2 Chat endpoint (``POST /v2/chat``).

Wire format: https://docs.cohere.com/reference/chat (request, response, usage),
https://docs.cohere.com/reference/chat-stream and https://docs.cohere.com/v2/docs/streaming
(typed SSE events), https://docs.cohere.com/v2/docs/tool-use (tool calls and tool messages),
https://docs.cohere.com/v2/docs/image-inputs (image_url parts), https://docs.cohere.com/v2/docs/reasoning
(thinking content); errors from tests/fixtures/cohere (https://docs.cohere.com/reference/errors).
Cohere documents no mid-stream error frame and no content-filter finish, so the fake sends none.
"""

from __future__ import annotations

import json
from typing import Any

from ai_lib_sync.testing import RecordedRequest, Reply
from tests.helpers import fixture_json

from .fake import Answer, ErrorCase, FakeProvider, Seen, chunked, data_url_bytes, split_json, sse

FINISH = {"stop": "COMPLETE", "length": "MAX_TOKENS", "tool_calls": "TOOL_CALL"}


def _errors() -> dict[str, ErrorCase]:
    cases: dict[str, ErrorCase] = {}
    for case in fixture_json("cohere/errors.json")["cases"]:
        cases.setdefault(case["kind"], ErrorCase(case["status"], case["body"]))
    return cases


def _document_text(content: Any) -> str:
    """A tool message's content: a string or a list of text/document items."""
    if isinstance(content, str):
        return content
    texts = []
    for item in content:
        if item["type"] == "document":
            data = item["document"]["data"]
            texts.append(data if isinstance(data, str) else json.dumps(data))
        else:
            assert item["type"] == "text", item
            texts.append(item["text"])
    return "".join(texts)


class CohereFake(FakeProvider):
    provider = "cohere"
    model = "command-r-plus-08-2024"
    call_id = "get_weather_k88p0m8504w5"
    content_filter = False
    errors = _errors()

    def read(self, request: RecordedRequest) -> Seen:
        assert (request.method, request.path) == ("POST", "/v2/chat"), request.path
        assert request.header("authorization") == f"Bearer {self.key}"
        body = request.json
        assert body["model"] == self.model
        system, turns, calls = None, [], {}
        for position, message in enumerate(body["messages"]):
            role, content = message["role"], message.get("content")
            if role == "system":
                assert position == 0 and isinstance(content, str), "system goes first, as a string"
                system = content
            elif role == "user":
                parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
                for part in parts:
                    if part["type"] == "text":
                        turns.append(("user", part["text"]))
                    else:
                        assert part["type"] == "image_url", part
                        turns.append(("image", data_url_bytes(part["image_url"]["url"])))
            elif role == "assistant":
                if isinstance(content, list):
                    content = "".join(item["text"] for item in content if item["type"] == "text")
                if content:
                    turns.append(("assistant", content))
                for call in message.get("tool_calls") or ():
                    assert call["type"] == "function" and isinstance(call["function"]["arguments"], str)
                    name = self.issued_call(call["id"])
                    calls[call["id"]] = name
                    turns.append(("call", name, json.loads(call["function"]["arguments"])))
            else:
                assert role == "tool", f"unknown role {role!r}"
                assert message["tool_call_id"] in calls, "the tool message answers no call in this conversation"
                turns.append(("result", calls[message["tool_call_id"]], json.loads(_document_text(content))))
        tools = []
        for tool in body.get("tools") or ():
            assert tool["type"] == "function"
            function = tool["function"]
            tools.append((function["name"], function.get("description", ""), function["parameters"]))
        assert isinstance(body.get("stream", False), bool)
        return Seen(body.get("stream") is True, system, turns, tools, body.get("max_tokens"))

    @staticmethod
    def _usage(answer: Answer) -> dict[str, Any]:
        prompt, completion = answer.usage
        return {"billed_units": {"input_tokens": prompt, "output_tokens": completion},
                "tokens": {"input_tokens": prompt, "output_tokens": completion}}

    def _wire_call(self, answer: Answer) -> dict[str, Any]:
        call = answer.call
        return {"id": call.id, "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)}}

    def reply(self, answer: Answer, seen: Seen) -> Reply:
        message: dict[str, Any] = {"role": "assistant"}
        content = []
        if answer.thinking:
            content.append({"type": "thinking", "thinking": answer.reasoning})
        if answer.text:
            content.append({"type": "text", "text": answer.content})
        if content:
            message["content"] = content
        if answer.call:
            message["tool_calls"] = [self._wire_call(answer)]
        return Reply(200, {"id": "c14c80c3-cross", "finish_reason": FINISH[answer.finish], "message": message,
                           "usage": self._usage(answer)})

    def stream_reply(self, answer: Answer, seen: Seen) -> Reply:
        frames: list[tuple[str, Any]] = [("message-start", {"id": "29f14a5a-cross", "type": "message-start", "delta": {
            "message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}})]
        index = 0
        for kind, pieces in (("thinking", answer.thinking), ("text", answer.text)):
            if not pieces:
                continue
            frames.append(("content-start", {"type": "content-start", "index": index,
                                             "delta": {"message": {"content": {"type": kind, kind: ""}}}}))
            frames.extend(("content-delta", {"type": "content-delta", "index": index,
                                             "delta": {"message": {"content": {kind: piece}}}}) for piece in pieces)
            frames.append(("content-end", {"type": "content-end", "index": index}))
            index += 1
        if answer.call:
            call = answer.call
            frames.append(("tool-call-start", {"type": "tool-call-start", "index": 0, "delta": {"message": {
                "tool_calls": {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}}}}))
            frames.extend(("tool-call-delta", {"type": "tool-call-delta", "index": 0, "delta": {"message": {
                "tool_calls": {"function": {"arguments": part}}}}}) for part in split_json(call.arguments))
            frames.append(("tool-call-end", {"type": "tool-call-end", "index": 0}))
        frames.append(("message-end", {"type": "message-end", "delta": {"finish_reason": FINISH[answer.finish],
                                                                         "usage": self._usage(answer)}}))
        return chunked(sse(frames), "text/event-stream")
