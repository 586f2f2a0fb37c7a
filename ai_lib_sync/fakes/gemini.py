"""A fake Gemini API (``models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``).

Wire format: https://ai.google.dev/api/generate-content (request, response, stream, usage,
PromptFeedback), https://ai.google.dev/gemini-api/docs/function-calling (functionCall and
functionResponse parts), https://ai.google.dev/gemini-api/docs/vision (inlineData),
https://ai.google.dev/gemini-api/docs/thinking (thought parts, thoughtsTokenCount),
https://ai.google.dev/gemini-api/docs/thought-signatures, https://ai.google.dev/gemini-api/docs/api-key
(x-goog-api-key); errors: https://ai.google.dev/gemini-api/docs/troubleshooting and
https://cloud.google.com/apis/design/errors (the google.rpc error model, RetryInfo.retryDelay).
The same bodies are in tests/fixtures/gemini (errors.json, blocked_prompt.json).
"""

from __future__ import annotations

import re
from typing import Any

from ..testing import RecordedRequest, Reply
from .base import KEEP, Answer, ErrorCase, FakeProvider, Seen, chunked, image_bytes, sse

FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}
SIGNATURE = "CiQB0e2Kb3crossSignature0123456789"  # a thoughtSignature, echoed back with its call
SAFETY_RATINGS = [{"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "HIGH", "blocked": True}]
_PATH = re.compile(r"/models/([^/:]+):(generateContent|streamGenerateContent)$")
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_QUOTA = ("You exceeded your current quota, please check your plan and billing details. For more information "
          "on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.")
_HELP = {"@type": "type.googleapis.com/google.rpc.Help", "links": [
    {"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}


def _error(code: int, status: str, message: str, details: list | None = None) -> ErrorCase:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return ErrorCase(code, {"error": error})


def _errors() -> dict[str, ErrorCase]:
    key_message = "API key not valid. Please pass a valid API key."
    cases = {
        "authentication": _error(400, "INVALID_ARGUMENT", key_message, [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
             "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": key_message}]),
        "permission": _error(403, "PERMISSION_DENIED",
                             "You do not have permission to access the tuned model tunedModels/my-model-1234."),
        "not_found": _error(404, "NOT_FOUND", "models/gemini-9.0-ultra is not found for API version v1beta, or is "
                            "not supported for generateContent. Call ListModels to see the list of available "
                            "models and their supported methods."),
        "invalid_request": _error(400, "INVALID_ARGUMENT",
                                  "* GenerateContentRequest.generation_config.temperature: must be between 0 and 2\n"),
        "context_length": _error(400, "INVALID_ARGUMENT", "The input token count (1258291) exceeds the maximum "
                                 "number of tokens allowed (1048576)."),
        "rate_limited": _error(429, "RESOURCE_EXHAUSTED", _QUOTA, [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "quotaDimensions": {"location": "global", "model": "gemini-2.0-flash"}, "quotaValue": "15"}]},
            _HELP, {"@type": _RETRY_INFO, "retryDelay": "37s"}]),
        "quota_exhausted": _error(429, "RESOURCE_EXHAUSTED", _QUOTA, [_HELP]),
        "server_error": _error(500, "INTERNAL", "An internal error has occurred. Please retry or report in "
                               "https://developers.generativeai.google/guide/troubleshooting"),
        "overloaded": _error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
        "timeout": _error(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
    }
    cases["rate_limited"].retry_after = 37.0  # RetryInfo.retryDelay "37s" in the body
    cases["content_filter"] = ErrorCase(None, {
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
            {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
            {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "HIGH", "blocked": True},
            {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "NEGLIGIBLE"}]},
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}, "modelVersion": "gemini-2.0-flash"})
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
    family = "gemini"
    stream_failure = "overloaded"
    errors = _errors()

    def read(self, request: RecordedRequest) -> Seen:
        assert request.method == "POST"
        match = _PATH.search(request.path)
        assert match, f"{request.path}: not a Gemini generateContent endpoint"
        model, method = match.groups()
        self.check_path(request, f"/v1beta/models/{model}:{method}", f"/v1/models/{model}:{method}")
        self.check_model(model)
        stream = method == "streamGenerateContent"
        if stream:
            assert request.query.get("alt") == ["sse"], f"a stream needs ?alt=sse, got {request.query}"
        if self.strict:
            assert request.query == ({"alt": ["sse"]} if stream else {}), request.query
        self.check_key(request, "x-goog-api-key")
        if self.strict:
            assert request.header("authorization") is None
        body = request.json
        system = None
        if "systemInstruction" in body:
            system = "".join(part["text"] for part in body["systemInstruction"]["parts"])
        turns, names = [], set()
        for content in body["contents"]:
            role = {"user": "user", "model": "assistant"}[content.get("role", "user")]
            for part in content["parts"]:
                if "text" in part:
                    if not part.get("thought"):
                        turns.append((role, part["text"]))
                elif "inlineData" in part and role == "user":
                    inline = part["inlineData"]
                    turns.append(("image", image_bytes(inline["mimeType"], inline["data"])))
                elif "functionCall" in part and role == "assistant":
                    call = part["functionCall"]
                    name = self.issued_call(call["name"], call["name"])
                    if self.strict:
                        assert part.get("thoughtSignature") == SIGNATURE, "the call's thoughtSignature must come back"
                    names.add(name)
                    turns.append(("call", name, call.get("args", {})))
                else:
                    response = part["functionResponse"]
                    assert role == "user" and response["name"] in names, "functionResponse answers no functionCall"
                    assert isinstance(response["response"], dict)
                    turns.append(("result", response["name"], response["response"]))
        tools = []
        for group in body.get("tools") or ():
            for declaration in group.get("functionDeclarations", ()):
                parameters = declaration.get("parameters")  # the OpenAPI subset; types may be upper case
                tools.append((declaration["name"], declaration.get("description", ""), _lower_types(parameters)))
        max_tokens = (body.get("generationConfig") or {}).get("maxOutputTokens")
        return Seen(stream, system, turns, tools, max_tokens, model=model)

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

    def _response(self, parts: list[dict[str, Any]], answer: Answer, seen: Seen, finish: str | None,
                  final: bool = True) -> dict[str, Any]:
        candidate: dict[str, Any] = {"index": 0}
        if parts:
            candidate["content"] = {"role": "model", "parts": parts}
        if finish:
            candidate["finishReason"] = finish
            if finish == "SAFETY":
                candidate["safetyRatings"] = SAFETY_RATINGS
        return {"candidates": [candidate], "usageMetadata": self._usage(answer, final),
                "modelVersion": self.model_of(seen), "responseId": "cross-response-1"}

    @staticmethod
    def _call_parts(answer: Answer) -> list[dict[str, Any]]:
        return [{"functionCall": {"name": call.name, "args": call.arguments}, "thoughtSignature": SIGNATURE}
                for call in answer.calls]

    def reply(self, answer: Answer, seen: Seen) -> Reply:
        parts: list[dict[str, Any]] = []
        if answer.thinking:
            parts.append({"text": answer.reasoning, "thought": True})
        if answer.text:
            parts.append({"text": answer.content})
        parts += self._call_parts(answer)
        return Reply(200, self._response(parts, answer, seen, FINISH[answer.finish]))

    def stream_reply(self, answer: Answer, seen: Seen) -> Reply:
        pieces = [{"text": piece, "thought": True} for piece in answer.thinking]
        pieces += [{"text": piece} for piece in answer.text]
        pieces += self._call_parts(answer)
        chunks = [self._response([part], answer, seen, None, final=False) for part in pieces]
        if answer.fail:
            chunks.append(self.error_case(answer.fail).body)
        elif chunks and answer.finish != "content_filter":
            chunks[-1] = self._response([pieces[-1]], answer, seen, FINISH[answer.finish])
        else:
            chunks.append(self._response([], answer, seen, FINISH[answer.finish]))
        return chunked(sse([(None, chunk) for chunk in chunks], newline="\r\n"), "text/event-stream")

    def error_reply(self, kind: str, seen: Seen, status: int | None = None, retry_after: Any = KEEP) -> Reply:
        if kind == "content_filter" and seen.stream:  # a blocked prompt streams one chunk, no candidates
            return chunked(sse([(None, self.errors[kind].body)], newline="\r\n"), "text/event-stream")
        return super().error_reply(kind, seen, status, retry_after)

    def retry_hint(self, body: Any, headers: dict[str, str], seconds: float | None) -> Any:
        """Google sends the hint as a RetryInfo detail in the body, not as a header."""
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            return super().retry_hint(body, headers, seconds)
        details = [d for d in error.get("details", []) if d.get("@type") != _RETRY_INFO]
        if seconds is not None:
            details.append({"@type": _RETRY_INFO, "retryDelay": f"{seconds:g}s"})
        if details:
            error["details"] = details
        else:
            error.pop("details", None)
        return body
