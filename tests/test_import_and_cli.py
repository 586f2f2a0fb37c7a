"""Import is cheap and inert; the CLI runs the offline provider without a key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ai_lib_sync.testing import openai_echo

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import socket, sys, threading, builtins
opened = []
real_open = builtins.open
def spy_open(file, *a, **k):
    opened.append(str(file)); return real_open(file, *a, **k)
builtins.open = spy_open
def no_network(*a, **k): raise AssertionError("network I/O during import")
socket.socket.connect = no_network
import ai_lib_sync
assert threading.active_count() == 1, "a thread was started"
assert not [f for f in opened if f.endswith(".json")], opened
heavy = [m for m in ("requests", "urllib3", "tenacity", "dataclasses_json", "sseclient", "ai_lib_sync.manifest") if m in sys.modules]
assert not heavy, heavy
print("ok", len(ai_lib_sync.providers()) > 1)
"""


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def test_import_does_no_io_starts_no_thread_and_parses_no_manifest():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=_env(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok True"


def test_cli_chat_uses_the_offline_provider_without_a_key():
    out = subprocess.run([sys.executable, "-m", "ai_lib_sync.cli", "chat", "Hello"], capture_output=True,
                         text=True, env=_env(), timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Echo: Hello\n"
    assert "offline" in out.stderr and "mock/echo" in out.stderr
    assert "[mock/echo] tokens=" in out.stderr


def test_cli_uses_a_provider_whose_key_is_set(server):
    server.handler = openai_echo
    env = _env(OPENAI_API_KEY="sk-cli-test", OPENAI_BASE_URL=server.base_url + "/v1")
    out = subprocess.run([sys.executable, "-m", "ai_lib_sync.cli", "chat", "--no-stream", "Hi there"],
                         capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Echo: Hi there\n" and "offline" not in out.stderr
    assert server.last.header("authorization") == "Bearer sk-cli-test"
    assert server.last.json["model"] == "gpt-4o-mini"


def test_cli_reports_errors_without_a_traceback(server):
    from ai_lib_sync.testing import Reply

    server.handler = lambda request: Reply(401, {"error": {"message": "bad key", "code": "invalid_api_key"}})
    env = _env(OPENAI_API_KEY="sk-cli-test", OPENAI_BASE_URL=server.base_url)
    out = subprocess.run([sys.executable, "-m", "ai_lib_sync.cli", "chat", "-m", "openai/gpt-4o", "Hi"],
                         capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    assert out.returncode == 1
    assert out.stderr.startswith("error: [authentication 401 openai/gpt-4o] bad key")


def test_cli_lists_providers():
    out = subprocess.run([sys.executable, "-m", "ai_lib_sync.cli", "providers"], capture_output=True,
                         text=True, env=_env(), timeout=60)
    assert out.returncode == 0 and {"openai", "mock"} <= set(out.stdout.split())


def test_bad_input_fails_before_any_request(server, make_client):
    from ai_lib_sync import InvalidRequestError

    client = make_client("openai/gpt-4o")
    cases = [
        lambda: client.chat().execute(),
        lambda: client.chat().system("only system").execute(),
        lambda: client.chat().user("x").temperature(2.5).execute(),
        lambda: client.chat().user("x").top_p(1.5).execute(),
        lambda: client.chat().user("x").max_tokens(0).execute(),
        lambda: client.chat().user("x").max_tokens(1.5),
        lambda: client.chat().user("x").temperature("hot"),
        lambda: client.chat().user("x").stop([""]),
        lambda: client.chat().user("x").tool_choice("lookup").execute(),
        lambda: client.chat().user("x").response_format({"type": "yaml"}).execute(),
        lambda: client.chat().user("x").stream(),
        lambda: client.chat().stream(),
    ]
    for case in cases[:-2]:
        with pytest.raises(InvalidRequestError):
            case()
    with pytest.raises(InvalidRequestError, match="conversation is empty"):
        cases[-1]()
    assert server.requests == []
