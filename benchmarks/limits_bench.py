"""Shared rate-limit stores measured for issue 10: pyrate-limiter and limits against ours.

The job: one requests-per-minute and tokens-per-minute budget shared by processes; each call
reserves an estimate of its tokens and, after the reply, gives back (or adds) the difference
with its real usage; a cooldown seen by one process holds all of them. Each contender is
driven the way its documentation shows, at its best for this job:

- ``ours-sqlite`` / ``ours-redis``: ``ai_lib_sync.batch.shared_limits`` (one GCRA state for
  requests and tokens together, reserve / adjust / hold);
- ``pyrate-sqlite``: pyrate-limiter ``SQLiteBucket`` (sliding-window log, ``use_file_lock``)
  for requests and a second one for tokens (weight = tokens);
- ``pyrate-redis``: pyrate-limiter ``StateBucket(GCRA, RedisStateStore)``, one for requests and
  one for tokens;
- ``limits-redis``: limits ``MovingWindowRateLimiter`` over ``RedisStorage``, one item for
  requests and one for tokens (``cost=tokens``); limits has no SQLite storage.

Figures: (1) cost of one admission in one process, budget never binding (microseconds);
(2) four processes for a few seconds under a budget where reconciling matters: each call
reserves 200 tokens and really uses 100. With refunds the request limit binds and the
admitted rate reaches it; without them the token limit binds at half of it. Reported as the
admitted share of the request limit and the largest one-second count against the per-second
limit (over 1.0 = the budget was exceeded); (3) whether a cooldown recorded by one process
stops the others. The libraries' budgets are given per second (the same rate): per minute,
their windows would admit the whole minute's budget in the first instant of a short run.

    python benchmarks/limits_bench.py [--seconds 4] [--processes 4]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

RPS = 100  # request budget per second (6,000 rpm)
TPS = 10_000  # token budget per second (600,000 tpm)
ESTIMATE, ACTUAL = 200, 100  # tokens reserved per call, tokens it really used


class RedisServer:
    """A throwaway redis-server on a free loopback port (no persistence)."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        else:
            self.close()
            raise RuntimeError("redis-server did not start")
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- contenders: admit(tokens) -> 0.0 admitted | seconds to wait; settle(delta); hold(seconds)


class Ours:
    def __init__(self, spec: str, rps: float, tps: float) -> None:
        from ai_lib_sync.batch.shared_limits import open_budget

        self.budget = open_budget(spec, 1 / rps, 0.0, 1 / tps)

    def admit(self, tokens: int) -> float:
        return self.budget.reserve(tokens)

    def settle(self, delta: int) -> None:
        self.budget.adjust(delta)

    def hold(self, seconds: float) -> bool:
        self.budget.hold(seconds)
        return True


class PyrateSQLite:
    def __init__(self, path: str, rps: float, tps: float) -> None:
        from pyrate_limiter import Duration, Limiter, Rate, SQLiteBucket

        self.requests = Limiter(SQLiteBucket.init_from_file([Rate(int(rps), Duration.SECOND)], table="req",
                                                            db_path=path, use_file_lock=True))
        self.tokens = Limiter(SQLiteBucket.init_from_file([Rate(int(tps), Duration.SECOND)], table="tok",
                                                          db_path=path, use_file_lock=True))

    # blocking=True with a short timeout: with filelock 3.x, pyrate-limiter 4.5's file-locked
    # SQLite bucket raises on blocking=False (it hands the lock a bool as its timeout).
    def admit(self, tokens: int) -> float:
        if not self.requests.try_acquire("req", 1, blocking=True, timeout=0.05):
            return 0.001
        if not self.tokens.try_acquire("tok", tokens, blocking=True, timeout=0.05):
            return 0.001  # the request slot is spent all the same: two buckets, not one
        return 0.0

    def settle(self, delta: int) -> None:
        if delta > 0:
            self.tokens.try_acquire("tok", delta, blocking=True, timeout=0.05)
        # delta < 0: no refund (weights must be >= 0)

    def hold(self, seconds: float) -> bool:
        return False


class PyrateRedis(PyrateSQLite):
    def __init__(self, url: str, rps: float, tps: float) -> None:  # noqa: D401
        import redis
        from pyrate_limiter import GCRA, Duration, Limiter, Rate, RedisStateStore, StateBucket

        client = redis.Redis.from_url(url)
        self.requests = Limiter(StateBucket([Rate(int(rps), Duration.SECOND, burst=1)], GCRA(),
                                            RedisStateStore(client, "pyrate:req")))
        self.tokens = Limiter(StateBucket([Rate(int(tps), Duration.SECOND, burst=ESTIMATE)], GCRA(),
                                          RedisStateStore(client, "pyrate:tok")))

    def admit(self, tokens: int) -> float:  # non-blocking works here (no file lock)
        if not self.requests.try_acquire("req", 1, blocking=False):
            return 0.001
        if not self.tokens.try_acquire("tok", tokens, blocking=False):
            return 0.001  # the request slot is spent all the same
        return 0.0

    def settle(self, delta: int) -> None:
        if delta > 0:
            self.tokens.try_acquire("tok", delta, blocking=False)


class LimitsRedis:
    def __init__(self, url: str, rps: float, tps: float) -> None:
        from limits import RateLimitItemPerSecond
        from limits.storage import RedisStorage
        from limits.strategies import MovingWindowRateLimiter

        self.limiter = MovingWindowRateLimiter(RedisStorage(url))
        self.requests = RateLimitItemPerSecond(int(rps))
        self.tokens = RateLimitItemPerSecond(int(tps))

    def admit(self, tokens: int) -> float:
        if not self.limiter.hit(self.requests, "req"):
            return max(0.001, self.limiter.get_window_stats(self.requests, "req").reset_time - time.time())
        if not self.limiter.hit(self.tokens, "tok", cost=tokens):
            return 0.005
        return 0.0

    def settle(self, delta: int) -> None:
        if delta > 0:
            self.limiter.hit(self.tokens, "tok", cost=delta)

    def hold(self, seconds: float) -> bool:
        return False


def make(name: str, where: str, rps: float = RPS, tps: float = TPS) -> Any:
    if name == "ours-sqlite":
        return Ours(f"sqlite:///{where}?name=bench", rps, tps)
    if name == "ours-redis":
        return Ours(f"{where}?name=bench", rps, tps)
    if name == "pyrate-sqlite":
        return PyrateSQLite(where, rps, tps)
    if name == "pyrate-redis":
        return PyrateRedis(where, rps, tps)
    if name == "limits-redis":
        return LimitsRedis(where, rps, tps)
    raise ValueError(name)


def _cost(name: str, where: str, calls: int = 2000) -> float:
    store = make(name, where, 1e9, 1e12)
    started = time.perf_counter()
    for _ in range(calls):
        store.admit(ESTIMATE)
        store.settle(ACTUAL - ESTIMATE)
    return (time.perf_counter() - started) / calls * 1e6


def _worker(name: str, where: str, seconds: float, start_at: float, out: Any) -> None:
    store = make(name, where)
    while time.time() < start_at:
        time.sleep(0.001)
    stamps = []
    while time.time() < start_at + seconds:
        wait = store.admit(ESTIMATE)
        if wait > 0:
            time.sleep(min(wait, 0.05))
            continue
        stamps.append(time.time())
        store.settle(ACTUAL - ESTIMATE)
    out.put(stamps)


def _shared(name: str, where: str, processes: int, seconds: float) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    start_at = time.time() + 1.5  # spawn and imports first
    workers = [context.Process(target=_worker, args=(name, where, seconds, start_at, out))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    stamps = [stamp for _ in workers for stamp in out.get(timeout=seconds + 60)]
    for worker in workers:
        worker.join()
    per_second = Counter(int((stamp - start_at) * 4) for stamp in stamps)  # 250 ms bins
    peak = max(sum(per_second.get(b + i, 0) for i in range(4)) for b in range(int(seconds * 4) - 3))
    return {"admitted_share": len(stamps) / (RPS * seconds), "peak_1s_share": peak / RPS}


def _cooldown(name: str, where: str) -> str:
    """Process A records a 1 s cooldown; does process B (a fresh store) wait?"""
    if not make(name, where).hold(1.0):
        return "no API"
    other = make(name, where)
    wait = other.admit(ESTIMATE)
    return f"yes (other process told to wait {wait:.2f} s)" if wait > 0.5 else f"no (wait {wait:.2f} s)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--only", default="ours-sqlite,ours-redis,pyrate-sqlite,pyrate-redis,limits-redis")
    args = parser.parse_args(argv)
    rows = []
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        for index, name in enumerate(args.only.split(",")):
            if "redis" in name:
                import redis

                redis.Redis.from_url(server.url).flushdb()
                where = server.url
            else:
                where = os.path.join(tmp, f"{index}.db")
            try:
                cost = _cost(name, where if "redis" in name else where + ".cost")
                shared = _shared(name, where, args.processes, args.seconds)
                if "redis" in name:
                    redis.Redis.from_url(server.url).flushdb()
                cooldown = _cooldown(name, where if "redis" in name else where + ".hold")
            except ImportError as exc:
                print(f"{name}: skipped ({exc})", file=sys.stderr)
                continue
            rows.append((name, cost, shared, cooldown))
            print(f"{name}: {cost:.0f} us/admission, {shared}, cooldown shared: {cooldown}", file=sys.stderr)
    print(f"\n{args.processes} processes x {args.seconds:g} s; budget {RPS} requests/s and {TPS} tokens/s; "
          f"each call reserves {ESTIMATE} tokens and uses {ACTUAL}\n")
    print("| store | us per admission + settle (1 process) | admitted / request limit | "
          "busiest second / limit | cooldown seen by other processes |")
    print("|---|---|---|---|---|")
    for name, cost, shared, cooldown in rows:
        print(f"| {name} | {cost:.0f} | {shared['admitted_share']:.2f} | {shared['peak_1s_share']:.2f} | {cooldown} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
