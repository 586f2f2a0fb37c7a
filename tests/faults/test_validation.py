"""Bad input gets a clear, typed error before any network I/O.

Every client here points at a server that counts requests; each row must raise its error class
with a message naming the problem, and the server must have seen nothing.
"""

from __future__ import annotations

import pytest

from ai_lib_sync import AiClient
from ai_lib_sync.errors import AiLibError, ConfigurationError, InvalidRequestError
from ai_lib_sync.testing import LoopbackServer, openai_echo


@pytest.fixture(scope="module")
def counting_server():
    with LoopbackServer(openai_echo) as server:
        yield server


def _client(server: LoopbackServer, model: str = "openai/gpt-4o", **kwargs) -> AiClient:
    kwargs.setdefault("api_key", "validation-key-0123456789")
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 2)
    return AiClient(model, base_url=server.base_url + "/v1", **kwargs)


def _send(server: LoopbackServer, build, stream: bool = False) -> None:
    with _client(server) as client:
        chat = build(client.chat())
        if stream:
            list(chat.stream())
        else:
            chat.execute()


ROWS = [
    # (id, action(server), error class, a word the message must contain)
    ("unknown_provider", lambda s: _client(s, "nosuchprovider/model"), ConfigurationError, "nosuchprovider"),
    ("model_without_provider", lambda s: _client(s, "gpt-4o"), ConfigurationError, "provider"),
    ("empty_model", lambda s: _client(s, "openai/"), ConfigurationError, "model"),
    ("missing_key", lambda s: AiClient("openai/gpt-4o", environ={}), ConfigurationError, "OPENAI_API_KEY"),
    ("negative_timeout", lambda s: _client(s, timeout=-1), ConfigurationError, "timeout"),
    ("negative_retries", lambda s: _client(s, max_retries=-1), ConfigurationError, "max_retries"),
    ("empty_messages", lambda s: _send(s, lambda c: c), InvalidRequestError, "message"),
    ("empty_messages_stream", lambda s: _send(s, lambda c: c, stream=True), InvalidRequestError, "message"),
    ("temperature_not_a_number", lambda s: _send(s, lambda c: c.user("x").temperature("hot")), InvalidRequestError,
     "temperature"),
    ("temperature_out_of_range", lambda s: _send(s, lambda c: c.user("x").temperature(7.5)), InvalidRequestError,
     "temperature"),
    ("top_p_out_of_range", lambda s: _send(s, lambda c: c.user("x").top_p(1.5)), InvalidRequestError, "top_p"),
    ("max_tokens_zero", lambda s: _send(s, lambda c: c.user("x").max_tokens(0)), InvalidRequestError, "max_tokens"),
    ("max_tokens_not_int", lambda s: _send(s, lambda c: c.user("x").max_tokens(1.5)), InvalidRequestError,
     "max_tokens"),
    ("empty_stop", lambda s: _send(s, lambda c: c.user("x").stop("")), InvalidRequestError, "stop"),
    ("tool_schema_not_serialisable", lambda s: _send(s, lambda c: c.user("x").tools([
        {"name": "f", "description": "d", "parameters": {"type": "object", "default": object()}}])),
     InvalidRequestError, "f"),
    ("unreadable_image_path", lambda s: _send(s, lambda c: c.user("x", images=["/no/such/image.png"])),
     InvalidRequestError, "image"),
]


@pytest.mark.parametrize(("action", "error_class", "word"), [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_bad_input_is_a_typed_error_before_any_io(counting_server: LoopbackServer, action, error_class, word) -> None:
    before = len(counting_server.requests)
    with pytest.raises(AiLibError) as caught:
        action(counting_server)
    assert isinstance(caught.value, error_class), repr(caught.value)
    assert word.lower() in str(caught.value).lower(), str(caught.value)
    assert len(counting_server.requests) == before, "the bad input reached the network"
