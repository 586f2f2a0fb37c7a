"""A fake Ollama server (``POST /api/chat``, NDJSON streams).

Wire format: https://github.com/ollama/ollama/blob/main/docs/api.md#generate-a-chat-completion
(request, ``stream``, ``options.num_predict``, ``images``, tools, ``tool_name`` on tool
messages, ``done``/``done_reason``, ``prompt_eval_count``/``eval_count``),
https://docs.ollama.com/capabilities/thinking (``message.thinking``); errors:
https://docs.ollama.com/api/errors (also in tests/fixtures/ollama). Ollama sends no tool-call
ids, no content-filter finish, and a local server needs no key.
"""

from __future__ import annotations

import json
from typing import Any

from ..testing import RecordedRequest, Reply
from .base import Answer, ErrorCase, FakeProvider, Seen, chunked, image_bytes, maybe_json

DONE_REASON = {"stop": "stop", "length": "length", "tool_calls": "stop", "content_filter": "stop"}
TIMINGS = {"total_duration": 182242375, "load_duration": 41295167, "prompt_eval_duration": 24573166,
           "eval_duration": 115959084}
ERRORS = {
    "invalid_request": ErrorCase(400, {"error": "invalid character '}' looking for beginning of value"}),
    "not_found": ErrorCase(404, {"error": "model 'llama3.2' not found"}),
    "rate_limited": ErrorCase(429, {"error": "too many requests"}),
    "server_error": ErrorCase(500, {"error": "the model failed to generate a response"}),
    "authentication": ErrorCase(401, {"error": "unauthorized"}),
}


class OllamaFake(FakeProvider):
    family = "ollama"
    content_filter = False
    stream_failure = "server_error"
    errors = ERRORS

    def read(self, request: RecordedRequest) -> Seen:
        assert request.method == "POST"
        self.check_path(request, "/api/chat")
        self.check_key(request, "authorization", "Bearer {}")
        body = request.json
        self.check_model(body["model"])
        assert isinstance(body["stream"], bool), "stream must be sent: Ollama streams by default"
        system, turns, names = None, [], set()
        for position, message in enumerate(body["messages"]):
            role, content = message["role"], message["content"]
            assert isinstance(content, str)
            if role == "system":
                if self.strict:
                    assert position == 0, "system goes first"
                system = (system + "\n" if system else "") + content
            elif role == "user":
                if content:
                    turns.append(("user", content))
                turns.extend(("image", image_bytes(None, data)) for data in message.get("images") or ())
            elif role == "assistant":
                if content:
                    turns.append(("assistant", content))
                for call in message.get("tool_calls") or ():
                    function = call["function"]
                    assert isinstance(function["arguments"], dict), "Ollama tool arguments are an object"
                    names.add(self.issued_call(function["name"], function["name"]))
                    turns.append(("call", function["name"], function["arguments"]))
            else:
                assert role == "tool", f"unknown role {role!r}"
                name = message.get("tool_name")
                assert name in names or not self.strict, "the tool message answers no call in this conversation"
                turns.append(("result", name, maybe_json(content)))
        tools = []
        for tool in body.get("tools") or ():
            assert tool["type"] == "function"
            function = tool["function"]
            tools.append((function["name"], function.get("description", ""), function.get("parameters")))
        max_tokens = (body.get("options") or {}).get("num_predict")
        return Seen(body["stream"], system, turns, tools, max_tokens, model=body["model"])

    def _line(self, seen: Seen, message: dict[str, Any], done: bool = False) -> dict[str, Any]:
        return {"model": self.model_of(seen), "created_at": "2025-07-07T20:22:19.184789Z",
                "message": {"role": "assistant", "content": "", **message}, "done": done}

    def _done(self, line: dict[str, Any], answer: Answer) -> dict[str, Any]:
        return {**line, "done": True, "done_reason": DONE_REASON[answer.finish], **TIMINGS,
                "prompt_eval_count": answer.usage[0], "eval_count": answer.usage[1]}

    @staticmethod
    def _calls(answer: Answer) -> list[dict[str, Any]]:
        return [{"function": {"name": call.name, "arguments": call.arguments}} for call in answer.calls]

    def reply(self, answer: Answer, seen: Seen) -> Reply:
        message: dict[str, Any] = {"content": answer.content}
        if answer.thinking:
            message["thinking"] = answer.reasoning
        if answer.calls:
            message["tool_calls"] = self._calls(answer)
        return Reply(200, self._done(self._line(seen, message), answer))

    def stream_reply(self, answer: Answer, seen: Seen) -> Reply:
        lines = [self._line(seen, {"thinking": piece}) for piece in answer.thinking]
        lines += [self._line(seen, {"content": piece}) for piece in answer.text]
        if answer.fail:
            lines.append(self.error_case(answer.fail).body)
        else:
            if answer.calls:
                lines.append(self._line(seen, {"tool_calls": self._calls(answer)}))
            lines.append(self._done(self._line(seen, {}), answer))
        data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
        return chunked(data, "application/x-ndjson")
