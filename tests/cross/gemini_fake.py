"""A fake Gemini API (``generateContent`` and ``streamGenerateContent?alt=sse``).

Wire format: https://ai.google.dev/api/generate-content (request, response, stream, usage),
https://ai.google.dev/gemini-api/docs/function-calling (functionCall/functionResponse parts),
https://ai.google.dev/gemini-api/docs/vision (inlineData), https://ai.google.dev/gemini-api/docs/thinking
(thought parts, thoughtsTokenCount), https://ai.google.dev/gemini-api/docs/thought-signatures, https://ai.google.dev/gemini-api/docs/api-key (x-goog-api-key);
errors from tests/fixtures/gemini (https://ai.google.dev/gemini-api/docs/troubleshooting).
"""

from __future__ import annotations

from typing import Any

from ai_lib_sync.testing import RecordedRequest, Reply
from tests.helpers import fixture_json

from .fake import Answer, ErrorCase, FakeProvider, Seen, chunked, image_bytes, sse

FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}
BASE = "/v1beta/models/gemini-2.5-flash"
SIGNATURE = "CiQB0e2Kb3crossSignature0123456789"  # a thoughtSignature, echoed back with its call
SAFETY_RATINGS = [{"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "HIGH", "blocked": True}]

_FIXTURE = fixture_json("gemini/errors.json")
_BY_KIND = {"authentication": "api_key_invalid", "permission": "permission_denied", "not_found": "not_found",
            "invalid_request": "invalid_argument", "context_length": "context_length",
            "rate_limited": "rate_limited", "quota_exhausted": "quota_exhausted", "server_error": "internal",
            "overloaded": "unavailable", "timeout": "deadline_exceeded"}


def _errors() -> dict[str, ErrorCase]:
    cases = {kind: ErrorCase(_FIXTURE[key]["status"], _FIXTURE[key]["body"]) for kind, key in _BY_KIND.items()}
    cases["rate_limited"].retry_after = 37.0  # RetryInfo.retryDelay "37s" in the body
    cases["content_filter"] = ErrorCase(None, fixture_json("gemini/blocked_prompt.json"))
    return cases


def _lower_types(schema: Any) -> Any:
    """Gemini's Schema spells types ``OBJECT`` or ``object``; compare them as JSON schema does."""
    if isinstance(schema, dict):
        return {key: value.lower() if key == "type" and isinstance(value, str) else _lower_types(value)
                for key, value in schema.items()}
    if isinstance(schema, list):
        return [_lower_types(item) for item in schema]
    return schema


class GeminiFake(FakeProvider):
    provider = "gemini"
    model = "gemini-2.5-flash"
    stream_failure = "overloaded"
    errors = _errors()

    def read(self, request: RecordedRequest) -> Seen:
        assert request.method == "POST"
        stream = request.path == f"{BASE}:streamGenerateContent"
        if stream:
            assert request.query == {"alt": ["sse"]}, request.query
        else:
            assert (request.path, request.query) == (f"{BASE}:generateContent", {}), request.path
        assert request.header("x-goog-api-key") == self.key and request.header("authorization") is None
        body = request.json
        system = None
        if "systemInstruction" in body:
            system = "".join(part["text"] for part in body["systemInstruction"]["parts"])
        turns, names = [], set()
        for content in body["contents"]:
            role = {"user": "user", "model": "assistant"}[content["role"]]
            for part in content["parts"]:
                if "text" in part:
                    turns.append((role, part["text"]))
                elif "inlineData" in part and role == "user":
                    inline = part["inlineData"]
                    turns.append(("image", image_bytes(inline["mimeType"], inline["data"])))
                elif "functionCall" in part and role == "assistant":
                    call = part["functionCall"]
                    name = self.issued_call(call["name"])
                    assert part.get("thoughtSignature") == SIGNATURE, "the call's thoughtSignature must come back"
                    names.add(name)
                    turns.append(("call", name, call["args"]))
                else:
                    response = part["functionResponse"]
                    assert role == "user" and response["name"] in names, "functionResponse answers no functionCall"
                    assert isinstance(response["response"], dict)
                    turns.append(("result", response["name"], response["response"]))
        tools = []
        for group in body.get("tools") or ():
            for declaration in group["functionDeclarations"]:
                parameters = declaration["parameters"]  # the OpenAPI subset; types may be upper case
                tools.append((declaration["name"], declaration.get("description", ""), _lower_types(parameters)))
        max_tokens = (body.get("generationConfig") or {}).get("maxOutputTokens")
        return Seen(stream, system, turns, tools, max_tokens)

    @staticmethod
    def _usage(answer: Answer, final: bool = True) -> dict[str, Any]:
        prompt, completion = answer.usage
        if not final:
            return {"promptTokenCount": prompt, "totalTokenCount": prompt}
        usage = {"promptTokenCount": prompt, "candidatesTokenCount": completion - answer.thinking_tokens,
                 "totalTokenCount": prompt + completion}
        if answer.thinking_tokens:
            usage["thoughtsTokenCount"] = answer.thinking_tokens
        return usage

    def _response(self, parts: list[dict[str, Any]], answer: Answer, finish: str | None,
                  final: bool = True) -> dict[str, Any]:
        candidate: dict[str, Any] = {"index": 0}
        if parts:
            candidate["content"] = {"role": "model", "parts": parts}
        if finish:
            candidate["finishReason"] = finish
            if finish == "SAFETY":
                candidate["safetyRatings"] = SAFETY_RATINGS
        return {"candidates": [candidate], "usageMetadata": self._usage(answer, final),
                "modelVersion": self.model, "responseId": "cross-response-1"}

    @staticmethod
    def _parts(answer: Answer) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        if answer.thinking:
            parts.append({"text": answer.reasoning, "thought": True})
        if answer.text:
            parts.append({"text": answer.content})
        if answer.call:
            parts.append({"functionCall": {"name": answer.call.name, "args": answer.call.arguments},
                          "thoughtSignature": SIGNATURE})
        return parts

    def reply(self, answer: Answer, seen: Seen) -> Reply:
        return Reply(200, self._response(self._parts(answer), answer, FINISH[answer.finish]))

    def stream_reply(self, answer: Answer, seen: Seen) -> Reply:
        pieces = [{"text": piece, "thought": True} for piece in answer.thinking]
        pieces += [{"text": piece} for piece in answer.text]
        if answer.call:
            pieces.append({"functionCall": {"name": answer.call.name, "args": answer.call.arguments},
                           "thoughtSignature": SIGNATURE})
        chunks = [self._response([part], answer, None, final=False) for part in pieces]
        if answer.fail:
            chunks.append(self.errors[answer.fail].body)
        elif chunks and answer.finish != "content_filter":
            chunks[-1] = self._response([pieces[-1]], answer, FINISH[answer.finish])
        else:
            chunks.append(self._response([], answer, FINISH[answer.finish]))
        return chunked(sse([(None, chunk) for chunk in chunks], newline="\r\n"), "text/event-stream")

    def error_reply(self, kind: str, seen: Seen) -> Reply:
        if kind == "content_filter" and seen.stream:  # a blocked prompt streams one chunk, no candidates
            return chunked(sse([(None, self.errors[kind].body)], newline="\r\n"), "text/event-stream")
        return super().error_reply(kind, seen)
