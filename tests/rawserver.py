"""A raw-socket HTTP/1.1 server on loopback for lifecycle and deadline tests.

The test gives a behaviour ``handler(conn, index)`` that writes whatever bytes it likes (slow
headers, a stream kept open after its terminator, a close at the moment a pooled connection is
reused). The server records when each client connection was closed by the client, which is
how the tests see that leaving a stream early really closed the upstream connection.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable


class Conn:
    """One accepted connection, as the handler sees it."""

    def __init__(self, sock: socket.socket, server: RawServer) -> None:
        self.sock = sock
        self.server = server
        self.buffer = b""
        self.closed_by_client_at: float | None = None

    def read_request(self, timeout: float = 5.0) -> bytes | None:
        """Head and body of the next request, or None when the client closed."""
        self.sock.settimeout(timeout)
        try:
            while b"\r\n\r\n" not in self.buffer:
                data = self.sock.recv(65536)
                if not data:
                    return None
                self.buffer += data
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            while len(rest) < length:
                data = self.sock.recv(65536)
                if not data:
                    return None
                rest += data
        except OSError:
            return None
        self.buffer = rest[length:]
        request = head + b"\r\n\r\n" + rest[:length]
        self.server.requests.append(request)
        return request

    def send(self, data: bytes | str) -> bool:
        """Write ``data``; False (and the close recorded) when the client has gone."""
        if isinstance(data, str):
            data = data.encode()
        if self.client_gone():
            return False
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.mark_closed()
            return False

    def client_gone(self) -> bool:
        """Has the client closed its end? Checked without blocking."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
            if readable and not self.sock.recv(65536, socket.MSG_PEEK):
                self.mark_closed()
                return True
        except OSError:
            self.mark_closed()
            return True
        return False

    def wait_for_client_close(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.client_gone():
                return True
            time.sleep(0.01)
        return False

    def mark_closed(self) -> None:
        if self.closed_by_client_at is None:
            self.closed_by_client_at = time.monotonic()
            self.server.client_closes.append(self.closed_by_client_at)


Handler = Callable[[Conn, int], None]


class RawServer:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[bytes] = []
        self.client_closes: list[float] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._count = 0
        self._lock = threading.Lock()

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(2)

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        conn = Conn(sock, self)
        try:
            while not self._stop.is_set():
                with self._lock:
                    index = self._count
                    self._count += 1
                if self.handler(conn, index) is False:
                    break
        except OSError:
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass


def sse_chunk(payload: dict | str) -> bytes:
    """One chunked-encoding chunk carrying one OpenAI-style SSE event."""
    data = payload if isinstance(payload, str) else json.dumps(payload)
    frame = f"data: {data}\n\n".encode()
    return f"{len(frame):x}\r\n".encode() + frame + b"\r\n"


def delta(text: str) -> dict:
    return {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


def final_chunk() -> dict:
    return {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}


STREAM_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
               b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n")


def completion_body(text: str = "hello") -> bytes:
    return json.dumps({
        "id": "c1", "object": "chat.completion", "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }).encode()


def json_response(body: bytes, extra: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: keep-alive\r\n{extra}\r\n").encode() + body
