"""Anthropic Message Batches, from https://docs.anthropic.com/en/api/creating-message-batches,
https://docs.anthropic.com/en/api/retrieving-message-batches,
https://docs.anthropic.com/en/api/retrieving-message-batch-results,
https://docs.anthropic.com/en/api/canceling-message-batches and
https://docs.anthropic.com/en/api/listing-message-batches: at most 100,000 requests a batch,
custom ids matching ``^[a-zA-Z0-9_-]{1,64}$``, results as JSONL, one line per request."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from ai_lib_sync.testing import RecordedRequest, Reply

from .base import BatchFake, Violation, json_body, last_user_text, require

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ROOT = "/v1/messages/batches"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class AnthropicBatchFake(BatchFake):
    def error_reply(self, status: int, message: str) -> Reply:
        kind = "invalid_request_error" if status < 500 else "api_error"
        return Reply(status, {"type": "error", "error": {"type": kind, "message": message}})

    def route(self, request: RecordedRequest) -> Reply:
        require(request.header("x-api-key") == self.key, "missing or wrong x-api-key")
        require(request.header("anthropic-version"), "missing anthropic-version")
        path = request.path
        if path == ROOT and request.method == "POST":
            return self.create(request)
        if path == ROOT and request.method == "GET":
            data = [self.render(self.batches[bid]) for bid in reversed(self.order)]
            return Reply(200, {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                               "last_id": data[-1]["id"] if data else None})
        if path.startswith(ROOT + "/"):
            rest = path[len(ROOT) + 1:]
            batch_id, _, action = rest.partition("/")
            batch = self.batches.get(batch_id)
            require(batch is not None, f"no batch {batch_id}")
            if request.method == "GET" and not action:
                self.advance(batch)
                return Reply(200, self.render(batch))
            if request.method == "POST" and action == "cancel":
                if batch["status"] != "ended":
                    batch["status"] = "canceling"
                    batch["cancel_initiated_at"] = _iso(datetime.now(timezone.utc))
                return Reply(200, self.render(batch))
            if request.method == "GET" and action == "results":
                require(batch["status"] == "ended", "results are available once processing has ended")
                body = "".join(json.dumps(line) + "\n" for line in batch["results"])
                return Reply(200, body, {"Content-Type": "application/binary"})
        raise Violation("no such endpoint")

    def create(self, request: RecordedRequest) -> Reply:
        body = json_body(request)
        require(set(body) == {"requests"}, f"fields {sorted(body)}")
        requests = body["requests"]
        require(isinstance(requests, list) and 1 <= len(requests) <= (self.max_requests or 100_000),
                "requests: 1 to 100,000 items")
        seen: set[str] = set()
        for item in requests:
            require(set(item) == {"custom_id", "params"}, f"a request has keys {sorted(item)}")
            custom_id = item["custom_id"]
            require(isinstance(custom_id, str) and CUSTOM_ID.match(custom_id), f"custom_id {custom_id!r}")
            require(custom_id not in seen, f"custom_id {custom_id!r} repeated")
            seen.add(custom_id)
            params = item["params"]
            for name in ("model", "max_tokens", "messages"):
                require(name in params, f"params without {name}")
            require("stream" not in params, "batch requests are not streamed")
        now = datetime.now(timezone.utc)
        batch_id = f"msgbatch_{self.next_id():024d}"
        self.batches[batch_id] = {"id": batch_id, "requests": requests, "status": "in_progress", "polls": 0,
                                  "created_at": _iso(now), "expires_at": _iso(now + timedelta(hours=24)),
                                  "cancel_initiated_at": None, "results": []}
        self.order.append(batch_id)
        if self.lost():
            return self.error_reply(500, "Internal server error")
        return Reply(200, self.render(self.batches[batch_id]))

    def advance(self, batch: dict[str, Any]) -> None:
        if batch["status"] == "ended":
            return
        if batch["status"] == "canceling":
            self.finish(batch, cancelled=True)
            return
        batch["polls"] += 1
        if batch["polls"] >= self.polls:
            self.finish(batch)

    def finish(self, batch: dict[str, Any], cancelled: bool = False) -> None:
        batch["status"] = "ended"
        batch["ended_at"] = _iso(datetime.now(timezone.utc))
        for item in batch["requests"]:
            custom_id, params = item["custom_id"], item["params"]
            if cancelled:
                result: dict[str, Any] = {"type": "canceled"}
            elif custom_id in self.expire or self.outcome == "expired":
                result = {"type": "expired"}
            elif custom_id in self.fail:
                result = {"type": "errored", "error": {"type": "error", "error": {
                    "type": "invalid_request_error", "message": "max_tokens: Field required"}}}
            else:
                text, prompt, completion = self.answer_for(last_user_text(params["messages"]))
                result = {"type": "succeeded", "message": {
                    "id": f"msg_{self.next_id():024d}", "type": "message", "role": "assistant",
                    "model": params["model"], "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn", "stop_sequence": None,
                    "usage": {"input_tokens": prompt, "output_tokens": completion}}}
            batch["results"].append({"custom_id": custom_id, "result": result})

    def render(self, batch: dict[str, Any]) -> dict[str, Any]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if batch["status"] == "ended":
            for line in batch["results"]:
                counts[line["result"]["type"]] += 1
        else:
            counts["processing"] = len(batch["requests"])
        ended = batch["status"] == "ended"
        return {"id": batch["id"], "type": "message_batch", "processing_status": batch["status"],
                "request_counts": counts, "ended_at": batch.get("ended_at"), "created_at": batch["created_at"],
                "expires_at": batch["expires_at"], "archived_at": None,
                "cancel_initiated_at": batch["cancel_initiated_at"],
                "results_url": f"https://api.anthropic.com{ROOT}/{batch['id']}/results" if ended else None}
