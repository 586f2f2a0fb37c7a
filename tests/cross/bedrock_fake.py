"""A fake Amazon Bedrock runtime (Converse and ConverseStream), keyed with a Bedrock API key.

Wire format: https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html and
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html (messages,
system, inferenceConfig, toolConfig, toolUse/toolResult and image blocks, stream events in AWS
event-stream framing), https://docs.aws.amazon.com/bedrock/latest/userguide/api-keys-use.html
(bearer key); errors from tests/fixtures/bedrock (``x-amzn-errortype`` plus ``{"message"}``).
"""

from __future__ import annotations

from typing import Any

from ai_lib_sync.testing import RecordedRequest, Reply
from tests.helpers import fixture_json
from tests.test_eventstream import event, exception

from .fake import Answer, ErrorCase, FakeProvider, Seen, chunked, image_bytes, split_json

STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "content_filtered"}
CONVERSE = "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}
# Exception events in a ConverseStream body: lowerCamel type and message, by the kind they mean.
STREAM_EXCEPTIONS = {"rate_limited": ("throttlingException", "Too many tokens, please wait before trying again.")}


def _errors() -> dict[str, ErrorCase]:
    cases: dict[str, ErrorCase] = {}
    for status, error_type, body, kind in fixture_json("bedrock/errors.json")["cases"]:
        cases.setdefault(kind, ErrorCase(status, body, {"x-amzn-errortype": error_type,
                                                        "x-amzn-requestid": "cross-request-1"}))
    return cases


class BedrockFake(FakeProvider):
    provider = "bedrock"
    model = "anthropic.claude-3-5-sonnet-20241022-v2:0"
    key = "ABSKcrossTestBedrockKey0123456789"
    call_id = "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q"
    stream_failure = "rate_limited"
    errors = _errors()

    def read(self, request: RecordedRequest) -> Seen:
        assert request.method == "POST" and request.path in (CONVERSE, CONVERSE + "-stream"), request.path
        assert request.header("authorization") == f"Bearer {self.key}"
        body = request.json
        system = "".join(block["text"] for block in body.get("system") or ()) or None
        turns, calls, history_has_tools = [], {}, False
        for position, message in enumerate(body["messages"]):
            role = message["role"]
            assert role == ("user" if position % 2 == 0 else "assistant"), "roles alternate, starting with user"
            for block in message["content"]:
                if "text" in block:
                    turns.append((role, block["text"]))
                elif "image" in block and role == "user":
                    image = block["image"]
                    turns.append(("image", image_bytes(FORMATS[image["format"]], image["source"]["bytes"])))
                elif "toolUse" in block and role == "assistant":
                    use = block["toolUse"]
                    name = self.issued_call(use["toolUseId"])
                    assert use["name"] == name and isinstance(use["input"], dict)
                    calls[use["toolUseId"]] = name
                    history_has_tools = True
                    turns.append(("call", name, use["input"]))
                else:
                    result = block["toolResult"]
                    assert role == "user" and result["toolUseId"] in calls, "toolResult answers no toolUse"
                    (content,) = result["content"]
                    turns.append(("result", calls[result["toolUseId"]], content["json"]))
        tools = []
        if "toolConfig" in body:
            for tool in body["toolConfig"]["tools"]:
                spec = tool["toolSpec"]
                tools.append((spec["name"], spec.get("description", ""), spec["inputSchema"]["json"]))
        assert tools or not history_has_tools, "Converse needs toolConfig when the history holds tool blocks"
        max_tokens = (body.get("inferenceConfig") or {}).get("maxTokens")
        return Seen(request.path.endswith("-stream"), system, turns, tools, max_tokens)

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
        if answer.call:
            call = answer.call
            content.append({"toolUse": {"toolUseId": call.id, "name": call.name, "input": call.arguments}})
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
            events.append(exception(*STREAM_EXCEPTIONS[answer.fail]))
            return chunked(b"".join(events), "application/vnd.amazon.eventstream")
        if answer.call:
            call = answer.call
            events.append(event("contentBlockStart", {"contentBlockIndex": index, "start": {
                "toolUse": {"toolUseId": call.id, "name": call.name}}}))
            events.extend(event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"toolUse": {"input": part}}})
                          for part in split_json(call.arguments))
            events.append(event("contentBlockStop", {"contentBlockIndex": index}))
        events.append(event("messageStop", {"stopReason": STOP[answer.finish]}))
        events.append(event("metadata", {"usage": self._usage(answer), "metrics": {"latencyMs": 1398}}))
        return chunked(b"".join(events), "application/vnd.amazon.eventstream")
