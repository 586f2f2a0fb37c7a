"""``ai-lib-sync chat [-m MODEL] [--no-stream] [--json] [--temperature T] PROMPT|-``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def add_parser(commands: Any) -> None:
    from . import positive_float, positive_int

    chat = commands.add_parser("chat", help="send one prompt; streams the answer, then prints one stats line")
    chat.add_argument("prompt", help="the prompt, or - to read it from standard input")
    chat.add_argument("-m", "--model", help="provider/model, e.g. openai/gpt-4o (default: first provider with a key, else offline)")
    chat.add_argument("-s", "--system", help="system prompt")
    chat.add_argument("--max-tokens", type=positive_int)
    chat.add_argument("--temperature", type=float)
    chat.add_argument("--no-stream", action="store_true", help="wait for the whole answer")
    chat.add_argument("--json", action="store_true", help="print the response and its stats as one JSON object")
    chat.add_argument("--timeout", type=positive_float, default=60.0)
    chat.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .. import AiClient
    from ..errors import AiLibError
    from . import pick_model

    prompt = sys.stdin.read().rstrip("\n") if args.prompt == "-" else args.prompt
    if not prompt.strip():
        print("error: the prompt is empty", file=sys.stderr)
        return 2
    model, note = (args.model, None) if args.model else pick_model(os.environ)
    stream_text = not (args.no_stream or args.json)
    try:
        with AiClient(model, timeout=args.timeout) as client:
            builder = client.chat()
            if args.system:
                builder.system(args.system)
            builder.user(prompt)
            if args.max_tokens:
                builder.max_tokens(args.max_tokens)
            if args.temperature is not None:
                builder.temperature(args.temperature)
            if stream_text:
                stream = builder.stream()
                for event in stream:
                    if event.is_content_delta:
                        print(event.as_content_delta.text, end="", flush=True)
                print()
                stats = stream.stats
            else:
                response, stats = builder.execute_with_stats()
    except AiLibError as error:
        if args.json:
            print(json.dumps({"error": {"kind": error.kind, "message": error.message,
                                        "status_code": error.status_code}}))
        print(f"error: {error}", file=sys.stderr)
        return 2 if error.kind in ("configuration", "manifest") else 1
    if args.json:
        print(json.dumps({"response": response.to_dict(), "stats": stats.to_dict()}, ensure_ascii=False,
                         default=str))
    elif not stream_text:
        print(response.content)
    if stats.cost_usd is not None:
        cost = f"${stats.cost_usd:.6f}"
    else:  # a price in the provider's own currency (CNY endpoints), or none
        cost = "n/a" if stats.cost is None else f"{stats.cost:.6f} {stats.currency}"
    ttft = "" if stats.time_to_first_token_ms is None else f" first-token={stats.time_to_first_token_ms:.0f}ms"
    print(f"[{stats.provider}/{stats.model}] tokens={stats.prompt_tokens}+{stats.completion_tokens}"
          f"={stats.total_tokens} latency={stats.latency_ms:.0f}ms{ttft} retries={stats.retries} cost={cost}",
          file=sys.stderr)
    if note:
        print(note, file=sys.stderr)
    return 0
