"""``python -m benchmarks``: ai-lib-sync against the floor (raw ``requests``) and its peers.

Every number that matters is a ratio to a floor measured in the same run, with contenders
interleaved round by round (the order rotates each round) and medians reported: these
machines are noisy, absolute times are not. Each measurement runs in a fresh process
(``benchmarks.worker``) against a fake provider in another process (``benchmarks.fake_server``).
The full run writes ``benchmarks/RESULTS.md``; ``--smoke`` checks in seconds that it all works.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

from .contenders import BATCH, CONTENDERS, FLOOR, STREAM_REFERENCE, SUBJECT
from .fake_server import ServerProcess, measure_capacity

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCENARIOS = ("import", "percall", "stream", "concurrency", "retry")

FULL = {"rounds": 5, "import_rounds": 15, "calls": 2000, "stream_n": 20000, "conc_calls": 1000,
        "conc_delay": 0.05, "workers": 64, "fails": 2, "retry_after": 1, "retry_rounds": 1, "timeout": 180}
SMOKE = {"rounds": 1, "import_rounds": 1, "calls": 40, "stream_n": 500, "conc_calls": 48,
         "conc_delay": 0.01, "workers": 8, "fails": 2, "retry_after": 0, "retry_rounds": 1, "timeout": 120}

# Ratio limits from issue 5 (value / floor, so lower is better).
TARGETS = {"import": 1.25, "cpu": 1.2, "wall": 1.15, "stream": 1.2, "concurrency": 1.15, "rss": 1.3}
PACKAGES = ("requests", "urllib3", "sseclient-py", "tenacity", "openai", "anthropic", "litellm", "httpx")


def child_env(pycache: str) -> dict[str, str]:
    """Loopback only: no proxies; LiteLLM must not fetch its price map from the internet.

    Bytecode is cached (in ``pycache``, outside the tree) for every package alike, as after a
    ``pip install``: with ``PYTHONDONTWRITEBYTECODE`` a source checkout would be compiled on
    every import while site-packages keep their ``.pyc`` files, which is not a fair race."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = pycache
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rotate(items: list[Any], by: int) -> list[Any]:
    by %= max(len(items), 1)
    return items[by:] + items[:by]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- measurements ------------------------------------------------------------------------


def measure_imports(contenders: list[str], rounds: int, env: dict[str, str]) -> dict[str, float]:
    """Milliseconds of ``python -c STATEMENT`` minus ``python -c pass``, median of rounds."""
    statements = ["pass"] + [s for name in contenders for s in CONTENDERS[name].import_statements]
    samples: dict[str, list[float]] = {s: [] for s in statements}
    for round_number in range(rounds):
        for statement in rotate(statements, round_number):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", statement], env=env, check=True, cwd=ROOT)
            samples[statement].append((time.perf_counter() - started) * 1000)
    bare = median(samples.pop("pass"))
    # Below zero is noise around a bare start-up (a lazy package can cost less than that noise).
    return {statement: max(0.0, median(values) - bare) for statement, values in samples.items()} | {"pass": bare}


def warm_up(server: ServerProcess, contenders: list[str], env: dict[str, str]) -> None:
    """One untimed call and stream per contender, so every module any of them touches is in
    the bytecode cache before the first measurement (a fresh cache would slow round 1)."""
    for name in contenders:
        spec = {"contender": name, "scenario": "warmup", "root": server.url(key=f"warm{name[:6]}", n=10), "n": 10}
        result = run_worker(spec, env, 300)
        if not result.get("ok"):
            log(f"  warm-up {name}: {result}")


def run_worker(spec: dict[str, Any], env: dict[str, str], timeout: float) -> dict[str, Any]:
    try:
        done = subprocess.run([sys.executable, "-m", "benchmarks.worker", json.dumps(spec)], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g}s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": f"worker exited {done.returncode}: {done.stderr.strip()[-300:]}"}
    return json.loads(lines[-1])


def measure(server: ServerProcess, scenario: str, contenders: list[str], cfg: dict[str, Any],
            env: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    rounds = cfg["retry_rounds"] if scenario == "retry" else cfg["rounds"]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
    for round_number in range(rounds):
        for name in rotate(contenders, round_number):
            key = f"{scenario[:4]}{round_number}{name[:6]}{uuid.uuid4().hex[:6]}"
            spec: dict[str, Any] = {"contender": name, "scenario": scenario}
            if scenario == "percall":
                spec.update(root=server.url(key=key), calls=cfg["calls"])
            elif scenario == "stream":
                spec.update(root=server.url(key=key, n=cfg["stream_n"]), n=cfg["stream_n"])
            elif scenario == "concurrency":
                spec.update(root=server.url(key=key, delay=cfg["conc_delay"]), calls=cfg["conc_calls"],
                            workers=cfg["workers"])
            else:
                spec.update(root=server.url(key=key, fail=429, fails=cfg["fails"], retry_after=cfg["retry_after"]),
                            max_retries=cfg["fails"])
            result = run_worker(spec, env, cfg["timeout"])
            if "error" not in result and scenario in ("concurrency", "retry"):
                stats = server.stats(key)
                result.update(connections=stats["connections"], attempts=stats["requests"])
            log(f"  {scenario} round {round_number + 1}/{rounds} {name}: {result}")
            results[name].append(result)
    return results


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of every numeric field over the rounds that ran; failed rounds are counted."""
    errors = [s["error"] for s in samples if "error" in s]
    good = [s for s in samples if "error" not in s]
    summary: dict[str, Any] = {"error": errors[0], "failed_rounds": len(errors)} if errors else {}
    if good:
        summary["ok"] = all(s.get("ok", True) for s in good)
        for field in good[0]:
            if isinstance(good[0][field], (int, float)) and not isinstance(good[0][field], bool):
                summary[field] = median([s[field] for s in good])
    summary["rounds"] = len(samples)
    return summary


# --- report ------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def ratio(value: float | None, floor: float | None) -> float | None:
    if value is None or floor is None or floor <= 0:
        return None
    return value / floor


def verdict(value: float | None, limit: float) -> str:
    return "-" if value is None else ("pass" if value <= limit else "MISS")


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def label(name: str) -> str:
    return CONTENDERS[name].label


def build_report(data: dict[str, Any], cfg: dict[str, Any]) -> tuple[str, bool]:
    """Markdown of all tables, and whether every measurement ran and answered correctly."""
    sections: list[str] = []
    target_rows: list[list[str]] = []
    healthy = True

    def target(what: str, subject: float | None, floor: float | None, limit: float, unit: str) -> None:
        r = ratio(subject, floor)
        target_rows.append([what, fmt(subject) + unit, fmt(floor) + unit, fmt(r), f"<= {limit}", verdict(r, limit)])

    imports = data.get("import")
    if imports:
        rows = []
        floor_ms = imports.get("import requests")
        for statement, ms in imports.items():
            if statement != "pass":
                rows.append([f"`{statement}`", fmt(ms, 1), fmt(ratio(ms, floor_ms))])
        sections.append("### 1. Import time (whole process, minus bare `python -c pass` = "
                        f"{fmt(imports['pass'], 1)} ms)\n\n" + table(["statement", "ms", "x import requests"], rows))
        for statement in CONTENDERS[SUBJECT].import_statements:
            if statement in imports:
                target(f"`{statement}` vs `import requests`", imports[statement], floor_ms, TARGETS["import"], " ms")

    percall = data.get("percall")
    if percall:
        floor = percall.get(FLOOR, {})
        rows = []
        for name, s in percall.items():
            healthy &= _healthy(name, s)
            rows.append([label(name), fmt(s.get("wall_us"), 0), fmt(ratio(s.get("wall_us"), floor.get("wall_us"))),
                         fmt(s.get("cpu_us"), 0), fmt(ratio(s.get("cpu_us"), floor.get("cpu_us"))), _status(s)])
        sections.append(f"### 2. Per call: {cfg['calls']:,} sequential non-streamed calls (median of rounds)\n\n"
                        + table(["client", "wall us/call", "x floor", "client CPU us/call", "x floor", "ok"], rows))
        subject = percall.get(SUBJECT, {})
        target("per call client CPU", subject.get("cpu_us"), floor.get("cpu_us"), TARGETS["cpu"], " us")
        target("per call wall time", subject.get("wall_us"), floor.get("wall_us"), TARGETS["wall"], " us")

    streams = data.get("stream")
    if streams:
        floor = streams.get(FLOOR, {}).get("deltas_per_s")
        reference = streams.get(STREAM_REFERENCE, {}).get("deltas_per_s")
        rows = []
        for name, s in streams.items():
            healthy &= _healthy(name, s)
            rate = s.get("deltas_per_s")
            rows.append([label(name), fmt(rate, 0), fmt(ratio(floor, rate)), fmt(ratio(reference, rate)),
                         fmt(s.get("cpu_us_per_delta"), 1), _status(s)])
        sections.append(f"### 3. Stream: one {cfg['stream_n']:,}-delta stream, deltas/s delivered to user code\n\n"
                        + table(["client", "deltas/s", "x slower than iter_lines", "x slower than sseclient-py",
                                 "client CPU us/delta", "ok"], rows))
        subject_rate = streams.get(SUBJECT, {}).get("deltas_per_s")
        r = ratio(reference, subject_rate)
        target_rows.append(["stream deltas/s, slowdown vs sseclient-py alone", fmt(subject_rate, 0) + "/s",
                            fmt(reference, 0) + "/s", fmt(r), f"<= {TARGETS['stream']}", verdict(r, TARGETS["stream"])])

    conc = data.get("concurrency")
    if conc:
        ideal = cfg["conc_calls"] * cfg["conc_delay"] / cfg["workers"]
        floor = conc.get(FLOOR, {})
        rows = []
        for name, s in conc.items():
            healthy &= _healthy(name, s)
            rows.append([label(name), fmt(s.get("seconds"), 3), fmt(ratio(s.get("seconds"), ideal)),
                         fmt(ratio(s.get("seconds"), floor.get("seconds"))), fmt(s.get("connections"), 0),
                         fmt(s.get("rss_mb"), 1), fmt(ratio(s.get("rss_mb"), floor.get("rss_mb"))),
                         fmt(s.get("cpu_s"), 3), _status(s)])
        sections.append(f"### 4. Concurrency: {cfg['conc_calls']:,} calls, {cfg['conc_delay'] * 1000:g} ms server "
                        f"delay, {cfg['workers']} threads (ideal {ideal:.3f} s)\n\n"
                        + table(["client", "wall s", "x ideal", "x floor", "TCP connections", "peak RSS MB",
                                 "x floor", "client CPU s", "ok"], rows))
        subject = conc.get(SUBJECT, {})
        target(f"{cfg['conc_calls']:,} x {cfg['conc_delay'] * 1000:g} ms at {cfg['workers']} threads, wall",
               subject.get("seconds"), floor.get("seconds"),
               TARGETS["concurrency"], " s")
        connections = subject.get("connections")
        target_rows.append(["TCP connections in that run", fmt(connections, 0), fmt(floor.get("connections"), 0),
                            "-", f"<= {cfg['workers']} (workers)",
                            "-" if connections is None else ("pass" if connections <= cfg["workers"] else "MISS")])
        target("peak RSS in that run", subject.get("rss_mb"), floor.get("rss_mb"), TARGETS["rss"], " MB")
        batch = conc.get(BATCH)
        if batch:
            target("the same through `BatchExecutor` (`client.batch`), wall", batch.get("seconds"),
                   floor.get("seconds"), TARGETS["concurrency"], " s")
            target("`BatchExecutor` peak RSS", batch.get("rss_mb"), floor.get("rss_mb"), TARGETS["rss"], " MB")

    retry = data.get("retry")
    if retry:
        expected_attempts = cfg["fails"] + 1
        rows = []
        for name, s in retry.items():
            healthy &= _healthy(name, s)
            honoured = s.get("seconds", 0) >= cfg["fails"] * cfg["retry_after"]
            rows.append([label(name), fmt(s.get("seconds"), 3), fmt(s.get("attempts"), 0),
                         "yes" if s.get("ok") and "error" not in s else "no",
                         "yes" if honoured and s.get("attempts") == expected_attempts else "no", _status(s)])
        sections.append(f"### 5. Retry: 429 x{cfg['fails']} with `Retry-After: {cfg['retry_after']}`, then 200 "
                        f"(max_retries={cfg['fails']})\n\n"
                        + table(["client", "total s", "attempts", "succeeded",
                                 f"waited as told, {expected_attempts} attempts", "ok"], rows))
        subject = retry.get(SUBJECT, {})
        floor = retry.get(FLOOR, {})
        good = subject.get("ok") and subject.get("attempts") == expected_attempts
        target_rows.append(["retry on 429 x2, Retry-After honoured", fmt(subject.get("seconds"), 3) + " s",
                            fmt(floor.get("seconds"), 3) + " s", fmt(ratio(subject.get("seconds"), floor.get("seconds"))),
                            f"succeeds in {expected_attempts} attempts", "pass" if good else "MISS"])

    head = table(["target (ai-lib-sync vs floor)", "ai-lib-sync", "floor", "ratio", "limit", "result"], target_rows)
    return "## Targets\n\n" + head + "\n\n## Measurements\n\n" + "\n\n".join(sections), healthy


def _healthy(name: str, summary: dict[str, Any]) -> bool:
    """A peer's failure is reported, not fatal; the floors' and ai-lib-sync's are."""
    return CONTENDERS[name].peer or ("error" not in summary and summary.get("ok", False))


def _status(summary: dict[str, Any]) -> str:
    text = "yes" if summary.get("ok") else ("WRONG ANSWER" if "ok" in summary else "no")
    if "error" in summary:
        text += f" ({summary['failed_rounds']} of {summary['rounds']} rounds failed: "
        parts = summary["error"].replace("|", "/").split(" <- ")  # outermost <- ... <- root cause
        text += (parts[0][:100] + (" <- ... <- " + parts[-1][:100] if len(parts) > 1 else "")) + ")"
    return text


def machine_facts() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    import ai_lib_sync

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    subject = f"ai-lib-sync {ai_lib_sync.__version__}" + (f" (commit {commit.stdout.strip()}, plus the working tree)"
                                                          if commit.returncode == 0 else "")
    return {"date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "cpu": f"{os.cpu_count()} cores, {model}",
            "python": f"{platform.python_implementation()} {platform.python_version()} on {platform.platform()}",
            "packages": ", ".join([subject, *versions])}


def render(report: str, facts: dict[str, str], capacity: dict[str, float], cfg: dict[str, Any],
           contenders: list[str], skipped: list[str]) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Written by `python -m benchmarks` (see `benchmarks/README.md`). Ratios are to the floor "
        "measured in the same run (lower is better); each figure is the median of "
        f"{cfg['rounds']} interleaved rounds ({cfg['import_rounds']} for imports), each in a fresh process.",
        "",
        f"- Date: {facts['date']}",
        f"- Machine: {facts['cpu']}",
        f"- Python: {facts['python']}",
        f"- Packages: {facts['packages']}",
        f"- Contenders: {', '.join(label(name) for name in contenders)}"
        + (f"; skipped (not installed): {', '.join(skipped)}" if skipped else ""),
        f"- Fake server capacity (raw socket client, one keep-alive connection): "
        f"{capacity['requests_per_s']:,.0f} requests/s ({capacity['round_trip_us']:.0f} us round trip), "
        f"{capacity['stream_deltas_per_s']:,.0f} stream deltas/s",
        "",
        report,
    ]
    return "\n".join(lines) + "\n"


def executor_section(smoke: bool) -> str:
    """Issue 4's executor benchmarks (``benchmarks/executor_bench.py``), as they report
    themselves: waves, lazy-input memory, rpm limiting, 429 storms, Ctrl-C."""
    title = "### 6. Executor (`benchmarks/executor_bench.py`)\n\n"
    try:
        from . import executor_bench

        rows = executor_bench.run_all(smoke=smoke)
    except Exception as exc:  # another module's failure is reported, not fatal
        return title + f"Could not run: {type(exc).__name__}: {exc}"
    cells = [[str(row.get("name", "")), ", ".join(f"{key}={value}" for key, value in row.items() if key != "name")]
             for row in rows]
    return title + table(["measurement", "figures"], cells)


# --- entry point -------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts, seconds long; peers only if named")
    parser.add_argument("--contenders", help=f"comma-separated subset of: {', '.join(CONTENDERS)}")
    parser.add_argument("--scenarios", help=f"comma-separated subset of: {', '.join(SCENARIOS)}")
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 5; smoke 1)")
    parser.add_argument("--executor", action=argparse.BooleanOptionalAction, default=None,
                        help="append benchmarks/executor_bench.py's section (default: on for a full run "
                             "of all scenarios, off otherwise)")
    parser.add_argument("--output", help="where to write the markdown (default: benchmarks/RESULTS.md for a "
                                         "full run of all scenarios; nothing for --smoke)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = dict(SMOKE if args.smoke else FULL)
    if args.rounds:
        cfg["rounds"] = args.rounds
        cfg["import_rounds"] = 3 * args.rounds  # a process start is cheap and noisy
    scenarios = args.scenarios.split(",") if args.scenarios else list(SCENARIOS)
    unknown = [s for s in scenarios if s not in SCENARIOS]
    wanted = args.contenders.split(",") if args.contenders else list(CONTENDERS)
    unknown += [name for name in wanted if name not in CONTENDERS]
    if unknown:
        print(f"unknown scenario or contender: {', '.join(unknown)}", file=sys.stderr)
        return 2
    if args.smoke and not args.contenders:
        wanted = [name for name in wanted if not CONTENDERS[name].peer]
    for required in (STREAM_REFERENCE, SUBJECT, FLOOR):  # the floors are always measured
        if required not in wanted:
            wanted.insert(0, required)
    wanted = [name for name in CONTENDERS if name in wanted]
    contenders = [name for name in wanted if CONTENDERS[name].available()]
    skipped = [CONTENDERS[name].label for name in wanted if name not in contenders]
    data: dict[str, Any] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as pycache, \
            ServerProcess(max_seconds=cfg["timeout"] * 4) as server:
        env = child_env(pycache)
        capacity = measure_capacity(server.port, calls=200 if args.smoke else 2000,
                                    stream_len=cfg["stream_n"])
        log(f"fake server capacity: {capacity['requests_per_s']:,.0f} requests/s, "
            f"{capacity['stream_deltas_per_s']:,.0f} stream deltas/s")
        warm_up(server, contenders, env)
        if "import" in scenarios:
            log("import times ...")
            data["import"] = measure_imports([n for n in contenders if "import" in CONTENDERS[n].scenarios],
                                             cfg["import_rounds"], env)
        for scenario in scenarios:
            if scenario == "import":
                continue
            names = [name for name in contenders if scenario in CONTENDERS[name].scenarios]
            data[scenario] = {name: summarize(samples)
                              for name, samples in measure(server, scenario, names, cfg, env).items()}
    report, healthy = build_report(data, cfg)
    with_executor = args.executor if args.executor is not None else not (args.smoke or args.scenarios)
    if with_executor and (HERE / "executor_bench.py").is_file():
        log("executor benchmarks (executor_bench.py) ...")
        report += "\n\n" + executor_section(args.smoke)
    text = render(report, machine_facts(), capacity, cfg, contenders, skipped)
    print(text)
    output = args.output or (None if args.smoke or args.scenarios or args.contenders or args.rounds
                             else str(HERE / "RESULTS.md"))
    if output:
        Path(output).write_text(text, encoding="utf-8")
        log(f"wrote {output}")
    log(f"done in {time.perf_counter() - started:.1f} s")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
