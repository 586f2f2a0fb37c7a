"""Each wire dialect as the fault server speaks it: the wire fakes (ai_lib_sync.fakes) read every
request strictly in the provider's documented shape and write its documented answer, so the
faults distort real SSE, NDJSON and AWS event-stream bodies, not a generic stand-in."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ai_lib_sync import AiClient
from ai_lib_sync.fakes import FAMILIES, Answer, FakeProvider, fake_class
from ai_lib_sync.testing import RecordedRequest, Reply

from .server import Wire

PIECES = ["Hello", " world", " again", "."]
TEXT = "".join(PIECES)
FAKES: dict[str, type[FakeProvider]] = {family: fake_class(family) for family in FAMILIES}
KEY = "fault-test-key-0123456789"
# family -> (model, base URL path after the host, key)
SETUPS = {"openai": ("gpt-4o", "/v1", KEY), "openai_responses": ("gpt-4.1", "/v1", KEY), "anthropic": ("claude-3-5-sonnet-20241022", "", KEY),
          "gemini": ("gemini-2.5-flash", "", KEY), "cohere": ("command-r-plus-08-2024", "", KEY),
          "ollama": ("llama3.2", "", None),
          "bedrock": ("anthropic.claude-3-5-sonnet-20241022-v2:0", "", "ABSKfaultTestBedrockKey0123456789")}
# family -> (provider, api) where the family is one API of a provider's manifest
APIS = {"openai_responses": ("openai", "responses")}
FRAMING = {"openai": "sse", "openai_responses": "sse", "anthropic": "sse", "gemini": "sse", "cohere": "sse", "ollama": "ndjson",
           "bedrock": "aws_eventstream"}
# A mid-stream error frame where the fake has none documented: Cohere's flat error shape.
COHERE_STREAM_ERROR = {"message": "You are past the per minute request limit, please wait and try again later."}


def wire_of(reply: Reply) -> Wire:
    headers = {k.lower(): v for k, v in reply.headers.items()}
    if reply.chunks is not None:
        body = b"".join(c.encode() if isinstance(c, str) else c for c in reply.chunks)
    elif isinstance(reply.body, (dict, list)):
        body = json.dumps(reply.body).encode()
        headers.setdefault("content-type", "application/json")
    else:
        body = reply.body.encode() if isinstance(reply.body, str) else (reply.body or b"")
    return Wire(reply.status, headers, body)


@dataclass
class Dialect:
    """One provider family: builds its client and answers like it does."""

    provider: str
    answer: Answer

    def __post_init__(self) -> None:
        model, self.prefix, key = SETUPS[self.provider]
        self.fake = FAKES[self.provider](model=model, key=key, prefix=self.prefix, strict=True)
        self.framing = FRAMING[self.provider]

    def __call__(self, request: RecordedRequest) -> Wire:
        """The provider's normal reply (streamed or not, as the request asked); a request
        in the wrong shape is recorded in ``fake.problems``."""
        self.fake.answer(self.answer)
        return wire_of(self.fake(request))

    def whole_reply(self, request: RecordedRequest) -> Wire:
        """The non-streamed answer, whatever was asked."""
        seen = self.fake.read(request)
        return wire_of(self.fake.reply(self.answer, seen))

    def stream_failure(self, request: RecordedRequest) -> Wire:
        """A stream that sends PIECES[:2], then the provider's documented error frame."""
        if self.provider == "cohere":
            seen = self.fake.read(request)
            wire = wire_of(self.fake.stream_reply(Answer(PIECES[:2]), seen))
            end = wire.body.index(b"event: message-end")
            error = b"event: error\ndata: " + json.dumps(COHERE_STREAM_ERROR).encode() + b"\n\n"
            wire.body = wire.body[:end] + error
            return wire
        self.fake.answer(Answer(PIECES[:2], fail=self.fake.stream_failure))
        return wire_of(self.fake(request))

    @property
    def stream_failure_kind(self) -> str:
        return "rate_limited" if self.provider == "cohere" else str(self.fake.stream_failure)

    def error_case(self, kind: str) -> Any:
        return self.fake.error_case(kind)

    def client(self, base_url: str, **options: Any) -> AiClient:
        fake = self.fake
        provider, api = APIS.get(self.provider, (self.provider, None))
        client = AiClient(f"{provider}/{fake.model}", base_url=base_url + self.prefix, api_key=fake.key,
                          api=api, **options)
        client.transport.retry.initial_backoff = 0.01  # tests wait milliseconds, not seconds
        client.transport.retry.max_backoff = 0.02
        return client
