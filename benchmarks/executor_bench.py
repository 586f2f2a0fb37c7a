"""Benchmarks of the batch executor (a script, not a test: nothing here asserts timings).

    python benchmarks/executor_bench.py            # the full run, about two minutes
    python benchmarks/executor_bench.py --smoke    # a few seconds, smaller numbers
    python benchmarks/executor_bench.py --json out.json

What it measures, each against a loopback server in a separate process (so the server does
not compete with the client for the GIL):

- waves: 1,000 requests at 50 ms server delay on 64 workers, against the ideal of
  ceil(1000 / 64) = 16 waves (0.8 s), and against raw ``requests`` on a ``ThreadPoolExecutor``;
- rss: peak resident memory while ``map`` consumes a 2,000,000-item generator (stub client, no
  HTTP, in a fresh process), sampled along the way: flat means the input is pulled lazily;
- rpm: requests per minute achieved with ``rpm=600`` over 20 s, against the target;
- storm: a server that answers 429 (retry-after 1 s) to everything for its first 3 s, with the
  adaptive limiter on and off: how many 429s the pool provoked;
- sigint: seconds from SIGINT to ``client.batch`` returning its partial results;
- failures (issue 9): 2,000 prompts at 64 workers against ``benchmarks/fake_server.py`` answering
  3% random 429s (``Retry-After: 1``) and 3% random 500s, then 3% of items that always fail:
  the openai SDK in a 64-thread ``ThreadPoolExecutor`` against the executor's ordered ``run``
  and unordered ``as_completed`` in the same run, rounds interleaved, median wall time, ratio
  to the SDK (goal <= 1.1).

``run_all(smoke)`` returns the rows (dicts) so other scripts can import and reuse them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SERVER = textwrap.dedent("""
    import json, sys, threading, time
    from ai_lib_sync.testing import LoopbackServer, Reply, openai_echo

    delay, storm = float(sys.argv[1]), float(sys.argv[2])
    state = {"first": None, "requests": 0, "limited": 0}
    lock = threading.Lock()

    def handler(request):
        if request.path == "/stats":
            return Reply(200, dict(state, first=None))
        if request.path == "/reset":
            with lock:
                state.update(first=None, requests=0, limited=0)
            return Reply(200, {})
        with lock:
            now = time.monotonic()
            state["first"] = state["first"] or now
            state["requests"] += 1
            limited = now - state["first"] < storm
            state["limited"] += limited
        if limited:
            return Reply(429, {"error": {"message": "Rate limit reached", "type": "requests",
                                         "code": "rate_limit_exceeded"}}, headers={"retry-after": "1"})
        reply = openai_echo(request)
        reply.delay = delay
        return reply

    server = LoopbackServer(handler)
    print(server.port, flush=True)
    sys.stdin.read()
""")


@contextmanager
def serve(delay: float = 0.0, storm: float = 0.0) -> Iterator[str]:
    """A loopback echo server in a child process; yields its base URL."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(delay), str(storm)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=env)
    try:
        yield f"http://127.0.0.1:{int(process.stdout.readline())}"
    finally:
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _client(base_url: str, **kwargs: Any) -> Any:
    from ai_lib_sync import AiClient

    kwargs.setdefault("max_retries", 0)
    return AiClient("openai/gpt-4o", base_url=base_url + "/v1", api_key="sk-bench-000000", **kwargs)


# --- waves ---------------------------------------------------------------------------------------


def bench_waves(requests_count: int = 1000, delay: float = 0.05, workers: int = 64) -> list[dict[str, Any]]:
    import requests as http
    from requests.adapters import HTTPAdapter

    ideal = math.ceil(requests_count / workers) * delay
    rows = []
    with serve(delay) as url:
        with _client(url) as client:
            client.batch([client.chat().user("warm") for _ in range(workers)], max_workers=workers)
            started = time.perf_counter()
            results = client.batch([client.chat().user(f"q{i}") for i in range(requests_count)], max_workers=workers)
            elapsed = time.perf_counter() - started
        ok = sum(getattr(r, "content", None) == f"Echo: q{i}" for i, r in enumerate(results))
        rows.append({"name": f"waves: {requests_count} req x {delay * 1000:.0f} ms, {workers} workers (executor)",
                     "seconds": round(elapsed, 3), "ideal_s": ideal, "ratio": round(elapsed / ideal, 2),
                     "ok": ok})

        session = http.Session()
        session.mount("http://", HTTPAdapter(pool_maxsize=workers))

        def post(number: int) -> str:
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"q{number}"}]}
            reply = session.post(url + "/v1/chat/completions", json=body, timeout=30,
                                 headers={"Authorization": "Bearer sk-bench-000000"})
            return reply.json()["choices"][0]["message"]["content"]

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(post, range(workers)))
            started = time.perf_counter()
            contents = list(pool.map(post, range(requests_count)))
            raw = time.perf_counter() - started
        session.close()
        rows.append({"name": "waves: same load, raw requests + ThreadPoolExecutor",
                     "seconds": round(raw, 3), "ideal_s": ideal, "ratio": round(raw / ideal, 2),
                     "ok": sum(c == f"Echo: q{i}" for i, c in enumerate(contents)),
                     "executor_vs_raw": round(elapsed / raw, 2)})
    return rows


# --- rss -----------------------------------------------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_child(items: int) -> dict[str, Any]:
    """Runs in a fresh process: ``map`` over a generator of ``items`` prompts, stub client."""
    import resource

    from ai_lib_sync.batch import BatchExecutor
    from ai_lib_sync.types import CallStats, ChatResponse, Usage

    class StubClient:
        model, model_id = "stub", "stub/stub"

        def execute_request(self, request: Any) -> tuple[ChatResponse, CallStats]:
            return (ChatResponse(content="ok", model="stub", provider="stub", usage=Usage(1, 1, 2)),
                    CallStats(1, 1, 2, provider="stub", model="stub"))

    samples = {}
    marks = {items // 10: "10%", items // 2: "50%", items - 1: "100%"}
    started = time.perf_counter()
    with BatchExecutor(max_workers=64, client=StubClient()) as executor:
        for index, _ in enumerate(executor.map(f"prompt number {n}" for n in range(items))):
            if index in marks:
                samples[marks[index]] = round(_rss_mb(), 1)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"items": items, "rss_mb": samples, "peak_mb": round(peak, 1), "seconds": round(elapsed, 1),
            "items_per_s": round(items / elapsed)}


def bench_rss(items: int = 2_000_000) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, __file__, "--rss-child", str(items)], capture_output=True,
                         text=True, env=env, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    growth = result["rss_mb"]["100%"] - result["rss_mb"]["10%"]
    return [{"name": f"rss: map over a {items:,}-item generator", "peak_mb": result["peak_mb"],
             "rss_mb": result["rss_mb"], "growth_10%_to_100%_mb": round(growth, 1),
             "seconds": result["seconds"], "items_per_s": result["items_per_s"]}]


# --- rpm -----------------------------------------------------------------------------------------


def bench_rpm(rpm: float = 600, seconds: float = 20.0, workers: int = 16) -> list[dict[str, Any]]:
    from ai_lib_sync.batch import BatchExecutor

    with serve(0.0) as url, _client(url) as client:
        done = []
        with BatchExecutor(max_workers=workers, client=client, rpm=rpm) as executor:
            for _ in executor.as_completed(f"r{n}" for n in range(10**9)):
                done.append(time.monotonic())
                if done[-1] - done[0] >= seconds:
                    break
    in_window = sum(1 for moment in done if moment - done[0] < seconds)
    achieved = in_window / seconds * 60
    return [{"name": f"rpm: target {rpm:g} over {seconds:g} s, {workers} workers", "achieved_rpm": round(achieved, 1),
             "error_pct": round((achieved - rpm) / rpm * 100, 2), "requests": in_window}]


# --- 429 storm -----------------------------------------------------------------------------------


def bench_storm(storm: float = 3.0, items: int = 256, workers: int = 32) -> list[dict[str, Any]]:
    import requests as http

    from ai_lib_sync.batch import BatchExecutor

    rows = []
    with serve(0.01, storm) as url:
        for adaptive in (True, False):
            http.post(url + "/reset", timeout=10)
            with _client(url, max_retries=8, max_retry_after=10) as client:
                started = time.perf_counter()
                with BatchExecutor(max_workers=workers, client=client, adaptive=adaptive) as executor:
                    results = executor.run([f"s{n}" for n in range(items)])
                    limiter = executor.limiter.snapshot()
                elapsed = time.perf_counter() - started
            stats = http.get(url + "/stats", timeout=10).json()
            rows.append({"name": f"storm: 429 for {storm:g} s, {workers} workers, adaptive={adaptive}",
                         "429s_served": stats["limited"], "requests": stats["requests"],
                         "ok": sum(getattr(r, "content", None) is not None for r in results),
                         "seconds": round(elapsed, 2), "concurrency_after": limiter["concurrency_limit"]})
    return rows


# --- sigint --------------------------------------------------------------------------------------

SIGINT_CHILD = textwrap.dedent("""
    import json, signal, sys, time
    hit = []

    def on_sigint(signum, frame):
        hit.append(time.monotonic())
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    from ai_lib_sync import AiClient
    client = AiClient("openai/gpt-4o", base_url=sys.argv[1] + "/v1", api_key="sk-bench-000000", timeout=120)
    sys.stdout.write("READY\\n")
    sys.stdout.flush()
    try:
        results = client.batch([client.chat().user(f"q{n}") for n in range(400)], max_workers=8)
    except KeyboardInterrupt as interrupted:  # re-raised after cleanup, carrying the results
        results = interrupted.results
    print(json.dumps({"after_s": time.monotonic() - hit[0], "finished": 400 - len(results.unfinished),
                      "interrupted": results.interrupted}))
""")


def bench_sigint() -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with serve(0.5) as url:  # every call takes 0.5 s: the batch is mid-flight when the signal comes
        process = subprocess.Popen([sys.executable, "-c", SIGINT_CHILD, url], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True, env=env)
        process.stdout.readline()
        time.sleep(1.2)
        sent = time.perf_counter()
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
        exited = time.perf_counter() - sent
    report = json.loads(out.strip().splitlines()[-1])
    return [{"name": "sigint: Ctrl-C mid-batch (8 workers, 0.5 s calls)", "returned_after_s": round(report["after_s"], 3),
             "process_exit_s": round(exited, 3), "finished_items": report["finished"],
             "interrupted": report["interrupted"]}]


# --- failures (issue 9) -----------------------------------------------------------------------


def _openai_pool(base_url: str, prompts: list[str], workers: int) -> list[Any]:
    """What a user of the openai SDK writes: one client, a thread pool, the SDK's own retries."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="sk-bench-000000", max_retries=2, timeout=60)

    def call(prompt: str) -> Any:
        try:
            reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": prompt}])
            return reply.choices[0].message.content
        except openai.APIError as error:
            return error

    try:
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(call, prompts))
    finally:
        client.close()


def _executor(base_url: str, prompts: list[str], workers: int, mode: str) -> list[Any]:
    from ai_lib_sync import AiClient, BatchExecutor

    with AiClient("openai/gpt-4o", base_url=base_url, api_key="sk-bench-000000", max_retries=2) as client:
        with BatchExecutor(max_workers=workers, client=client, adaptive=mode != "fixed") as executor:
            if mode == "unordered":
                results: list[Any] = [None] * len(prompts)
                for index, result in executor.as_completed(prompts):
                    results[index] = result
                return [getattr(r, "content", r) for r in results]
            return [getattr(r, "content", r) for r in executor.run(prompts)]


FAILURE_CONTENDERS = {
    "openai SDK + ThreadPoolExecutor": lambda url, prompts, workers: _openai_pool(url, prompts, workers),
    "executor run (ordered)": lambda url, prompts, workers: _executor(url, prompts, workers, "ordered"),
    "executor as_completed (unordered)": lambda url, prompts, workers: _executor(url, prompts, workers, "unordered"),
    "executor run, adaptive=False": lambda url, prompts, workers: _executor(url, prompts, workers, "fixed"),
}


def bench_failures(items: int = 2000, workers: int = 64, delay: float = 0.05, rounds: int = 3,
                   faults: tuple[tuple[str, str], ...] = (("random 3% 429 + 3% 500", "p429=0.03,p500=0.03"),
                                                          ("3% of items always 500", "poison=0.03"))
                   ) -> list[dict[str, Any]]:
    import importlib.util
    import statistics

    from benchmarks.fake_server import ServerProcess

    names = [name for name in FAILURE_CONTENDERS
             if not name.startswith("openai") or importlib.util.find_spec("openai") is not None]
    rows = []
    with ServerProcess() as server:
        for label, fault in faults:
            seconds: dict[str, list[float]] = {name: [] for name in names}
            ok: dict[str, int] = {}
            served: dict[str, dict[str, int]] = {}
            for round_number in range(rounds):
                prompts = [f"item {round_number}-{n}" for n in range(items)]
                order = names[round_number % len(names):] + names[:round_number % len(names)]
                for name in order:
                    key = f"f{abs(hash((label, name, round_number))) % 10**8}"
                    options = dict(item.split("=") for item in fault.split(","))
                    url = server.url(key=key, delay=delay, seed=round_number, **options) + "/v1"
                    started = time.perf_counter()
                    results = FAILURE_CONTENDERS[name](url, prompts, workers)
                    seconds[name].append(time.perf_counter() - started)
                    ok[name] = sum(isinstance(r, str) for r in results)
                    served[name] = server.stats(key)
            baseline = statistics.median(seconds[names[0]]) if names[0].startswith("openai") else None
            for name in names:
                median = statistics.median(seconds[name])
                row = {"name": f"failures: {label}, {items} x {delay * 1000:.0f} ms, {workers} workers, {name}",
                       "seconds": round(median, 2), "ok": ok[name], "requests": served[name]["requests"],
                       "429s": served[name]["limited"], "500s": served[name]["errors"]}
                if baseline:
                    row["x_openai"] = round(median / baseline, 2)
                rows.append(row)
    return rows


# --- driver --------------------------------------------------------------------------------------


def run_all(smoke: bool = False, only: list[str] | None = None) -> list[dict[str, Any]]:
    plan = {
        "waves": lambda: bench_waves(200, 0.05, 64) if smoke else bench_waves(),
        "rss": lambda: bench_rss(50_000) if smoke else bench_rss(),
        "rpm": lambda: bench_rpm(1200, 2.0) if smoke else bench_rpm(),
        "storm": lambda: bench_storm(1.0, 64, 16) if smoke else bench_storm(),
        "sigint": bench_sigint,
        "failures": lambda: bench_failures(400, 32, 0.05, 1) if smoke else bench_failures(),
    }
    rows: list[dict[str, Any]] = []
    for name, bench in plan.items():
        if only and name not in only:
            continue
        rows.extend(bench())
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = []
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        detail = ", ".join(f"{key}={value}" for key, value in row.items() if key != "name")
        lines.append(f"{row['name']:<{width}}  {detail}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="small numbers, a few seconds")
    parser.add_argument("--only", nargs="*", choices=["waves", "rss", "rpm", "storm", "sigint", "failures"])
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        print(json.dumps(rss_child(args.rss_child)))
        return 0
    rows = run_all(args.smoke, args.only)
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
