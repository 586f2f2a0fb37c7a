"""Keeps ``python -m benchmarks`` working: its seconds-long smoke mode must run every scenario
against the fake provider, get correct answers from every client, and print the report.
No timing is asserted (benchmarks are scripts, not tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_smoke_run_prints_the_table():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "| target (ai-lib-sync vs floor) |" in out
    for heading in ("### 1. Import time", "### 2. Per call", "### 3. Stream", "### 4. Concurrency", "### 5. Retry"):
        assert heading in out
    for row in ("| raw requests (floor) |", "| sseclient-py alone |", "| ai-lib-sync |"):
        assert row in out
    assert "WRONG ANSWER" not in out and "rounds failed" not in out
