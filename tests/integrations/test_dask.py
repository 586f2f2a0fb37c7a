"""map_chat on a real distributed.LocalCluster (2 worker processes) against a loopback provider
in this process: results, request bodies, one client per worker, and one budget for both."""

from __future__ import annotations

import threading
import time

import pytest

from ai_lib_sync.errors import ConfigurationError
from ai_lib_sync.testing import LoopbackServer, openai_echo

from ..redis_server import redis_url  # noqa: F401  (fixture)

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
dask_bag = pytest.importorskip("dask.bag")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=2,
                                  dashboard_address=None) as local, distributed.Client(local) as client:
        yield client


@pytest.fixture
def provider():
    arrivals: list[float] = []
    lock = threading.Lock()

    def handler(request):
        with lock:
            arrivals.append(time.monotonic())
        return openai_echo(request)

    with LoopbackServer(handler) as server:
        server.arrivals = arrivals
        yield server


def options(server) -> dict:
    return {"base_url": server.base_url + "/v1", "api_key": "test-key-123456", "max_retries": 0, "timeout": 10}


def busiest_second(arrivals: list[float]) -> int:
    arrivals = sorted(arrivals)
    return max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals)


@pytest.mark.parametrize("limiter", ["actor", "redis"])
def test_bag_of_requests_in_order_under_one_cluster_budget(cluster, provider, limiter, request):
    from ai_lib_sync.integrations.dask import map_chat

    spec = "actor" if limiter == "actor" else request.getfixturevalue("redis_url")
    items = [f"prompt {i}" if i % 3 else {"messages": [{"role": "user", "content": f"dict {i}"}],
                                          "custom_id": f"id-{i}"} for i in range(30)]
    bag = dask_bag.from_sequence(items, npartitions=4)
    out = map_chat(bag, model="openai/gpt-4o-mini", rpm=1200, client_options=options(provider),
                   limiter=spec, threads=4, temperature=0.25)
    records = out.compute()
    assert [r["content"] for r in records] == [
        f"Echo: prompt {i}" if i % 3 else f"Echo: dict {i}" for i in range(30)]
    assert [r["custom_id"] for r in records] == [None if i % 3 else f"id-{i}" for i in range(30)]
    assert all(r["error"] is None and r["total_tokens"] > 0 for r in records)
    assert all(r["cost_usd"] is not None for r in records)  # gpt-4o-mini is priced in its manifest
    assert len(provider.requests) == 30
    for recorded in provider.requests:  # what the provider received
        assert recorded.path == "/v1/chat/completions"
        assert recorded.headers["authorization"] == "Bearer test-key-123456"
        assert recorded.json["model"] == "gpt-4o-mini" and recorded.json["temperature"] == 0.25
    # 1200 rpm is 20 a second for the whole cluster, not per worker (4 partitions ran on 2
    # processes at once); one slot of slack for the window's edge
    assert busiest_second(provider.arrivals) <= 21


def test_series_of_prompts_gives_a_frame_and_one_client_per_worker(cluster, provider):
    pandas = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    from ai_lib_sync.integrations import dask as integration

    prompts = pandas.Series([f"p{i}" for i in range(12)], index=range(100, 112), name="prompt")
    series = dd.from_pandas(prompts, npartitions=3)
    frame = integration.map_chat(series, model="openai/gpt-4o-mini", client_options=options(provider),
                                 threads=2).compute()
    assert list(frame.index) == list(range(100, 112))
    assert list(frame["content"]) == [f"Echo: p{i}" for i in range(12)]
    assert frame["error"].isna().all() and (frame["prompt_tokens"] > 0).all()
    integration.map_chat(series, model="openai/gpt-4o-mini", client_options=options(provider)).compute()
    url = provider.base_url

    def clients_for_this_provider() -> int:
        from ai_lib_sync.integrations import dask as on_worker

        return sum(1 for client in on_worker._CLIENTS.values() if client.base_url.startswith(url))

    per_worker = cluster.run(clients_for_this_provider)
    assert sorted(per_worker.values()) in ([0, 1], [1, 1])  # reused across partitions and calls


def test_errors_become_records_not_lost_partitions(cluster):
    from ai_lib_sync.integrations.dask import map_chat

    with LoopbackServer(lambda request: openai_echo(request) if "ok" in request.body.decode()
                        else __import__("ai_lib_sync.testing", fromlist=["Reply"]).Reply(
                            400, {"error": {"message": "bad prompt", "type": "invalid_request_error"}})) as server:
        bag = dask_bag.from_sequence(["ok 1", "nope", "ok 2"], npartitions=2)
        records = map_chat(bag, model="openai/gpt-4o-mini", client_options=options(server)).compute()
    assert [r["error"] for r in records] == [None, "invalid_request", None]
    assert "bad prompt" in records[1]["error_message"] and records[1]["content"] is None


def test_bad_input_is_refused_before_any_call():
    from ai_lib_sync.integrations.dask import map_chat

    with pytest.raises(ConfigurationError, match="Bag"):
        map_chat(["a list"], model="openai/gpt-4o-mini")
    with pytest.raises(ConfigurationError, match="model"):
        map_chat(dask_bag.from_sequence(["x"]))
    with pytest.raises(ConfigurationError, match="rpm"):
        map_chat(dask_bag.from_sequence(["x"]), model="openai/gpt-4o-mini", rpm=0)


def test_worker_profiler_is_stopped_only_where_it_can_deadlock(cluster, provider):
    """CPython 3.11 before 3.11.9: Dask's profiler and the GC can deadlock a worker whose
    thread pool starts and stops threads (python/cpython#116969); map_chat stops the profiler
    of the workers it runs on there, and leaves it alone elsewhere."""
    from ai_lib_sync.integrations import dask as integration

    bag = dask_bag.from_sequence([f"p {n}" for n in range(8)], npartitions=4)
    records = integration.map_chat(bag, model="openai/gpt-4o-mini", client_options=options(provider)).compute()
    assert [r["error"] for r in records] == [None] * 8
    assert sorted(r.json["messages"][0]["content"] for r in provider.requests) == [f"p {n}" for n in range(8)]
    assert {r.path for r in provider.requests} == {"/v1/chat/completions"}

    def profiling(dask_worker):
        import os

        from ai_lib_sync.integrations import dask as on_worker

        return os.getpid() in on_worker._PROFILER_STOPPED, dask_worker.periodic_callbacks["profile"].is_running()

    states = list(cluster.run(profiling).values())
    assert integration._PROFILER_DEADLOCKS == ((3, 11) <= __import__("sys").version_info[:3] < (3, 11, 9))
    if integration._PROFILER_DEADLOCKS:
        assert any(stopped for stopped, _ in states), states  # a worker that ran a partition
        assert all(not running for stopped, running in states if stopped), states
    else:
        assert states == [(False, True)] * len(states), states
