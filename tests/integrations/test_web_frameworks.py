"""The Flask and Django integrations without a server: response shape, missing frameworks,
and the Flask example on its default offline provider (the real servers are in
test_real_servers.py)."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import pytest

from ai_lib_sync import ConfigurationError
from ai_lib_sync.testing import Reply

from .servers import EXAMPLES
from .test_sse import STORY, parse

flask = pytest.importorskip("flask", reason="Flask is not installed (pip install 'ai-lib-sync[flask]')")


def test_flask_stream_response_headers_body_and_options(server, make_client):
    from ai_lib_sync.integrations.flask import stream_response

    client = make_client("openai/gpt-4o", prefix="/v1")
    app = flask.Flask("t")

    @app.get("/s")
    def s():
        assert flask.request.args["q"] == "story"
        return stream_response(client.chat().user(flask.request.args["q"]).stream(), heartbeat=None,
                               status=201, headers={"X-Extra": "1"})

    server.enqueue(Reply.sse(STORY))
    response = app.test_client().get("/s?q=story")
    assert response.status_code == 201 and response.is_streamed
    assert response.headers["Content-Type"] == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no" and response.headers["X-Extra"] == "1"
    messages = parse(response.get_data())
    assert [event for event, _ in messages] == ["delta", "delta", "done"]
    assert server.last.json["messages"] == [{"role": "user", "content": "story"}]


@pytest.mark.parametrize("framework, modules", [
    ("flask", ("flask",)), ("django", ("django", "django.http")),
])
def test_a_missing_framework_is_a_configuration_error(monkeypatch, framework, modules):
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)  # what `import` sees when it is not installed
    monkeypatch.delitem(sys.modules, f"ai_lib_sync.integrations.{framework}", raising=False)
    with pytest.raises(ConfigurationError, match=rf"pip install 'ai-lib-sync\[{framework}\]'"):
        importlib.import_module(f"ai_lib_sync.integrations.{framework}")
    monkeypatch.delitem(sys.modules, f"ai_lib_sync.integrations.{framework}", raising=False)


@pytest.fixture
def flask_example(monkeypatch):
    """examples/flask_chat/app.py with no CHAT_MODEL and no key: the offline provider."""
    monkeypatch.syspath_prepend(str(EXAMPLES / "flask_chat"))
    spec = importlib.util.spec_from_file_location("flask_chat_example", EXAMPLES / "flask_chat" / "app.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # Flask finds its templates through it
    spec.loader.exec_module(module)
    yield module
    module.client.close()


def test_flask_example_answers_offline(flask_example):
    assert flask_example.client.model_id == "mock/echo"
    web = flask_example.app.test_client()
    response = web.get("/chat?q=hello%20there")
    assert response.status_code == 200
    assert response.json["content"] == "Echo: hello there" and response.json["finish_reason"] == "stop"
    assert response.json["usage"]["completion_tokens"] == 3 and response.json["stats"]["provider"] == "mock"
    messages = parse(web.get("/chat/stream?q=hi").get_data())
    assert messages[:2] == [("delta", {"text": "Echo:"}), ("delta", {"text": " hi"})]
    assert messages[-1][0] == "done"
    assert web.get("/chat?q=%20").status_code == 400
    page = web.get("/").get_data(as_text=True)
    assert 'const streamUrl = "/chat/stream";' in page and "new EventSource" in page
