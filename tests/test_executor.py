"""BatchExecutor end to end against loopback servers: order, per-item failures, request forms,
laziness, cancellation (including a real SIGINT), connection pooling, resource cleanup,
checkpoint/resume and progress. No timed assertions; waits are bounded only to fail fast."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

from ai_lib_sync import AiClient, BatchExecutor, ChatResponse
from ai_lib_sync.batch import BatchResults, UnfinishedError
from ai_lib_sync.errors import AiLibError, ConfigurationError, InvalidRequestError, ServerError
from ai_lib_sync.testing import Reply, openai_echo

ROOT = Path(__file__).resolve().parent.parent


def prompt_of(request) -> str:
    return request.json["messages"][-1]["content"]


def failing_echo(request):
    """Echo, except prompts containing 'bad' get a 400 and 'boom' a 500."""
    text = prompt_of(request)
    if "bad" in text:
        return Reply(400, {"error": {"message": f"refused {text}", "type": "invalid_request_error"}})
    if "boom" in text:
        return Reply(500, {"error": {"message": "internal", "type": "server_error"}})
    return openai_echo(request)


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def batch_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("ai-lib-batch")]


# --- results -------------------------------------------------------------------------------


def test_results_keep_input_order_and_failures_stay_per_item(server, make_client):
    server.handler = failing_echo
    client = make_client("openai/gpt-4o", prefix="/v1")
    prompts = [f"q{i}" if i % 7 else f"bad {i}" for i in range(60)]
    results = client.batch([client.chat().user(p) for p in prompts], max_workers=8)
    assert isinstance(results, BatchResults) and not results.interrupted
    assert len(results) == 60
    for prompt, result in zip(prompts, results, strict=True):
        if prompt.startswith("bad"):
            assert isinstance(result, InvalidRequestError)
            assert result.status_code == 400 and prompt in result.message
        else:
            assert isinstance(result, ChatResponse) and result.content == f"Echo: {prompt}"
    assert [index for index, _ in results.errors] == [i for i in range(60) if i % 7 == 0]
    assert len(server.requests) == 60


def test_request_forms_and_mixed_providers(server, make_client, monkeypatch):
    server.handler = openai_echo
    client = make_client("openai/gpt-4o", prefix="/v1")
    other = make_client("openai/gpt-4o-mini", prefix="/other/v1")
    items = [
        client.chat().system("be brief").user("builder").temperature(0.5),
        "plain string",
        [{"role": "user", "content": "message list"}],
        {"messages": [{"role": "user", "content": "dict"}], "temperature": 0.2,
         "max_completion_tokens": 50, "seed": 7, "stop": "END"},
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "bare default name"}]},
        other.chat().user("other client"),
        {"model": "mock/echo", "messages": [{"role": "user", "content": "other provider"}]},
    ]
    with BatchExecutor(max_workers=4, client=client) as executor:
        results = executor.run(items)
    contents = [result.content for result in results]
    assert contents == ["Echo: builder", "Echo: plain string", "Echo: message list", "Echo: dict",
                        "Echo: bare default name", "Echo: other client", "Echo: other provider"]
    assert [(r.provider, r.model) for r in results][-2:] == [("openai", "gpt-4o-mini"), ("mock", "echo")]
    bodies = {prompt_of(request): (request.path, request.json) for request in server.requests}
    assert len(server.requests) == 6  # the mock provider runs its own embedded server
    path, body = bodies["dict"]
    assert path == "/v1/chat/completions"
    assert body == {"model": "gpt-4o", "messages": [{"role": "user", "content": "dict"}], "temperature": 0.2,
                    "max_completion_tokens": 50, "stop": ["END"], "seed": 7}
    assert bodies["builder"][1]["messages"][0] == {"role": "system", "content": "be brief"}
    assert bodies["builder"][1]["temperature"] == 0.5
    assert bodies["other client"] == ("/other/v1/chat/completions", bodies["other client"][1])
    assert bodies["other client"][1]["model"] == "gpt-4o-mini"
    assert executor._owned == {}  # the mock client the executor created was closed


def test_bad_items_fail_alone(server, make_client):
    server.handler = openai_echo
    client = make_client("openai/gpt-4o", prefix="/v1")
    items = ["fine", {"messages": []}, {"messages": [{"role": "user", "content": "x"}], "stream": True},
             {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
             {"messages": [{"role": "user", "content": "x"}], "temperature": 7}, 42, "also fine"]
    with BatchExecutor(max_workers=2, client=client) as executor:
        results = executor.run(items)
    assert results[0].content == "Echo: fine" and results[-1].content == "Echo: also fine"
    kinds = [type(result) for result in results[1:-1]]
    assert kinds == [InvalidRequestError, InvalidRequestError, ConfigurationError, InvalidRequestError,
                     InvalidRequestError]
    assert "provider/model" in str(results[3])
    assert len(server.requests) == 2


def test_prompts_need_a_default_client(server, make_client):
    server.handler = openai_echo
    client = make_client("openai/gpt-4o", prefix="/v1")
    with BatchExecutor(max_workers=2) as executor:
        results = executor.run([client.chat().user("builder"), "no client for me"])
    assert results[0].content == "Echo: builder"
    assert isinstance(results[1], ConfigurationError) and "default client" in str(results[1])


def test_submit_returns_a_future(server, make_client):
    server.handler = failing_echo
    client = make_client("openai/gpt-4o", prefix="/v1")
    with BatchExecutor(max_workers=2, client=client) as executor:
        good = executor.submit(client.chat().user("hi"))
        bad = executor.submit("boom")
        assert isinstance(good, Future)
        assert good.result(timeout=10).content == "Echo: hi"
        with pytest.raises(ServerError):
            bad.result(timeout=10)
    with pytest.raises(RuntimeError):
        executor.submit("after shutdown")


def test_map_is_ordered_and_lazy_over_ten_million_items(server, make_client):
    server.handler = openai_echo
    client = make_client("openai/gpt-4o", prefix="/v1")
    pulled = itertools.count()

    def prompts():
        for number in range(10_000_000):
            next(pulled)
            yield f"p{number}"

    with BatchExecutor(max_workers=4, client=client, max_in_flight=8, max_buffered=8) as executor:
        seen = []
        for result in executor.map(prompts()):
            seen.append(result.content)
            if len(seen) == 40:
                break
    assert seen == [f"Echo: p{number}" for number in range(40)]
    # never more than in-flight + buffered ahead of the consumer
    assert next(pulled) <= 40 + 8 + 8
    assert len(server.requests) <= 56


def test_as_completed_yields_every_index_once(server, make_client):
    def handler(request):
        reply = openai_echo(request)
        reply.delay = 0.05 if prompt_of(request) == "slow" else 0.0
        return reply

    server.handler = handler
    client = make_client("openai/gpt-4o", prefix="/v1")
    items = ["slow"] + [f"fast {i}" for i in range(20)]
    with BatchExecutor(max_workers=4, client=client, max_in_flight=6) as executor:
        pairs = list(executor.as_completed(iter(items)))
    assert sorted(index for index, _ in pairs) == list(range(21))
    for index, result in pairs:
        assert result.content == f"Echo: {items[index]}"


def test_raise_on_error_stops_the_batch(server, make_client):
    def handler(request):
        if prompt_of(request) == "bad":
            return failing_echo(request)
        reply = openai_echo(request)
        reply.delay = 0.2
        return reply

    server.handler = handler
    client = make_client("openai/gpt-4o", prefix="/v1")
    pulled = itertools.count()

    def items():
        yield "bad"
        for number in range(1000):
            next(pulled)
            yield f"p{number}"

    with BatchExecutor(max_workers=2, client=client, max_in_flight=4, raise_on_error=True) as executor:
        with pytest.raises(InvalidRequestError):
            executor.run(items())
    assert next(pulled) <= 4
    assert not batch_threads()


# --- cancellation ----------------------------------------------------------------------------


def test_shutdown_cancel_returns_results_so_far(server, make_client):
    started = threading.Semaphore(0)

    def handler(request):
        reply = openai_echo(request)
        if prompt_of(request).startswith("slow"):
            started.release()
            reply.delay = 60
        return reply

    server.handler = handler
    client = make_client("openai/gpt-4o", prefix="/v1", max_retries=3, timeout=120)
    items = ["fast 0", "fast 1"] + [f"slow {i}" for i in range(10)]
    executor = BatchExecutor(max_workers=3, client=client)
    outcome: list[BatchResults] = []
    runner = threading.Thread(target=lambda: outcome.append(executor.run(items)))
    runner.start()
    for _ in range(3):
        assert started.acquire(timeout=10)  # three workers blocked on the slow server
    executor.shutdown(cancel=True)
    runner.join(10)
    assert not runner.is_alive()
    results = outcome[0]
    assert results.interrupted
    assert [r.content for r in results[:2]] == ["Echo: fast 0", "Echo: fast 1"]
    assert results.unfinished == list(range(2, 12))
    assert all(isinstance(r, UnfinishedError) and r.kind == "connection" and r.retryable for r in results[2:])
    # the README's loop stays safe
    assert [r.content if not isinstance(r, Exception) else f"failed: {r.kind}" for r in results][-1] == \
        "failed: connection"
    assert not batch_threads()
    assert len(server.requests) == 5  # aborted calls were not retried, queued ones never sent


SIGINT_SCRIPT = textwrap.dedent("""
    import json, signal, sys, threading, time
    interrupted_at = []

    def on_sigint(signum, frame):
        interrupted_at.append(time.monotonic())
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)  # also when the test runner ignores SIGINT
    from ai_lib_sync import AiClient
    from ai_lib_sync.testing import LoopbackServer, openai_echo

    def handler(request):
        reply = openai_echo(request)
        if "slow" in request.json["messages"][-1]["content"]:
            sys.stdout.write("SLOW\\n")
            sys.stdout.flush()
            reply.delay = 60
        return reply

    server = LoopbackServer(handler)
    client = AiClient("openai/gpt-4o", base_url=server.base_url + "/v1", api_key="sk-test",
                      max_retries=2, timeout=120)
    prompts = [f"fast {i}" for i in range(5)] + [f"slow {i}" for i in range(20)]
    raised = False
    if sys.argv[1] == "return":
        results = client.batch([client.chat().user(p) for p in prompts], max_workers=4,
                               on_interrupt="return")
    else:
        try:
            client.batch([client.chat().user(p) for p in prompts], max_workers=4)
        except KeyboardInterrupt as exc:  # re-raised after cleanup, carrying the results
            raised, results = True, exc.results
    returned_after = time.monotonic() - interrupted_at[0]
    print(json.dumps({
        "raised": raised,
        "interrupted": results.interrupted,
        "contents": [r.content if not isinstance(r, Exception) else f"failed: {r.kind}" for r in results],
        "unfinished": results.unfinished,
        "batch_threads": [t.name for t in threading.enumerate() if t.name.startswith("ai-lib-batch")],
        "returned_after_s": returned_after,
    }), flush=True)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("on_interrupt", ["raise", "return"])
def test_ctrl_c_marks_unfinished_items_then_propagates(on_interrupt):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, "-c", SIGINT_SCRIPT, on_interrupt], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        slow = 0
        while slow < 4:  # every worker is blocked on a 60 s reply
            line = process.stdout.readline()
            assert line, process.stderr.read()
            slow += line.count("SLOW")  # lines written by concurrent threads may merge
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["raised"] is (on_interrupt == "raise")
    assert report["interrupted"] is True
    assert report["contents"] == [f"Echo: fast {i}" for i in range(5)] + ["failed: connection"] * 20
    assert report["unfinished"] == list(range(5, 25))
    assert report["batch_threads"] == []
    print(f"batch returned {report['returned_after_s']:.3f}s after SIGINT")


# --- resources --------------------------------------------------------------------------------


def test_64_workers_open_at_most_64_connections(server, make_client):
    def handler(request):
        reply = openai_echo(request)
        reply.delay = 0.01
        return reply

    server.handler = handler
    client = make_client("openai/gpt-4o", prefix="/v1")
    results = client.batch([client.chat().user(f"q{i}") for i in range(640)], max_workers=64)
    assert all(isinstance(result, ChatResponse) for result in results)
    assert server.connections <= 64


def test_pool_grows_to_the_worker_count(server, make_client):
    def handler(request):
        reply = openai_echo(request)
        reply.delay = 0.01
        return reply

    server.handler = handler
    client = make_client("openai/gpt-4o", prefix="/v1", pool_maxsize=4)
    client.chat().user("warm up").execute()  # the session (and its 4-connection pool) exists
    results = client.batch([client.chat().user(f"q{i}") for i in range(300)], max_workers=12)
    assert all(isinstance(result, ChatResponse) for result in results)
    assert client.transport.pool_maxsize == 12
    # Without growing, every call beyond 4 at once would open and drop a connection.
    assert server.connections <= 12 + 1


SERVER_SCRIPT = textwrap.dedent("""
    import sys, time
    from ai_lib_sync.testing import LoopbackServer, openai_echo

    def handler(request):
        reply = openai_echo(request)
        reply.delay = 0.005
        return reply

    server = LoopbackServer(handler)
    print(server.port, flush=True)
    sys.stdin.read()  # until the test closes our stdin
""")


@pytest.fixture
def remote_server():
    """A loopback server in another process, so this process's threads and files are only ours."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    port = int(process.stdout.readline())
    yield f"http://127.0.0.1:{port}"
    process.stdin.close()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_threads_and_open_files_return_to_their_start(remote_server):
    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    threads_before = set(threading.enumerate())
    files_before = open_files()
    with AiClient("openai/gpt-4o", base_url=remote_server + "/v1", api_key="sk-test", max_retries=0) as client:
        results = client.batch([client.chat().user(f"q{i}") for i in range(200)], max_workers=32)
        with BatchExecutor(max_workers=8, client=client) as executor:
            mapped = list(executor.map(f"m{i}" for i in range(50)))
            submitted = executor.submit("s").result(timeout=10)
        assert open_files() > files_before  # the client's pool holds connections: we can see them
    assert [r.content for r in results] == [f"Echo: q{i}" for i in range(200)]
    assert [r.content for r in mapped] == [f"Echo: m{i}" for i in range(50)] and submitted.content == "Echo: s"
    # Threads of other tests' in-process servers may end meanwhile, never start: so "no new
    # thread" and "no more files than before" are the exact checks here.
    assert set(threading.enumerate()) - threads_before == set()
    assert open_files() <= files_before


# --- checkpoint / resume ----------------------------------------------------------------------


def test_checkpoint_and_resume(server, make_client, tmp_path):
    server.handler = failing_echo
    client = make_client("openai/gpt-4o", prefix="/v1")
    path = tmp_path / "run.jsonl"
    prompts = [f"q{i}" if i != 3 else "bad 3" for i in range(10)]
    first = client.batch([client.chat().user(p) for p in prompts], max_workers=4, checkpoint=path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(line["index"] for line in lines) == list(range(10))
    assert sum(not line["ok"] for line in lines) == 1

    # Second run: everything would now answer differently; done items must not be asked again.
    server.requests.clear()
    server.handler = lambda request: Reply(200, {"id": "x", "model": "gpt-4o", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "second run"}, "finish_reason": "stop"}]})
    prompts[5] = "q5 edited"
    progress = []
    second = client.batch([client.chat().user(p) for p in prompts], max_workers=4, checkpoint=path,
                          resume=True, on_progress=progress.append)
    assert sorted(prompt_of(request) for request in server.requests) == ["bad 3", "q5 edited"]
    for index in (0, 1, 2, 4, 6, 7, 8, 9):
        assert second[index].content == first[index].content
        assert second[index].usage == first[index].usage
        assert (second[index].provider, second[index].model) == (first[index].provider, first[index].model)
    assert second[3].content == second[5].content == "second run"
    assert (progress[-1].resumed, progress[-1].succeeded, progress[-1].failed) == (8, 2, 0)

    # A torn last line (killed mid-write) is dropped; resume goes on from the rest.
    with open(path, "ab") as handle:
        handle.write(b'{"index": 9, "key": "00')
    server.requests.clear()
    third = client.batch([client.chat().user(p) for p in prompts], max_workers=4, checkpoint=path, resume=True)
    assert server.requests == [] and [r.content for r in third] == [r.content for r in second]
    assert path.read_bytes().endswith(b"\n")

    # Without resume the file starts over.
    client.batch([client.chat().user("fresh")], checkpoint=path)
    assert [json.loads(line)["index"] for line in path.read_text().splitlines()] == [0]


# --- progress ---------------------------------------------------------------------------------


def test_progress_callback_counts_tokens_and_failures(server, make_client):
    server.handler = failing_echo
    client = make_client("openai/gpt-4o", prefix="/v1")
    snapshots = []
    with BatchExecutor(max_workers=3, client=client, progress=snapshots.append) as executor:
        executor.run(["one two", "bad", "three"])
        final = executor.progress
    assert [snapshot.done for snapshot in snapshots] == [1, 2, 3]
    assert (final.total, final.succeeded, final.failed, final.done) == (3, 2, 1, 3)
    # echo usage: prompt = words of the prompt, completion = "Echo:" + the words
    assert (final.prompt_tokens, final.completion_tokens) == (3, 5)
    assert final.cost_usd == pytest.approx((3 * 2.5 + 5 * 10.0) / 1e6)


def test_progress_bar_uses_tqdm(server, make_client, capsys):
    pytest.importorskip("tqdm")
    server.handler = failing_echo
    client = make_client("openai/gpt-4o", prefix="/v1")
    client.batch([client.chat().user(p) for p in ("a", "bad", "c")], progress=True)
    err = capsys.readouterr().err
    assert "3/3" in err and "ok=2 failed=1" in err


def test_progress_without_tqdm_prints_a_line(server, make_client, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    server.handler = openai_echo
    client = make_client("openai/gpt-4o", prefix="/v1")
    client.batch([client.chat().user(p) for p in ("a", "b")], progress=True)
    err = capsys.readouterr().err
    assert "batch 2/2 ok=2 failed=0" in err


def test_executor_limits_are_validated():
    with pytest.raises(ConfigurationError):
        BatchExecutor(max_workers=0)
    with pytest.raises(ConfigurationError):
        BatchExecutor(rpm=-5)


def test_errors_are_ailiberrors_with_provider(server, make_client):
    server.handler = failing_echo
    client = make_client("openai/gpt-4o", prefix="/v1")
    [result] = client.batch([client.chat().user("boom")])
    assert isinstance(result, AiLibError) and result.kind == "server_error"
    assert (result.provider, result.model) == ("openai", "gpt-4o")


# --- issue 9: custom_id, ordered buffering, retries and throttling in progress -----------------


def test_custom_id_comes_back_and_is_never_sent(server, make_client, tmp_path):
    server.handler = failing_echo
    client = make_client("openai/gpt-4o", prefix="/v1")
    items = [{"custom_id": "doc-1", "messages": [{"role": "user", "content": "hello"}]},
             {"custom_id": 2, "messages": [{"role": "user", "content": "bad one"}]},
             {"custom_id": "doc-3", "messages": []},  # invalid before any request
             "no id"]
    path = tmp_path / "rows.jsonl"
    results = client.batch(items, max_workers=2, checkpoint=path)
    assert [getattr(r, "custom_id", None) for r in results] == ["doc-1", 2, "doc-3", None]
    assert results[0].content == "Echo: hello" and results[1].kind == "invalid_request"
    assert results[2].kind == "invalid_request"
    assert len(server.requests) == 3
    for request in server.requests:
        assert "custom_id" not in request.json
        assert set(request.json) == {"model", "messages"}
    rows = {row["index"]: row for row in map(json.loads, path.read_text().splitlines())}
    assert (rows[0]["custom_id"], rows[1]["custom_id"], rows[2]["custom_id"]) == ("doc-1", 2, "doc-3")
    assert "custom_id" not in rows[3]


def test_ordered_results_do_not_stall_the_pool_behind_a_slow_item(server, make_client):
    """Item 0 is held by the server; the two workers must keep serving every later item
    meanwhile (their results wait in the buffer), not stop at the in-flight window."""
    release = threading.Event()

    def handler(request):
        if prompt_of(request) == "p0":
            release.wait(20)
        return openai_echo(request)

    server.handler = handler
    client = make_client("openai/gpt-4o", prefix="/v1", timeout=30)
    outcome = []
    with BatchExecutor(max_workers=2, client=client, max_in_flight=2) as executor:
        runner = threading.Thread(target=lambda: outcome.append(executor.run([f"p{i}" for i in range(40)])))
        runner.start()
        wait_until(lambda: len(server.requests) == 40)  # all others answered while p0 waits
        assert not outcome
        release.set()
        runner.join(10)
    assert [r.content for r in outcome[0]] == [f"Echo: p{i}" for i in range(40)]


def test_progress_counts_retries_and_throttled_time(server, make_client):
    limited = Reply(429, {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
                    headers={"retry-after-ms": "200"})
    server.enqueue(limited, Reply(500, {"error": {"message": "oops", "type": "server_error"}}))
    server.handler = openai_echo
    client = make_client("openai/gpt-4o", prefix="/v1", max_retries=3)
    with BatchExecutor(max_workers=1, client=client) as executor:
        results = executor.run(["one", "two"])
        final = executor.progress
    assert [r.content for r in results] == ["Echo: one", "Echo: two"]
    assert final.retries == 2
    assert 0.19 <= final.throttled_s < 5  # the 429's Retry-After; the 500's backoff is not throttling
    assert "retries=2" in final.summary() and "throttled=0." in final.summary()


def test_checkpoint_rows_are_compact_and_resume_counts_tokens_and_cost(server, make_client, tmp_path):
    server.handler = openai_echo
    client = make_client("openai/gpt-4o", prefix="/v1")
    path = tmp_path / "compact.jsonl"
    first = client.batch([f"question {i}" for i in range(5)], checkpoint=path)
    row = json.loads(path.read_text().splitlines()[0])
    assert "raw" not in row and row["ok"] is True
    assert set(row) >= {"index", "key", "content", "usage", "cost_usd", "model", "provider"}
    progress = []
    second = client.batch([f"question {i}" for i in range(5)], checkpoint=path, resume=True,
                          on_progress=progress.append)
    assert [r.content for r in second] == [r.content for r in first]
    assert (progress[-1].resumed, progress[-1].succeeded) == (5, 0)
    assert progress[-1].total_tokens == sum(r.usage.total_tokens for r in first) > 0
    assert progress[-1].cost_usd == pytest.approx(5 * ((2 * 2.5 + 3 * 10.0) / 1e6))
    client.batch(["question 0"], checkpoint=path, checkpoint_raw=True)
    assert json.loads(path.read_text().splitlines()[0])["raw"]["choices"]
