"""The HTTP side of the three provider Batch API families, driven by the manifest's ``batch``
section (manifests/README.md, Provider batches).

- ``openai_files``: a JSONL file uploaded through a Files API, then a batch created on it;
  results in an output file and an error file (OpenAI, Groq, Together, Mistral: paths, create
  body, status names and field names are manifest data).
- ``anthropic_batches``: Message Batches; the requests travel in the create body, results come
  as JSONL from the batch's results path.
- ``gemini_batches``: ``batchGenerateContent`` with inlined requests (the documented 20 MB
  inline limit is the manifest's ``max_bytes``, past which the job is split); results are
  inlined in the finished batch.

Each family only speaks HTTP: request lines are encoded by the chat dialects
(``encode_batch_item``) and results decoded by them (``decode_batch_item``). Every call goes
through the client's transport and binding (base URL, credentials, redaction, timeouts).
Create calls go through ``once``, the same session without automatic retries: a create retried
blindly after a lost answer could pay twice, so the caller looks for the batch first.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from ..dialects.base import HttpRequest
from ..errors import AiLibError, make_error
from ..transport import Transport

UNIFIED_STATUSES = ("validating", "in_progress", "finalizing", "completed", "failed", "cancelling",
                    "cancelled", "expired")
# How long before the journalled create attempt a listed batch may claim to have been made
# (clock skew between us and the provider).
CLOCK_SKEW_S = 120.0


@dataclasses.dataclass
class BatchState:
    """One provider batch as last seen: unified status, counts, why it failed."""

    status: str
    total: int | None = None
    succeeded: int = 0
    failed: int = 0
    failure: str | None = None


def dig(node: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def fill(template: Any, values: Mapping[str, Any]) -> Any:
    """The manifest's create body with ``"{file_id}"``, ``"{model}"``, ``"{metadata}"`` filled in."""
    if isinstance(template, str):
        if template.startswith("{") and template.endswith("}") and template[1:-1] in values:
            return values[template[1:-1]]
        for name, value in values.items():
            if isinstance(value, str):
                template = template.replace("{" + name + "}", value)
        return template
    if isinstance(template, list):
        return [fill(item, values) for item in template]
    if isinstance(template, dict):
        return {key: fill(value, values) for key, value in template.items()}
    return template


class Family:
    """What the three families share: the HTTP plumbing. ``binding`` is the client's
    ``ProviderBinding``; ``transport`` its transport; ``once`` the no-retry twin."""

    uploads = False  # whether requests travel in a file uploaded first
    ordered = False  # whether results come in input order (Gemini documents it)

    def __init__(self, binding: Any, transport: Transport, once: Transport, spec: dict[str, Any]) -> None:
        self.binding = binding
        self.transport = transport
        self.once = once
        self.spec = spec

    def call(self, method: str, path: str, *, query: Mapping[str, str] | None = None, body: Any = None,
             raw: bytes | None = None, content_type: str = "application/json", once: bool = False) -> bytes:
        headers = {"Accept": "application/json"}
        if body is not None or raw is not None:
            headers["Content-Type"] = content_type
        prepared = self.binding.prepare_wire(HttpRequest(method, path, dict(query or {}), headers, body))
        if raw is not None:
            prepared = dataclasses.replace(prepared, body=raw)
        try:
            _, data, _ = (self.once if once else self.transport).call(prepared)
        except AiLibError as error:
            raise self.binding.stamp(error) from None
        return data

    def call_json(self, method: str, path: str, **kwargs: Any) -> Any:
        data = self.call(method, path, **kwargs)
        try:
            return json.loads(data) if data else {}
        except ValueError:
            raise self.binding.stamp(make_error(
                "server_error", f"{method} {path}: the provider sent a body that is not JSON")) from None

    def path(self, key: str, **values: str) -> str:
        template = self.spec[key]
        for name, value in values.items():
            template = template.replace("{" + name + "}", quote(value, safe="/" if name == "id" else ""))
        return template

    # --- overridden per family ---------------------------------------------------------------

    def upload(self, lines: list[str], filename: str) -> str:  # pragma: no cover - file families only
        raise NotImplementedError

    def create(self, lines: list[str], model: str, marker: str, file_id: str | None) -> Any:
        raise NotImplementedError  # pragma: no cover

    def find(self, marker: str, file_id: str | None, size: int, attempted_at: float | None,
             known: set[str]) -> Any:
        raise NotImplementedError  # pragma: no cover

    def batch_id(self, batch: Any) -> str:
        return str(batch["id"])

    def retrieve(self, batch_id: str) -> Any:
        return self.call_json("GET", self.path("batch_path", id=batch_id))

    def cancel(self, batch_id: str) -> Any:
        return self.call_json("POST", self.path("cancel_path", id=batch_id))

    def state(self, batch: Any) -> BatchState:
        raise NotImplementedError  # pragma: no cover

    def results(self, batch: Any) -> Iterator[dict[str, Any]]:
        raise NotImplementedError  # pragma: no cover

    def listed(self) -> list[Any]:
        """The provider's most recent batches (one page: a batch whose create answer was lost
        is seconds old, so it is on the first page unless 100 others were created since)."""
        if not self.spec.get("list_path"):
            return []
        payload = self.call_json("GET", self.spec["list_path"], query=self.spec.get("list_query"))
        key = self.spec.get("list_items", self.default_list_items)
        items = payload.get(key) if key and isinstance(payload, dict) else payload
        return items if isinstance(items, list) else []

    default_list_items = "data"


def _jsonl(data: bytes) -> Iterator[dict[str, Any]]:
    for raw in data.splitlines():
        raw = raw.strip()
        if raw:
            try:
                line = json.loads(raw)
            except ValueError:
                continue  # a torn line matches no custom id: its item reports a missing result
            if isinstance(line, dict):
                yield line


class OpenAIFiles(Family):
    """OpenAI's Batch API and its OpenAI-compatible cousins: upload, create, poll, download."""

    uploads = True
    FIELDS = {"status": "status", "input_file": "input_file_id", "output_file": "output_file_id",
              "error_file": "error_file_id", "total": "request_counts.total",
              "succeeded": "request_counts.completed", "failed": "request_counts.failed"}

    def field(self, batch: Any, name: str) -> Any:
        return dig(batch, {**self.FIELDS, **self.spec.get("fields", {})}[name])

    def unwrap(self, payload: Any) -> Any:
        envelope = self.spec.get("envelope")
        if envelope and isinstance(payload, dict) and isinstance(payload.get(envelope), dict):
            return payload[envelope]
        return payload

    def upload(self, lines: list[str], filename: str) -> str:
        boundary = "ai-lib-sync-" + uuid.uuid4().hex
        parts: list[bytes] = []
        for name, value in self.spec.get("upload_fields", {}).items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                         f'{value.replace("{filename}", filename)}\r\n'.encode())
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                     'Content-Type: application/jsonl\r\n\r\n'.encode())
        parts.append("\n".join(lines).encode("utf-8"))
        parts.append(f"\n\r\n--{boundary}--\r\n".encode())
        payload = self.call_json("POST", self.spec["upload_path"], raw=b"".join(parts),
                                 content_type=f"multipart/form-data; boundary={boundary}")
        file_id = payload.get("id") if isinstance(payload, dict) else None
        if not file_id:
            raise self.binding.stamp(make_error("server_error", "the Files API answered without a file id"))
        return str(file_id)

    def create(self, lines: list[str], model: str, marker: str, file_id: str | None) -> Any:
        body = fill(self.spec.get("create_body", {}), {
            "file_id": file_id, "model": model, "metadata": {"ai_lib_sync_job": marker}})
        return self.unwrap(self.call_json("POST", self.spec["create_path"], body=body, once=True))

    def find(self, marker: str, file_id: str | None, size: int, attempted_at: float | None,
             known: set[str]) -> Any:
        """The batch made on our input file (the file id is unique to this chunk), or carrying
        our marker in its metadata."""
        for batch in map(self.unwrap, self.listed()):
            if not isinstance(batch, dict) or str(batch.get("id")) in known:
                continue
            inputs = self.field(batch, "input_file")
            if file_id and (inputs == file_id or (isinstance(inputs, list) and file_id in inputs)):
                return batch
            if dig(batch, "metadata.ai_lib_sync_job") == marker:
                return batch
        return None

    def retrieve(self, batch_id: str) -> Any:
        return self.unwrap(super().retrieve(batch_id))

    def cancel(self, batch_id: str) -> Any:
        return self.unwrap(super().cancel(batch_id))

    def state(self, batch: Any) -> BatchState:
        raw = str(self.field(batch, "status") or "")
        status = self.spec.get("status", {}).get(raw, raw.lower())
        if status not in UNIFIED_STATUSES:
            status = "in_progress"
        total = self.field(batch, "total")
        errors = dig(batch, "errors.data") or dig(batch, "errors") or []
        messages = [str(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message")] \
            if isinstance(errors, list) else []
        return BatchState(status, None if total is None else _int(total), _int(self.field(batch, "succeeded")),
                          _int(self.field(batch, "failed")), "; ".join(messages)[:2000] or None)

    def results(self, batch: Any) -> Iterator[dict[str, Any]]:
        for name in ("output_file", "error_file"):
            file_id = self.field(batch, name)
            if file_id:
                yield from _jsonl(self.call("GET", self.path("file_content_path", id=str(file_id))))


class AnthropicBatches(Family):
    """Message Batches: ``POST /v1/messages/batches {"requests": [...]}``, results as JSONL."""

    def create(self, lines: list[str], model: str, marker: str, file_id: str | None) -> Any:
        raw = b'{"requests":[' + ",".join(lines).encode("utf-8") + b"]}"
        return self.call_json("POST", self.spec["create_path"], raw=raw, once=True)

    def find(self, marker: str, file_id: str | None, size: int, attempted_at: float | None,
             known: set[str]) -> Any:
        """Message Batches carry no metadata: the candidate is a batch of exactly ``size``
        requests created after the journalled attempt that no journal row claims. More than one
        such batch is ambiguous; the caller is told rather than guessing (or paying twice)."""
        if attempted_at is None:
            return None
        candidates = []
        for batch in self.listed():
            if not isinstance(batch, dict) or str(batch.get("id")) in known:
                continue
            counts = batch.get("request_counts") or {}
            if sum(_int(value) for value in counts.values()) != size:
                continue
            created = _rfc3339(batch.get("created_at"))
            if created is not None and created >= attempted_at - CLOCK_SKEW_S:
                candidates.append(batch)
        if len(candidates) > 1:
            from .provider_jobs import AmbiguousBatchError

            raise AmbiguousBatchError(
                f"a create call of {size} requests was cut off and {len(candidates)} batches of that size were "
                f"created since ({', '.join(str(b.get('id')) for b in candidates)}); check them at the provider "
                "and cancel the extra one before resuming")
        return candidates[0] if candidates else None

    def state(self, batch: Any) -> BatchState:
        counts = batch.get("request_counts") or {}
        total = sum(_int(value) for value in counts.values())
        processing = batch.get("processing_status")
        if processing == "canceling":
            status = "cancelling"
        elif processing == "ended":
            if batch.get("cancel_initiated_at"):
                status = "cancelled"
            elif _int(counts.get("expired")):
                status = "expired"
            else:
                status = "completed"
        else:
            status = "in_progress"
        failed = _int(counts.get("errored")) + _int(counts.get("canceled")) + _int(counts.get("expired"))
        return BatchState(status, total, _int(counts.get("succeeded")), failed)

    def results(self, batch: Any) -> Iterator[dict[str, Any]]:
        yield from _jsonl(self.call("GET", self.path("results_path", id=self.batch_id(batch))))


GEMINI_STATES = {"PENDING": "validating", "RUNNING": "in_progress", "SUCCEEDED": "completed",
                 "FAILED": "failed", "CANCELLED": "cancelled", "EXPIRED": "expired"}


class GeminiBatches(Family):
    """``models/{model}:batchGenerateContent`` with inlined requests; a batch is a long-running
    operation named ``batches/{id}`` whose metadata holds the batch and, once done, whose
    ``response`` holds the inlined responses."""

    ordered = True
    default_list_items = "operations"

    def create(self, lines: list[str], model: str, marker: str, file_id: str | None) -> Any:
        raw = (b'{"batch":{"display_name":' + json.dumps(marker).encode() + b',"input_config":{"requests":'
               b'{"requests":[' + ",".join(lines).encode("utf-8") + b"]}}}}")
        return self.call_json("POST", self.path("create_path", model=model.removeprefix("models/")),
                              raw=raw, once=True)

    def batch_id(self, batch: Any) -> str:
        return str(batch.get("name") or dig(batch, "metadata.name"))

    def find(self, marker: str, file_id: str | None, size: int, attempted_at: float | None,
             known: set[str]) -> Any:
        for batch in self.listed():
            if isinstance(batch, dict) and self.batch_id(batch) not in known and \
                    (self._batch(batch).get("displayName") == marker):
                return batch
        return None

    @staticmethod
    def _batch(operation: Any) -> dict[str, Any]:
        meta = operation.get("metadata") if isinstance(operation, dict) else None
        return meta if isinstance(meta, dict) else (operation if isinstance(operation, dict) else {})

    def state(self, batch: Any) -> BatchState:
        body = self._batch(batch)
        raw = str(body.get("state") or "").removeprefix("BATCH_STATE_").removeprefix("JOB_STATE_")
        status = GEMINI_STATES.get(raw, "in_progress")
        stats = body.get("batchStats") or {}
        error = batch.get("error") if isinstance(batch, dict) else None
        failure = error.get("message") if isinstance(error, dict) else None
        total = stats.get("requestCount")
        return BatchState(status, None if total is None else _int(total), _int(stats.get("successfulRequestCount")),
                          _int(stats.get("failedRequestCount")), failure)

    def results(self, batch: Any) -> Iterator[dict[str, Any]]:
        output = batch.get("response") or self._batch(batch).get("output") or {}
        inlined = dig(output, "inlinedResponses.inlinedResponses")
        if isinstance(inlined, list):
            yield from (item for item in inlined if isinstance(item, dict))
            return
        file_name = output.get("responsesFile")
        if file_name:
            data = self.call("GET", f"/download/v1beta/{quote(str(file_name), safe='/')}:download",
                             query={"alt": "media"})
            for line in _jsonl(data):  # file lines are {"key", "response" | "error"}
                yield {**line, "metadata": {"key": line.get("key")}} if "key" in line else line


FAMILIES: dict[str, type[Family]] = {"openai_files": OpenAIFiles, "anthropic_batches": AnthropicBatches,
                                     "gemini_batches": GeminiBatches}


def _rfc3339(value: Any) -> float | None:
    """Anthropic's ``created_at`` (RFC 3339) or a Unix time, as a Unix time."""
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
