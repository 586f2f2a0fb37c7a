"""The crash-safe journal of provider batch jobs: one SQLite file (stdlib ``sqlite3``).

A provider batch is paid work that cannot be taken back, so every step that creates one is
written down before and after it happens, in its own committed transaction:

- ``jobs``: one row per submitted job: its key (a hash of the model id and every request's
  fingerprint, so the same requests map to the same job), the provider, the model id.
- ``items``: one row per request: its index, fingerprint, the custom id sent to the provider,
  the caller's own ``custom_id`` label, the provider batch (``chunk``) it travels in, and its
  encoded wire line, so ``BatchJob.resume`` can finish a submission without the requests.
- ``chunks``: one row per provider batch: ``planned`` -> ``uploaded`` (input file id, where
  the API takes a file) -> ``creating`` (written *before* the create call, with the time) ->
  ``created`` (the provider's batch id, written right after the call returned).

A crash between ``creating`` and ``created`` leaves the one ambiguous window: the provider
may or may not have made the batch. ``provider_jobs`` then looks for it at the provider by a
marker (input file id, batch metadata or display name) before it creates anything.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    rowid INTEGER PRIMARY KEY,
    key TEXT UNIQUE NOT NULL,
    provider TEXT NOT NULL,
    model_id TEXT NOT NULL,
    total INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    job INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    custom_id TEXT NOT NULL,
    label TEXT,
    chunk INTEGER NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (job, idx)
);
CREATE INDEX IF NOT EXISTS items_chunk ON items (job, chunk);
CREATE TABLE IF NOT EXISTS chunks (
    job INTEGER NOT NULL,
    chunk INTEGER NOT NULL,
    model TEXT NOT NULL,
    size INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    state TEXT NOT NULL,
    file_id TEXT,
    batch_id TEXT,
    attempt_at REAL,
    PRIMARY KEY (job, chunk)
);
"""


@dataclass
class ChunkRow:
    """One provider batch of a job, as the journal knows it."""

    chunk: int
    model: str
    size: int
    bytes: int
    state: str
    file_id: str | None
    batch_id: str | None
    attempt_at: float | None


class Journal:
    """A job journal at ``path`` (``None``: in memory, for a job nobody needs to resume).
    Safe to share between threads (one connection, one lock); every write commits."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = ":memory:" if path is None else os.fspath(path)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL" if path is not None else "PRAGMA journal_mode=MEMORY")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigurationError(f"cannot open the batch journal {self.path!r}: {exc}") from None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Journal({self.path!r})"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- planning: one transaction for the whole job ---------------------------------------

    def begin_job(self, provider: str, model_id: str) -> int:
        """Start writing a new job under a provisional key; ``finish_job`` names it."""
        self._lock.acquire()
        self._db.execute("BEGIN IMMEDIATE")
        cursor = self._db.execute("INSERT INTO jobs (key, provider, model_id, created_at) VALUES (?, ?, ?, ?)",
                                  ("pending-" + uuid.uuid4().hex, provider, model_id, time.time()))
        return int(cursor.lastrowid)  # type: ignore[arg-type]

    def add_items(self, rows: list[tuple[int, int, str, str, str | None, int, str]]) -> None:
        """``(job, idx, fingerprint, custom_id, label, chunk, line)`` rows (inside begin_job)."""
        self._db.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def add_chunk(self, job: int, chunk: int, model: str, size: int, size_bytes: int) -> None:
        self._db.execute("INSERT INTO chunks (job, chunk, model, size, bytes, state) VALUES (?, ?, ?, ?, ?, 'planned')",
                         (job, chunk, model, size, size_bytes))

    def find_job(self, key: str) -> int | None:
        row = self._db.execute("SELECT rowid FROM jobs WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def finish_job(self, job: int, key: str, total: int) -> int:
        """Commit the planned job under ``key``; when a job with that key is already in the
        journal (the same requests were submitted before), drop this one and return that."""
        try:
            existing = self.find_job(key)
            if existing is not None:
                self._db.execute("ROLLBACK")
                return existing
            self._db.execute("UPDATE jobs SET key = ?, total = ? WHERE rowid = ?", (key, total, job))
            self._db.execute("COMMIT")
            return job
        finally:
            self._lock.release()

    def abort_job(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        finally:
            self._lock.release()

    # --- reading ---------------------------------------------------------------------------

    def job_row(self, job: int) -> tuple[str, str, str, int]:
        """(key, provider, model_id, total)."""
        with self._lock:
            row = self._db.execute("SELECT key, provider, model_id, total FROM jobs WHERE rowid = ?", (job,)).fetchone()
        if row is None:
            raise ConfigurationError(f"{self.path}: no job {job}")
        return row[0], row[1], row[2], int(row[3])

    def jobs(self) -> list[tuple[int, str]]:
        """(rowid, key) of every committed job, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT rowid, key FROM jobs WHERE key NOT LIKE 'pending-%' ORDER BY rowid").fetchall()
        return [(int(rowid), key) for rowid, key in rows]

    def chunks(self, job: int) -> list[ChunkRow]:
        with self._lock:
            rows = self._db.execute("SELECT chunk, model, size, bytes, state, file_id, batch_id, attempt_at "
                                    "FROM chunks WHERE job = ? ORDER BY chunk", (job,)).fetchall()
        return [ChunkRow(*row) for row in rows]

    def lines(self, job: int, chunk: int) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT line FROM items WHERE job = ? AND chunk = ? ORDER BY idx",
                                    (job, chunk)).fetchall()
        return [row[0] for row in rows]

    def items(self, job: int, batch: int = 10_000) -> Iterator[tuple[int, str, str | None, int]]:
        """(idx, custom_id, label, chunk) in input order, read in pages."""
        last = -1
        while True:
            with self._lock:
                rows = self._db.execute("SELECT idx, custom_id, label, chunk FROM items WHERE job = ? AND idx > ? "
                                        "ORDER BY idx LIMIT ?", (job, last, batch)).fetchall()
            if not rows:
                return
            yield from rows
            last = rows[-1][0]

    # --- the submission steps, each committed on its own -------------------------------------

    def _update(self, sql: str, args: tuple[Any, ...]) -> None:
        with self._lock:
            self._db.execute(sql, args)

    def chunk_uploaded(self, job: int, chunk: int, file_id: str) -> None:
        self._update("UPDATE chunks SET state = 'uploaded', file_id = ? WHERE job = ? AND chunk = ?",
                     (file_id, job, chunk))

    def chunk_creating(self, job: int, chunk: int, at: float) -> None:
        """Written before the create call: from here on the provider may hold the batch."""
        self._update("UPDATE chunks SET state = 'creating', attempt_at = ? WHERE job = ? AND chunk = ?",
                     (at, job, chunk))

    def chunk_created(self, job: int, chunk: int, batch_id: str) -> None:
        self._update("UPDATE chunks SET state = 'created', batch_id = ? WHERE job = ? AND chunk = ?",
                     (batch_id, job, chunk))
