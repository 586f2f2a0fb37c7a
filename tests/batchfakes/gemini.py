"""Gemini Batch API with inlined requests, from https://ai.google.dev/gemini-api/docs/batch-api
(inline requests keep the whole request under 20 MB; the REST example sends
``{"batch": {"display_name", "input_config": {"requests": {"requests": [{"request",
"metadata": {"key"}}]}}}}``) and https://ai.google.dev/api/batch-api (the batch is a
long-running operation ``batches/{id}``; ``GenerateContentBatch`` fields ``displayName``,
``state`` ``BATCH_STATE_*``, ``batchStats``; inlined responses come in input order).
``echo_metadata=False`` leaves each inlined response's metadata out, as users report the
service does (https://discuss.ai.google.dev/t/gemini-batch-api-doesnt-return-the-user-metadata-back/112386)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from ai_lib_sync.testing import RecordedRequest, Reply

from .base import BatchFake, Violation, json_body, require

TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."
CREATE = re.compile(r"^/v1beta/models/([^/:]+):batchGenerateContent$")
INLINE_LIMIT = 20 * 1024 * 1024


def _pick(node: dict[str, Any], snake: str, camel: str) -> Any:
    """Proto JSON accepts both spellings of a field."""
    return node.get(snake, node.get(camel))


class GeminiBatchFake(BatchFake):
    def __init__(self, *, echo_metadata: bool = True, **kwargs: Any) -> None:
        self.echo_metadata = echo_metadata
        super().__init__(**kwargs)

    def error_reply(self, status: int, message: str) -> Reply:
        names = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 500: "INTERNAL"}
        return Reply(status, {"error": {"code": status, "message": message, "status": names.get(status, "UNKNOWN")}})

    def route(self, request: RecordedRequest) -> Reply:
        require(request.header("x-goog-api-key") == self.key or request.query.get("key") == [self.key],
                "missing or wrong API key")
        match = CREATE.match(request.path)
        if match and request.method == "POST":
            return self.create(request, match.group(1))
        if request.path == "/v1beta/batches" and request.method == "GET":
            return Reply(200, {"operations": [self.render(self.batches[bid]) for bid in reversed(self.order)]})
        if request.path.startswith("/v1beta/batches/"):
            name = request.path[len("/v1beta/"):]
            if request.method == "POST" and name.endswith(":cancel"):
                batch = self.batches.get(name[:-len(":cancel")])
                require(batch is not None, "no such batch")
                if batch["state"] in ("PENDING", "RUNNING"):
                    batch["state"] = "CANCELLED"
                return Reply(200, {})
            if request.method == "GET" and name in self.batches:
                batch = self.batches[name]
                self.advance(batch)
                return Reply(200, self.render(batch))
        raise Violation("no such endpoint")

    def create(self, request: RecordedRequest, model: str) -> Reply:
        require(len(request.body) < INLINE_LIMIT, "inlined requests must stay under 20 MB")
        body = json_body(request)
        require(set(body) == {"batch"}, f"fields {sorted(body)}")
        batch = body["batch"]
        display = _pick(batch, "display_name", "displayName")
        require(isinstance(display, str) and display, "batch.display_name is required")
        config = _pick(batch, "input_config", "inputConfig") or {}
        items = (config.get("requests") or {}).get("requests")
        require(isinstance(items, list) and items, "input_config.requests.requests: a non-empty list")
        for item in items:
            require(set(item) <= {"request", "metadata"} and "request" in item, f"an inlined request {sorted(item)}")
            contents = item["request"].get("contents")
            require(isinstance(contents, list) and contents, "a request without contents")
        name = f"batches/{self.next_id():012d}"
        self.batches[name] = {"name": name, "model": f"models/{model}", "display": display, "items": items,
                              "state": "PENDING", "polls": 0,
                              "created": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")}
        self.order.append(name)
        if self.lost():
            return self.error_reply(500, "An internal error has occurred.")
        return Reply(200, self.render(self.batches[name]))

    def advance(self, batch: dict[str, Any]) -> None:
        if batch["state"] not in ("PENDING", "RUNNING"):
            return
        batch["polls"] += 1
        if batch["polls"] >= self.polls:
            batch["state"] = {"completed": "SUCCEEDED", "expired": "EXPIRED", "failed": "FAILED"}[self.outcome]
        else:
            batch["state"] = "RUNNING"

    def responses(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for item in batch["items"]:
            key = (item.get("metadata") or {}).get("key")
            if key in self.fail:
                entry: dict[str, Any] = {"error": {"code": 400, "message": "Request contains an invalid argument.",
                                                   "status": "INVALID_ARGUMENT"}}
            else:
                contents = item["request"]["contents"]
                text = "".join(part.get("text", "") for part in contents[-1].get("parts", ()))
                answer, prompt, completion = self.answer_for(text)
                entry = {"response": {
                    "candidates": [{"content": {"parts": [{"text": answer}], "role": "model"},
                                    "finishReason": "STOP", "index": 0}],
                    "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": completion,
                                      "totalTokenCount": prompt + completion},
                    "modelVersion": batch["model"].removeprefix("models/")}}
            if self.echo_metadata and item.get("metadata"):
                entry["metadata"] = item["metadata"]
            out.append(entry)
        return out

    def render(self, batch: dict[str, Any]) -> dict[str, Any]:
        state = batch["state"]
        total = len(batch["items"])
        stats: dict[str, str] = {"requestCount": str(total)}
        done = state in ("SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED")
        if state == "SUCCEEDED":
            failed = sum(1 for item in batch["items"] if (item.get("metadata") or {}).get("key") in self.fail)
            stats.update(successfulRequestCount=str(total - failed), failedRequestCount=str(failed))
        elif not done:
            stats["pendingRequestCount"] = str(total)
        meta = {"@type": TYPE + "GenerateContentBatch", "model": batch["model"], "displayName": batch["display"],
                "createTime": batch["created"], "updateTime": batch["created"], "batchStats": stats,
                "state": "BATCH_STATE_" + state, "name": batch["name"]}
        operation: dict[str, Any] = {"name": batch["name"], "metadata": meta}
        if done:
            operation["done"] = True
            if state == "SUCCEEDED":
                operation["response"] = {"@type": TYPE + "GenerateContentBatchOutput",
                                         "inlinedResponses": {"inlinedResponses": self.responses(batch)}}
            elif state == "FAILED":
                operation["error"] = {"code": 400, "message": "The batch could not be processed.",
                                      "status": "INVALID_ARGUMENT"}
        return operation
