"""A loopback OpenAI Chat Completions endpoint that streams its answer slowly and notices when
its client hangs up, so tests can tell "streamed incrementally" from "buffered" and "closed
the upstream" from "let it run to the end".

Wire format: https://platform.openai.com/docs/api-reference/chat-streaming (chunk objects,
``stream_options.include_usage``, the ``data: [DONE]`` terminator).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ai_lib_sync.testing import LoopbackServer, RecordedRequest, Reply

API_KEY = "sk-test-slowprovider-0123456789"
MODEL = "gpt-4o-mini"


def answer_words(question: str, words: int) -> list[str]:
    """The tokens the fake streams for ``question``: it names the question, then counts."""
    return [f"About {question}:"] + [f" t{i}" for i in range(1, words)]


def answer_text(question: str, words: int) -> str:
    return "".join(answer_words(question, words))


@dataclass
class Upstream:
    """One streamed answer, as the provider saw it go out."""

    request: RecordedRequest
    question: str
    words: int
    produced: list[float] = field(default_factory=list)  # monotonic time each token was sent
    finished: bool = False
    closed_at: float | None = None  # when a write failed because the client had gone
    ended: threading.Event = field(default_factory=threading.Event)


class SlowProvider:
    """``words`` tokens, one every ``interval`` seconds, for each streamed request."""

    def __init__(self, words: int = 20, interval: float = 0.05) -> None:
        self.words = words
        self.interval = interval
        self.streams: list[Upstream] = []
        self._lock = threading.Lock()
        self.server = LoopbackServer(self._handle)

    @property
    def base_url(self) -> str:
        return self.server.base_url + "/v1"

    def close(self) -> None:
        self.server.close()

    def streams_for(self, question: str) -> list[Upstream]:
        with self._lock:
            return [stream for stream in self.streams if stream.question == question]

    def stream_for(self, question: str, timeout: float = 5.0) -> Upstream:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.streams_for(question)
            if found:
                return found[-1]
            time.sleep(0.01)
        raise AssertionError(f"the provider never received a stream request for {question!r}")

    def _handle(self, request: RecordedRequest) -> Reply:
        if request.path != "/v1/chat/completions" or request.header("authorization") != f"Bearer {API_KEY}":
            return Reply(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                         "param": None, "code": "invalid_api_key"}})
        payload = request.json
        question = payload["messages"][-1]["content"]
        words = answer_words(question, self.words)
        usage = {"prompt_tokens": 7, "completion_tokens": len(words), "total_tokens": 7 + len(words)}
        if not payload.get("stream"):
            return Reply(200, {"id": "chatcmpl-slow", "object": "chat.completion", "created": 1,
                               "model": payload["model"], "usage": usage, "choices": [{
                                   "index": 0, "finish_reason": "stop",
                                   "message": {"role": "assistant", "content": "".join(words)}}]})
        upstream = Upstream(request, question, len(words))
        with self._lock:
            self.streams.append(upstream)
        include_usage = (payload.get("stream_options") or {}).get("include_usage")
        return Reply(200, headers={"Content-Type": "text/event-stream"},
                     chunks=self._frames(upstream, payload["model"], words, usage if include_usage else None))

    def _frames(self, upstream: Upstream, model: str, words: list[str],
                usage: dict[str, int] | None) -> Iterator[str]:
        base = {"id": "chatcmpl-slow", "object": "chat.completion.chunk", "created": 1, "model": model}

        def frame(choices: list[dict[str, Any]], **extra: Any) -> str:
            return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n"

        try:
            yield frame([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            for position, word in enumerate(words):
                if position:
                    time.sleep(self.interval)
                upstream.produced.append(time.monotonic())
                yield frame([{"index": 0, "delta": {"content": word}, "finish_reason": None}])
            yield frame([{"index": 0, "delta": {}, "finish_reason": "stop"}])
            if usage is not None:
                yield frame([], usage=usage)
            yield "data: [DONE]\n\n"
            upstream.finished = True
        finally:
            # LoopbackServer stops pulling frames when a write fails (the client went away);
            # the generator is then closed, and this runs, as soon as the reply is dropped.
            if not upstream.finished:
                upstream.closed_at = time.monotonic()
            upstream.ended.set()
