"""``ai-lib-sync chat`` (stdin, --json, --temperature), ``validate`` and ``models``."""

from __future__ import annotations

import io
import json

from ai_lib_sync.cli import main
from ai_lib_sync.testing import openai_echo


def test_chat_reads_stdin_and_prints_json(server, monkeypatch, capsys):
    server.handler = openai_echo
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-chat-test")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url + "/v1")
    monkeypatch.setattr("sys.stdin", io.StringIO("from stdin\n"))
    assert main(["chat", "-", "-m", "openai/gpt-4o", "--json", "--temperature", "0.3"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["response"]["content"] == "Echo: from stdin"
    assert printed["stats"]["prompt_tokens"] == 2 and "latency_ms" in printed["stats"]
    body = server.last.json
    assert body["messages"] == [{"role": "user", "content": "from stdin"}]
    assert body["temperature"] == 0.3 and "stream" not in body


def test_chat_no_stream_prints_the_text(server, monkeypatch, capsys):
    server.handler = openai_echo
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-chat-test")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url + "/v1")
    assert main(["chat", "--no-stream", "-m", "openai/gpt-4o", "hello"]) == 0
    assert capsys.readouterr().out == "Echo: hello\n"


def test_validate_the_shipped_manifests(capsys):
    from ai_lib_sync.manifest import builtin_dir

    assert main(["validate", str(builtin_dir())]) == 0
    assert capsys.readouterr().out == ""


def test_validate_reports_every_problem_with_file_and_field(tmp_path, capsys):
    (tmp_path / "broken.json").write_text(json.dumps(
        {"id": "broken", "dialect": "openai_chat", "endpoint": 3, "auth": {"type": "none"}, "bogus": 1}))
    (tmp_path / "wrongid.json").write_text(json.dumps(
        {"id": "other", "dialect": "openai_chat", "endpoint": {"base_url": "https://example.com", "chat_path": "/c"},
         "auth": {"type": "none"}}))
    (tmp_path / "notjson.json").write_text("{")
    (tmp_path / "fine.json").write_text(json.dumps({"extends": "openai", "id": "fine", "name": "Mine"}))
    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"{tmp_path / 'broken.json'}: endpoint: expected object, found 3" in out
    assert f"{tmp_path / 'broken.json'}: bogus: unknown field" in out
    assert any(line.startswith(f"{tmp_path / 'wrongid.json'}: id: ") for line in out)
    assert any(line.startswith(f"{tmp_path / 'notjson.json'}: <root>: not valid JSON") for line in out)
    assert not any("fine.json" in line for line in out)
    assert main(["validate", str(tmp_path / "fine.json")]) == 0
    assert main(["validate", str(tmp_path / "missing.json")]) == 2


def test_models_lists_windows_prices_and_capabilities(capsys):
    assert main(["models", "mock", "--json"]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["model"] == "mock/echo"
    assert (row["context_window"], row["max_output_tokens"]) == (8192, 4096)
    assert (row["input_per_mtok"], row["output_per_mtok"]) == (0, 0)
    assert "streaming" in row["capabilities"]
    assert main(["models"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["model", "context", "max"]
    assert any(line.startswith("openai/") for line in table) and any(line.startswith("mock/echo") for line in table)
    assert row["currency"] == "USD"
    assert main(["models", "zhipu", "--json"]) == 0
    zhipu = {r["model"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert zhipu["zhipu/glm-5.3"]["currency"] == "CNY"  # open.bigmodel.cn bills in yuan
    assert main(["models", "nosuchprovider"]) == 2
