"""Checkpoints for long batch jobs: one JSON line per finished item, appended as it finishes.

A row holds what resuming needs and what a reader of the file wants, and nothing else::

    {"index": 12, "key": "<16 hex>", "ok": true, "custom_id": "doc-12", "content": "...",
     "finish_reason": "stop", "model": "gpt-4o-mini", "provider": "openai",
     "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
     "cost_usd": 0.0000045, "latency_ms": 412.0, "retries": 0}
    {"index": 13, "key": "...", "ok": false, "error": {"kind": "rate_limited", "message": "...",
     "status_code": 429}}

``tool_calls``, ``thinking``, ``refusal``, ``reasoning_blocks`` and the response ``id`` appear
only when present; ``custom_id`` only when the request carried one. The provider's raw JSON
is left out unless ``raw=True`` (it tripled the size of a row and resuming never reads it).

``key`` hashes the request (model id plus the unified request), so a rerun with
``resume=True`` skips item ``i`` only when the request at position ``i`` is the very one that
succeeded before: reordered or edited input runs again instead of being paired with someone
else's answer. Failed items run again too.

The file is read once, at start, into two compact arrays (the line offset and the key of each
index, 16 bytes an item), so resuming a job of millions of items stays small; a restored
result is read back from its line only when the executor hands it out. A torn last line (the
process was killed mid-write) is ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from array import array
from typing import Any

from ..errors import AiLibError, make_error
from ..types import CallStats, ChatRequest, ChatResponse, ToolCall, Usage

# ``{"index": 3, "key": "ab12...", "ok": true`` (after an optional ``"line": N`` the CLI adds):
# matched instead of a json.loads per line, so a million-line checkpoint loads in seconds.
_ROW_HEAD = re.compile(rb'\{(?:"line": \d+, )?"index": (\d+), "key": "([0-9a-f]+)", "ok": (true|false)')
logger = logging.getLogger("ai_lib_sync")

_OPTIONAL = ("tool_calls", "thinking", "refusal", "reasoning_blocks", "id")
_ERROR_FIELDS = ("status_code", "provider", "model", "retry_after", "request_id", "code")


def request_key(model_id: str, request: ChatRequest | None, fallback: Any = None) -> str:
    """16 hex digits of SHA-256 over the model id and the request (or ``repr(fallback)`` for an
    item that could not be turned into a request)."""
    if request is not None:
        payload = json.dumps({"model": model_id, "request": request.as_dict()}, sort_keys=True,
                             default=str, ensure_ascii=False)
    else:
        payload = repr(fallback)
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def response_to_dict(response: ChatResponse, raw: bool = False) -> dict[str, Any]:
    """The fields of a response a reader or a resume needs; empty optional ones left out."""
    usage = {name: value for name, value in vars(response.usage).items() if value is not None}
    row: dict[str, Any] = {"content": response.content, "finish_reason": response.finish_reason,
                           "model": response.model, "provider": response.provider, "usage": usage}
    for name in _OPTIONAL:
        value = getattr(response, name, None)
        if value:
            row[name] = [vars(call) for call in value] if name == "tool_calls" else value
    if raw and response.raw is not None:
        row["raw"] = response.raw
    return row


def response_from_dict(data: dict[str, Any]) -> ChatResponse:
    response = ChatResponse(
        content=data.get("content") or "", finish_reason=data.get("finish_reason") or "stop",
        model=data.get("model") or "", provider=data.get("provider") or "",
        usage=Usage(**(data.get("usage") or {})), raw=data.get("raw"),
        tool_calls=[ToolCall(**call) for call in data.get("tool_calls") or ()])
    for name in ("thinking", "refusal", "reasoning_blocks", "id"):
        if data.get(name) is not None:
            setattr(response, name, data[name])
    return response


def stats_to_dict(stats: CallStats | None) -> dict[str, Any]:
    if stats is None:
        return {}
    row: dict[str, Any] = {"cost_usd": stats.cost_usd, "latency_ms": round(stats.latency_ms, 1),
                           "retries": stats.retries}
    if stats.request_id:
        row["request_id"] = stats.request_id
    if stats.currency not in (None, "USD"):  # a CNY-priced model: cost_usd is None
        row["cost"], row["currency"] = stats.cost, stats.currency
    return row


def stats_from_row(row: dict[str, Any], response: ChatResponse) -> CallStats:
    usage = response.usage
    return CallStats(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens,
                     latency_ms=row.get("latency_ms") or 0.0, retries=row.get("retries") or 0,
                     provider=response.provider, model=response.model, cost_usd=row.get("cost_usd"),
                     request_id=row.get("request_id"), cost=row.get("cost"), currency=row.get("currency"))


def error_to_dict(error: AiLibError) -> dict[str, Any]:
    values = {name: getattr(error, name, None) for name in _ERROR_FIELDS}
    return {"kind": error.kind, "message": error.message,
            **{name: value for name, value in values.items() if value is not None}}


def error_from_dict(data: dict[str, Any]) -> AiLibError:
    return make_error(data.get("kind", "server_error"), data.get("message", ""),
                      **{name: data.get(name) for name in _ERROR_FIELDS})


def make_row(index: int, key: str | None, result: ChatResponse | AiLibError,
             stats: CallStats | None = None, custom_id: Any = None, raw: bool = False) -> dict[str, Any]:
    """One checkpoint line (as a dict) for item ``index``."""
    row: dict[str, Any] = {"index": index, "key": key, "ok": isinstance(result, ChatResponse)}
    if custom_id is not None:
        row["custom_id"] = custom_id
    if isinstance(result, ChatResponse):
        row.update(response_to_dict(result, raw))
        row.update(stats_to_dict(stats))
    else:
        row["error"] = error_to_dict(result)
    return row


def encode_row(row: dict[str, Any]) -> bytes:
    return json.dumps(row, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass") + b"\n"


class Checkpoint:
    """An append-only JSONL record of finished items. Thread-safe for ``record``.
    ``raw=True`` also keeps each response's raw provider JSON."""

    def __init__(self, path: str | os.PathLike[str], resume: bool = False, raw: bool = False) -> None:
        self.path = os.fspath(path)
        self.raw = raw
        self._offsets = array("q")  # per index: byte offset of its success line, or -1
        self._keys = array("Q")
        self._lock = threading.Lock()
        self._reader: Any = None
        self.resumable = 0
        if resume and os.path.exists(self.path):
            self._load()
        elif os.path.exists(self.path) and os.path.getsize(self.path):
            logger.info("checkpoint %s exists; starting over (pass resume=True to continue it)", self.path)
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        self._writer = open(self.path, "ab" if resume else "wb")  # closed in close()

    def _load(self) -> None:
        with open(self.path, "rb") as handle:
            offset = 0
            for line in handle:
                start, offset = offset, offset + len(line)
                if not line.endswith(b"\n"):
                    # A torn last line (killed mid-write): drop it so new lines start clean.
                    with open(self.path, "r+b") as truncate:
                        truncate.truncate(start)
                    break
                try:
                    head = _ROW_HEAD.match(line)  # the fields resume needs lead every row we write
                    if head is not None:
                        if head.group(3) != b"true":
                            continue  # failed items run again
                        index, key = int(head.group(1)), int(head.group(2), 16)
                    else:  # older or hand-edited rows: parse the whole line
                        entry = json.loads(line)
                        if not entry.get("ok"):
                            continue
                        index, key = int(entry["index"]), int(entry["key"], 16)
                except (ValueError, KeyError, TypeError, AttributeError):
                    logger.warning("checkpoint %s: skipping an unreadable line at byte %d", self.path, start)
                    continue
                if index < 0:
                    continue
                self._grow(index)
                if self._offsets[index] < 0:
                    self.resumable += 1
                self._offsets[index] = start
                self._keys[index] = key

    def _grow(self, index: int) -> None:
        missing = index + 1 - len(self._offsets)
        if missing > 0:
            self._offsets.extend([-1] * missing)
            self._keys.extend([0] * missing)

    def restore(self, index: int, key: str) -> tuple[ChatResponse, CallStats] | None:
        """The recorded success of item ``index`` if its key matches, else None."""
        if index >= len(self._offsets) or self._offsets[index] < 0 or self._keys[index] != int(key, 16):
            return None
        with self._lock:
            if self._reader is None:
                self._reader = open(self.path, "rb")  # closed in close()
            self._reader.seek(self._offsets[index])
            row = json.loads(self._reader.readline())
        if "response" in row:  # a row written before rows were flattened
            row = {**row, **row["response"], **(row.get("stats") or {})}
        response = response_from_dict(row)
        if row.get("custom_id") is not None:
            response.custom_id = row["custom_id"]  # type: ignore[attr-defined]
        return response, stats_from_row(row, response)

    def record(self, index: int, key: str | None, result: ChatResponse | AiLibError,
               stats: CallStats | None = None, custom_id: Any = None) -> None:
        line = encode_row(make_row(index, key, result, stats, custom_id, self.raw))
        with self._lock:
            if self._writer.closed:
                return
            self._writer.write(line)
            self._writer.flush()

    def close(self) -> None:
        with self._lock:
            self._writer.close()
            if self._reader is not None:
                self._reader.close()
                self._reader = None
