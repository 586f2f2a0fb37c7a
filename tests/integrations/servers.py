"""Real WSGI servers (gunicorn, waitress) serving the examples on loopback, a streaming SSE
client, and headless Chromium: started and stopped by the tests, every wait bounded."""

from __future__ import annotations

import html
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from tests.conftest import _PREFIXES

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
APPS = {  # example -> (working directory, WSGI application)
    "flask": (EXAMPLES / "flask_chat", "app:app"),
    "django": (EXAMPLES / "django_chat", "chat_site.wsgi:application"),
}
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def app_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The test process's environment without any provider configuration, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith((*_PREFIXES, "CHAT_MODEL", "DJANGO"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


@dataclass
class RunningServer:
    name: str
    base_url: str
    process: subprocess.Popen
    log: IO[bytes]

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-4000:]


def gunicorn_argv(app: str, port: int, *, workers: int, threads: int, preload: bool) -> list[str]:
    pytest.importorskip("gunicorn", reason="gunicorn is not installed (pip install gunicorn)")
    argv = [sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--workers", str(workers),
            "--threads", str(threads), "--bind", f"127.0.0.1:{port}", "--timeout", "30",
            "--graceful-timeout", "2", "--log-level", "warning"]
    return argv + (["--preload"] if preload else []) + [app]


def waitress_argv(app: str, port: int, *, threads: int) -> list[str]:
    pytest.importorskip("waitress", reason="waitress is not installed (pip install waitress)")
    return [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}", f"--threads={threads}", app]


@contextmanager
def serving(name: str, example: str, argv_for: Any, env: Mapping[str, str]) -> Iterator[RunningServer]:
    """Start ``argv_for(app, port)`` in the example's directory; ready once ``/`` answers."""
    workdir, app = APPS[example]
    port = free_port()
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(argv_for(app, port), cwd=workdir, env=app_env(env), stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    server = RunningServer(name, f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_ready(server, port, timeout=20.0)
        yield server
    finally:
        _stop(process)
        log.close()


def _wait_ready(server: RunningServer, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"{server.name} exited with {server.process.returncode}:\n{server.output()}")
        try:
            status, _, _ = get(server.base_url + "/", timeout=2.0)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{server.name} did not answer within {timeout:g}s:\n{server.output()}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the server we started, SIGKILL its process group if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: only what this test started
    except (ProcessLookupError, PermissionError):
        pass
    process.wait(timeout=5)


def get(url: str, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """A whole GET: (status, lower-cased headers, body)."""
    parts = http.client.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def get_json(url: str) -> tuple[int, Any]:
    status, _, body = get(url)
    return status, json.loads(body)


@dataclass
class SseMessage:
    event: str
    data: Any
    at: float  # monotonic arrival time


@dataclass
class SseReader:
    """A streaming GET that parses server-sent events as they arrive."""

    status: int
    headers: dict[str, str]
    comments: list[str] = field(default_factory=list)
    _conn: Any = None
    _response: Any = None
    _sock: Any = None

    @classmethod
    def open(cls, url: str, timeout: float = 10.0) -> SseReader:
        parts = http.client.urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        conn.connect()
        sock = conn.sock
        conn.request("GET", f"{parts.path}?{parts.query}", headers={"Accept": "text/event-stream"})
        response = conn.getresponse()
        return cls(response.status, {k.lower(): v for k, v in response.getheaders()}, [], conn, response, sock)

    def messages(self) -> Iterator[SseMessage]:
        event, data = "message", []
        while True:
            line = self._response.readline()
            if not line:
                return
            line = line.decode().rstrip("\r\n")
            if not line:
                if data:
                    yield SseMessage(event, json.loads("\n".join(data)), time.monotonic())
                event, data = "message", []
            elif line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))

    def read_all(self) -> list[SseMessage]:
        try:
            return list(self.messages())
        finally:
            self.hang_up()

    def hang_up(self) -> float:
        """Close the connection as a browser closing its tab does; returns when."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._response.close()
        self._conn.close()
        self._sock.close()
        return time.monotonic()


def chromium_dom(url: str, timeout: float = 30.0) -> str:
    """The DOM of ``url`` after its scripts ran, from a fresh headless Chromium profile."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=15000",
                "--dump-dom", url]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate(timeout=5)
            raise AssertionError(f"chromium did not finish within {timeout:g}s: {err.decode()[-2000:]}") from None
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # the renderer and zygote children, if any are left
            except (ProcessLookupError, PermissionError):
                pass
    assert process.returncode == 0, err.decode()[-2000:]
    return out.decode()


def rendered_answer(dom: str) -> tuple[str, str, str]:
    """(state, answer text, status text) from the example page's DOM."""
    answer = re.search(r'<div id="answer" data-state="(\w+)">(.*?)</div>', dom, re.S)
    status = re.search(r'<p id="status">(.*?)</p>', dom, re.S)
    assert answer and status, f"the page has no answer element:\n{dom[:2000]}"
    return answer.group(1), html.unescape(answer.group(2)), html.unescape(status.group(1))
