"""A fake Amazon Bedrock runtime (Converse and ConverseStream).

Wire format: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html and
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html (messages,
system, inferenceConfig, toolConfig, toolUse/toolResult and image blocks, stream events in AWS
event-stream framing: https://docs.aws.amazon.com/transcribe/latest/dg/event-stream.html),
https://docs.aws.amazon.com/bedrock/latest/userguide/api-keys-use.html (bearer key); errors:
https://docs.aws.amazon.com/bedrock/latest/userguide/troubleshooting-api-error-codes.html
(``x-amzn-errortype`` plus ``{"message"}``; also in tests/fixtures/bedrock).
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from typing import Any
from urllib.parse import quote, unquote

from ..testing import RecordedRequest, Reply
from .base import Answer, ErrorCase, FakeProvider, Seen, chunked, image_bytes, split_json

STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "content_filtered"}
FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}
_PATH = re.compile(r"/model/([^/]+)/(converse|converse-stream)$")
# Exception events in a ConverseStream body: lowerCamel type and message, by the kind they mean.
STREAM_EXCEPTIONS = {"rate_limited": ("throttlingException", "Too many tokens, please wait before trying again."),
                     "server_error": ("internalServerException", "The server encountered an internal error."),
                     "overloaded": ("serviceUnavailableException", "The service is unavailable.")}
_CORAL = ":http://internal.amazon.com/coral/com.amazon.bedrock/"


def _case(status: int, error_type: str, body: dict[str, Any]) -> ErrorCase:
    return ErrorCase(status, body, {"x-amzn-errortype": error_type, "x-amzn-requestid": "cross-request-1"})


ERRORS = {
    "invalid_request": _case(400, "ValidationException" + _CORAL, {"message": "The provided model identifier is invalid."}),
    "context_length": _case(400, "ValidationException", {"message": "Input is too long for requested model."}),
    "permission": _case(403, "AccessDeniedException" + _CORAL,
                        {"message": "You don't have access to the model with the specified model ID."}),
    "authentication": _case(403, "AccessDeniedException",
                            {"Message": "Authentication failed: Please make sure your API Key is valid."}),
    "not_found": _case(404, "ResourceNotFoundException" + _CORAL, {"message": "Model is not available for this account."}),
    "timeout": _case(408, "ModelTimeoutException", {"message": "Model has timed out in processing the request."}),
    "server_error": _case(424, "ModelErrorException", {"message": "The model returned an error."}),
    "rate_limited": _case(429, "ThrottlingException" + _CORAL, {"message": "Too many requests, please wait before trying again."}),
    "overloaded": _case(429, "ModelNotReadyException", {"message": "Model is not ready for inference."}),
}


def _message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message (string headers only, which is all Bedrock sends)."""
    raw = b"".join(struct.pack(">B", len(name.encode())) + name.encode() + b"\x07"
                   + struct.pack(">H", len(value.encode())) + value.encode() for name, value in headers.items())
    prelude = struct.pack(">II", 16 + len(raw) + len(payload), len(raw))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + raw + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    return _message({":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
                    json.dumps(payload).encode())


def exception(exception_type: str, message: str) -> bytes:
    return _message({":exception-type": exception_type, ":content-type": "application/json",
                     ":message-type": "exception"}, json.dumps({"message": message}).encode())


class BedrockFake(FakeProvider):
    family = "bedrock"
    call_id = "tooluse_kZJMlvQmRJ6eAyJE5GIl7"
    stream_failure = "rate_limited"
    errors = ERRORS

    def read(self, request: RecordedRequest) -> Seen:
        assert request.method == "POST"
        match = _PATH.search(request.path)
        assert match, f"{request.path}: not a Bedrock Converse endpoint"
        self.check_path(request, match.group(0))
        model = unquote(match.group(1))
        self.check_model(model)
        if self.strict:
            assert match.group(1) == quote(model, safe=""), "the model id goes URL-encoded into the path"
        if self.key is not None:
            self.check_key(request, "authorization", "Bearer {}")
        body = request.json
        system = "".join(block["text"] for block in body.get("system") or () if "text" in block) or None
        turns, calls, history_has_tools = [], {}, False
        for position, message in enumerate(body["messages"]):
            role = message["role"]
            if self.strict:
                assert role == ("user" if position % 2 == 0 else "assistant"), "roles alternate, starting with user"
            for block in message["content"]:
                if "text" in block:
                    turns.append((role, block["text"]))
                elif "image" in block and role == "user":
                    image = block["image"]
                    turns.append(("image", image_bytes(FORMATS[image["format"]], image["source"]["bytes"])))
                elif "toolUse" in block and role == "assistant":
                    use = block["toolUse"]
                    name = self.issued_call(use["toolUseId"], use["name"])
                    assert use["name"] == name and isinstance(use["input"], dict)
                    calls[use["toolUseId"]] = name
                    history_has_tools = True
                    turns.append(("call", name, use["input"]))
                elif "reasoningContent" in block and role == "assistant":
                    continue  # echoed reasoning: part of the protocol, not of the conversation
                else:
                    result = block["toolResult"]
                    assert role == "user" and result["toolUseId"] in calls, "toolResult answers no toolUse"
                    history_has_tools = True
                    parts = [part.get("json", part.get("text")) for part in result["content"]]
                    turns.append(("result", calls[result["toolUseId"]], parts[0] if len(parts) == 1 else parts))
        tools = []
        if "toolConfig" in body:
            for tool in body["toolConfig"]["tools"]:
                spec = tool["toolSpec"]
                tools.append((spec["name"], spec.get("description", ""), spec["inputSchema"]["json"]))
        assert tools or not history_has_tools, "Converse needs toolConfig when the history holds tool blocks"
        max_tokens = (body.get("inferenceConfig") or {}).get("maxTokens")
        return Seen(match.group(2) == "converse-stream", system, turns, tools, max_tokens, model=model)

    @staticmethod
    def _usage(answer: Answer) -> dict[str, Any]:
        prompt, completion = answer.usage
        return {"inputTokens": prompt, "outputTokens": completion, "totalTokens": prompt + completion}

    def reply(self, answer: Answer, seen: Seen) -> Reply:
        content: list[dict[str, Any]] = []
        if answer.thinking:
            content.append({"reasoningContent": {"reasoningText": {"text": answer.reasoning,
                                                                   "signature": "EqoBCkgIARABGAIiQL"}}})
        if answer.text:
            content.append({"text": answer.content})
        content += [{"toolUse": {"toolUseId": call.id, "name": call.name, "input": call.arguments}}
                    for call in answer.calls]
        return Reply(200, {"output": {"message": {"role": "assistant", "content": content}},
                           "stopReason": STOP[answer.finish], "usage": self._usage(answer),
                           "metrics": {"latencyMs": 1398}}, {"x-amzn-requestid": "cross-request-1"})

    def stream_reply(self, answer: Answer, seen: Seen) -> Reply:
        events: list[bytes] = [event("messageStart", {"role": "assistant"})]
        index = 0
        for kind, pieces in (("reasoning", answer.thinking), ("text", answer.text)):
            if not pieces:
                continue
            deltas = [{"reasoningContent": {"text": piece}} if kind == "reasoning" else {"text": piece}
                      for piece in pieces]
            if kind == "reasoning":
                deltas.append({"reasoningContent": {"signature": "EqoBCkgIARABGAIiQL"}})
            events.extend(event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}) for delta in deltas)
            events.append(event("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        if answer.fail:
            events.append(exception(*STREAM_EXCEPTIONS.get(answer.fail, STREAM_EXCEPTIONS["server_error"])))
            return chunked(b"".join(events), "application/vnd.amazon.eventstream")
        for call in answer.calls:
            events.append(event("contentBlockStart", {"contentBlockIndex": index, "start": {
                "toolUse": {"toolUseId": call.id, "name": call.name}}}))
            events.extend(event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"toolUse": {"input": part}}})
                          for part in split_json(call.arguments))
            events.append(event("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        events.append(event("messageStop", {"stopReason": STOP[answer.finish]}))
        events.append(event("metadata", {"usage": self._usage(answer), "metrics": {"latencyMs": 1398}}))
        return chunked(b"".join(events), "application/vnd.amazon.eventstream")
