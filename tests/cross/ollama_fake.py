"""A fake Ollama server (``POST /api/chat``, NDJSON streams).

Wire format: https://github.com/ollama/ollama/blob/main/docs/api.md#generate-a-chat-completion
(request, ``stream``, ``options.num_predict``, ``images``, tools, ``tool_name`` on tool
messages, ``done``/``done_reason``, ``prompt_eval_count``/``eval_count``),
https://docs.ollama.com/capabilities/thinking (``message.thinking``); errors from
tests/fixtures/ollama (https://docs.ollama.com/api/errors). Ollama sends no tool-call ids, no
content-filter finish, and needs no key.
"""

from __future__ import annotations

import json
from typing import Any

from ai_lib_sync.testing import RecordedRequest, Reply
from tests.helpers import fixture_json

from .fake import Answer, ErrorCase, FakeProvider, Seen, chunked, image_bytes

DONE_REASON = {"stop": "stop", "length": "length", "tool_calls": "stop"}
TIMINGS = {"total_duration": 182242375, "load_duration": 41295167, "prompt_eval_duration": 24573166,
           "eval_duration": 115959084}


def _errors() -> dict[str, ErrorCase]:
    cases: dict[str, ErrorCase] = {}
    for case in fixture_json("ollama/errors.json")["cases"]:
        cases.setdefault(case["kind"], ErrorCase(case["status"], case["body"]))
    return cases


class OllamaFake(FakeProvider):
    provider = "ollama"
    model = "llama3.2"
    key = None
    content_filter = False
    stream_failure = "server_error"
    errors = _errors()

    def read(self, request: RecordedRequest) -> Seen:
        assert (request.method, request.path) == ("POST", "/api/chat"), request.path
        assert request.header("authorization") is None, "a local Ollama takes no key"
        body = request.json
        assert body["model"] == self.model
        assert isinstance(body["stream"], bool), "stream must be sent: Ollama streams by default"
        system, turns, names = None, [], set()
        for position, message in enumerate(body["messages"]):
            role, content = message["role"], message["content"]
            assert isinstance(content, str)
            if role == "system":
                assert position == 0, "system goes first"
                system = content
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
                    names.add(self.issued_call(function["name"]))
                    turns.append(("call", function["name"], function["arguments"]))
            else:
                assert role == "tool", f"unknown role {role!r}"
                assert message["tool_name"] in names, "the tool message answers no call in this conversation"
                turns.append(("result", message["tool_name"], json.loads(content)))
        tools = []
        for tool in body.get("tools") or ():
            assert tool["type"] == "function"
            function = tool["function"]
            tools.append((function["name"], function.get("description", ""), function["parameters"]))
        max_tokens = (body.get("options") or {}).get("num_predict")
        return Seen(body["stream"], system, turns, tools, max_tokens)

    def _line(self, message: dict[str, Any], done: bool = False) -> dict[str, Any]:
        return {"model": self.model, "created_at": "2025-07-07T20:22:19.184789Z",
                "message": {"role": "assistant", "content": "", **message}, "done": done}

    def _done(self, line: dict[str, Any], answer: Answer) -> dict[str, Any]:
        return {**line, "done": True, "done_reason": DONE_REASON[answer.finish], **TIMINGS,
                "prompt_eval_count": answer.usage[0], "eval_count": answer.usage[1]}

    def reply(self, answer: Answer, seen: Seen) -> Reply:
        message: dict[str, Any] = {"content": answer.content}
        if answer.thinking:
            message["thinking"] = answer.reasoning
        if answer.call:
            message["tool_calls"] = [{"function": {"name": answer.call.name, "arguments": answer.call.arguments}}]
        return Reply(200, self._done(self._line(message), answer))

    def stream_reply(self, answer: Answer, seen: Seen) -> Reply:
        lines = [self._line({"thinking": piece}) for piece in answer.thinking]
        lines += [self._line({"content": piece}) for piece in answer.text]
        if answer.fail:
            lines.append(self.errors[answer.fail].body)
        else:
            if answer.call:
                lines.append(self._line({"tool_calls": [
                    {"function": {"name": answer.call.name, "arguments": answer.call.arguments}}]}))
            lines.append(self._done(self._line({}), answer))
        data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
        return chunked(data, "application/x-ndjson")
