"""Checkpoints for long batch jobs: one JSON line per finished item, appended as it finishes.

A line is ``{"index": 12, "key": "<16 hex>", "ok": true, "response": {...}, "stats": {...}}``
or ``{"index": 12, "key": "...", "ok": false, "error": {...}}``. ``key`` hashes the request
(model id plus the unified request), so a rerun with ``resume=True`` skips item ``i`` only when
the request at position ``i`` is the very one that succeeded before: reordered or edited input
runs again instead of being paired with someone else's answer. Failed items run again too.

The file is read once, at start, into two compact arrays (the line offset and the key of each
index, 16 bytes an item), so resuming a job of millions of items stays small; a restored
result is read back from its line only when the executor hands it out. A torn last line (the
process was killed mid-write) is ignored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
from array import array
from typing import Any

from .errors import AiLibError, make_error
from .types import CallStats, ChatRequest, ChatResponse, ToolCall, Usage

logger = logging.getLogger("ai_lib_sync")

_RESPONSE_FIELDS = {f.name for f in dataclasses.fields(ChatResponse)}
_STATS_FIELDS = {f.name for f in dataclasses.fields(CallStats)}
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


def response_to_dict(response: ChatResponse) -> dict[str, Any]:
    return dataclasses.asdict(response)


def response_from_dict(data: dict[str, Any]) -> ChatResponse:
    values = {key: value for key, value in data.items() if key in _RESPONSE_FIELDS}
    values["tool_calls"] = [ToolCall(**call) for call in values.get("tool_calls") or ()]
    values["usage"] = Usage(**(values.get("usage") or {}))
    return ChatResponse(**values)


def stats_from_dict(data: dict[str, Any] | None) -> CallStats | None:
    if not data:
        return None
    return CallStats(**{key: value for key, value in data.items() if key in _STATS_FIELDS})


def error_to_dict(error: AiLibError) -> dict[str, Any]:
    return {"kind": error.kind, "message": error.message,
            **{name: getattr(error, name, None) for name in _ERROR_FIELDS}}


def error_from_dict(data: dict[str, Any]) -> AiLibError:
    return make_error(data.get("kind", "server_error"), data.get("message", ""),
                      **{name: data.get(name) for name in _ERROR_FIELDS})


class Checkpoint:
    """An append-only JSONL record of finished items. Thread-safe for ``record``."""

    def __init__(self, path: str | os.PathLike[str], resume: bool = False) -> None:
        self.path = os.fspath(path)
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
                    entry = json.loads(line)
                    index, key, ok = int(entry["index"]), int(entry["key"], 16), bool(entry["ok"])
                except (ValueError, KeyError, TypeError):
                    logger.warning("checkpoint %s: skipping an unreadable line at byte %d", self.path, start)
                    continue
                if not ok or index < 0:
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

    def restore(self, index: int, key: str) -> tuple[ChatResponse, CallStats | None] | None:
        """The recorded success of item ``index`` if its key matches, else None."""
        if index >= len(self._offsets) or self._offsets[index] < 0 or self._keys[index] != int(key, 16):
            return None
        if self._reader is None:
            self._reader = open(self.path, "rb")  # closed in close()
        self._reader.seek(self._offsets[index])
        entry = json.loads(self._reader.readline())
        return response_from_dict(entry["response"]), stats_from_dict(entry.get("stats"))

    def record(self, index: int, key: str, result: ChatResponse | AiLibError,
               stats: CallStats | None = None) -> None:
        entry: dict[str, Any] = {"index": index, "key": key}
        if isinstance(result, ChatResponse):
            entry["ok"] = True
            entry["response"] = response_to_dict(result)
            entry["stats"] = dataclasses.asdict(stats) if stats is not None else None
        else:
            entry["ok"] = False
            entry["error"] = error_to_dict(result)
        line = json.dumps(entry, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass") + b"\n"
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
