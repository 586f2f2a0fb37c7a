"""A fake OpenAI Chat Completions endpoint (and every OpenAI-compatible provider).

Wire format: https://platform.openai.com/docs/api-reference/chat (request, response, stream
chunks, ``stream_options.include_usage``); errors: https://platform.openai.com/docs/guides/error-codes.
"""

from __future__ import annotations

import json
from typing import Any

from ..testing import RecordedRequest, Reply
from .base import (
    Answer,
    ErrorCase,
    FakeProvider,
    Seen,
    chunked,
    data_url_bytes,
    maybe_json,
    split_json,
    sse,
)

FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter"}


def _error(message: str, type_: str | None, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in content if part.get("type") == "text")


class OpenAIFake(FakeProvider):
    family = "openai"
    prefix_default = "/v1"
    call_id = "call_Xq7cR0ss0ver000"
    thinking = False  # Chat Completions returns no reasoning text
    stream_failure = "server_error"
    errors = {
        "authentication": ErrorCase(401, _error(
            "Incorrect API key provided: cross-te****6789. You can find your API key at "
            "https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key")),
        "permission": ErrorCase(403, _error("Country, region, or territory not supported",
                                            "request_forbidden", "unsupported_country_region_territory")),
        "not_found": ErrorCase(404, _error("The model `gpt-4o` does not exist or you do not have access to it.",
                                           "invalid_request_error", "model_not_found")),
        "invalid_request": ErrorCase(400, _error(
            "Invalid type for 'messages[0].content': expected one of a string or array of objects.",
            "invalid_request_error", "invalid_type", "messages[0].content")),
        "context_length": ErrorCase(400, _error(
            "This model's maximum context length is 128000 tokens. However, your messages resulted in "
            "130000 tokens. Please reduce the length of the messages.",
            "invalid_request_error", "context_length_exceeded", "messages")),
        "rate_limited": ErrorCase(429, _error(
            "Rate limit reached for gpt-4o in organization org-cross on requests per min (RPM): "
            "Limit 500, Used 500, Requested 1. Please try again in 120ms.", "requests", "rate_limit_exceeded"),
            {"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "0",
             "x-ratelimit-reset-requests": "120ms"}),
        "quota_exhausted": ErrorCase(429, _error(
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota", "insufficient_quota")),
        "server_error": ErrorCase(500, _error("The server had an error while processing your request. Sorry about that!",
                                              "server_error", None)),
        "overloaded": ErrorCase(503, _error("The engine is currently overloaded, please try again later.", None, None)),
    }

    def read(self, request: RecordedRequest) -> Seen:
        assert request.method == "POST"
        self.check_path(request, "/chat/completions")
        self.check_key(request, "authorization", "Bearer {}")
        body = request.json
        self.check_model(body.get("model"))
        system, turns, calls = None, [], {}
        for position, message in enumerate(body["messages"]):
            role, content = message["role"], message.get("content")
            if role in ("system", "developer"):
                if self.strict:
                    assert position == 0 and isinstance(content, str), "system goes first, as a string"
                system = (system + "\n" if system else "") + _text_of(content)
            elif role == "user":
                parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
                for part in parts:
                    if part["type"] == "text":
                        turns.append(("user", part["text"]))
                    else:
                        assert part["type"] == "image_url" or not self.strict, part
                        if part["type"] == "image_url":
                            url = part["image_url"]["url"]
                            turns.append(("image", data_url_bytes(url) if url.startswith("data:") else url))
                        else:
                            turns.append((part["type"], part))
            elif role == "assistant":
                if content:
                    turns.append(("assistant", _text_of(content)))
                for call in message.get("tool_calls") or ():
                    assert call["type"] == "function" and isinstance(call["function"]["arguments"], str)
                    name = self.issued_call(call["id"], call["function"]["name"])
                    assert call["function"]["name"] == name
                    calls[call["id"]] = name
                    turns.append(("call", name, json.loads(call["function"]["arguments"])))
            else:
                assert role == "tool", f"unknown role {role!r}"
                assert message["tool_call_id"] in calls, "the tool result answers no call in this conversation"
                if self.strict:
                    assert isinstance(content, str), "tool result content is a string"
                turns.append(("result", calls[message["tool_call_id"]], maybe_json(_text_of(content))))
        tools = []
        for tool in body.get("tools") or ():
            assert tool["type"] == "function"
            function = tool["function"]
            tools.append((function["name"], function.get("description", ""), function.get("parameters")))
        stream = body.get("stream") is True
        include_usage = stream and (body.get("stream_options") or {}).get("include_usage") is True
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        return Seen(stream, system, turns, tools, max_tokens, {"include_usage": include_usage}, body.get("model"))

    @staticmethod
    def _usage(answer: Answer) -> dict[str, Any]:
        prompt, completion = answer.usage
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                "completion_tokens_details": {"reasoning_tokens": answer.thinking_tokens}}

    def reply(self, answer: Answer, seen: Seen) -> Reply:
        message: dict[str, Any] = {"role": "assistant", "content": answer.content or None, "refusal": None}
        if answer.calls:
            message["tool_calls"] = [{"id": call.id, "type": "function",
                                      "function": {"name": call.name, "arguments": json.dumps(call.arguments)}}
                                     for call in answer.calls]
        return Reply(200, {
            "id": "chatcmpl-cross", "object": "chat.completion", "created": 1735689600, "model": self.model_of(seen),
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": FINISH[answer.finish]}],
            "usage": self._usage(answer), "system_fingerprint": "fp_cross"})

    def stream_reply(self, answer: Answer, seen: Seen) -> Reply:
        model = self.model_of(seen)

        def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None,
                  choices: bool = True) -> dict[str, Any]:
            out: dict[str, Any] = {"id": "chatcmpl-cross", "object": "chat.completion.chunk", "created": 1735689600,
                                   "model": model, "system_fingerprint": "fp_cross",
                                   "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                "finish_reason": finish}] if choices else []}
            if usage is not False:
                out["usage"] = usage
            return out

        usage: Any = None if seen.flags["include_usage"] else False  # "usage": null on every chunk
        chunks = [chunk({"role": "assistant", "content": "", "refusal": None}, usage=usage)]
        chunks += [chunk({"content": piece}, usage=usage) for piece in answer.text]
        if answer.fail:
            frames = [(None, c) for c in chunks] + [(None, self.error_case(answer.fail).body)]
            return chunked(sse(frames), "text/event-stream")
        for index, call in enumerate(answer.calls):
            chunks.append(chunk({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                                  "function": {"name": call.name, "arguments": ""}}]}, usage=usage))
            chunks += [chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}, usage=usage)
                       for fragment in split_json(call.arguments)]
        chunks.append(chunk({}, FINISH[answer.finish], usage=usage))
        if seen.flags["include_usage"]:
            chunks.append(chunk({}, usage=self._usage(answer), choices=False))
        return chunked(sse([(None, c) for c in chunks] + [(None, "[DONE]")]), "text/event-stream")
