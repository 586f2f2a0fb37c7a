"""``client.submit_batch(requests, journal=PATH)``: many requests through the provider's own
Batch API (usually half price, answered within the provider's window), as one ``BatchJob``.

Requests take the executor's forms (builders, prompt strings, message lists, ``ChatRequest``,
OpenAI-style dicts with an optional ``custom_id`` label) and are normalised by the executor's
own code, then encoded by the chat dialects (``encode_batch_item`` wraps ``encode_request``, so
tools, stop sequences, images and schemas travel as in a direct call). Every check runs before
the first byte is sent. Past the manifest's per-batch limits (requests, bytes) the job is split
into several provider batches; results are matched back by the custom id each line was sent
with (``item-<index>``), never by position, and returned in input order.

What the journal guarantees (``journal``; see ``batch.journal``):

- the same requests submitted again with the same journal return the existing job, whatever
  state it is in: no second provider batch;
- after a crash or ``kill -9`` at any point, ``BatchJob.resume(journal=PATH, client=...)`` (or
  the same ``submit_batch`` call) finishes the submission from the journal without creating a
  batch twice: a chunk whose create call was in flight is first looked for at the provider by
  its marker: the input file id (file APIs), ``metadata.ai_lib_sync_job`` (OpenAI, Groq,
  Mistral), the display name (Gemini), or, for Anthropic, whose batches carry no metadata, a
  batch of exactly that many requests created after the attempt that no journal row claims
  (more than one such batch raises ``AmbiguousBatchError`` instead of guessing);
- a crash after a file upload and before its journal row leaves an unused input file at the
  provider (files are not billed as requests); it is uploaded again.

Create calls are never retried blindly: after an ambiguous failure (timeout, 5xx) the batch is
looked for first. What the journal cannot protect against: another process submitting the
same job with a different journal, and (Anthropic only) a lost create answer while another
batch of the very same size is created in the same minutes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import (
    AiLibError,
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    InvalidRequestError,
    ServerError,
    make_error,
)
from ..params import check_request
from ..transport import RetryPolicy, Transport
from ..types import CallStats, ChatResponse
from .journal import ChunkRow, Journal
from .provider_wire import FAMILIES, BatchState, Family

if TYPE_CHECKING:  # pragma: no cover
    from ..client import AiClient

TERMINAL = frozenset({"completed", "failed", "cancelled", "expired"})
_ROWS_PER_WRITE = 5000


class BatchItemExpired(APITimeoutError):
    """The provider's window closed before this request ran (kind ``timeout``)."""


class BatchItemCancelled(APIConnectionError):
    """The batch was cancelled before this request ran (kind ``connection``)."""


class BatchItemMissing(ServerError):
    """The provider finished the batch without a result for this request's custom id."""


class AmbiguousBatchError(ConfigurationError):
    """A create call was cut off and more than one batch at the provider could be it."""


class BatchCounts:
    """Requests of the job: ``total``, ``succeeded``, ``failed`` (errored, expired or
    cancelled), ``processing`` (the rest)."""

    __slots__ = ("total", "succeeded", "failed")

    def __init__(self, total: int, succeeded: int, failed: int) -> None:
        self.total, self.succeeded, self.failed = total, succeeded, failed

    @property
    def processing(self) -> int:
        return max(self.total - self.succeeded - self.failed, 0)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BatchCounts) and (self.total, self.succeeded, self.failed) == (
            other.total, other.succeeded, other.failed)

    def __repr__(self) -> str:
        return (f"BatchCounts(total={self.total}, succeeded={self.succeeded}, failed={self.failed}, "
                f"processing={self.processing})")


def batch_spec(manifest: Any) -> dict[str, Any]:
    spec = manifest.data.get("batch")
    if not spec:
        raise ConfigurationError(f"{manifest.id} has no provider Batch API in its manifest (no 'batch' section); "
                                 "client.batch() runs the requests on a thread pool instead")
    return spec


def combine(statuses: list[str]) -> str:
    """One status for a job split into several provider batches."""
    distinct = set(statuses)
    if len(distinct) == 1:
        return statuses[0]
    if distinct <= TERMINAL:
        for status in ("cancelled", "failed", "expired"):
            if status in distinct:
                return status
        return "completed"
    open_ = distinct - TERMINAL
    if "cancelling" in open_:
        return "cancelling"
    if open_ == {"finalizing"}:
        return "finalizing"
    return "in_progress"


def _limit(name: str, manifest_value: Any, option: Any) -> float:
    if option is not None and (isinstance(option, bool) or not isinstance(option, int) or option < 1):
        raise ConfigurationError(f"{name} must be a whole number >= 1, got {option!r}")
    values = [value for value in (manifest_value, option) if value]
    return min(values) if values else float("inf")


def submit_batch(client: AiClient, requests: Iterable[Any], journal: str | os.PathLike[str] | None = None,
                 *, max_requests: int | None = None, max_bytes: int | None = None) -> BatchJob:
    """See ``AiClient.submit_batch``. ``max_requests``/``max_bytes`` can only lower the
    manifest's per-batch limits (smaller provider batches finish and fail independently)."""
    manifest = client.binding.manifest
    spec = batch_spec(manifest)
    family_name = spec.get("api")
    if family_name not in FAMILIES:
        raise ConfigurationError(f"{manifest.id}: unknown batch api {family_name!r}")
    limit_n = _limit("max_requests", spec.get("max_requests"), max_requests)
    limit_b = _limit("max_bytes", spec.get("max_bytes"), max_bytes)
    if isinstance(requests, (str, bytes, Mapping)) or not isinstance(requests, Iterable):
        raise InvalidRequestError("requests must be a list (or iterable) of requests, not a single "
                                  f"{type(requests).__name__}")
    store = Journal(journal)
    try:
        job = _plan(client, store, requests, spec, limit_n, limit_b)
    except BaseException:
        store.close()
        raise
    batch_job = BatchJob(client, store, job)
    batch_job.submit_pending()
    return batch_job


def _plan(client: AiClient, store: Journal, requests: Iterable[Any], spec: dict[str, Any],
          limit_n: float, limit_b: float) -> int:
    """Normalise, check and encode every request, assign it to a provider batch, and write it
    all to the journal in one transaction; no network I/O. Returns the job's row id (an
    existing job's when the same requests were journalled before)."""
    from .executor import BatchExecutor

    provider = client.provider
    hasher = hashlib.sha256(client.model_id.encode())
    job = store.begin_job(provider, client.model_id)
    open_chunks: dict[str, list[int]] = {}  # model -> [chunk, requests, bytes]
    next_chunk = 0
    rows: list[tuple[int, int, str, str, str | None, int, str]] = []
    total = 0
    normaliser = BatchExecutor(client=client, max_workers=1)
    try:
        for index, item in enumerate(requests):
            label = None
            if isinstance(item, Mapping) and "custom_id" in item:
                item = dict(item)
                label = item.pop("custom_id")
            try:
                if isinstance(item, AiLibError):
                    raise item
                item_client, request = normaliser.resolve(item)  # the executor's request forms
                binding = item_client.binding
                if binding.provider != provider or binding.endpoint.base_url != client.base_url:
                    raise InvalidRequestError(
                        f"it is for {binding.model_id}, and a provider batch goes to one provider ({provider})")
                check_request(request)
                custom_id = f"item-{index}"
                shaped = binding.shape(request)
                line = json.dumps(binding.dialect.encode_batch_item(shaped, binding.manifest, binding.model,
                                                                    custom_id, spec),
                                  ensure_ascii=False, separators=(",", ":"))
            except AiLibError as error:
                error.message = f"request {index}: {error.message}"
                error.args = (error.message,)
                raise
            size = len(line.encode("utf-8")) + 1
            if size > limit_b:
                raise InvalidRequestError(f"request {index} is {size} bytes encoded; a {provider} batch takes at "
                                          f"most {int(limit_b)}")
            # The request as it goes on the wire (model id included: Mistral's lines omit it).
            fingerprint = hashlib.sha256(f"{binding.model_id}\n{line}".encode()).hexdigest()[:16]
            hasher.update(f"\n{fingerprint}\t{label!r}".encode())
            current = open_chunks.get(binding.model)
            if current is None or current[1] >= limit_n or current[2] + size > limit_b:
                if current is not None:
                    store.add_chunk(job, current[0], binding.model, current[1], current[2])
                current = open_chunks[binding.model] = [next_chunk, 0, 0]
                next_chunk += 1
            current[1] += 1
            current[2] += size
            rows.append((job, index, fingerprint, custom_id, None if label is None else str(label), current[0], line))
            if len(rows) >= _ROWS_PER_WRITE:
                store.add_items(rows)
                rows = []
            total += 1
        if not total:
            raise InvalidRequestError("requests is empty: a provider batch needs at least one request")
        store.add_items(rows)
        for model, (chunk, count, size) in open_chunks.items():
            store.add_chunk(job, chunk, model, count, size)
    except BaseException:
        store.abort_job()
        raise
    finally:
        normaliser.shutdown(wait=False)
    return store.finish_job(job, "bj_" + hasher.hexdigest()[:24], total)


class BatchJob:
    """One job at the provider's Batch API, possibly split into several provider batches.

    ``id`` is the job's own id (a hash of its requests); ``provider_batch_ids`` the provider's.
    ``status`` and ``counts`` are as of the last ``refresh()`` (``wait`` refreshes). Results,
    in input order, are ``ChatResponse``s or the ``AiLibError`` each request ended with;
    ``stats`` has a ``CallStats`` per item (batch-discounted cost) once ``results()`` ran.
    """

    def __init__(self, client: AiClient, journal: Journal, job: int) -> None:
        self.client = client
        self.journal = journal
        self._job = job
        self.id, provider, self.model_id, self.total = journal.job_row(job)
        if provider != client.provider:
            raise ConfigurationError(f"journal job {self.id} is for {provider}; this client is for {client.provider}")
        spec = batch_spec(client.binding.manifest)
        transport = client.transport
        once = Transport(transport.timeouts, RetryPolicy(max_retries=0, statuses=transport.retry.statuses),
                         pool_maxsize=transport.pool_maxsize, session=transport.session)
        self._family: Family = FAMILIES[spec["api"]](client.binding, transport, once, spec)
        self._retry = transport.retry
        self._states: dict[int, BatchState] = {}
        self._batches: dict[int, Any] = {}
        self.stats: list[CallStats | None] = []

    def __repr__(self) -> str:
        return f"BatchJob({self.id!r}, provider={self.client.provider!r}, total={self.total}, status={self.status!r})"

    @classmethod
    def resume(cls, journal: str | os.PathLike[str], client: AiClient, job_id: str | None = None) -> BatchJob:
        """Reattach to the job in ``journal`` (``job_id`` when it holds several), finishing a
        submission a crash cut short without creating any provider batch twice."""
        if not os.path.exists(journal):
            raise ConfigurationError(f"no batch journal at {os.fspath(journal)!r}")
        store = Journal(journal)
        jobs = store.jobs()
        chosen = [row for row, key in jobs if job_id in (None, key)]
        if not chosen or (job_id is None and len(chosen) > 1):
            store.close()
            known = ", ".join(key for _, key in jobs) or "none"
            raise ConfigurationError(f"{os.fspath(journal)}: name the job to resume with job_id= (jobs: {known})")
        job = cls(client, store, chosen[0])
        job.submit_pending()
        return job

    # --- submission ---------------------------------------------------------------------------

    def chunks(self) -> list[ChunkRow]:
        return self.journal.chunks(self._job)

    @property
    def provider_batch_ids(self) -> list[str]:
        return [chunk.batch_id for chunk in self.chunks() if chunk.batch_id]

    def submit_pending(self) -> None:
        """Create every provider batch of the job that the journal does not show created."""
        chunks = self.chunks()
        known = {chunk.batch_id for chunk in chunks if chunk.batch_id}
        for chunk in chunks:
            if chunk.state != "created":
                known.add(self._submit(chunk, known))

    def _submit(self, chunk: ChunkRow, known: set[str]) -> str:
        family, journal, job = self._family, self.journal, self._job
        marker = f"{self.id}-{chunk.chunk}"
        lines: list[str] | None = None
        if family.uploads and chunk.file_id is None:
            lines = journal.lines(job, chunk.chunk)
            chunk.file_id = family.upload(lines, f"ai-lib-sync-{marker}.jsonl")
            journal.chunk_uploaded(job, chunk.chunk, chunk.file_id)
        elif chunk.state == "creating":  # a create call was in flight when the process died
            found = family.find(marker, chunk.file_id, chunk.size, chunk.attempt_at, known)
            if found is not None:
                return self._created(chunk, found)
        if lines is None:
            lines = journal.lines(job, chunk.chunk)
        attempts = self._retry.max_retries + 1
        for attempt in range(1, attempts + 1):
            chunk.attempt_at = chunk.attempt_at or time.time()
            journal.chunk_creating(job, chunk.chunk, chunk.attempt_at)
            try:
                batch = family.create(lines, chunk.model, marker, chunk.file_id)
            except AiLibError as error:
                if attempt == attempts or not self._retry.should_retry(error):
                    raise
                time.sleep(self._retry.backoff(attempt, error))
                found = family.find(marker, chunk.file_id, chunk.size, chunk.attempt_at, known)
                if found is not None:
                    return self._created(chunk, found)
                continue
            return self._created(chunk, batch)
        raise AssertionError("unreachable")

    def _created(self, chunk: ChunkRow, batch: Any) -> str:
        batch_id = self._family.batch_id(batch)
        self.journal.chunk_created(self._job, chunk.chunk, batch_id)
        chunk.batch_id, chunk.state = batch_id, "created"
        self._batches[chunk.chunk] = batch
        self._states[chunk.chunk] = self._family.state(batch)
        return batch_id

    # --- status -------------------------------------------------------------------------------

    def refresh(self) -> BatchJob:
        """Poll every provider batch that has not ended."""
        for chunk in self.chunks():
            state = self._states.get(chunk.chunk)
            if chunk.batch_id and (state is None or state.status not in TERMINAL):
                batch = self._family.retrieve(chunk.batch_id)
                self._batches[chunk.chunk] = batch
                self._states[chunk.chunk] = self._family.state(batch)
        return self

    @property
    def status(self) -> str:
        chunks = self.chunks()
        if not self._states and chunks:
            self.refresh()
        return combine([self._states[c.chunk].status if c.chunk in self._states else "validating" for c in chunks])

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    @property
    def counts(self) -> BatchCounts:
        succeeded = failed = 0
        for chunk in self.chunks():
            state = self._states.get(chunk.chunk)
            if state is not None:
                succeeded += state.succeeded
                failed += state.failed
        return BatchCounts(self.total, succeeded, failed)

    def wait(self, poll_interval: float = 30, timeout: float | None = None,
             progress: bool | Callable[[BatchJob], None] = False) -> BatchJob:
        """Poll until every provider batch has ended. ``timeout`` (seconds) raises
        ``APITimeoutError`` when it runs out (the job goes on at the provider: wait again or
        resume later); without it the provider's own window bounds the wait. Ctrl-C
        interrupts the sleep at once. ``progress=True`` writes a status line to stderr;
        a callable gets the job after each poll."""
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)) or poll_interval <= 0:
            raise ConfigurationError(f"poll_interval must be a positive number of seconds, got {poll_interval!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.refresh()
            if callable(progress):
                progress(self)
            elif progress:
                counts = self.counts
                sys.stderr.write(f"\r{self.id}: {self.status} {counts.succeeded + counts.failed}/{counts.total}")
                sys.stderr.flush()
            if self.done:
                if progress is True:
                    sys.stderr.write("\n")
                return self
            wait = poll_interval
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise APITimeoutError(f"batch job {self.id} is still {self.status} after {timeout:g}s; "
                                          "wait() again or BatchJob.resume() later", retryable=True)
                wait = min(wait, remaining)
            time.sleep(wait)

    def cancel(self) -> BatchJob:
        """Ask the provider to cancel every provider batch that has not ended. Requests already
        answered keep their results; the others end as ``BatchItemCancelled``."""
        self.refresh()
        for chunk in self.chunks():
            state = self._states.get(chunk.chunk)
            if chunk.batch_id and state is not None and state.status not in TERMINAL:
                batch = self._family.cancel(chunk.batch_id)
                if isinstance(batch, dict) and batch:
                    self._batches[chunk.chunk] = batch
                    self._states[chunk.chunk] = self._family.state(batch)
        return self

    # --- results ------------------------------------------------------------------------------

    def results(self) -> list[ChatResponse | AiLibError]:
        """One result per request, in input order, matched by custom id. Raises
        ``InvalidRequestError`` while the job has not ended (``wait()`` first)."""
        self.refresh()
        if not self.done:
            raise InvalidRequestError(f"batch job {self.id} is {self.status}: wait() for it to end first")
        binding = self.client.binding
        dialect, manifest, family = binding.dialect, binding.manifest, self._family
        outcome: dict[str, Any] = {}
        models: dict[int, str] = {}
        for chunk in self.chunks():
            models[chunk.chunk] = chunk.model
            positional: list[str] | None = None
            for position, line in enumerate(family.results(self._batches[chunk.chunk])):
                try:
                    custom_id, value, status = dialect.decode_batch_item(line, manifest, chunk.model)
                except AiLibError as error:
                    custom_id, value, status = line.get("custom_id"), binding.stamp(error), None
                except (ValueError, TypeError, AttributeError) as exc:
                    custom_id, status = line.get("custom_id"), None
                    value = make_error("server_error", f"the provider sent an unreadable result ({exc})"[:500])
                if custom_id is None and family.ordered:
                    # Gemini documents inlined responses "in the same order as the input
                    # requests" and does not always echo the request's metadata key.
                    if positional is None:
                        positional = [cid for _, cid, _, c in self.journal.items(self._job) if c == chunk.chunk]
                    custom_id = positional[position] if position < len(positional) else None
                if custom_id is not None:
                    outcome[str(custom_id)] = (value, status)
        results: list[ChatResponse | AiLibError] = []
        stats: list[CallStats | None] = []
        for _, custom_id, label, chunk_no in self.journal.items(self._job):
            found = outcome.pop(custom_id, None)
            model = models[chunk_no]
            if found is None:
                value: Any = self._missing(chunk_no)
            else:
                value = self._typed(found[0], found[1], model)
            if isinstance(value, ChatResponse):
                usage = value.usage
                stats.append(manifest.fill_cost(
                    CallStats(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, 0.0, None,
                              0, binding.provider, model, None, value.id), model, usage, batch=True))
            else:
                stats.append(None)
            if label is not None:
                value.custom_id = label
            results.append(value)
        self.stats = stats
        return results

    @property
    def cost_usd(self) -> float | None:
        """What the answered requests cost at the provider's batch price (after ``results()``)."""
        costs = [item.cost_usd for item in self.stats if item is not None]
        if not costs or any(cost is None for cost in costs):
            return None
        return round(sum(costs), 10)  # type: ignore[arg-type]

    def _typed(self, value: Any, status: int | None, model: str) -> ChatResponse | AiLibError:
        if isinstance(value, (ChatResponse, AiLibError)):
            return value
        provider = self.client.provider
        if value.code == "batch_expired":
            return BatchItemExpired(value.message, provider=provider, model=model, code=value.code)
        if value.code == "batch_cancelled":
            return BatchItemCancelled(value.message, provider=provider, model=model, code=value.code,
                                      retryable=True)
        return make_error(value.kind, value.message, status_code=status, provider=provider, model=model,
                          code=value.code, retry_after=value.retry_after)

    def _missing(self, chunk: int) -> AiLibError:
        state = self._states[chunk]
        provider = self.client.provider
        if state.status == "expired":
            return BatchItemExpired("the provider's batch window closed before this request ran",
                                    provider=provider, code="batch_expired")
        if state.status == "cancelled":
            return BatchItemCancelled("the batch was cancelled before this request ran", provider=provider,
                                      code="batch_cancelled", retryable=True)
        if state.status == "failed":
            return make_error("invalid_request" if state.failure else "server_error",
                              f"the provider batch failed: {state.failure or 'no reason given'}", provider=provider,
                              retryable=False)
        return BatchItemMissing("the provider ended the batch without a result for this request",
                                provider=provider, retryable=False)

    def close(self) -> None:
        self.journal.close()
