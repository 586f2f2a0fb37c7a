"""A fake Anthropic Messages endpoint (``POST /v1/messages``).

Wire format: https://docs.anthropic.com/en/api/messages (request, response),
https://docs.anthropic.com/en/docs/build-with-claude/streaming (named SSE events),
https://docs.anthropic.com/en/docs/build-with-claude/tool-use/overview (tool_use/tool_result),
https://docs.anthropic.com/en/docs/build-with-claude/vision (image blocks),
https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking (thinking blocks),
https://docs.anthropic.com/en/api/errors and https://docs.anthropic.com/en/api/rate-limits
(error envelope, ``retry-after``).
"""

from __future__ import annotations

from typing import Any

from ..testing import RecordedRequest, Reply
from .base import (
    Answer,
    ErrorCase,
    FakeProvider,
    Seen,
    chunked,
    image_bytes,
    maybe_json,
    split_json,
    sse,
)

STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"


def _error(type_: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_011CrossTest"}


def _text(content: Any) -> str:
    """A tool result's content: a string or a list of text blocks."""
    if isinstance(content, str):
        return content
    assert all(block["type"] == "text" for block in content), content
    return "".join(block["text"] for block in content)


class AnthropicFake(FakeProvider):
    family = "anthropic"
    call_id = "toolu_01CrossTestA09q90qw90lq"
    stream_failure = "overloaded"
    errors = {
        "authentication": ErrorCase(401, _error("authentication_error", "invalid x-api-key")),
        "permission": ErrorCase(403, _error("permission_error",
                                            "Your API key does not have permission to use the specified resource.")),
        "not_found": ErrorCase(404, _error("not_found_error", "The requested resource could not be found.")),
        "invalid_request": ErrorCase(400, _error("invalid_request_error", "messages: at least one message is required")),
        "context_length": ErrorCase(400, _error("invalid_request_error", "prompt is too long: 215000 tokens > 200000 maximum")),
        "rate_limited": ErrorCase(429, _error("rate_limit_error", "Number of request tokens has exceeded your "
                                              "per-minute rate limit"), {"retry-after": "17"}, retry_after=17.0),
        "quota_exhausted": ErrorCase(400, _error("invalid_request_error", "Your credit balance is too low to access "
                                                 "the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.")),
        "server_error": ErrorCase(500, _error("api_error", "Internal server error")),
        "overloaded": ErrorCase(529, _error("overloaded_error", "Overloaded")),
    }

    def read(self, request: RecordedRequest) -> Seen:
        assert request.method == "POST"
        self.check_path(request, "/v1/messages")
        self.check_key(request, "x-api-key")
        if self.strict:
            assert request.header("authorization") is None, "Anthropic takes the key as x-api-key"
        assert request.header("anthropic-version") == "2023-06-01"
        body = request.json
        self.check_model(body["model"])
        assert isinstance(body["max_tokens"], int), "max_tokens is required"
        system = body.get("system")
        if isinstance(system, list):
            assert all(block["type"] == "text" for block in system)
            system = "".join(block["text"] for block in system)
        turns, calls = [], {}
        for position, message in enumerate(body["messages"]):
            role = message["role"]
            if self.strict:
                assert role == ("user" if position % 2 == 0 else "assistant"), "roles alternate, starting with user"
            assert role in ("user", "assistant"), f"unknown role {role!r} (system goes in 'system')"
            content = message["content"]
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            for block in blocks:
                kind = block["type"]
                if kind == "text":
                    turns.append((role, block["text"]))
                elif kind == "image" and role == "user":
                    source = block["source"]
                    assert source["type"] in ("base64", "url")
                    turns.append(("image", image_bytes(source["media_type"], source["data"])
                                  if source["type"] == "base64" else source["url"]))
                elif kind == "tool_use" and role == "assistant":
                    name = self.issued_call(block["id"], block["name"])
                    assert block["name"] == name and isinstance(block["input"], dict)
                    calls[block["id"]] = name
                    turns.append(("call", name, block["input"]))
                elif kind in ("thinking", "redacted_thinking") and role == "assistant":
                    continue  # echoed reasoning: part of the protocol, not of the conversation
                else:
                    assert kind == "tool_result" and role == "user", f"{kind} block in a {role} turn"
                    assert block["tool_use_id"] in calls, "the tool_result answers no tool_use in this conversation"
                    turns.append(("result", calls[block["tool_use_id"]], maybe_json(_text(block["content"]))))
        tools = []
        for tool in body.get("tools") or ():
            assert "parameters" not in tool, "Anthropic takes the schema as input_schema"
            tools.append((tool["name"], tool.get("description", ""), tool["input_schema"]))
        return Seen(body.get("stream") is True, system, turns, tools, body["max_tokens"], model=body["model"])

    def _usage(self, answer: Answer) -> dict[str, Any]:
        return {"input_tokens": answer.usage[0], "output_tokens": answer.usage[1],
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}

    def reply(self, answer: Answer, seen: Seen) -> Reply:
        content: list[dict[str, Any]] = []
        if answer.thinking:
            content.append({"type": "thinking", "thinking": answer.reasoning, "signature": SIGNATURE})
        if answer.text:
            content.append({"type": "text", "text": answer.content})
        content += [{"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
                    for call in answer.calls]
        return Reply(200, {"id": "msg_01CrossTest", "type": "message", "role": "assistant",
                           "model": self.model_of(seen), "content": content, "stop_reason": STOP[answer.finish],
                           "stop_sequence": None, "usage": self._usage(answer)}, {"request-id": "req_011CrossTest"})

    def stream_reply(self, answer: Answer, seen: Seen) -> Reply:
        start_usage = {"input_tokens": answer.usage[0], "output_tokens": 1}
        frames: list[tuple[str, Any]] = [("message_start", {"type": "message_start", "message": {
            "id": "msg_01CrossTest", "type": "message", "role": "assistant", "model": self.model_of(seen),
            "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}})]
        index = 0

        def block(start: dict[str, Any], deltas: list[dict[str, Any]], stop: bool = True) -> None:
            nonlocal index
            frames.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}))
            frames.extend(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
                          for delta in deltas)
            if stop:
                frames.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
            index += 1

        if answer.thinking:
            block({"type": "thinking", "thinking": ""},
                  [{"type": "thinking_delta", "thinking": piece} for piece in answer.thinking]
                  + [{"type": "signature_delta", "signature": SIGNATURE}])
        frames.append(("ping", {"type": "ping"}))
        if answer.fail:
            block({"type": "text", "text": ""}, [{"type": "text_delta", "text": piece} for piece in answer.text],
                  stop=False)
            frames.append(("error", self.error_case(answer.fail).body))
            return chunked(sse(frames), "text/event-stream")
        if answer.text:
            block({"type": "text", "text": ""}, [{"type": "text_delta", "text": piece} for piece in answer.text])
        for call in answer.calls:
            block({"type": "tool_use", "id": call.id, "name": call.name, "input": {}},
                  [{"type": "input_json_delta", "partial_json": ""}]
                  + [{"type": "input_json_delta", "partial_json": part} for part in split_json(call.arguments)])
        frames.append(("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": STOP[answer.finish], "stop_sequence": None},
                                         "usage": {"output_tokens": answer.usage[1]}}))
        frames.append(("message_stop", {"type": "message_stop"}))
        return chunked(sse(frames), "text/event-stream")
