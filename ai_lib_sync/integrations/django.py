"""Stream a chat answer from a Django view to the browser as server-sent events.

    from ai_lib_sync.integrations.django import stream_response

    def chat(request):
        return stream_response(client.chat().user(request.GET["q"]).stream())

Under WSGI (gunicorn, waitress, runserver) Django calls ``close()`` on the response when the
server is done with it, including after a client hung up; that closes the encoder and with
it the provider stream. Needs the ``[django]`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from ..sse import DEFAULT_HEARTBEAT, HEADERS, encode

try:
    from django.http import StreamingHttpResponse
except ImportError:
    raise ConfigurationError(
        "ai_lib_sync.integrations.django needs Django: pip install 'ai-lib-sync[django]'"
    ) from None

if TYPE_CHECKING:
    from ..client import ChatStream


def stream_response(stream: ChatStream, *, heartbeat: float | None = DEFAULT_HEARTBEAT,
                    **response_kwargs: Any) -> StreamingHttpResponse:
    """A ``StreamingHttpResponse`` of ``stream`` as SSE (see ``ai_lib_sync.sse``).

    ``heartbeat``: seconds of upstream silence before a keep-alive comment (``None``: none).
    Other keyword arguments go to ``StreamingHttpResponse`` (``status``, ``headers``, ...).
    """
    response = StreamingHttpResponse(encode(stream, heartbeat=heartbeat),
                                     content_type=HEADERS["Content-Type"], **response_kwargs)
    for name, value in HEADERS.items():
        if name != "Content-Type":
            response[name] = value
    return response
