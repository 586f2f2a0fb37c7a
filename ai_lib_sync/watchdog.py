"""Deadlines that hold whatever the sender does.

Socket timeouts bound each ``recv``; a server that drips one byte every 0.1 s never trips
them, and http.client reads a status line and headers in many small ``recv`` calls we cannot
step between. So each attempt arms a deadline here, and one daemon thread per process shuts
down the socket of any connection whose deadline passed: the blocked read returns at once
and the transport reports a timeout. Arming and disarming cost a lock and a heap push.

The thread starts on the first armed deadline (never at import) and again in a forked child,
where the parent's thread does not exist.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from typing import Any


class Deadline:
    """One armed deadline. ``fired`` tells the reader its socket was cut for lateness."""

    __slots__ = ("when", "connection", "fired", "cancelled")

    def __init__(self, when: float, connection: Any) -> None:
        self.when = when
        self.connection = connection
        self.fired = False
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        self.connection = None


class _Watchdog:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._counter = itertools.count()
        self._wake = threading.Condition(threading.Lock())
        self._thread = threading.Thread(target=self._loop, name="ai-lib-sync-deadlines", daemon=True)
        self._thread.start()

    def arm(self, when: float, connection: Any) -> Deadline:
        deadline = Deadline(when, connection)
        with self._wake:
            earliest = self._heap[0][0] if self._heap else None
            heapq.heappush(self._heap, (when, next(self._counter), deadline))
            if earliest is None or when < earliest:
                self._wake.notify()
        return deadline

    def _loop(self) -> None:
        while True:
            due: list[Deadline] = []
            with self._wake:
                now = time.monotonic()
                heap = self._heap
                while heap and (heap[0][2].cancelled or heap[0][0] <= now):
                    deadline = heapq.heappop(heap)[2]
                    if not deadline.cancelled:
                        due.append(deadline)
                if not due:
                    self._wake.wait(heap[0][0] - now if heap else None)
            for deadline in due:
                connection = deadline.connection
                if connection is None or deadline.cancelled:
                    continue
                deadline.fired = True
                shutdown_socket(connection)


def shutdown_socket(connection: Any) -> None:
    """Shut an HTTP connection's socket down both ways: a read blocked on it in any thread
    returns at once. Takes no lock, so it is safe anywhere (finalizers included)."""
    sock = getattr(connection, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


_instance: _Watchdog | None = None
_start_lock = threading.Lock()


def _forget_in_child() -> None:
    """A forked child has no watchdog thread, and a lock the parent held stays held forever."""
    global _instance, _start_lock
    _instance, _start_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)


def arm(seconds: float, connection: Any) -> Deadline:
    """Cut ``connection``'s socket ``seconds`` from now unless the deadline is cancelled first."""
    global _instance
    watchdog = _instance
    if watchdog is None:
        with _start_lock:
            if _instance is None:
                _instance = _Watchdog()
            watchdog = _instance
    return watchdog.arm(time.monotonic() + seconds, connection)
