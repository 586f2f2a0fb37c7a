"""The OpenAI Batch API and its OpenAI-compatible cousins, from their documentation.

- OpenAI: https://platform.openai.com/docs/api-reference/batch (create, retrieve, cancel,
  list; the request input and output line formats) and
  https://platform.openai.com/docs/api-reference/files/create (multipart upload,
  ``purpose=batch``; file content download). Input files take up to 50,000 requests.
- Groq: https://console.groq.com/docs/batch (the same API under ``/openai/v1``).
- Together: https://docs.together.ai/docs/inference/batch/tutorial and
  https://docs.together.ai/reference/upload-file (``POST /files/upload`` with ``purpose``,
  ``file_name``, ``file``; lines ``{custom_id, body}``; the create answer wraps the job in
  ``{"job": ...}``; upper-case statuses).
- Mistral: https://docs.mistral.ai/capabilities/batch (lines ``{custom_id, body}``;
  ``POST /v1/batch/jobs`` with ``input_files``, ``model``, ``endpoint``; statuses QUEUED,
  RUNNING, SUCCESS, FAILED, TIMEOUT_EXCEEDED, CANCELLATION_REQUESTED, CANCELLED; fields
  ``output_file``, ``error_file``, ``total_requests``, ``succeeded_requests``, ``failed_requests``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from ai_lib_sync.testing import RecordedRequest, Reply

from .base import BatchFake, Violation, json_body, jsonl, last_user_text, multipart, require

ENDPOINT = "/v1/chat/completions"
FLAVOURS: dict[str, dict[str, Any]] = {
    "openai": {"prefix": "/v1", "upload": "/files", "fields": {"purpose": "batch"}, "create": "/batches",
               "lines": "openai", "envelope": None, "statuses": None},
    "groq": {"prefix": "/openai/v1", "upload": "/files", "fields": {"purpose": "batch"}, "create": "/batches",
             "lines": "openai", "envelope": None, "statuses": None},
    "together": {"prefix": "/v1", "upload": "/files/upload",
                 "fields": {"purpose": "batch-api", "file_name": None, "file_type": "jsonl"},
                 "create": "/batches", "lines": "body", "envelope": "job",
                 "statuses": {"validating": "VALIDATING", "in_progress": "IN_PROGRESS", "finalizing": "IN_PROGRESS",
                              "completed": "COMPLETED", "failed": "FAILED", "expired": "EXPIRED",
                              "cancelling": "CANCELLING", "cancelled": "CANCELLED"}},
    "mistral": {"prefix": "/v1", "upload": "/files", "fields": {"purpose": "batch"}, "create": "/batch/jobs",
                "lines": "body", "envelope": None,
                "statuses": {"validating": "QUEUED", "in_progress": "RUNNING", "finalizing": "RUNNING",
                             "completed": "SUCCESS", "failed": "FAILED", "expired": "TIMEOUT_EXCEEDED",
                             "cancelling": "CANCELLATION_REQUESTED", "cancelled": "CANCELLED"}},
}
PROGRESSION = ("validating", "in_progress", "finalizing")


class OpenAIBatchFake(BatchFake):
    def __init__(self, flavour: str = "openai", **kwargs: Any) -> None:
        self.flavour = flavour
        self.style = FLAVOURS[flavour]
        self.files: dict[str, tuple[str, bytes]] = {}  # id -> (filename, content)
        self.uploads = 0
        super().__init__(**kwargs)

    @property
    def base_url(self) -> str:
        return self.server.base_url + self.style["prefix"]

    def error_reply(self, status: int, message: str) -> Reply:
        return Reply(status, {"error": {"message": message, "type": "invalid_request_error", "param": None,
                                        "code": None}})

    def route(self, request: RecordedRequest) -> Reply:
        require(request.header("authorization") == f"Bearer {self.key}", "missing or wrong Bearer key")
        prefix = self.style["prefix"]
        require(request.path.startswith(prefix + "/"), f"path outside {prefix}")
        path = request.path[len(prefix):]
        create = self.style["create"]
        if request.method == "POST" and path == self.style["upload"]:
            return self.upload(request)
        if request.method == "GET" and path.startswith("/files/") and path.endswith("/content"):
            file_id = path[len("/files/"):-len("/content")]
            require(file_id in self.files, f"no file {file_id}")
            return Reply(200, self.files[file_id][1], {"Content-Type": "application/octet-stream"})
        if request.method == "POST" and path == create:
            return self.create(request)
        if request.method == "GET" and path == create:
            newest = [self.render(self.batches[bid]) for bid in reversed(self.order)]
            if self.flavour == "together":
                return Reply(200, newest)
            return Reply(200, {"object": "list", "data": newest, "has_more": False,
                               "first_id": newest[0]["id"] if newest else None,
                               "last_id": newest[-1]["id"] if newest else None})
        if path.startswith(create + "/"):
            rest = path[len(create) + 1:]
            if request.method == "POST" and rest.endswith("/cancel"):
                batch = self.batches.get(rest[:-len("/cancel")])
                require(batch is not None, "no such batch")
                if batch["status"] not in ("completed", "failed", "expired", "cancelled"):
                    batch["status"] = "cancelling"
                return Reply(200, self.wrap(self.render(batch)))
            if request.method == "GET" and rest in self.batches:
                batch = self.batches[rest]
                self.advance(batch)
                return Reply(200, self.wrap(self.render(batch)))
        raise Violation("no such endpoint")

    def wrap(self, obj: dict[str, Any]) -> Any:
        return obj

    # --- files ------------------------------------------------------------------------------

    def upload(self, request: RecordedRequest) -> Reply:
        parts = multipart(request)
        for name, value in self.style["fields"].items():
            require(name in parts, f"the upload has no {name!r} field")
            if value is not None:
                require(parts[name][1].decode() == value, f"{name} must be {value!r}, got {parts[name][1]!r}")
        filename, content = parts.get("file", (None, b""))
        require(filename and filename.endswith(".jsonl"), "the upload's file part needs a .jsonl filename")
        if self.flavour == "together":
            require(parts["file_name"][1].decode() == filename, "file_name must name the uploaded file")
        self.uploads += 1
        file_id = f"file-{self.next_id():06d}"
        self.files[file_id] = (filename, content)
        purpose = parts["purpose"][1].decode()
        return Reply(200, {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                           "filename": filename, "purpose": purpose})

    # --- batches ------------------------------------------------------------------------------

    def create(self, request: RecordedRequest) -> Reply:
        body = json_body(request)
        if self.flavour == "mistral":
            require(set(body) <= {"input_files", "model", "endpoint", "metadata", "timeout_hours"}, f"fields {sorted(body)}")
            require(isinstance(body.get("input_files"), list) and len(body["input_files"]) == 1, "input_files")
            file_id, model = body["input_files"][0], body.get("model")
            require(isinstance(model, str) and model, "a Mistral batch names its model")
        else:
            allowed = {"input_file_id", "endpoint", "completion_window", "metadata"}
            require(set(body) <= allowed, f"unknown fields {sorted(set(body) - allowed)}")
            require(body.get("completion_window") == "24h", "completion_window must be 24h")
            file_id, model = body.get("input_file_id"), None
        require(body.get("endpoint") == ENDPOINT, f"endpoint must be {ENDPOINT}")
        metadata = body.get("metadata")
        if metadata is not None:
            require(isinstance(metadata, dict) and len(metadata) <= 16, "metadata: at most 16 pairs")
            require(all(isinstance(v, str) and len(v) <= 512 and len(k) <= 64 for k, v in metadata.items()),
                    "metadata keys <= 64 chars, values strings <= 512 chars")
        require(file_id in self.files, f"no file {file_id}")
        lines = jsonl(self.files[file_id][1])
        require(lines, "the input file is empty")
        limit = self.max_requests or 50_000
        require(len(lines) <= limit, f"the input file has {len(lines)} requests; at most {limit}")
        seen: set[str] = set()
        for line in lines:
            keys = {"custom_id", "method", "url", "body"} if self.style["lines"] == "openai" else {"custom_id", "body"}
            require(set(line) == keys, f"a line has keys {sorted(line)}, expected {sorted(keys)}")
            if self.style["lines"] == "openai":
                require(line["method"] == "POST" and line["url"] == ENDPOINT, "method POST, url " + ENDPOINT)
            custom_id = line["custom_id"]
            require(isinstance(custom_id, str) and custom_id not in seen, f"custom_id {custom_id!r} repeated")
            seen.add(custom_id)
            require(isinstance(line["body"].get("messages"), list), "a body without messages")
            if self.flavour != "mistral":
                require(isinstance(line["body"].get("model"), str), "a body without model")
            require("stream" not in line["body"], "batch bodies are not streamed")
        batch_id = f"batch_{self.next_id():06d}"
        batch = {"id": batch_id, "file": file_id, "lines": lines, "status": "validating", "polls": 0,
                 "created_at": int(time.time()), "metadata": metadata, "model": model,
                 "output": None, "errors_file": None}
        self.batches[batch_id] = batch
        self.order.append(batch_id)
        if self.lost():
            return self.error_reply(500, "The server had an error while processing your request.")
        return Reply(200, self.wrap_create(self.render(batch)))

    def wrap_create(self, obj: dict[str, Any]) -> Any:
        return {"job": obj, "warning": None} if self.style["envelope"] == "job" else obj

    def advance(self, batch: dict[str, Any]) -> None:
        if batch["status"] in ("completed", "failed", "expired", "cancelled"):
            return
        if batch["status"] == "cancelling":
            self.finish(batch, "cancelled")
            return
        batch["polls"] += 1
        if batch["polls"] >= self.polls:
            self.finish(batch, self.outcome)
        else:
            batch["status"] = PROGRESSION[min(batch["polls"], len(PROGRESSION) - 1)]

    def finish(self, batch: dict[str, Any], status: str) -> None:
        batch["status"] = status
        if status == "failed":
            batch["failure"] = [{"code": "invalid_json_line", "message": "This line is not parseable as valid JSON.",
                                 "param": None, "line": 1}]
            return
        out, err = [], []
        for line in batch["lines"]:
            custom_id = line["custom_id"]
            request_id = f"req_{self.next_id():06d}"
            if status in ("expired", "cancelled") or custom_id in self.expire:
                code = "batch_cancelled" if status == "cancelled" else "batch_expired"
                message = ("This request was cancelled." if code == "batch_cancelled" else
                           "This request could not be executed before the completion window expired.")
                err.append({"id": f"batch_req_{request_id}", "custom_id": custom_id, "response": None,
                            "error": {"code": code, "message": message}})
            elif custom_id in self.fail:
                err.append({"id": f"batch_req_{request_id}", "custom_id": custom_id, "error": None,
                            "response": {"status_code": 400, "request_id": request_id, "body": {"error": {
                                "message": "Invalid value for 'temperature': expected a number.",
                                "type": "invalid_request_error", "param": "temperature", "code": "invalid_value"}}}})
            else:
                out.append({"id": f"batch_req_{request_id}", "custom_id": custom_id, "error": None,
                            "response": {"status_code": 200, "request_id": request_id,
                                         "body": self.completion(line["body"], batch)}})
        for key, rows in (("output", out), ("errors_file", err)):
            if rows:
                file_id = f"file-{self.next_id():06d}"
                self.files[file_id] = (f"{key}.jsonl", "".join(json.dumps(row) + "\n" for row in rows).encode())
                batch[key] = file_id

    def completion(self, body: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
        text, prompt, completion = self.answer_for(last_user_text(body["messages"]))
        return {"id": f"chatcmpl-{self.next_id()}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model") or batch["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "logprobs": None, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                          "total_tokens": prompt + completion}}

    def render(self, batch: dict[str, Any]) -> dict[str, Any]:
        status = batch["status"]
        total = len(batch["lines"])
        done = status in ("completed", "expired", "cancelled")
        failed = sum(1 for line in batch["lines"] if line["custom_id"] in self.fail | self.expire) if done else 0
        if status in ("expired", "cancelled"):
            failed = total
        completed = total - failed if done else 0
        wire_status = (self.style["statuses"] or {}).get(status, status)
        if self.flavour == "mistral":
            return {"id": batch["id"], "object": "batch", "input_files": [batch["file"]], "metadata": batch["metadata"],
                    "endpoint": ENDPOINT, "model": batch["model"], "output_file": batch["output"],
                    "error_file": batch["errors_file"], "errors": [], "status": wire_status,
                    "created_at": batch["created_at"], "total_requests": total, "completed_requests": completed + failed,
                    "succeeded_requests": completed, "failed_requests": failed, "started_at": None, "completed_at": None}
        obj = {"id": batch["id"], "object": "batch", "endpoint": ENDPOINT, "errors": None,
               "input_file_id": batch["file"], "completion_window": "24h", "status": wire_status,
               "output_file_id": batch["output"], "error_file_id": batch["errors_file"],
               "created_at": batch["created_at"], "in_progress_at": None, "expires_at": batch["created_at"] + 86400,
               "finalizing_at": None, "completed_at": None, "failed_at": None, "expired_at": None,
               "cancelling_at": None, "cancelled_at": None,
               "request_counts": {"total": total, "completed": completed, "failed": failed},
               "metadata": batch["metadata"]}
        if batch.get("failure"):
            obj["errors"] = {"object": "list", "data": batch["failure"]}
        return obj
