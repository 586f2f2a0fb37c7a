"""A fake Cohere v2 Chat endpoint (``POST /v2/chat``).

Wire format: https://docs.cohere.com/reference/chat (request, response, usage),
https://docs.cohere.com/reference/chat-stream and https://docs.cohere.com/v2/docs/streaming
(typed SSE events), https://docs.cohere.com/v2/docs/tool-use (tool calls and tool messages),
https://docs.cohere.com/v2/docs/image-inputs (image_url parts), https://docs.cohere.com/v2/docs/reasoning
(thinking content); errors: https://docs.cohere.com/reference/errors (also in tests/fixtures/cohere).
Cohere documents no mid-stream error frame and no content-filter finish, so the fake sends none
(a scripted mid-stream failure cuts the connection instead).
"""

from __future__ import annotations

import json
from typing import Any

from ..testing import RecordedRequest, Reply
from .base import (
    Answer,
    Call,
    ErrorCase,
    FakeProvider,
    Seen,
    chunked,
    data_url_bytes,
    maybe_json,
    split_json,
    sse,
)

FINISH = {"stop": "COMPLETE", "length": "MAX_TOKENS", "tool_calls": "TOOL_CALL"}
ERRORS = {
    "invalid_request": ErrorCase(400, {"message": "invalid request: temperature must be between 0 and 1.0 inclusive."}),
    "context_length": ErrorCase(400, {"message": "too many tokens: size limit exceeded by 11326 tokens. Try using "
                                      "shorter or fewer inputs, or setting prompt_truncation='AUTO'."}),
    "authentication": ErrorCase(401, {"message": "invalid api token"}),
    "quota_exhausted": ErrorCase(402, {"message": "Please add or update your payment method at "
                                       "https://dashboard.cohere.com/billing?tab=payment to continue"}),
    "not_found": ErrorCase(404, {"message": "model 'xyz' not found, make sure the correct model ID was used and "
                                 "that you have access to the model."}),
    "rate_limited": ErrorCase(429, {"message": "You are past the per minute request limit, please wait and try again later."}),
    "server_error": ErrorCase(499, {"message": "request cancelled"}),
}


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
    family = "cohere"
    call_id = "get_weather_k88p0m8504w"
    content_filter = False
    errors = ERRORS

    def new_call_id(self, call: Call, position: int) -> str:
        return f"{call.name}_k88p0m8504w{position}"  # Cohere's ids: the tool name plus a suffix

    def read(self, request: RecordedRequest) -> Seen:
        assert request.method == "POST"
        self.check_path(request, "/v2/chat")
        self.check_key(request, "authorization", "Bearer {}")
        body = request.json
        self.check_model(body["model"])
        system, turns, calls = None, [], {}
        for position, message in enumerate(body["messages"]):
            role, content = message["role"], message.get("content")
            if role == "system":
                if self.strict:
                    assert position == 0 and isinstance(content, str), "system goes first, as a string"
                system = (system + "\n" if system else "") + _document_text(content)
            elif role == "user":
                parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
                for part in parts:
                    if part["type"] == "text":
                        turns.append(("user", part["text"]))
                    else:
                        assert part["type"] == "image_url", part
                        url = part["image_url"]["url"]
                        turns.append(("image", data_url_bytes(url) if url.startswith("data:") else url))
            elif role == "assistant":
                if isinstance(content, list):
                    content = "".join(item["text"] for item in content if item["type"] == "text")
                if content:
                    turns.append(("assistant", content))
                for call in message.get("tool_calls") or ():
                    assert call["type"] == "function" and isinstance(call["function"]["arguments"], str)
                    name = self.issued_call(call["id"], call["function"]["name"])
                    calls[call["id"]] = name
                    turns.append(("call", name, json.loads(call["function"]["arguments"])))
            else:
                assert role == "tool", f"unknown role {role!r}"
                assert message["tool_call_id"] in calls, "the tool message answers no call in this conversation"
                turns.append(("result", calls[message["tool_call_id"]], maybe_json(_document_text(content))))
        tools = []
        for tool in body.get("tools") or ():
            assert tool["type"] == "function"
            function = tool["function"]
            tools.append((function["name"], function.get("description", ""), function.get("parameters")))
        assert isinstance(body.get("stream", False), bool)
        return Seen(body.get("stream") is True, system, turns, tools, body.get("max_tokens"), model=body["model"])

    @staticmethod
    def _usage(answer: Answer) -> dict[str, Any]:
        prompt, completion = answer.usage
        return {"billed_units": {"input_tokens": prompt, "output_tokens": completion},
                "tokens": {"input_tokens": prompt, "output_tokens": completion}}

    def reply(self, answer: Answer, seen: Seen) -> Reply:
        message: dict[str, Any] = {"role": "assistant"}
        content = []
        if answer.thinking:
            content.append({"type": "thinking", "thinking": answer.reasoning})
        if answer.text:
            content.append({"type": "text", "text": answer.content})
        if content:
            message["content"] = content
        if answer.calls:
            message["tool_calls"] = [{"id": call.id, "type": "function",
                                      "function": {"name": call.name, "arguments": json.dumps(call.arguments)}}
                                     for call in answer.calls]
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
            if not answer.fail:
                frames.append(("content-end", {"type": "content-end", "index": index}))
            index += 1
        if answer.fail:  # no documented error frame: the connection breaks off mid-stream
            reply = chunked(sse(frames), "text/event-stream")
            reply.chunks, reply.cut_after = list(reply.chunks or ()), len(list(reply.chunks or ()))
            return reply
        for position, call in enumerate(answer.calls):
            frames.append(("tool-call-start", {"type": "tool-call-start", "index": position, "delta": {"message": {
                "tool_calls": {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}}}}))
            frames.extend(("tool-call-delta", {"type": "tool-call-delta", "index": position, "delta": {"message": {
                "tool_calls": {"function": {"arguments": part}}}}}) for part in split_json(call.arguments))
            frames.append(("tool-call-end", {"type": "tool-call-end", "index": position}))
        frames.append(("message-end", {"type": "message-end", "delta": {"finish_reason": FINISH[answer.finish],
                                                                         "usage": self._usage(answer)}}))
        return chunked(sse(frames), "text/event-stream")
