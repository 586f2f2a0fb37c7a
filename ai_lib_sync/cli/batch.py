"""``ai-lib-sync batch INPUT.jsonl -o OUTPUT.jsonl``: a JSONL file of prompts through the pool.

Input, one JSON value a line (blank lines are skipped): a prompt string (``"Hi"``),
``{"prompt": "Hi", "custom_id": "a"}``, an OpenAI-style request (``{"messages": [...],
"model": "provider/model", "temperature": 0.2, "custom_id": "a"}``; ``model`` optional), or
an OpenAI Batch API line (``{"custom_id": "a", "body": {...}}``). ``--system``,
``--max-tokens`` and ``--temperature`` apply to lines that do not set their own.

Output: the executor's checkpoint rows (``ai_lib_sync/batch/checkpoint.py``), so the output
file is also what ``--resume`` continues from. Rows are appended as items finish; when the run
completes the file is rewritten in input order, one row per input line, each with ``line``
(1-based), ``custom_id`` when given, ``ok``, ``content``, ``usage``, ``cost_usd``, or
``error.kind``/``error.message``. A malformed line is reported on stderr with its number and
written as a failed row (kind ``invalid_request``); it never stops the others.

Exit status: 0 every row succeeded; 1 some rows failed; 2 the run could not start (missing
input, bad options, unknown model, missing key); 130 interrupted by Ctrl-C (the output is
left resumable).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from array import array
from collections.abc import Iterator
from typing import Any

from ..errors import AiLibError, InvalidRequestError


def add_parser(commands: Any) -> None:
    from . import positive_float, positive_int

    batch = commands.add_parser("batch", help="run a JSONL file of prompts; write one JSONL row per line")
    batch.add_argument("input", help="JSONL file: prompt strings, {\"prompt\": ...} or OpenAI-style requests")
    batch.add_argument("-o", "--output", required=True, help="JSONL file for the results (also the checkpoint)")
    batch.add_argument("-m", "--model", help="default provider/model for lines without one")
    batch.add_argument("--workers", type=positive_int, default=8, help="threads (default 8)")
    batch.add_argument("--rpm", type=positive_float, help="requests per minute, shared by all workers")
    batch.add_argument("--tpm", type=positive_float, help="tokens per minute, shared by all workers")
    batch.add_argument("--resume", action="store_true", help="skip lines OUTPUT already holds a success for")
    batch.add_argument("-s", "--system", help="system prompt for lines without one")
    batch.add_argument("--max-tokens", type=positive_int)
    batch.add_argument("--temperature", type=float)
    batch.add_argument("--timeout", type=positive_float, default=60.0, help="seconds per request")
    batch.add_argument("--raw", action="store_true", help="also store each raw provider response")
    batch.add_argument("--cache", metavar="SPEC",
                       help="answer repeated requests from a response cache: sqlite:///PATH or redis://HOST:PORT/DB")
    batch.add_argument("--provider-batch", action="store_true",
                       help="submit through the provider's Batch API (about half price, results within its "
                            "window); with --resume, reattach to the job instead of resubmitting")
    batch.add_argument("--journal", help="the provider batch's journal (default OUTPUT.journal.sqlite)")
    batch.add_argument("--poll-interval", type=positive_float, default=30.0,
                       help="seconds between provider batch status checks (default 30)")
    batch.set_defaults(run=run)


def parse_line(text: str, args: argparse.Namespace) -> dict[str, Any]:
    """One input line as an OpenAI-style request dict; raises ``InvalidRequestError``."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidRequestError(f"not valid JSON: {exc}") from None
    custom_id = None
    if isinstance(value, dict) and isinstance(value.get("body"), dict):  # OpenAI Batch API line
        custom_id, value = value.get("custom_id"), dict(value["body"])
    if isinstance(value, str):
        value = {"prompt": value}
    if not isinstance(value, dict):
        raise InvalidRequestError(f"expected a prompt string or an object, found {type(value).__name__}")
    request = dict(value)
    if custom_id is not None:
        request["custom_id"] = custom_id
    if "prompt" in request:
        prompt = request.pop("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidRequestError('"prompt" must be a non-empty string')
        if "messages" in request:
            raise InvalidRequestError('give "prompt" or "messages", not both')
        request["messages"] = [{"role": "user", "content": prompt}]
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError('expected "prompt" or a non-empty "messages" list')
    if args.system and not any(isinstance(m, dict) and m.get("role") == "system" for m in messages):
        request["messages"] = [{"role": "system", "content": args.system}, *messages]
    if args.max_tokens and "max_tokens" not in request and "max_completion_tokens" not in request:
        request["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        request.setdefault("temperature", args.temperature)
    return request


class _Input:
    """The input lines as batch items, lazily; ``len`` is the number of non-blank lines (so the
    progress bar knows its total); ``lines[i]`` is the line number of item ``i``."""

    def __init__(self, path: str, args: argparse.Namespace) -> None:
        self.path = path
        self.args = args
        self.lines = array("q")
        with open(path, "rb") as handle:
            self.total = sum(1 for line in handle if line.strip())
        self.malformed = 0

    def __len__(self) -> int:
        return self.total

    def __iter__(self) -> Iterator[Any]:
        with open(self.path, encoding="utf-8", errors="replace") as handle:
            for number, text in enumerate(handle, 1):
                if not text.strip():
                    continue
                self.lines.append(number)
                try:
                    yield parse_line(text, self.args)
                except AiLibError as error:
                    self.malformed += 1
                    print(f"{self.path}:{number}: {error.message}", file=sys.stderr)
                    error.message = f"line {number}: {error.message}"
                    yield error


def write_in_order(path: str, lines: array) -> None:
    """Rewrite the output in input order, one row per item (the last written wins), each
    with its input ``line``. Written beside and renamed over, so a crash leaves either file."""
    offsets: dict[int, int] = {}
    with open(path, "rb") as handle:
        position = 0
        for raw in handle:
            try:
                offsets[int(json.loads(raw)["index"])] = position
            except (ValueError, KeyError, TypeError):
                pass
            position += len(raw)
        temporary = path + ".tmp"
        with open(temporary, "wb") as out:
            for index in sorted(offsets):
                handle.seek(offsets[index])
                row = json.loads(handle.readline())
                line = lines[index] if index < len(lines) else index + 1
                row = {"line": line, **{key: value for key, value in row.items() if key != "line"}}
                out.write(json.dumps(row, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n")
    os.replace(temporary, path)


def run(args: argparse.Namespace) -> int:
    from .. import AiClient
    from ..batch import BatchExecutor
    from . import pick_model

    if not os.path.isfile(args.input):
        print(f"error: input file {args.input!r} does not exist", file=sys.stderr)
        return 2
    if os.path.abspath(args.input) == os.path.abspath(args.output):
        print("error: the output file must not be the input file", file=sys.stderr)
        return 2
    model, note = (args.model, None) if args.model else pick_model(os.environ)
    if note:
        print(note, file=sys.stderr)
    started = time.monotonic()
    if args.provider_batch:
        return run_provider_batch(args, model, started)
    try:
        items = _Input(args.input, args)
        client = AiClient(model, timeout=args.timeout, cache=args.cache)
        executor = BatchExecutor(max_workers=args.workers, client=client, rpm=args.rpm, tpm=args.tpm,
                                 checkpoint=args.output, resume=args.resume, checkpoint_raw=args.raw,
                                 progress=sys.stderr.isatty(), on_interrupt="return")
    except (AiLibError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    interrupted = False
    with client, executor:
        try:
            for _ in executor.map(items):
                pass
        except KeyboardInterrupt:
            interrupted = True
        state = executor.progress
    if not interrupted:
        write_in_order(args.output, items.lines)
    wall = time.monotonic() - started
    assert state is not None
    print(f"batch: {state.done}/{len(items)} done, ok={state.succeeded + state.resumed} failed={state.failed}"
          f"{f' (resumed {state.resumed})' if state.resumed else ''} retries={state.retries} "
          f"tokens={state.total_tokens} cost=${state.cost_usd:.4f} wall={wall:.1f}s -> {args.output}"
          f"{' (interrupted: rerun with --resume)' if interrupted else ''}", file=sys.stderr)
    if interrupted:
        return 130
    return 1 if state.failed else 0


def run_provider_batch(args: argparse.Namespace, model: str, started: float) -> int:
    """``--provider-batch``: submit (or, the same requests and journal, reattach to) one
    provider batch job, wait for it, write every row in input order. Submitting again with the
    same input and journal never pays twice: the journal returns the job already created."""
    from .. import AiClient
    from ..batch.checkpoint import encode_row, make_row

    journal = args.journal or args.output + ".journal.sqlite"
    items = _Input(args.input, args)
    try:
        parsed = list(items)
        client = AiClient(model, timeout=args.timeout)
    except (AiLibError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    valid = [index for index, item in enumerate(parsed) if not isinstance(item, AiLibError)]
    results: list[Any] = list(parsed)
    with client:
        try:
            if valid:
                job = client.submit_batch([parsed[index] for index in valid], journal=journal)
                print(f"provider batch job {job.id}: {job.status} (journal {journal})", file=sys.stderr)
                job.wait(poll_interval=args.poll_interval, progress=sys.stderr.isatty())
                for index, result in zip(valid, job.results(), strict=True):
                    results[index] = result
                stats = job.stats
            else:
                stats = []
        except KeyboardInterrupt:
            print(f"interrupted: the job goes on at the provider; rerun with --provider-batch --resume "
                  f"to collect it (journal {journal})", file=sys.stderr)
            return 130
        except AiLibError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    stats_of = dict(zip(valid, stats, strict=True))
    failed = tokens = 0
    cost = 0.0
    temporary = args.output + ".tmp"
    with open(temporary, "wb") as out:
        for index, result in enumerate(results):
            custom_id = getattr(result, "custom_id", None)
            row = make_row(index, None, result, stats_of.get(index), custom_id)
            out.write(encode_row({"line": items.lines[index], **row}))
            failed += isinstance(result, AiLibError)
            item_stats = stats_of.get(index)
            if item_stats is not None:
                tokens += item_stats.total_tokens
                cost += item_stats.cost_usd or 0.0
    os.replace(temporary, args.output)
    wall = time.monotonic() - started
    print(f"batch: {len(results)}/{len(results)} done, ok={len(results) - failed} failed={failed} "
          f"tokens={tokens} cost=${cost:.4f} (batch price) wall={wall:.1f}s -> {args.output}", file=sys.stderr)
    return 1 if failed else 0
