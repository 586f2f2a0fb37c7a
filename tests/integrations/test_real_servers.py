"""Both examples behind real WSGI servers on loopback, read by a streaming HTTP client and by
a headless Chromium, with the model pointed at a slow loopback provider through the
environment (CHAT_MODEL, OPENAI_BASE_URL, OPENAI_API_KEY), as a deployment would be.

gunicorn runs gthread workers with and without ``--preload`` (the client is created at import,
so with ``--preload`` it is created in the master before the fork); waitress serves Flask.
"""

from __future__ import annotations

import functools
import itertools
import threading
from urllib.parse import quote

import pytest

from .servers import (
    SseReader,
    chromium_dom,
    get,
    get_json,
    gunicorn_argv,
    rendered_answer,
    serving,
    waitress_argv,
)
from .slow_provider import API_KEY, MODEL, SlowProvider, answer_text

WORDS, INTERVAL = 12, 0.05  # a 0.6 s answer: long enough to tell streaming from buffering
_questions = itertools.count(1)


@pytest.fixture(scope="module")
def provider():
    fake = SlowProvider(WORDS, INTERVAL)
    yield fake
    fake.close()


@pytest.fixture
def slow(provider):
    provider.words, provider.interval = WORDS, INTERVAL
    return provider


def provider_env(provider: SlowProvider) -> dict[str, str]:
    return {"CHAT_MODEL": f"openai/{MODEL}", "OPENAI_BASE_URL": provider.base_url, "OPENAI_API_KEY": API_KEY}


# (example, --preload). The browser runs on the first two: keep them first so that pytest
# reuses their servers instead of starting them again (it matches parameters by position).
GUNICORN = [("flask", False), ("django", True), ("flask", True), ("django", False)]
BROWSER = GUNICORN[:2]


def server_id(param: tuple[str, bool]) -> str:
    return f"{param[0]}-{'preload' if param[1] else 'fork'}"


@pytest.fixture(scope="module", params=GUNICORN, ids=server_id)
def gunicorn_app(request, provider):
    example, preload = request.param
    argv = functools.partial(gunicorn_argv, workers=2, threads=2, preload=preload)
    with serving(f"gunicorn {example}", example, argv, provider_env(provider)) as server:
        yield server


@pytest.fixture(scope="module")
def waitress_flask(provider):
    argv = functools.partial(waitress_argv, threads=2)
    with serving("waitress flask", "flask", argv, provider_env(provider)) as server:
        yield server


def ask() -> str:
    return f"question {next(_questions)}"


def stream_url(server, question: str) -> str:
    return f"{server.base_url}/chat/stream?q={quote(question)}"


def check_streams_incrementally(server, provider: SlowProvider) -> None:
    question = ask()
    reader = SseReader.open(stream_url(server, question))
    assert reader.status == 200
    assert reader.headers["content-type"].startswith("text/event-stream")
    assert reader.headers["cache-control"] == "no-cache"
    assert reader.headers["x-accel-buffering"] == "no"
    messages = reader.read_all()
    upstream = provider.stream_for(question)
    # What the provider received: the example's model and question, our key, a streamed call.
    assert upstream.request.path == "/v1/chat/completions"
    assert upstream.request.header("authorization") == f"Bearer {API_KEY}"
    body = upstream.request.json
    assert (body["model"], body["stream"], body["messages"]) == (MODEL, True, [{"role": "user", "content": question}])
    deltas = [m for m in messages if m.event == "delta"]
    assert "".join(m.data["text"] for m in deltas) == answer_text(question, WORDS)
    assert upstream.finished and len(upstream.produced) == WORDS
    # The first token reached us before the provider had even written the middle one.
    assert deltas[0].at < upstream.produced[WORDS // 2], (
        f"first event {deltas[0].at - upstream.produced[0]:.3f}s after the first token: buffered?")
    done = messages[-1]
    assert done.event == "done", messages[-1]
    assert done.data["finish_reason"] == "stop"
    assert done.data["usage"]["completion_tokens"] == WORDS
    assert done.data["stats"]["provider"] == "openai"
    assert API_KEY not in repr(messages)


def check_hang_up_closes_upstream(server, provider: SlowProvider) -> None:
    """A client leaving mid-answer closes the provider stream within 1.5 s and frees the thread."""
    provider.words = 80  # a 4 s answer, cut after its first token
    for _ in range(3):
        question = ask()
        reader = SseReader.open(stream_url(server, question))
        first = next(m for m in reader.messages() if m.event == "delta")
        assert first.data["text"].startswith("About")
        left = reader.hang_up()
        upstream = provider.stream_for(question)
        assert upstream.ended.wait(timeout=5.0), "the provider stream was still open 5 s after the hang-up"
        assert not upstream.finished, "the provider streamed the whole answer to a client that had left"
        assert upstream.closed_at - left < 1.5, f"upstream closed {upstream.closed_at - left:.2f}s after the hang-up"
    provider.words = WORDS
    check_streams_incrementally(server, provider)  # and the worker serves the next request


def check_json_view(server) -> None:
    question = ask()
    status, body = get_json(f"{server.base_url}/chat?q={quote(question)}")
    assert status == 200, body
    assert body["content"] == answer_text(question, WORDS)
    assert body["finish_reason"] == "stop" and body["usage"]["total_tokens"] == 7 + WORDS
    status, body = get_json(f"{server.base_url}/chat/stream?q=")
    assert status == 400 and body["error"]["kind"] == "invalid_request"


def test_gunicorn_streams_each_token_as_it_arrives(gunicorn_app, slow):
    check_streams_incrementally(gunicorn_app, slow)


def test_gunicorn_streams_in_every_worker_at_once(gunicorn_app, slow):
    """Four concurrent streams on 2 workers x 2 threads: every worker and thread answers
    whole, including workers forked from a master that created the client (--preload)."""
    errors: list[BaseException] = []

    def one() -> None:
        try:
            check_streams_incrementally(gunicorn_app, slow)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads), "a stream did not finish within 20 s"
    assert not errors, errors[0]


def test_gunicorn_hang_up_closes_the_provider_stream(gunicorn_app, slow):
    check_hang_up_closes_upstream(gunicorn_app, slow)


def test_gunicorn_json_view(gunicorn_app, slow):
    check_json_view(gunicorn_app)


# Each example once in a browser, one of them forked from a preloaded master.
@pytest.mark.parametrize("gunicorn_app", BROWSER, indirect=True, ids=server_id)
def test_chromium_renders_the_whole_answer(gunicorn_app, slow):
    question = ask()
    dom = chromium_dom(f"{gunicorn_app.base_url}/?q={quote(question)}")
    state, text, status = rendered_answer(dom)
    assert (state, text) == ("done", answer_text(question, WORDS)), status
    assert status == f"finish: stop, tokens: {7 + WORDS}"
    # The page closes its EventSource on "done": the browser did not reconnect and ask again.
    assert len(slow.streams_for(question)) == 1


def test_waitress_streams_and_closes_on_hang_up(waitress_flask, slow):
    check_streams_incrementally(waitress_flask, slow)
    check_hang_up_closes_upstream(waitress_flask, slow)
    check_json_view(waitress_flask)


def test_waitress_django_runs_offline_by_default():
    """No CHAT_MODEL and no key: the example uses the embedded mock/echo provider."""
    argv = functools.partial(waitress_argv, threads=2)
    with serving("waitress django", "django", argv, {}) as server:
        status, body = get_json(f"{server.base_url}/chat?q=hello%20there")
        assert (status, body["content"]) == (200, "Echo: hello there")
        messages = SseReader.open(f"{server.base_url}/chat/stream?q=hi").read_all()
        assert [m.event for m in messages] == ["delta", "delta", "done"]
        assert "".join(m.data["text"] for m in messages[:-1]) == "Echo: hi"
        _, headers, page = get(server.base_url + "/")
        assert b"new EventSource" in page and headers["content-type"].startswith("text/html")
