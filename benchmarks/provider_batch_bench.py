"""Provider batch submission at scale (issue 10): a 100,000-request job checked, encoded,
journalled, split at OpenAI's 50,000-requests-per-batch limit, uploaded and created against
the loopback OpenAI Batch API fake (tests/batchfakes), which runs in its own process so its
CPU and memory never count as ours.

Figures: submission wall time and peak RSS growth (VmHWM), next to a floor measured in the same run: the same requests written as
JSONL by hand (``json.dumps`` of ready-made line dicts) and sent with plain ``requests``
(multipart upload + create per 50,000 lines), with no checks and no journal.

    python -m benchmarks.provider_batch_bench            # 100,000 requests
    python -m benchmarks.provider_batch_bench --n 2000   # seconds
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LIMIT = 50_000


def _serve(queue: Any, stop: Any) -> None:
    from tests.batchfakes import OpenAIBatchFake

    with OpenAIBatchFake(max_requests=LIMIT) as fake:
        queue.put(fake.base_url)
        stop.wait()
        queue.put(fake.created)


def _vm_hwm_kb() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _prompts(n: int) -> list[str]:
    return [f"Summarise document {i}: the quick brown fox jumps over the lazy dog." for i in range(n)]


def floor(base_url: str, n: int) -> float:
    """Hand-written JSONL and two plain requests per 50,000 lines."""
    import requests

    started = time.perf_counter()
    prompts = _prompts(n)
    with requests.Session() as session:
        headers = {"Authorization": "Bearer test-key"}
        for start in range(0, n, LIMIT):
            data = "\n".join(json.dumps({"custom_id": f"item-{i}", "method": "POST", "url": "/v1/chat/completions",
                                         "body": {"model": "gpt-4o-mini", "messages": [
                                             {"role": "user", "content": prompts[i]}]}})
                             for i in range(start, min(start + LIMIT, n)))
            uploaded = session.post(base_url + "/files", headers=headers, data={"purpose": "batch"},
                                    files={"file": ("floor.jsonl", data.encode(), "application/jsonl")}, timeout=120)
            uploaded.raise_for_status()
            created = session.post(base_url + "/batches", headers=headers, timeout=120, json={
                "input_file_id": uploaded.json()["id"], "endpoint": "/v1/chat/completions",
                "completion_window": "24h"})
            created.raise_for_status()
    return time.perf_counter() - started


def ours(base_url: str, n: int, journal: str) -> tuple[float, int, list[str]]:
    from ai_lib_sync import AiClient

    with AiClient("openai/gpt-4o-mini", api_key="test-key", base_url=base_url, timeout=120) as client:
        started = time.perf_counter()
        job = client.submit_batch(_prompts(n), journal=journal)
        elapsed = time.perf_counter() - started
        return elapsed, job.total, job.provider_batch_ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args(argv)
    context = multiprocessing.get_context("spawn")
    queue, stop = context.Queue(), context.Event()
    server = context.Process(target=_serve, args=(queue, stop), daemon=True)
    server.start()
    try:
        base_url = queue.get(timeout=60)
        import requests  # noqa: F401

        import ai_lib_sync.batch.provider_jobs  # noqa: F401  (imports are not submission time)

        with tempfile.TemporaryDirectory() as tmp:
            journal = os.path.join(tmp, "jobs.sqlite")
            rss_before = _vm_hwm_kb()
            ours_s, total, batch_ids = ours(base_url, args.n, journal)
            rss_growth = _vm_hwm_kb() - rss_before
            journal_mb = sum(os.path.getsize(os.path.join(tmp, name)) for name in os.listdir(tmp)) / 1e6
            # Submitting the same requests again reattaches: no new batch, and how long that takes.
            again_s, _, again_ids = ours(base_url, args.n, journal)
        rss_floor = _vm_hwm_kb()
        floor_s = floor(base_url, args.n)
        floor_growth = _vm_hwm_kb() - rss_floor
    finally:
        stop.set()
    created = queue.get(timeout=60)
    server.join(timeout=10)
    expected = -(-args.n // LIMIT)
    ok = total == args.n and len(batch_ids) == expected and again_ids == batch_ids and created == expected + expected
    print(f"## Provider batch submission ({args.n:,} requests, OpenAI Batch API fake, {expected} provider batches)\n")
    print("| figure | ai-lib-sync submit_batch | floor (hand-written JSONL + requests) | ratio |")
    print("|---|---|---|---|")
    print(f"| submission wall time | {ours_s:.2f} s | {floor_s:.2f} s | {ours_s / floor_s:.2f}x |")
    print(f"| per request | {ours_s / args.n * 1e6:.1f} µs | {floor_s / args.n * 1e6:.1f} µs | |")
    print(f"| peak RSS growth (VmHWM; ours measured first) | {rss_growth / 1024:.1f} MB | "
          f"{floor_growth / 1024:.1f} MB (beyond ours) | |")
    print(f"| journal on disk (SQLite + WAL) | {journal_mb:.1f} MB | | |")
    print(f"| resubmitting the same job (re-checks every request, reattaches, 0 new batches) | {again_s:.2f} s | | |")
    print(f"\nprovider batches created by the two runs (ours, floor): {created - expected}, {expected}; "
          f"{'OK' if ok else 'WRONG'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
