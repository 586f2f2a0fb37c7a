"""README's example: a Django view tested end to end with the ``ai_fake`` fixture.

The view's client is built at import time, as in a real ``views.py``, with a key from the app's
settings; the fixture redirects it to the loopback fake without touching the view, and the
Django test client reads the server-sent events the view streams.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"], SECRET_KEY="test-only")
    django.setup()

from django.test import Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402

from ai_lib_sync import AiClient  # noqa: E402
from ai_lib_sync.integrations.django import stream_response  # noqa: E402

PLUGIN = "ai_lib_sync.integrations.pytest_plugin"
if not any(entry.value == PLUGIN for entry in entry_points(group="pytest11")):
    pytest_plugins = [PLUGIN]  # a checkout not reinstalled since the entry point came

# --- the app: what would be views.py and urls.py --------------------------------------------

client = AiClient("anthropic/claude-3-5-sonnet-20241022", api_key="sk-ant-from-settings-0123456789")


def chat(request):
    return stream_response(client.chat().user(request.GET["q"]).stream(), heartbeat=None)


urlpatterns = [path("chat", chat)]


# --- the test (the README snippet) -----------------------------------------------------------


@override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"])
def test_chat_view_streams_the_answer(ai_fake):
    ai_fake.reply("Hello from Claude")
    response = Client().get("/chat", {"q": "Hi"})
    body = b"".join(response.streaming_content).decode()
    assert response["Content-Type"] == "text/event-stream"
    assert 'data: {"text":" Claude"}' in body and "event: done" in body
    assert ai_fake.last.path == "/v1/messages" and ai_fake.last.prompt == "Hi"


@override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"])
def test_chat_view_reports_a_rate_limit_as_an_error_event(ai_fake):
    ai_fake.error(429, retry_after=5)
    body = b"".join(Client().get("/chat", {"q": "Hi"}).streaming_content).decode()
    assert "event: error" in body and '"kind":"rate_limited"' in body
    assert len(ai_fake.requests) == 3 and ai_fake.sleeps == [5, 5]  # retried, never slept
