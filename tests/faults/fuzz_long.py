"""The long fuzz run (opt-in, not collected: its name does not start with ``test_``).

    python tests/faults/fuzz_long.py [examples per property, default 20000]

Runs every property of tests/faults/test_properties.py under the ``faults-long`` hypothesis
profile and prints the duration and the number of examples tried.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    examples = sys.argv[1] if len(sys.argv) > 1 else "20000"
    env = {**os.environ, "HYPOTHESIS_PROFILE": "faults-long", "FUZZ_EXAMPLES": examples}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/faults/test_properties.py", "-q", "-p", "no:randomly",
         "--hypothesis-show-statistics", "-o", "timeout=0"],
        cwd=ROOT, env=env, capture_output=True, text=True)
    minutes = (time.monotonic() - started) / 60
    tried = sum(int(n) for n in re.findall(r"- (\d+) passing examples", result.stdout))
    print(result.stdout[-3000:])
    print(f"fuzz: {tried} examples in {minutes:.1f} min (max {examples} per property), exit {result.returncode}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
