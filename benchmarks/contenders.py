"""The clients under test, each behind the same four calls: ``call`` (one non-streamed chat
completion, returns its text), ``stream`` (reads one stream, returns the number of content
deltas handed to user code), ``close``, and ``setup`` with the run's base URL.

Every contender does what its documentation shows a user doing, against the same fake
provider; the floors do the least work that still gets the text out. A contender whose
library is missing is skipped by the runner (``available()``).
"""

from __future__ import annotations

import importlib.util
import json
import time
from typing import Any

MESSAGES = [{"role": "user", "content": "Say hello."}]
BODY = {"model": "gpt-4o", "messages": MESSAGES}
STREAM_BODY = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
HEADERS = {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}
API_KEY = "sk-bench-key"


class Contender:
    name = ""
    label = ""
    modules: tuple[str, ...] = ()
    scenarios: frozenset[str] = frozenset({"import", "percall", "stream", "concurrency", "retry"})
    import_statements: tuple[str, ...] = ()
    peer = False  # peers run only when installed, and in --smoke only when asked for

    @classmethod
    def available(cls) -> bool:
        return all(importlib.util.find_spec(module) is not None for module in cls.modules)

    def setup(self, root: str, *, max_retries: int = 0, pool: int = 64) -> None:
        raise NotImplementedError

    def call(self) -> str:
        raise NotImplementedError

    def stream(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass


class RawRequests(Contender):
    """The floor: a ``requests.Session`` with a pool as large as the workers, ``json.dumps``
    in, ``json.loads`` out; for streams, ``iter_lines`` and ``json.loads`` of each data line."""

    name = "requests"
    label = "raw requests (floor)"
    modules = ("requests",)
    import_statements = ("import requests",)

    def setup(self, root: str, *, max_retries: int = 0, pool: int = 64) -> None:
        import requests
        from requests.adapters import HTTPAdapter

        self.session = requests.Session()
        self.session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=pool))
        self.url = root + "/v1/chat/completions"
        self.max_retries = max_retries

    def call(self) -> str:
        for attempt in range(self.max_retries + 1):
            response = self.session.post(self.url, data=json.dumps(BODY), headers=HEADERS, timeout=60)
            if response.status_code == 429 and attempt < self.max_retries:
                time.sleep(float(response.headers.get("Retry-After") or 1))
                continue
            response.raise_for_status()
            return json.loads(response.content)["choices"][0]["message"]["content"]
        raise AssertionError("unreachable")

    def stream(self) -> int:
        count = 0
        with self.session.post(self.url, data=json.dumps(STREAM_BODY), headers=HEADERS, stream=True,
                               timeout=60) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith(b"data: "):
                    continue
                data = line[6:]
                if data == b"[DONE]":
                    break
                choices = json.loads(data)["choices"]
                if choices and choices[0]["delta"].get("content"):
                    count += 1
        return count

    def close(self) -> None:
        self.session.close()


class SseClientAlone(RawRequests):
    """sseclient-py (ai-lib-sync's SSE parser) reading the stream by itself: its README's
    recipe over ``requests``, with chunks as they arrive, and ``json.loads`` of each event."""

    name = "sseclient"
    label = "sseclient-py alone"
    modules = ("requests", "sseclient")
    scenarios = frozenset({"stream"})
    import_statements = ()

    def stream(self) -> int:
        from sseclient import SSEClient

        count = 0
        with self.session.post(self.url, data=json.dumps(STREAM_BODY), headers=HEADERS, stream=True,
                               timeout=60) as response:
            response.raise_for_status()
            for event in SSEClient(response.iter_content(chunk_size=None)).events():
                if event.data == "[DONE]":
                    break
                choices = json.loads(event.data)["choices"]
                if choices and choices[0]["delta"].get("content"):
                    count += 1
        return count


class AiLibSync(Contender):
    name = "ai-lib-sync"
    label = "ai-lib-sync"
    modules = ("ai_lib_sync",)
    import_statements = ("import ai_lib_sync", "from ai_lib_sync import AiClient")

    def setup(self, root: str, *, max_retries: int = 0, pool: int = 64) -> None:
        from ai_lib_sync import AiClient

        self.client = AiClient("openai/gpt-4o", base_url=root + "/v1", api_key=API_KEY,
                               max_retries=max_retries, pool_maxsize=pool)

    def call(self) -> str:
        return self.client.chat().user("Say hello.").execute().content

    def stream(self) -> int:
        count = 0
        for event in self.client.chat().user("Say hello.").stream():
            if event.kind == "content_delta" and event.text:
                count += 1
        return count

    def close(self) -> None:
        self.client.close()


class AiLibSyncBatch(AiLibSync):
    """The same client driven by its ``BatchExecutor`` (``client.batch``) instead of a bare
    thread pool: what the executor's window, limiter and bookkeeping cost."""

    name = "ai-lib-sync-batch"
    label = "ai-lib-sync BatchExecutor"
    modules = ("ai_lib_sync.batch",)
    scenarios = frozenset({"concurrency"})
    import_statements = ()

    @classmethod
    def available(cls) -> bool:
        try:
            return super().available()
        except ModuleNotFoundError:
            return False

    def run_many(self, calls: int, workers: int) -> list[str]:
        results = self.client.batch(["Say hello."] * calls, max_workers=workers)
        return [getattr(result, "content", repr(result)) for result in results]


class OpenAISdk(Contender):
    name = "openai"
    label = "openai SDK"
    modules = ("openai",)
    import_statements = ("import openai",)
    peer = True

    def setup(self, root: str, *, max_retries: int = 0, pool: int = 64) -> None:
        from openai import OpenAI

        self.client = OpenAI(base_url=root + "/v1", api_key=API_KEY, max_retries=max_retries)

    def call(self) -> str:
        return self.client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices[0].message.content

    def stream(self) -> int:
        count = 0
        for chunk in self.client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                count += 1
        return count

    def close(self) -> None:
        self.client.close()


class AnthropicSdk(Contender):
    """Speaks the Anthropic Messages wire format to the same server (its own floor would
    differ by a few bytes of JSON, not by anything measurable)."""

    name = "anthropic"
    label = "anthropic SDK"
    modules = ("anthropic",)
    import_statements = ("import anthropic",)
    peer = True

    def setup(self, root: str, *, max_retries: int = 0, pool: int = 64) -> None:
        from anthropic import Anthropic

        self.client = Anthropic(base_url=root, api_key=API_KEY, max_retries=max_retries)

    def call(self) -> str:
        message = self.client.messages.create(model="claude-sonnet-4-5", max_tokens=256, messages=MESSAGES)
        return message.content[0].text

    def stream(self) -> int:
        count = 0
        for event in self.client.messages.create(model="claude-sonnet-4-5", max_tokens=256, messages=MESSAGES,
                                                 stream=True):
            if event.type == "content_block_delta" and event.delta.text:
                count += 1
        return count

    def close(self) -> None:
        self.client.close()


class LiteLLM(Contender):
    name = "litellm"
    label = "LiteLLM"
    modules = ("litellm",)
    import_statements = ("import litellm",)
    peer = True

    def setup(self, root: str, *, max_retries: int = 0, pool: int = 64) -> None:
        import litellm

        litellm.telemetry = False
        self.litellm = litellm
        self.options: dict[str, Any] = {"model": "openai/gpt-4o", "api_base": root + "/v1", "api_key": API_KEY,
                                        "max_retries": max_retries}

    def call(self) -> str:
        return self.litellm.completion(messages=MESSAGES, **self.options).choices[0].message.content

    def stream(self) -> int:
        count = 0
        for chunk in self.litellm.completion(messages=MESSAGES, stream=True, **self.options):
            if chunk.choices and chunk.choices[0].delta.content:
                count += 1
        return count


CONTENDERS: dict[str, type[Contender]] = {
    cls.name: cls for cls in (RawRequests, SseClientAlone, AiLibSync, AiLibSyncBatch, OpenAISdk, AnthropicSdk,
                               LiteLLM)
}
FLOOR = "requests"
STREAM_REFERENCE = "sseclient"
SUBJECT = "ai-lib-sync"
BATCH = "ai-lib-sync-batch"
