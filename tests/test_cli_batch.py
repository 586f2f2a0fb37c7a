"""``ai-lib-sync batch``: JSONL in, JSONL out, exit codes, malformed lines, --resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ai_lib_sync.cli import main
from ai_lib_sync.testing import Reply, openai_echo

ROOT = Path(__file__).resolve().parent.parent


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def openai_env(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-batch-test")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url + "/v1")
    return server


def test_1000_prompts_through_the_offline_provider(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(f"prompt {i}") + "\n" for i in range(1000)), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-m", "ai_lib_sync", "batch", str(source), "-o", str(out),
                           "-m", "mock/echo", "--workers", "16"], capture_output=True, text=True,
                          env=env, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    summary = done.stderr.strip().splitlines()[-1]
    assert summary.startswith("batch: 1000/1000 done, ok=1000 failed=0") and "wall=" in summary
    assert "cost=$" in summary and "tokens=5000" in summary
    result = rows(out)
    assert [row["line"] for row in result] == list(range(1, 1001))  # input order once complete
    assert [row["content"] for row in result] == [f"Echo: prompt {i}" for i in range(1000)]
    assert result[0]["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    assert result[0]["cost_usd"] == 0


def test_input_forms_custom_ids_and_options_reach_the_provider(openai_env, tmp_path, capsys):
    server = openai_env
    server.handler = openai_echo
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join([
        json.dumps("plain"),
        json.dumps({"prompt": "with id", "custom_id": "a-1"}),
        json.dumps({"messages": [{"role": "user", "content": "chat form"}], "custom_id": 7,
                    "temperature": 0.9}),
        json.dumps({"custom_id": "b-2", "method": "POST", "url": "/v1/chat/completions",
                    "body": {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "batch api"}]}}),
        "",
    ]) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code = main(["batch", str(source), "-o", str(out), "-m", "openai/gpt-4o-mini", "--system", "be brief",
                 "--max-tokens", "20", "--temperature", "0.1"])
    assert code == 0, capsys.readouterr().err
    bodies = {request.json["messages"][-1]["content"]: request.json for request in server.requests}
    assert len(server.requests) == 4
    for body in bodies.values():
        assert "custom_id" not in body
        assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert bodies["plain"]["model"] == "gpt-4o-mini" and bodies["plain"]["temperature"] == 0.1
    assert bodies["chat form"]["temperature"] == 0.9  # the line's own value wins
    assert bodies["batch api"]["model"] == "gpt-4o"
    assert [(row["line"], row.get("custom_id")) for row in rows(out)] == [(1, None), (2, "a-1"), (3, 7), (4, "b-2")]


def test_malformed_and_failed_lines_are_rows_and_exit_1(openai_env, tmp_path, capsys):
    server = openai_env
    server.handler = lambda request: (Reply(400, {"error": {"message": "refused", "type": "invalid_request_error"}})
                                      if "bad" in request.json["messages"][-1]["content"] else openai_echo(request))
    source = tmp_path / "in.jsonl"
    source.write_text('"one"\n{broken\n42\n"bad two"\n{"prompt": ""}\n"three"\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code = main(["batch", str(source), "-o", str(out), "-m", "openai/gpt-4o"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{source}:2: not valid JSON" in err and f"{source}:3: expected a prompt string" in err
    assert f"{source}:5:" in err
    result = rows(out)
    assert [row["ok"] for row in result] == [True, False, False, False, False, True]
    assert [row["error"]["kind"] for row in result if not row["ok"]] == ["invalid_request"] * 4
    assert result[1]["error"]["message"].startswith("line 2:")
    assert len(server.requests) == 3  # malformed lines never reach the provider
    assert "ok=2 failed=4" in err.strip().splitlines()[-1]


def test_resume_after_a_run_cut_short(openai_env, tmp_path, capsys):
    server = openai_env
    server.handler = openai_echo
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"prompt": f"q{i}", "custom_id": f"id{i}"}) + "\n" for i in range(30)),
                      encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["batch", str(source), "-o", str(out), "-m", "openai/gpt-4o"]) == 0
    # Simulate a run killed midway: only 12 rows made it to disk, the last one torn.
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:12]) + lines[12][:25])
    server.requests.clear()
    capsys.readouterr()
    assert main(["batch", str(source), "-o", str(out), "-m", "openai/gpt-4o", "--resume"]) == 0
    err = capsys.readouterr().err
    assert sorted(r.json["messages"][-1]["content"] for r in server.requests) == sorted(f"q{i}" for i in range(12, 30))
    assert "ok=30 failed=0 (resumed 12)" in err.strip().splitlines()[-1]
    assert "tokens=90" in err  # restored rows count their tokens too
    result = rows(out)
    assert [row["custom_id"] for row in result] == [f"id{i}" for i in range(30)]
    assert all(row["ok"] for row in result)
    # Without --resume the output starts over.
    server.requests.clear()
    assert main(["batch", str(source), "-o", str(out), "-m", "openai/gpt-4o"]) == 0
    assert len(server.requests) == 30


@pytest.mark.parametrize("argv", [
    ["batch", "{missing}", "-o", "{out}"],
    ["batch", "{source}", "-o", "{out}", "-m", "nosuchprovider/x"],
    ["batch", "{source}", "-o", "{out}", "--workers", "0"],
    ["batch", "{source}"],
])
def test_runs_that_cannot_start_exit_2(tmp_path, argv, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text('"hi"\n', encoding="utf-8")
    values = {"missing": str(tmp_path / "nope.jsonl"), "out": str(tmp_path / "out.jsonl"), "source": str(source)}
    argv = [part.format(**values) for part in argv]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse refusing an option
        code = exit_.code
    assert code == 2
    assert "error" in capsys.readouterr().err


def test_a_cached_rerun_makes_no_upstream_call(openai_env, tmp_path, capsys):
    server = openai_env
    server.handler = openai_echo
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(f"prompt {i}") + "\n" for i in range(50)), encoding="utf-8")
    cache = f"sqlite:///{tmp_path / 'cache.db'}"
    args = [str(source), "-m", "openai/gpt-4o-mini", "--cache", cache]
    assert main(["batch", *args, "-o", str(tmp_path / "first.jsonl")]) == 0
    assert len(server.requests) == 50
    assert main(["batch", *args, "-o", str(tmp_path / "second.jsonl")]) == 0
    assert len(server.requests) == 50  # every answer came from the cache
    first, second = rows(tmp_path / "first.jsonl"), rows(tmp_path / "second.jsonl")
    assert [row["content"] for row in second] == [row["content"] for row in first]
