"""Streams close themselves; deadlines hold against slow senders; pooled connections behave.

Every lifecycle test runs with the garbage collector off: leaving a stream early must close
its HTTP connection at once by reference counting alone, never by a later collection.
"""

from __future__ import annotations

import gc
import gzip
import os
import threading
import time

import pytest
import requests

from ai_lib_sync import AiClient
from ai_lib_sync.errors import AiLibError, APITimeoutError, StreamInterruptedError

from .rawserver import (
    STREAM_HEAD,
    Conn,
    RawServer,
    completion_body,
    delta,
    final_chunk,
    json_response,
    sse_chunk,
)


@pytest.fixture
def no_gc():
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    yield
    if was_enabled:
        gc.enable()


def endless_stream(conn: Conn, index: int) -> bool:
    """Streams a delta every 20 ms for up to 10 s, stopping when the client goes."""
    if conn.read_request() is None:
        return False
    conn.send(STREAM_HEAD)
    for number in range(500):
        if not conn.send(sse_chunk(delta(f"t{number} "))):
            return False
        time.sleep(0.02)
    return False


def client_for(server: RawServer, **kwargs) -> AiClient:
    kwargs.setdefault("timeout", 5)
    kwargs.setdefault("max_retries", 0)
    return AiClient("openai/gpt-4o", api_key="sk-test-lifecycle", base_url=server.base_url + "/v1", **kwargs)


def assert_upstream_closed(server: RawServer, within: float = 1.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and not server.client_closes:
        time.sleep(0.01)
    assert server.client_closes, f"the provider connection was still open {within}s after leaving the stream"


def test_break_closes_the_connection_without_the_collector(no_gc):
    with RawServer(endless_stream) as server, client_for(server) as client:
        for event in client.chat().user("hi").stream():
            if event.is_content_delta:
                break
        assert_upstream_closed(server)


def test_a_dropped_stream_closes_its_connection(no_gc):
    with RawServer(endless_stream) as server, client_for(server) as client:
        stream = client.chat().user("hi").stream()
        next(iter(stream))
        del stream
        assert_upstream_closed(server)


def test_an_exception_in_the_loop_body_closes_the_connection(no_gc):
    with RawServer(endless_stream) as server, client_for(server) as client:
        with pytest.raises(RuntimeError):
            for _event in client.chat().user("hi").stream():
                raise RuntimeError("the caller's own bug")
        assert_upstream_closed(server)


def test_close_from_another_thread_closes_the_connection(no_gc):
    with RawServer(endless_stream) as server, client_for(server) as client:
        stream = client.chat().user("hi").stream()
        seen = []

        def read() -> None:
            try:
                for event in stream:
                    seen.append(event)
            except AiLibError as error:
                seen.append(error)

        reader = threading.Thread(target=read)
        reader.start()
        while not seen:
            time.sleep(0.01)
        stream.close()
        reader.join(2)
        assert not reader.is_alive()
        assert isinstance(seen[-1], StreamInterruptedError)
        assert seen[-1].partial_content.startswith("t0 ")
        assert_upstream_closed(server)


def test_a_wsgi_style_close_of_a_wrapping_generator_closes_upstream(no_gc):
    """A server calls close() on the response iterable when the browser goes away."""
    with RawServer(endless_stream) as server, client_for(server) as client:
        def body():
            with client.chat().user("hi").stream() as stream:
                yield from stream

        iterable = body()
        next(iterable)
        iterable.close()
        assert_upstream_closed(server)


def test_abandoned_streams_give_their_pool_slot_back(no_gc):
    """Many streams dropped mid-way: later calls still work and reuse connections."""
    def handler(conn: Conn, index: int) -> bool:
        request = conn.read_request()
        if request is None:
            return False
        if b'"stream":true' in request:
            return endless_stream_after_request(conn)
        return conn.send(json_response(completion_body("ok")))

    with RawServer(handler) as server, client_for(server, pool_maxsize=2) as client:
        for _ in range(5):
            stream = client.chat().user("hi").stream()
            next(iter(stream))
            del stream
        assert client.chat().user("hi").execute().content == "ok"
        assert client.chat().user("hi").execute().content == "ok"
        pool = client.transport.session.adapters["http://"].poolmanager.connection_from_url(server.base_url)
        assert pool.pool.qsize() == 2  # every slot is back


def endless_stream_after_request(conn: Conn) -> bool:
    conn.send(STREAM_HEAD)
    for number in range(500):
        if not conn.send(sse_chunk(delta(f"t{number} "))):
            return False
        time.sleep(0.02)
    return False


def test_the_async_wrapper_closes_upstream_when_leaving_async_for(no_gc):
    import asyncio

    from ai_lib_sync.aio import AiClient as AsyncClient

    with RawServer(endless_stream) as server:
        async def main() -> None:
            client = AsyncClient("openai/gpt-4o", api_key="sk-test-lifecycle",
                                 base_url=server.base_url + "/v1", max_retries=0, timeout=5)
            async for _event in client.chat().user("hi").stream():
                break
            await asyncio.sleep(0)
            assert_upstream_closed(server)
            await client.close()

        asyncio.run(main())


def test_a_fallback_stream_closes_upstream_too(no_gc):
    def handler(conn: Conn, index: int) -> bool:
        request = conn.read_request()
        if request is None:
            return False
        if b"/primary/" in request.split(b"\r\n", 1)[0]:
            return conn.send(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
        return endless_stream_after_request(conn)

    with RawServer(handler) as server:
        client = AiClient("openai/gpt-4o", api_key="sk-test-lifecycle", base_url=server.base_url + "/primary",
                          max_retries=0, timeout=5,
                          fallbacks=[{"model": "openai/gpt-4o-mini", "base_url": server.base_url + "/v1"}])
        with client:
            for event in client.chat().user("hi").stream():
                if event.is_content_delta:
                    break
            assert_upstream_closed(server)


# --- the terminator ends the stream ---------------------------------------------------------


def test_the_stream_returns_at_its_terminator_when_the_server_keeps_the_connection_open():
    def handler(conn: Conn, index: int) -> bool:
        if conn.read_request() is None:
            return False
        conn.send(STREAM_HEAD + sse_chunk(delta("done")) + sse_chunk(final_chunk()) + sse_chunk("[DONE]"))
        conn.wait_for_client_close(10)  # no terminating zero-length chunk: the body never ends
        return False

    with RawServer(handler) as server, client_for(server, stream_idle_timeout=5) as client:
        started = time.monotonic()
        stream = client.chat().user("hi").stream()
        assert stream.text() == "done"
        assert time.monotonic() - started < 1.5
        assert stream.stats.total_tokens == 5


def test_a_complete_stream_leaves_its_connection_for_reuse():
    def handler(conn: Conn, index: int) -> bool:
        if conn.read_request() is None:
            return False
        return conn.send(STREAM_HEAD + sse_chunk(delta("x")) + sse_chunk(final_chunk())
                         + sse_chunk("[DONE]") + b"0\r\n\r\n")

    with RawServer(handler) as server, client_for(server) as client:
        for _ in range(3):
            assert client.chat().user("hi").stream().text() == "x"
        assert server.connections == 1


# --- deadlines against slow senders ---------------------------------------------------------


def drip(conn: Conn, data: bytes, every: float = 0.1) -> bool:
    for index in range(len(data)):
        if not conn.send(data[index:index + 1]):
            return False
        time.sleep(every)
    return True


@pytest.mark.parametrize("stream", [False, True])
def test_slowly_dripped_headers_cannot_outlast_the_timeout(stream):
    def handler(conn: Conn, index: int) -> bool:
        if conn.read_request() is None:
            return False
        head = STREAM_HEAD if stream else json_response(completion_body())
        drip(conn, head + b"X-Padding: " + b"p" * 200 + b"\r\n")
        return False

    with RawServer(handler) as server, client_for(server, timeout=1, stream_idle_timeout=1) as client:
        started = time.monotonic()
        with pytest.raises(APITimeoutError):
            if stream:
                client.chat().user("hi").stream().text()
            else:
                client.chat().user("hi").execute()
        assert time.monotonic() - started < 2.0


def test_a_dripped_body_cannot_outlast_the_timeout():
    def handler(conn: Conn, index: int) -> bool:
        if conn.read_request() is None:
            return False
        response = json_response(completion_body("x" * 400))
        head, _, body = response.partition(b"\r\n\r\n")
        conn.send(head + b"\r\n\r\n")
        drip(conn, body, every=0.05)
        return False

    with RawServer(handler) as server, client_for(server, timeout=1) as client:
        started = time.monotonic()
        with pytest.raises(APITimeoutError):
            client.chat().user("hi").execute()
        assert time.monotonic() - started < 2.0


# --- pooled connections ---------------------------------------------------------------------


def test_a_pooled_connection_the_server_dropped_is_resent_at_once_and_not_counted():
    """llama.cpp closes its connection after a reply although it announced keep-alive."""
    def handler(conn: Conn, index: int) -> bool:
        if conn.read_request() is None:
            return False
        conn.send(json_response(completion_body(f"reply {index}")))
        if conn.read_request() is not None:  # the reused connection: hang up without a word
            return False
        return False

    with RawServer(handler) as server, client_for(server, max_retries=0) as client:
        first = client.chat().user("hi").execute()
        second, stats = client.chat().user("hi").execute_with_stats()
        assert first.content == "reply 0"
        assert second.content.startswith("reply")
        assert stats.retries == 0
        assert server.connections == 2


def test_gzip_encoded_streams_are_decoded_before_framing():
    body = b"".join(f"data: {payload}\n\n".encode() for payload in (
        '{"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"zip"},"finish_reason":null}]}',
        '{"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
        "[DONE]"))
    packed = gzip.compress(body)

    def handler(conn: Conn, index: int) -> bool:
        if conn.read_request() is None:
            return False
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
                  + f"Content-Length: {len(packed)}\r\n\r\n".encode() + packed)
        return True

    with RawServer(handler) as server, client_for(server) as client:
        assert client.chat().user("hi").stream().text() == "zip"


def test_a_json_answer_to_a_stream_request_is_replayed_as_events():
    def handler(conn: Conn, index: int) -> bool:
        if conn.read_request() is None:
            return False
        return conn.send(json_response(completion_body("whole")))

    with RawServer(handler) as server, client_for(server) as client:
        stream = client.chat().user("hi").stream()
        kinds = [event.kind for event in stream]
        assert kinds == ["content_delta", "usage", "finish"]
        assert stream.final_response().content == "whole"


def test_connection_errors_chain_nothing_that_holds_the_request():
    with client_for_refused() as client:
        with pytest.raises(AiLibError) as caught:
            client.chat().user("hi").execute()
    error = caught.value
    assert error.kind == "connection"
    assert error.__context__ is None and error.__cause__ is None


def client_for_refused() -> AiClient:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return AiClient("openai/gpt-4o", api_key="sk-test-refused", base_url=f"http://127.0.0.1:{port}/v1",
                    max_retries=0, timeout=2)


def test_a_user_session_is_used_and_not_closed():
    def handler(conn: Conn, index: int) -> bool:
        request = conn.read_request()
        if request is None:
            return False
        return conn.send(json_response(completion_body(request.split(b"\r\n", 1)[0].decode())))

    session = requests.Session()
    session.headers["X-From-Session"] = "yes"
    with RawServer(handler) as server:
        with client_for(server, session=session) as client:
            client.chat().user("hi").execute()
        assert b"X-From-Session: yes" in server.requests[0]
        assert session.adapters  # still usable: the client did not close it
        session.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_client_used_before_fork_works_in_the_child_without_sharing_sockets():
    def handler(conn: Conn, index: int) -> bool:
        if conn.read_request() is None:
            return False
        return conn.send(json_response(completion_body(f"reply {index}")))

    with RawServer(handler) as server, client_for(server) as client:
        assert client.chat().user("parent").execute().content == "reply 0"
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: the parent's pooled socket must not be reused here
            try:
                content = client.chat().user("child").execute().content
                os.write(write_end, content.encode())
            finally:
                os._exit(0)
        os.close(write_end)
        os.waitpid(pid, 0)
        child_answer = os.read(read_end, 100).decode()
        os.close(read_end)
        assert child_answer.startswith("reply")
        assert server.connections == 2  # the child opened its own connection
        assert client.chat().user("parent again").execute().content.startswith("reply")


def test_closing_a_finished_stream_leaves_its_pooled_connection_alone():
    """After a stream ended its connection went back to the pool, maybe to another call: the
    ``with`` block's close() must not cut it."""
    def handler(conn: Conn, index: int) -> bool:
        request = conn.read_request()
        if request is None:
            return False
        if b'"stream":true' in request:
            return conn.send(STREAM_HEAD + sse_chunk(delta("x")) + sse_chunk(final_chunk())
                             + sse_chunk("[DONE]") + b"0\r\n\r\n")
        return conn.send(json_response(completion_body("plain")))

    with RawServer(handler) as server, client_for(server, pool_maxsize=1) as client:
        with client.chat().user("hi").stream() as stream:
            assert stream.text() == "x"
            assert client.chat().user("hi").execute().content == "plain"  # reuses the connection
        assert client.chat().user("hi").execute().content == "plain"
        assert server.connections == 1
