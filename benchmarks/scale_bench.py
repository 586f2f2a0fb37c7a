"""Issue 10 at scale: one budget for many processes, Dask, and a million prompts.

Part ``limits``: the fake provider (``benchmarks/fake_server.py``) enforces a rolling
requests-per-minute and tokens-per-minute limit with 429s, like an account. Each setup is
given the provider's limits and asked for more requests than the limits allow in the run:

- (a) one process, ``BatchExecutor`` with 64 threads and an in-process ``RateLimiter``;
- (b) 4 processes, 16 threads each, sharing ``RateLimiter(backend="sqlite:///...")``;
- (c) ``map_chat`` on a ``distributed.LocalCluster`` (2 worker processes x 2 threads), the
  budget in a Dask actor (default) and in Redis (a throwaway redis-server).

Figures: accepted requests per second over the run as a share of the binding limit (goal
>= 0.95) and rejected attempts (429s) as a share of all attempts (goal <= 0.01). The binding
limit is tokens: every answer counts 15 tokens while the client estimates about 3 for each
prompt before the call, so only reconciling with each reply's usage keeps it under.

Part ``million``: prompts through the offline provider (``mock/echo``, its embedded loopback
server) with the executor and a checkpoint: peak RSS growth from 10% to 100% of the run (goal
< 50 MB), items/s; then resuming a 1,000,000-line checkpoint (every item restored, no call).

    python benchmarks/scale_bench.py --part limits [--seconds 20]
    python benchmarks/scale_bench.py --part million [--items 1000000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

RPS_LIMIT = 100  # provider's requests per second (6,000 rpm)
TOKENS_PER_ANSWER = 15  # fake_server.USAGE
TPS_LIMIT = 1200  # tokens per second (72,000 tpm): binds at 80 requests/s
WINDOW = 10  # seconds of the provider's rolling window
DELAY = 0.05


def _limits() -> tuple[float, float, float]:
    rpm, tpm = RPS_LIMIT * 60, TPS_LIMIT * 60
    return rpm, tpm, min(RPS_LIMIT, TPS_LIMIT / TOKENS_PER_ANSWER)


def _base(server: Any, key: str) -> str:
    rpm, tpm, _ = _limits()
    return server.url(key=key, delay=DELAY, rpm=int(rpm), tpm=int(tpm), window=WINDOW) + "/v1"


def _client(url: str) -> Any:
    from ai_lib_sync import AiClient

    return AiClient("openai/gpt-4o", base_url=url, api_key="bench-key", max_retries=5, timeout=30)


def exact_estimate(request: Any) -> int:
    """What the fake really charges per answer (the default estimator says about 3)."""
    return TOKENS_PER_ANSWER


ESTIMATORS = {"default": None, "exact": exact_estimate}


def _run_executor(url: str, items: int, threads: int, backend: str | None, estimate: str = "default") -> int:
    from ai_lib_sync.batch import BatchExecutor, RateLimiter

    rpm, tpm, _ = _limits()
    with _client(url) as client:
        limiter = RateLimiter(rpm, tpm, max_concurrent=threads, backend=backend)
        extra = {"estimate": ESTIMATORS[estimate]} if ESTIMATORS[estimate] else {}
        with BatchExecutor(threads, client=client, limiter=limiter, **extra) as executor:
            results = executor.run(f"prompt {n}" for n in range(items))
    return sum(1 for r in results if isinstance(r, Exception))


def _child(url: str, items: int, threads: int, backend: str, estimate: str, start_at: float, out: Any) -> None:
    while time.time() < start_at:
        time.sleep(0.005)
    out.put(_run_executor(url, items, threads, backend, estimate))


def _figures(server: Any, key: str, seconds: float, failed: int) -> dict[str, Any]:
    stats = server.stats(key)
    accepted = stats["requests"] - stats["limited"]
    limit = _limits()[2]
    return {"accepted": accepted, "attempts": stats["requests"], "rejected_429": stats["limited"],
            "failed_items": failed, "seconds": round(seconds, 2),
            "accepted_share_of_limit": round(accepted / seconds / limit, 3),
            "rejected_share": round(stats["limited"] / max(1, stats["requests"]), 4)}


def bench_limits(seconds: float, estimate: str = "default") -> list[dict[str, Any]]:
    from benchmarks.fake_server import ServerProcess

    limit = _limits()[2]
    items = int(limit * seconds)
    rows = _Rows()
    with ServerProcess() as server:
        # (a) one process, 64 threads
        started = time.perf_counter()
        failed = _run_executor(_base(server, f"a-{estimate}"), items, 64, None, estimate)
        rows.append({"name": f"(a) 1 process x 64 threads, in-process limiter, estimate={estimate}",
                     **_figures(server, f"a-{estimate}", time.perf_counter() - started, failed)})
        # (b) 4 processes sharing SQLite
        with tempfile.TemporaryDirectory() as tmp:
            backend = f"sqlite:///{os.path.join(tmp, 'limits.db')}"
            context = multiprocessing.get_context("spawn")
            out = context.Queue()
            start_at = time.time() + 2.0
            children = [context.Process(target=_child, args=(_base(server, f"b-{estimate}"), items // 4, 16, backend,
                                                              estimate, start_at, out)) for _ in range(4)]
            for child in children:
                child.start()
            failed = sum(out.get(timeout=seconds * 10 + 60) for _ in children)
            elapsed = time.time() - start_at
            for child in children:
                child.join()
        rows.append({"name": f"(b) 4 processes x 16 threads, backend=sqlite, estimate={estimate}",
                     **_figures(server, f"b-{estimate}", elapsed, failed)})
        # (c) Dask
        rows += bench_dask(server, items, estimate)
    return rows


class _Rows(list):
    """Rows printed as they are measured (a run cut short still reports what it measured)."""

    def append(self, row: dict[str, Any]) -> None:
        print(json.dumps(row), flush=True)
        super().append(row)

    def __iadd__(self, rows: Any) -> _Rows:
        for row in rows:
            self.append(row)
        return self


def bench_dask(server: Any, items: int, estimate: str = "default") -> list[dict[str, Any]]:
    try:
        import dask.bag as db
        import distributed
    except ImportError:
        return [{"name": "(c) Dask: skipped (pip install 'ai-lib-sync[dask]')"}]
    from ai_lib_sync.integrations.dask import map_chat
    from benchmarks.limits_bench import RedisServer

    rpm, tpm, _ = _limits()
    rows = []
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=2,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        client.run(lambda: __import__("ai_lib_sync.integrations.dask"))  # imports before the clock
        with RedisServer() as redis_server:
            for name, limiter in (("actor", "actor"), ("redis", redis_server.url)):
                key = f"c-{name}-{estimate}"
                bag = db.from_sequence([f"prompt {n}" for n in range(items)], npartitions=8)
                records = map_chat(bag, model="openai/gpt-4o", rpm=rpm, tpm=tpm, limiter=limiter, threads=16,
                                   estimate=ESTIMATORS[estimate],
                                   client_options={"base_url": _base(server, key), "api_key": "bench-key",
                                                   "max_retries": 5, "timeout": 30})
                started = time.perf_counter()
                failed = sum(1 for r in records.compute() if r["error"])
                rows.append({"name": f"(c) Dask LocalCluster 2 workers x 2 threads, limiter={name}, "
                                     f"estimate={estimate}",
                             **_figures(server, key, time.perf_counter() - started, failed)})
    return rows


# --- a million prompts ---------------------------------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def million_child(items: int, path: str) -> dict[str, Any]:
    """In a fresh process: ``items`` prompts through mock/echo with a checkpoint (the embedded
    server keeps only its last 1,000 requests, so what grows is the executor's memory)."""
    from ai_lib_sync import AiClient
    from ai_lib_sync.batch import BatchExecutor

    marks = {max(0, items // 10 - 1): "10%", items // 2: "50%", items - 1: "100%"}
    rss, peak = {}, {}
    started = time.perf_counter()
    with AiClient("mock/echo") as client, BatchExecutor(16, client=client, checkpoint=path) as executor:
        for index, _ in enumerate(executor.map(f"prompt number {n}" for n in range(items))):
            if index in marks:
                rss[marks[index]], peak[marks[index]] = round(_rss_mb(), 1), round(_peak_mb(), 1)
    elapsed = time.perf_counter() - started
    return {"items": items, "rss_mb": rss, "peak_mb": peak,
            "seconds": round(elapsed, 1),
            "items_per_s": round(items / elapsed)}


def resume_child(lines: int, path: str) -> dict[str, Any]:
    """In a fresh process: write a ``lines``-line checkpoint, then resume it (all restored)."""
    from ai_lib_sync import AiClient
    from ai_lib_sync.batch import BatchExecutor
    from ai_lib_sync.batch.checkpoint import Checkpoint, encode_row, make_row, request_key
    from ai_lib_sync.types import CallStats, ChatRequest, ChatResponse, Message, Usage

    client = AiClient("mock/echo")
    started = time.perf_counter()
    with open(path, "wb") as handle:
        for n in range(lines):
            prompt = f"prompt number {n}"
            request = ChatRequest(model=client.model, messages=[Message.user(prompt)])
            response = ChatResponse(content=f"Echo: {prompt}", model="echo", provider="mock", usage=Usage(3, 4, 7))
            handle.write(encode_row(make_row(n, request_key(client.model_id, request), response,
                                             CallStats(3, 4, 7, provider="mock", model="echo"))))
    written = time.perf_counter() - started
    size_mb = os.path.getsize(path) / 2**20
    started = time.perf_counter()
    loaded = Checkpoint(path, resume=True)
    load_s = time.perf_counter() - started
    loaded.close()
    started = time.perf_counter()
    with BatchExecutor(16, client=client, checkpoint=path, resume=True) as executor:
        done = sum(1 for _ in executor.map(f"prompt number {n}" for n in range(lines)))
        resumed = executor.progress.resumed
    run_s = time.perf_counter() - started
    client.close()
    return {"lines": lines, "file_mb": round(size_mb, 1), "write_s": round(written, 1),
            "load_s": round(load_s, 2), "resume_run_s": round(run_s, 1), "resumed": resumed, "returned": done,
            "peak_mb": round(_peak_mb(), 1)}


def bench_million(items: int, lines: int) -> list[dict[str, Any]]:
    import subprocess

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode, count in (("--million-child", items), ("--resume-child", lines)):
            out = subprocess.run([sys.executable, __file__, mode, str(count), os.path.join(tmp, f"{mode}.jsonl")],
                                 capture_output=True, text=True, check=True, cwd=ROOT).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    for row in rows[:1]:
        row["growth_10%_to_100%_mb"] = round(row["peak_mb"]["100%"] - row["peak_mb"]["10%"], 1)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["limits", "million", "all"], default="all")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--estimate", default="default,exact",
                        help="token estimators to run: default (about 3 tokens a prompt), exact (15)")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--million-child", nargs=2)
    parser.add_argument("--resume-child", nargs=2)
    args = parser.parse_args(argv)
    if args.million_child:
        print(json.dumps(million_child(int(args.million_child[0]), args.million_child[1])))
        return 0
    if args.resume_child:
        print(json.dumps(resume_child(int(args.resume_child[0]), args.resume_child[1])))
        return 0
    if args.part in ("limits", "all"):
        for estimate in args.estimate.split(","):
            bench_limits(args.seconds, estimate)  # prints each row as it is measured
    if args.part in ("million", "all"):
        for row in bench_million(args.items, args.lines):
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
