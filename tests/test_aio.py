"""The async wrapper over threads. First the seed page's async Python snippets
(../shared/seed/chat-completions.txt), unchanged apart from the setup (OPENAI_API_KEY and
OPENAI_BASE_URL aimed at a loopback echo server, each snippet inside ``async def main()``, and
the page's ``from ai_lib_python import Message`` spelled with this package's name); then the
thread pool bound, backpressure, and cancellation freeing threads and closing streams."""

from __future__ import annotations

import ast
import asyncio
import json
import threading
from pathlib import Path

import pytest

from ai_lib_sync.errors import AuthenticationError, StreamInterruptedError
from ai_lib_sync.testing import Reply, openai_echo

PACKAGE = Path(__file__).resolve().parent.parent / "ai_lib_sync"
BOUND = 10  # seconds: a generous bound so a broken test fails instead of hanging


# --- the seed's snippets -------------------------------------------------------------------


def test_seed_hello_world(seed_env, capsys):
    from ai_lib_sync.aio import AiClient

    async def main():
        client = await AiClient.create("openai/gpt-4o")
        response = await client.chat() \
            .user("Hello, world!") \
            .execute()
        print(response.content)

    asyncio.run(main())
    assert capsys.readouterr().out == "Echo: Hello, world!\n"
    request = seed_env.last
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.header("authorization") == "Bearer sk-test-seed"
    assert request.json == {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello, world!"}]}


def test_seed_system_prompt(seed_env):
    from ai_lib_sync.aio import AiClient

    async def main():
        client = await AiClient.create("openai/gpt-4o")
        await client.chat() \
            .system("You are a helpful coding assistant.") \
            .user("Explain closures") \
            .execute()

    asyncio.run(main())
    assert seed_env.last.json["messages"] == [
        {"role": "system", "content": "You are a helpful coding assistant."},
        {"role": "user", "content": "Explain closures"}]


def test_seed_conversation_history(seed_env):
    from ai_lib_sync.aio import AiClient

    async def main():
        client = await AiClient.create("openai/gpt-4o")
        from ai_lib_sync.aio import Message
        messages = [
            Message.system("You are a tutor."),
            Message.user("What is recursion?"),
            Message.assistant("Recursion is when a function calls itself..."),
            Message.user("Can you show an example?"),
        ]
        return await client.chat().messages(messages).execute()

    response = asyncio.run(main())
    assert response.content == "Echo: Can you show an example?"
    assert seed_env.last.json["messages"] == [
        {"role": "system", "content": "You are a tutor."},
        {"role": "user", "content": "What is recursion?"},
        {"role": "assistant", "content": "Recursion is when a function calls itself..."},
        {"role": "user", "content": "Can you show an example?"}]


def test_seed_streaming(seed_env, capsys):
    from ai_lib_sync.aio import AiClient

    async def main():
        client = await AiClient.create("openai/gpt-4o")
        async for event in client.chat() \
                .user("Tell me a story") \
                .stream():
            if event.is_content_delta:
                print(event.as_content_delta.text, end="", flush=True)

    asyncio.run(main())
    assert capsys.readouterr().out == "Echo: Tell me a story"
    body = seed_env.last.json
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_seed_usage_stats(seed_env, capsys):
    from ai_lib_sync.aio import AiClient

    async def main():
        client = await AiClient.create("openai/gpt-4o")
        response, stats = await client.chat() \
            .user("Hello") \
            .execute_with_stats()
        print(f"Tokens: {stats.total_tokens}")
        print(f"Latency: {stats.latency_ms}ms")

    asyncio.run(main())
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Tokens: 3"  # 1 prompt word + "Echo: Hello"
    assert out[1].startswith("Latency: ") and out[1].endswith("ms") and float(out[1][9:-2]) > 0


def test_builder_parameters_and_stream_result(seed_env):
    from ai_lib_sync.aio import AiClient

    async def main():
        async with await AiClient.create("openai/gpt-4o") as client:
            await client.chat().user("Write a poem").temperature(0.9).max_tokens(200).top_p(0.95).execute()
            stream = client.chat().user("one two").stream()
            text = await stream.text()
            return text, stream.final_response(), stream.stats

    text, response, stats = asyncio.run(main())
    first = seed_env.requests[0].json
    assert (first["temperature"], first["max_completion_tokens"], first["top_p"]) == (0.9, 200, 0.95)
    assert text == response.content == "Echo: one two"
    assert (response.provider, stats.provider, stats.total_tokens) == ("openai", "openai", 5)


def test_errors_surface_as_the_library_errors(server, make_client):
    from ai_lib_sync.aio import AiClient

    server.handler = lambda request: Reply(401, {"error": {"message": "bad key", "type": "invalid_request_error"}})

    async def main():
        client = AiClient("openai/gpt-4o", base_url=server.base_url + "/v1", api_key="sk-wrong-000000")
        try:
            with pytest.raises(AuthenticationError):
                await client.chat().user("hi").execute()
            server.handler = lambda request: Reply.sse(
                [{"id": "c", "choices": [{"index": 0, "delta": {"content": "Once"}, "finish_reason": None}]}] * 3,
                cut_after=1)
            seen = []
            with pytest.raises(StreamInterruptedError):
                async for event in client.chat().user("story").stream():
                    seen.append(event.as_content_delta.text)
            assert seen == ["Once"]
        finally:
            await client.close()

    asyncio.run(main())


# --- threads, backpressure, cancellation ------------------------------------------------------


def aio_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("ai-lib-aio")]


def test_gather_of_1000_calls_uses_a_bounded_pool(server):
    from ai_lib_sync.aio import AiClient

    def handler(request):
        reply = openai_echo(request)
        reply.delay = 0.002
        return reply

    server.handler = handler

    async def main():
        client = AiClient("openai/gpt-4o", base_url=server.base_url + "/v1", api_key="sk-test-000000",
                          max_threads=32)
        try:
            results = await asyncio.gather(*(client.chat().user(f"q{i}").execute() for i in range(1000)))
            return results, len(aio_threads())
        finally:
            await client.close()

    results, threads = asyncio.run(main())
    assert [result.content for result in results] == [f"Echo: q{i}" for i in range(1000)]
    assert 1 <= threads <= 32
    assert server.connections <= 32
    assert aio_threads() == []  # close() joined them


def slow_stream(closed: threading.Event, produced: list[int], count: int = 500, delay: float = 0.05):
    """SSE chunks one every ``delay`` seconds; ``closed`` is set when the server stops writing."""
    def chunks():
        try:
            for number in range(count):
                produced.append(number)
                event = {"id": "c", "choices": [{"index": 0, "delta": {"content": f"w{number} "}, "finish_reason": None}]}
                yield f"data: {json.dumps(event)}\n\n"
            finish = {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            yield f"data: {json.dumps(finish)}\n\ndata: [DONE]\n\n"
        finally:
            closed.set()
    return Reply(200, headers={"Content-Type": "text/event-stream"}, chunks=chunks(), chunk_delay=delay)


def one_thread_client(server):
    from ai_lib_sync.aio import AiClient

    return AiClient("openai/gpt-4o", base_url=server.base_url + "/v1", api_key="sk-test-000000",
                    max_threads=1, timeout=120)


def test_leaving_async_for_early_closes_the_stream_and_frees_the_thread(server):
    closed, produced = threading.Event(), []
    server.enqueue(slow_stream(closed, produced))
    server.handler = openai_echo

    async def main():
        client = one_thread_client(server)
        try:
            async for event in client.chat().user("long story").stream():
                first = event.as_content_delta.text
                break
            # The only pool thread must be free again, or this call would wait 25 s.
            after = await asyncio.wait_for(client.chat().user("next").execute(), BOUND)
            return first, after.content
        finally:
            await client.close()

    assert asyncio.run(main()) == ("w0 ", "Echo: next")
    assert closed.wait(BOUND)
    assert len(produced) < 500


def test_cancelling_the_consuming_task_closes_the_stream(server):
    closed, produced = threading.Event(), []
    server.enqueue(slow_stream(closed, produced))
    server.handler = openai_echo

    async def main():
        client = one_thread_client(server)
        got_one = asyncio.Event()

        async def consume():
            async for _ in client.chat().user("long story").stream():
                got_one.set()

        try:
            task = asyncio.create_task(consume())
            await asyncio.wait_for(got_one.wait(), BOUND)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return (await asyncio.wait_for(client.chat().user("next").execute(), BOUND)).content
        finally:
            await client.close()

    assert asyncio.run(main()) == "Echo: next"
    assert closed.wait(BOUND)
    assert len(produced) < 500


def test_cancelling_an_execute_aborts_the_call_and_frees_the_thread(server):
    started = threading.Event()

    def handler(request):
        if request.json["messages"][-1]["content"] == "slow":
            started.set()
            return Reply(200, openai_echo(request).body, delay=60)
        return openai_echo(request)

    server.handler = handler

    async def main():
        client = one_thread_client(server)
        try:
            task = asyncio.create_task(client.chat().user("slow").execute())
            await asyncio.get_running_loop().run_in_executor(None, started.wait, BOUND)
            queued = asyncio.create_task(client.chat().user("never sent").execute())
            await asyncio.sleep(0.05)  # submitted; waits for the only thread, busy with "slow"
            queued.cancel()
            task.cancel()
            for cancelled in (queued, task):
                with pytest.raises(asyncio.CancelledError):
                    await cancelled
            return (await asyncio.wait_for(client.chat().user("next").execute(), BOUND)).content
        finally:
            await client.close()

    assert asyncio.run(main()) == "Echo: next"
    prompts = [request.json["messages"][-1]["content"] for request in server.requests]
    assert prompts == ["slow", "next"]


def test_stream_buffer_applies_backpressure(server):
    from ai_lib_sync.aio import AiClient

    closed, produced = threading.Event(), []
    server.enqueue(slow_stream(closed, produced, count=400, delay=0))

    async def main():
        client = AiClient("openai/gpt-4o", base_url=server.base_url + "/v1", api_key="sk-test-000000",
                          stream_buffer=4)
        try:
            stream = client.chat().user("fast story").stream()
            first = await stream.__anext__()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + BOUND
            while stream._queue.qsize() < 4 and loop.time() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # room for a runaway pump to overfill, if it could
            buffered = stream._queue.qsize()
            rest = [event.as_content_delta.text async for event in stream if event.is_content_delta]
            return first.as_content_delta.text, buffered, rest
        finally:
            await client.close()

    first, buffered, rest = asyncio.run(main())
    assert buffered == 4
    assert [first, *rest] == [f"w{number} " for number in range(400)]


CORE_EDGES = {"aio.py", "cli.py", "testing.py", "__main__.py"}


def test_only_aio_imports_asyncio():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.name in CORE_EDGES or relative.parts[0] == "integrations":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == "asyncio" for name in names):
                offenders.append(str(relative))
    assert offenders == []
    assert "import asyncio" in (PACKAGE / "aio.py").read_text(encoding="utf-8")
