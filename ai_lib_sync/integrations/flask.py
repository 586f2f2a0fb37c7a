"""Stream a chat answer from a Flask view to the browser as server-sent events.

    from ai_lib_sync.integrations.flask import stream_response

    @app.get("/chat/stream")
    def chat():
        return stream_response(client.chat().user(request.args["q"]).stream())

The body is wrapped in ``stream_with_context`` so the view's request context stays available
while it streams. When the WSGI server closes the response (the last event, or a client that
hung up), the encoder and with it the provider stream are closed. Needs the ``[flask]`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from ..sse import DEFAULT_HEARTBEAT, HEADERS, encode

try:
    from flask import Response, stream_with_context
except ImportError:
    raise ConfigurationError(
        "ai_lib_sync.integrations.flask needs Flask: pip install 'ai-lib-sync[flask]'"
    ) from None

if TYPE_CHECKING:
    from ..client import ChatStream


def stream_response(stream: ChatStream, *, heartbeat: float | None = DEFAULT_HEARTBEAT,
                    **response_kwargs: Any) -> Response:
    """A streaming ``flask.Response`` of ``stream`` as SSE (see ``ai_lib_sync.sse``).

    Call it inside a request. ``heartbeat``: seconds of upstream silence before a keep-alive
    comment (``None``: none). Other keyword arguments go to ``flask.Response`` (``status``, ...).
    """
    response = Response(stream_with_context(encode(stream, heartbeat=heartbeat)),
                        content_type=HEADERS["Content-Type"], **response_kwargs)
    for name, value in HEADERS.items():
        if name != "Content-Type":
            response.headers[name] = value
    return response
