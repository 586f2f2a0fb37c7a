"""pytest plugin: the ``ai_fake`` fixture, a loopback stand-in for every LLM provider family.

Installed with the package (entry point ``pytest11: ai_lib_sync``); nothing to configure. The
plugin imports nothing at load time and changes nothing until a test asks for ``ai_fake``::

    def test_chat_view(ai_fake, client):            # client: Django's test client
        ai_fake.reply("Hello there")
        response = client.get("/chat/?q=Hi")
        assert b"Hello there" in b"".join(response.streaming_content)
        assert ai_fake.last.prompt == "Hi"

For the duration of the test:

- every ``AiClient`` in the process sends its requests to the fake, keeping the path: clients
  built at import time (a module-level client in ``views.py``) as well as new ones. The fake
  answers in the wire format of the family whose endpoint was called (OpenAI-compatible,
  Anthropic, Gemini, Cohere, Ollama, Bedrock), streamed when the request streams;
- each manifest's key variables hold a fake key and its base-URL variable the fake's URL
  (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``ANTHROPIC_API_KEY``, ...), so clients built
  during the test need no real key; any other key (a real one a module-level client was built
  with) is replaced by ``ai_lib_sync.testing.REDACTED_KEY`` before it leaves the client;
- retry back-off and ``Retry-After`` are recorded in ``ai_fake.sleeps``, not slept
  (``ai_fake.real_sleep = True`` to sleep).

Script answers with ``reply``, ``tool_call``, ``error`` and ``raw``; an error answers every
retry of the call that meets it (``times=1`` to let a retry through); inspect ``ai_fake.requests``
/ ``ai_fake.last`` (path, headers, ``json``, ``family``, ``call``, ``seen``). Reference:
``ai_lib_sync.fakes.scripted``. After a passing test the fixture fails it if a request was
rejected or unscripted, or a scripted answer was never used (``ai_fake.strict = False`` to allow).
Everything is undone afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def ai_fake(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A started ``ai_lib_sync.testing.AiFake``; see this module's docstring."""
    from ai_lib_sync.fakes.scripted import AiFake

    failed_before = request.session.testsfailed
    fake = AiFake().start()
    try:
        yield fake
    finally:
        fake.close()
    if fake.strict and request.session.testsfailed == failed_before:
        fake.verify()
