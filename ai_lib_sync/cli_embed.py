"""``ai-lib-sync embed -m PROVIDER/MODEL [-i IN.jsonl] [-o OUT.jsonl]``: JSONL in, JSONL out.

Each input line is a JSON string or an object with ``text`` (and optionally ``id``); each output
line is ``{"id", "embedding"}``, in input order (``id`` defaults to the 0-based line number
among non-blank lines). Every line is checked before the first request, so a bad line costs
nothing; the input is then embedded in blocks, so output starts early and memory stays flat.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO, Any

BLOCK = 1024  # texts per embed() call; embed() splits further at the provider's limits


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("embed", help="embed JSONL texts; writes one JSONL vector per input line")
    parser.add_argument("-m", "--model", required=True, help="provider/model, e.g. openai/text-embedding-3-small")
    parser.add_argument("-i", "--input", default="-", help="JSONL file (default: stdin)")
    parser.add_argument("-o", "--output", default="-", help="JSONL file (default: stdout)")
    parser.add_argument("--dimensions", type=int, help="vector size, where the model can shorten")
    parser.add_argument("--input-type", help="query, document, classification, clustering, similarity")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.set_defaults(run=run)
    return parser


def read_lines(handle: IO[str]) -> list[tuple[Any, str]]:
    """(id, text) per non-blank line; a malformed line raises ValueError naming its number."""
    items: list[tuple[Any, str]] = []
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"line {number}: not JSON ({exc.msg})") from None
        if isinstance(value, dict):
            item_id, text = value.get("id", len(items)), value.get("text")
        else:
            item_id, text = len(items), value
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"line {number}: expected a JSON string or an object with a non-empty 'text'")
        items.append((item_id, text))
    return items


def run(args: argparse.Namespace) -> int:
    from . import AiClient
    from .errors import AiLibError

    try:
        with _open(args.input, "r") as source:
            items = read_lines(source)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not items:
        print("error: no texts in the input", file=sys.stderr)
        return 2
    tokens, cost, provider_model = 0, 0.0, ""
    try:
        with AiClient(args.model, timeout=args.timeout) as client, _open(args.output, "w") as sink:
            for start in range(0, len(items), BLOCK):
                block = items[start:start + BLOCK]
                result = client.embed([text for _, text in block], dimensions=args.dimensions,
                                      input_type=args.input_type)
                for (item_id, _), vector in zip(block, result.vectors, strict=True):
                    sink.write(json.dumps({"id": item_id, "embedding": vector}) + "\n")
                tokens += result.usage.prompt_tokens
                cost = cost + result.stats.cost_usd if result.stats.cost_usd is not None and cost is not None else None
                provider_model = f"{result.provider}/{result.model}"
    except AiLibError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    shown = "n/a" if cost is None else f"${cost:.6f}"
    print(f"[{provider_model}] texts={len(items)} tokens={tokens} cost={shown}", file=sys.stderr)
    return 0


def _open(name: str, mode: str) -> Any:
    if name == "-":
        import contextlib

        return contextlib.nullcontext(sys.stdin if mode == "r" else sys.stdout)
    return open(name, mode, encoding="utf-8")
