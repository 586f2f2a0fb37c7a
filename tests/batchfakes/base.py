"""What the batch fakes share: the server, the violation log, the answer they give."""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any

from ai_lib_sync.testing import LoopbackServer, RecordedRequest, Reply


class Violation(Exception):
    """The request is not what the provider's documentation says it must be."""


class BatchFake:
    def __init__(self, *, key: str = "test-key", polls: int = 1, fail: tuple[str, ...] = (),
                 expire: tuple[str, ...] = (), outcome: str = "completed", lose_creates: int = 0,
                 max_requests: int | None = None) -> None:
        self.key = key
        self.polls = polls
        self.fail = set(fail)
        self.expire = set(expire)
        self.outcome = outcome
        self.lose_creates = lose_creates
        self.max_requests = max_requests
        self.batches: dict[str, dict[str, Any]] = {}  # id -> {"obj", "lines", "polls", ...}
        self.order: list[str] = []  # batch ids, oldest first
        self.violations: list[str] = []
        self.creates = 0  # create calls received (answered or lost)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.server = LoopbackServer(self._handle)

    # --- plumbing --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.server.requests

    def close(self) -> None:
        self.server.close()

    def __enter__(self) -> BatchFake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def next_id(self) -> int:
        return next(self._ids)

    def _handle(self, request: RecordedRequest) -> Reply:
        with self._lock:
            try:
                return self.route(request)
            except Violation as exc:
                self.violations.append(f"{request.method} {request.path}: {exc}")
                return self.error_reply(400, str(exc))

    def route(self, request: RecordedRequest) -> Reply:  # pragma: no cover - per family
        raise NotImplementedError

    def error_reply(self, status: int, message: str) -> Reply:
        return Reply(status, {"error": {"message": message, "type": "invalid_request_error"}})

    def lost(self) -> bool:
        """Whether this create call's answer is to be lost (the batch exists all the same)."""
        self.creates += 1
        if self.lose_creates > 0:
            self.lose_creates -= 1
            return True
        return False

    @property
    def created(self) -> int:
        """Batches that exist at the provider (what the caller pays for)."""
        return len(self.batches)

    # --- what the model answers -----------------------------------------------------------------

    @staticmethod
    def answer_for(text: str) -> tuple[str, int, int]:
        """(content, prompt tokens, completion tokens) for a prompt: an echo."""
        return f"echo: {text}", max(len(text.split()), 1), 3


def require(condition: Any, message: str) -> None:
    if not condition:
        raise Violation(message)


def json_body(request: RecordedRequest) -> Any:
    try:
        return json.loads(request.body)
    except ValueError:
        raise Violation("the body is not JSON") from None


def jsonl(data: bytes) -> list[dict[str, Any]]:
    lines = []
    for number, raw in enumerate(data.decode("utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            raise Violation(f"line {number} of the JSONL file is not JSON") from None
        require(isinstance(line, dict), f"line {number} is not an object")
        lines.append(line)
    return lines


def multipart(request: RecordedRequest) -> dict[str, tuple[str | None, bytes]]:
    """name -> (filename, content) of a multipart/form-data body."""
    content_type = request.header("content-type") or ""
    require(content_type.startswith("multipart/form-data; boundary="), f"Content-Type {content_type!r}")
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    parts: dict[str, tuple[str | None, bytes]] = {}
    require(request.body.rstrip().endswith(b"--" + boundary + b"--"), "the multipart body is not closed")
    for chunk in request.body.split(b"--" + boundary)[1:-1]:
        require(chunk.startswith(b"\r\n") and chunk.endswith(b"\r\n"), "a multipart part is not CRLF-framed")
        head, _, content = chunk[2:-2].partition(b"\r\n\r\n")
        disposition = next((line for line in head.decode().split("\r\n")
                            if line.lower().startswith("content-disposition:")), "")
        fields = dict(part.strip().split("=", 1) for part in disposition.split(";")[1:] if "=" in part)
        name = fields.get("name", "").strip('"')
        filename = fields.get("filename")
        parts[name] = (filename.strip('"') if filename else None, content)
    return parts


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""
