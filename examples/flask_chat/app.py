"""A Flask chat page that streams the model's answer into the browser.

    cd examples/flask_chat && gunicorn -k gthread --threads 8 app:app     # or: flask --app app run

``/`` is the page, ``/chat/stream?q=...`` the server-sent events it reads, ``/chat?q=...`` the
same answer as one JSON object. The model comes from ``CHAT_MODEL`` (default ``mock/echo``, the
offline provider: no key, no network); its key and base URL from the provider's usual
variables (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ...).
"""

from __future__ import annotations

import os

from flask import Flask, jsonify, render_template, request

from ai_lib_sync import AiClient, AiLibError
from ai_lib_sync.integrations.flask import stream_response
from ai_lib_sync.sse import summary

app = Flask(__name__)
# One client per process, shared by every request thread (it is thread-safe).
client = AiClient(os.environ.get("CHAT_MODEL", "mock/echo"))


def question() -> str | None:
    return (request.args.get("q") or "").strip() or None


@app.get("/")
def index():
    return render_template("index.html", stream_url="/chat/stream")


@app.get("/chat/stream")
def chat_stream():
    q = question()
    if q is None:
        return jsonify(error={"kind": "invalid_request", "message": "ask something with ?q=..."}), 400
    return stream_response(client.chat().user(q).stream())


@app.get("/chat")
def chat():
    q = question()
    if q is None:
        return jsonify(error={"kind": "invalid_request", "message": "ask something with ?q=..."}), 400
    try:
        response, stats = client.chat().user(q).execute_with_stats()
    except AiLibError as error:
        return jsonify(error={"kind": error.kind, "message": error.message}), 502
    return jsonify(content=response.content, **summary(response, stats))
