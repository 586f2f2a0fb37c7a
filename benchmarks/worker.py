"""One measurement of one contender, in a fresh process: ``python -m benchmarks.worker SPEC``.

A fresh process per measurement keeps contenders from sharing imports, pools, garbage or a
peak RSS, and keeps the fake server's CPU out of ``time.process_time()`` (the server runs in
its own process). The result is one JSON line on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .contenders import CONTENDERS
from .fake_server import CONTENT


def run(spec: dict[str, Any]) -> dict[str, Any]:
    contender = CONTENDERS[spec["contender"]]()
    scenario = spec["scenario"]
    contender.setup(spec["root"], max_retries=spec.get("max_retries", 0), pool=spec.get("workers", 64))
    try:
        if scenario == "percall":
            return percall(contender, spec["calls"], spec.get("warmup", 20))
        if scenario == "stream":
            return stream(contender, spec["n"])
        if scenario == "concurrency":
            return concurrency(contender, spec["calls"], spec["workers"])
        if scenario == "warmup":  # fills the bytecode cache for everything the contender touches
            ok = contender.call() == CONTENT and contender.stream() == spec["n"]
            if hasattr(contender, "run_many"):
                ok = ok and contender.run_many(2, 2) == [CONTENT, CONTENT]
            return {"ok": ok}
        if scenario == "retry":
            started = time.perf_counter()
            text = contender.call()
            return {"seconds": time.perf_counter() - started, "ok": text == CONTENT}
        raise ValueError(f"unknown scenario {scenario!r}")
    finally:
        contender.close()


def percall(contender: Any, calls: int, warmup: int) -> dict[str, Any]:
    for _ in range(warmup):
        contender.call()
    ok = True
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(calls):
        ok = contender.call() == CONTENT and ok
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"wall_us": wall / calls * 1e6, "cpu_us": cpu / calls * 1e6, "ok": ok}


def stream(contender: Any, n: int) -> dict[str, Any]:
    contender.call()  # warm the connection and the imports of the call path
    cpu0, wall0 = time.process_time(), time.perf_counter()
    count = contender.stream()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"deltas_per_s": count / wall, "cpu_us_per_delta": cpu / max(count, 1) * 1e6,
            "ok": count == n, "count": count}


def concurrency(contender: Any, calls: int, workers: int) -> dict[str, Any]:
    contender.call()  # imports and lazy set-up; its connection stays in the pool and counts
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if hasattr(contender, "run_many"):  # a contender with its own pool
        texts = contender.run_many(calls, workers)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            texts = list(pool.map(lambda _: contender.call(), range(calls)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"seconds": wall, "cpu_s": cpu, "rss_mb": peak_rss_mb(), "ok": all(text == CONTENT for text in texts)}


def peak_rss_mb() -> float:
    """This process's peak RSS. ``VmHWM`` first: Linux carries ``ru_maxrss`` over ``execve``,
    so a child would report its parent's peak whenever that was higher."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20 if sys.platform == "darwin" else 1024)


def describe(exc: BaseException) -> str:
    """The exception and its causes, innermost last: peers wrap the one that explains."""
    parts = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen and len(parts) < 6:
        seen.add(id(exc))
        parts.append(f"{type(exc).__name__}: {str(exc)[:160]}")
        exc = exc.__cause__ or exc.__context__
    return " <- ".join(parts)


def main() -> None:
    spec = json.loads(sys.argv[1])
    try:
        result = run(spec)
    except Exception as exc:  # reported, not raised: one broken peer must not stop the run
        result = {"error": describe(exc)}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
