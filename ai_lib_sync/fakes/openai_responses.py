"""A fake OpenAI Responses API endpoint (``POST /v1/responses``).

Wire format: https://platform.openai.com/docs/api-reference/responses/create (request body:
``instructions``, ``input`` items, flat function tools, ``tool_choice``, ``max_output_tokens``,
``text.format``, ``include``, ``store``, ``stream``),
https://platform.openai.com/docs/api-reference/responses/object (the Response object: output
items, ``status``, ``incomplete_details``, ``usage`` with its token details),
https://platform.openai.com/docs/api-reference/responses-streaming (semantic SSE events, each
with ``type`` and ``sequence_number``; ``error`` and ``response.failed``),
https://platform.openai.com/docs/guides/function-calling (``function_call`` and
``function_call_output`` items), https://platform.openai.com/docs/guides/reasoning (reasoning
items with summaries, ``include: ["reasoning.encrypted_content"]``); errors:
https://platform.openai.com/docs/guides/error-codes (the Chat Completions envelope). Field
names checked against the types in github.com/openai/openai-python, src/openai/types/responses.
The same shapes are in tests/fixtures/openai_responses.
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
from .openai import OpenAIFake, _error

RESPONSE_ID = "resp_67ccd2bed1ec8190b14f964abc0542670cross"
MESSAGE_ID = "msg_67ccd2bf17f0819081ff3bb2cf6508e60cross"
REASONING_ID = "rs_6820f383d7c08191846711c5df8233bc0cross"
FUNCTION_CALL_ID = "fc_67ca09c6bedc8190a7abfec07b1a1332cross"
ENCRYPTED_REASONING = "reasoning.encrypted_content"
ENCRYPTED_CONTENT = "gAAAAABoIPOD1ZB2sLHzCrossTestEncryptedReasoning0123456789="
CREATED = 1741476542
# The documented request body (ResponseCreateParams); a strict fake rejects anything else.
BODY_FIELDS = frozenset({
    "background", "context_management", "conversation", "include", "input", "instructions",
    "max_output_tokens", "max_tool_calls", "metadata", "model", "moderation", "parallel_tool_calls",
    "previous_response_id", "prompt", "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention", "reasoning", "safety_identifier", "service_tier", "store",
    "stream", "stream_options", "temperature", "text", "tool_choice", "tools", "top_logprobs", "top_p",
    "truncation", "user"})
# Chat Completions fields a Responses request must not carry, and what it takes instead.
MISPLACED = {"messages": "input", "max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens",
             "response_format": "text.format", "stop": "nothing (no stop sequences)", "n": "nothing",
             "functions": "tools", "function_call": "tool_choice"}
IMAGE_DETAIL = ("low", "high", "auto", "original")
# ``incomplete_details.reason`` of an answer that stops early.
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
# The documented codes of ``response.error`` (ResponseError), which a failed response carries.
RESPONSE_ERROR_CODES = frozenset({
    "server_error", "rate_limit_exceeded", "invalid_prompt", "data_residency_mismatch", "bio_policy",
    "vector_store_timeout", "invalid_image", "invalid_image_format", "invalid_base64_image", "invalid_image_url",
    "image_too_large", "image_too_small", "image_parse_error", "image_content_policy_violation",
    "invalid_image_mode", "image_file_too_large", "unsupported_image_media_type", "empty_image_file",
    "failed_to_download_image", "image_file_not_found"})
# The code a mid-stream failure of a kind carries where its HTTP body has none.
FAILURE_CODES = {"server_error": "server_error", "rate_limited": "rate_limit_exceeded"}


def _text(content: Any, *kinds: str) -> str:
    """A message's text: a string, or its parts of ``kinds``."""
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in content if part["type"] in kinds)


class OpenAIResponsesFake(FakeProvider):
    family = "openai_responses"
    prefix_default = "/v1"
    call_id = "call_unLAR8MvFNptuiZK6K6Hcross"
    stream_failure = "server_error"
    # The same envelope and bodies as Chat Completions; the request-shaped ones name ``input``.
    errors = {
        **OpenAIFake.errors,
        "invalid_request": ErrorCase(400, _error(
            "Invalid type for 'input[0].content': expected one of an array of objects or string, but got an "
            "integer instead.", "invalid_request_error", "invalid_type", "input[0].content")),
        "context_length": ErrorCase(400, _error(
            "Your input exceeds the context window of this model. Please adjust your input and try again.",
            "invalid_request_error", "context_length_exceeded", "input")),
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.reasoning_ids: set[str] = set()  # reasoning items this fake returned

    # --- the request ------------------------------------------------------------------------

    def read(self, request: RecordedRequest) -> Seen:
        assert request.method == "POST"
        self.check_path(request, "/responses")
        self.check_key(request, "authorization", "Bearer {}")
        body = request.json
        assert isinstance(body, dict), "the body is a JSON object"
        for name, instead in MISPLACED.items():
            assert name not in body, f"{name!r} is a Chat Completions field; the Responses API takes {instead}"
        if self.strict:
            unknown = sorted(set(body) - BODY_FIELDS)
            assert not unknown, f"unknown parameters {unknown}"
            assert isinstance(body.get("model"), str), "model is a string"
        self.check_model(body.get("model"))
        system = body.get("instructions")
        assert system is None or isinstance(system, str), "instructions is a string"
        items = body.get("input", [])
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
        turns: list[tuple] = []
        calls: dict[str, str] = {}  # call_id -> name, of the function_call items of this input
        for position, item in enumerate(items):
            kind = item.get("type", "message")
            if kind == "message":
                system = self._read_message(item, position, system, turns)
            elif kind == "function_call":
                assert isinstance(item["arguments"], str), "function_call arguments are a JSON string"
                name = self.issued_call(item["call_id"], item["name"])
                assert item["name"] == name, f"call {item['call_id']!r} is {name!r}, not {item['name']!r}"
                calls[item["call_id"]] = name
                turns.append(("call", name, json.loads(item["arguments"])))
            elif kind == "function_call_output":
                turns.append(self._read_output(item, calls, body))
            elif kind == "reasoning":
                self._read_reasoning(item, body)
            else:
                assert not self.strict, f"an input item of type {kind!r}"
                turns.append((kind, item))
        tools = self._read_tools(body)
        self._read_options(body, {tool[0] for tool in tools})
        include = body.get("include") or []
        flags = {"include": include, "store": body.get("store"),
                 "echo": {name: body.get(name) for name in ("instructions", "max_output_tokens", "tools",
                                                            "tool_choice", "text", "reasoning", "temperature",
                                                            "top_p", "parallel_tool_calls", "previous_response_id")}}
        return Seen(body.get("stream") is True, system, turns, tools, body.get("max_output_tokens"), flags,
                    body.get("model"))

    def _read_message(self, item: dict[str, Any], position: int, system: str | None,
                      turns: list[tuple]) -> str | None:
        """Adds the message's turns; returns the system text so far."""
        role, content = item["role"], item["content"]
        assert isinstance(content, (str, list)), "message content is a string or a list of parts"
        if role in ("system", "developer"):
            if self.strict:
                assert position > 0, "a leading system message goes in 'instructions'"
            text = _text(content, "input_text")
            return text if system is None else f"{system}\n{text}"
        if role == "assistant":
            if self.strict and isinstance(content, list):
                assert all(part["type"] in ("output_text", "refusal") for part in content), content
            text = _text(content, "output_text")
            if text:
                turns.append(("assistant", text))
            return system
        assert role == "user", f"unknown role {role!r}"
        parts = [{"type": "input_text", "text": content}] if isinstance(content, str) else content
        for part in parts:
            if part["type"] == "input_text":
                turns.append(("user", part["text"]))
            elif part["type"] == "input_image":
                assert part.get("detail") in IMAGE_DETAIL, f"input_image detail is one of {IMAGE_DETAIL}"
                url = part.get("image_url")
                assert url or part.get("file_id"), "an input_image has an image_url or a file_id"
                inline = url and url.startswith("data:")
                turns.append(("image", data_url_bytes(url) if inline else url or part["file_id"]))
            else:
                assert not self.strict, f"a {part['type']!r} part in a user message"
                turns.append((part["type"], part))
        return system

    def _read_output(self, item: dict[str, Any], calls: dict[str, str], body: dict[str, Any]) -> tuple:
        name = calls.get(item["call_id"])
        if name is None:  # a call of a stored response, continued with previous_response_id
            assert not self.strict and body.get("previous_response_id"), \
                "the function_call_output answers no function_call in this input"
            name = self.issued.get(item["call_id"], item["call_id"])
        output = item["output"]
        if self.strict:
            assert isinstance(output, str), "function_call_output output is a string"
        return ("result", name, maybe_json(_text(output, "input_text")))

    def _read_reasoning(self, item: dict[str, Any], body: dict[str, Any]) -> None:
        """Echoed reasoning: part of the protocol, not of the conversation."""
        assert isinstance(item["summary"], list), "a reasoning item has a summary list"
        assert all(part["type"] == "summary_text" for part in item["summary"]), item["summary"]
        if body.get("store") is False:
            assert item.get("encrypted_content"), "with store: false a reasoning item carries its encrypted_content"
        if self.strict:
            assert item.get("id") in self.reasoning_ids, f"{item.get('id')!r} is no reasoning item this provider made"

    def _read_tools(self, body: dict[str, Any]) -> list[tuple]:
        tools = []
        for tool in body.get("tools") or ():
            if tool["type"] != "function":  # a built-in tool (web_search, file_search, ...)
                assert not self.strict, f"a {tool['type']!r} tool"
                continue
            assert "function" not in tool, "Responses tools are flat: name and parameters beside type"
            assert isinstance(tool["name"], str) and "parameters" in tool and "strict" in tool, \
                "a function tool has name, parameters and strict"
            tools.append((tool["name"], tool.get("description", ""), tool["parameters"]))
        return tools

    def _read_options(self, body: dict[str, Any], tool_names: set[str]) -> None:
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            if choice["type"] == "function":
                assert "function" not in choice, "a named tool_choice is flat: {'type': 'function', 'name'}"
                assert not self.strict or choice["name"] in tool_names, f"tool_choice names {choice['name']!r}"
            else:
                assert not self.strict, f"a tool_choice of type {choice['type']!r}"
        else:
            assert choice in (None, "auto", "none", "required"), f"tool_choice {choice!r}"
        limit = body.get("max_output_tokens")
        assert limit is None or (type(limit) is int and limit > 0), f"max_output_tokens {limit!r}"
        text_format = (body.get("text") or {}).get("format")
        if text_format is not None:
            assert text_format["type"] in ("text", "json_object", "json_schema"), text_format
            if text_format["type"] == "json_schema":
                assert "json_schema" not in text_format, "text.format is flat: name and schema beside type"
                assert isinstance(text_format["name"], str) and isinstance(text_format["schema"], dict)
        assert body.get("stream") in (None, True, False), "stream is a boolean"
        include = body.get("include")
        assert include is None or all(isinstance(name, str) for name in include), "include is a list of strings"
        assert body.get("store") in (None, True, False), "store is a boolean"

    # --- the answer -------------------------------------------------------------------------

    @staticmethod
    def _usage(answer: Answer) -> dict[str, Any]:
        prompt, completion = answer.usage
        return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": answer.thinking_tokens},
                "total_tokens": prompt + completion}

    def _response(self, seen: Seen, status: str, output: list[dict[str, Any]], usage: Any,
                  incomplete: Any = None, error: Any = None) -> dict[str, Any]:
        """The Response object, echoing the request's settings as the API does."""
        echo = seen.flags["echo"]
        reasoning = echo["reasoning"] or {}
        return {
            "id": RESPONSE_ID, "object": "response", "created_at": CREATED, "status": status, "error": error,
            "incomplete_details": incomplete, "instructions": echo["instructions"],
            "max_output_tokens": echo["max_output_tokens"], "model": self.model_of(seen), "output": output,
            "parallel_tool_calls": echo["parallel_tool_calls"] is not False,
            "previous_response_id": echo["previous_response_id"],
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "store": seen.flags["store"] is not False,
            "temperature": 1.0 if echo["temperature"] is None else echo["temperature"],
            "text": echo["text"] or {"format": {"type": "text"}}, "tool_choice": echo["tool_choice"] or "auto",
            "tools": echo["tools"] or [], "top_p": 1.0 if echo["top_p"] is None else echo["top_p"],
            "truncation": "disabled", "usage": usage, "user": None, "metadata": {}}

    @staticmethod
    def _outcome(answer: Answer) -> tuple[str, Any]:
        """(status, incomplete_details) of the finished response."""
        reason = INCOMPLETE.get(answer.finish)
        return ("incomplete", {"reason": reason}) if reason else ("completed", None)

    def _reasoning_item(self, answer: Answer, seen: Seen) -> dict[str, Any]:
        item: dict[str, Any] = {"type": "reasoning", "id": REASONING_ID,
                                "summary": [{"type": "summary_text", "text": answer.reasoning}]}
        if ENCRYPTED_REASONING in seen.flags["include"]:
            item["encrypted_content"] = ENCRYPTED_CONTENT
        item["status"] = "completed"
        self.reasoning_ids.add(REASONING_ID)
        return item

    @staticmethod
    def _message_item(answer: Answer, status: str) -> dict[str, Any]:
        return {"type": "message", "id": MESSAGE_ID, "status": status, "role": "assistant",
                "content": [{"type": "output_text", "text": answer.content, "annotations": []}]}

    @staticmethod
    def _call_item(call: Any, position: int, status: str = "completed",
                   arguments: str | None = None) -> dict[str, Any]:
        return {"type": "function_call", "id": f"{FUNCTION_CALL_ID}{position}", "call_id": call.id,
                "name": call.name, "arguments": json.dumps(call.arguments) if arguments is None else arguments,
                "status": status}

    def reply(self, answer: Answer, seen: Seen) -> Reply:
        status, incomplete = self._outcome(answer)
        output = [self._reasoning_item(answer, seen)] if answer.thinking else []
        if answer.text:
            output.append(self._message_item(answer, status))
        output += [self._call_item(call, position) for position, call in enumerate(answer.calls)]
        return Reply(200, self._response(seen, status, output, self._usage(answer), incomplete),
                     {"x-request-id": "req_cross0123456789"})

    def stream_reply(self, answer: Answer, seen: Seen) -> Reply:
        events: list[dict[str, Any]] = []

        def emit(kind: str, **fields: Any) -> None:
            events.append({"type": kind, "sequence_number": len(events), **fields})

        def reply() -> Reply:
            frames: list[tuple[str | None, Any]] = [(event["type"], event) for event in events]
            return chunked(sse(frames), "text/event-stream")

        status, incomplete = self._outcome(answer)
        emit("response.created", response=self._response(seen, "in_progress", [], None))
        emit("response.in_progress", response=self._response(seen, "in_progress", [], None))
        output: list[dict[str, Any]] = []
        if answer.thinking:
            item = self._reasoning_item(answer, seen)
            where = {"item_id": item["id"], "output_index": len(output)}
            emit("response.output_item.added", output_index=len(output), item={**item, "summary": [],
                                                                                 "status": "in_progress"})
            emit("response.reasoning_summary_part.added", **where, summary_index=0,
                 part={"type": "summary_text", "text": ""})
            for piece in answer.thinking:
                emit("response.reasoning_summary_text.delta", **where, summary_index=0, delta=piece)
            emit("response.reasoning_summary_text.done", **where, summary_index=0, text=answer.reasoning)
            emit("response.reasoning_summary_part.done", **where, summary_index=0,
                 part={"type": "summary_text", "text": answer.reasoning})
            emit("response.output_item.done", output_index=len(output), item=item)
            output.append(item)
        if answer.text:
            where = {"item_id": MESSAGE_ID, "output_index": len(output)}
            emit("response.output_item.added", output_index=len(output),
                 item={**self._message_item(answer, "in_progress"), "content": []})
            emit("response.content_part.added", **where, content_index=0,
                 part={"type": "output_text", "text": "", "annotations": []})
            for piece in answer.text:
                emit("response.output_text.delta", **where, content_index=0, delta=piece, logprobs=[])
            if not answer.fail:
                item = self._message_item(answer, status)
                emit("response.output_text.done", **where, content_index=0, text=answer.content, logprobs=[])
                emit("response.content_part.done", **where, content_index=0, part=item["content"][0])
                emit("response.output_item.done", output_index=len(output), item=item)
                output.append(item)
        if answer.fail:
            self._failure(emit, answer.fail, seen, output)
            return reply()
        for position, call in enumerate(answer.calls):
            arguments = json.dumps(call.arguments)
            where = {"item_id": f"{FUNCTION_CALL_ID}{position}", "output_index": len(output)}
            emit("response.output_item.added", output_index=len(output),
                 item=self._call_item(call, position, "in_progress", ""))
            for fragment in split_json(call.arguments):
                emit("response.function_call_arguments.delta", **where, delta=fragment)
            emit("response.function_call_arguments.done", **where, name=call.name, arguments=arguments)
            item = self._call_item(call, position)
            emit("response.output_item.done", output_index=len(output), item=item)
            output.append(item)
        final = self._response(seen, status, output, self._usage(answer), incomplete)
        emit("response.completed" if status == "completed" else "response.incomplete", response=final)
        return reply()

    def _failure(self, emit: Any, kind: str, seen: Seen, output: list[dict[str, Any]]) -> None:
        """The documented mid-stream failure: an ``error`` event with the error of ``kind``, then
        ``response.failed`` where its code is one a failed response documents."""
        error = self.error_case(kind).body["error"]
        code = error.get("code") or FAILURE_CODES.get(kind)
        emit("error", code=code, message=error["message"], param=error.get("param"))
        if code in RESPONSE_ERROR_CODES:
            emit("response.failed", response=self._response(
                seen, "failed", output, None, error={"code": code, "message": error["message"]}))
