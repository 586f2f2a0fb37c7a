"""``ai-lib-sync chat [-m MODEL] [--no-stream] PROMPT`` and ``ai-lib-sync providers``.

Without ``-m`` the CLI picks the first provider whose API key is set in the environment and
otherwise falls back to the embedded offline provider, saying so in one line, so the first
command a new user runs works on a fresh machine with no key and no network.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

OFFLINE_MODEL = "mock/echo"
# Providers tried, in order, when no model is given: (provider id, default model).
PREFERRED = (
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-3-5-haiku-20241022"),
    ("gemini", "gemini-2.0-flash"),
    ("deepseek", "deepseek-chat"),
    ("mistral", "mistral-small-latest"),
    ("groq", "llama-3.3-70b-versatile"),
)


def pick_model(environ: Mapping[str, str]) -> tuple[str, str | None]:
    """(model id, note): the first provider with a key in ``environ``, else the offline one."""
    from .manifest import load_manifest, search_dirs

    dirs = search_dirs(None, environ)
    for provider, fallback_model in PREFERRED:
        try:
            manifest = load_manifest(provider, dirs)
        except Exception:  # a provider this install does not ship
            continue
        names = manifest.auth.get("env", ()) or manifest.auth.get("bearer_env", ())
        if any(environ.get(name) for name in names):
            return f"{provider}/{manifest.default_model or fallback_model}", None
    note = ("(offline: no provider API key found in the environment, so this used the embedded "
            f"{OFFLINE_MODEL} provider on a loopback server; set e.g. OPENAI_API_KEY or pass -m)")
    return OFFLINE_MODEL, note


def _chat(args: argparse.Namespace) -> int:
    from . import AiClient
    from .errors import AiLibError

    model, note = (args.model, None) if args.model else pick_model(os.environ)
    try:
        with AiClient(model, timeout=args.timeout) as client:
            builder = client.chat()
            if args.system:
                builder.system(args.system)
            builder.user(args.prompt)
            if args.max_tokens:
                builder.max_tokens(args.max_tokens)
            if args.no_stream:
                response, stats = builder.execute_with_stats()
                print(response.content)
            else:
                stream = builder.stream()
                for event in stream:
                    if event.is_content_delta:
                        print(event.as_content_delta.text, end="", flush=True)
                print()
                stats = stream.stats
    except AiLibError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    cost = "n/a" if stats.cost_usd is None else f"${stats.cost_usd:.6f}"
    ttft = "" if stats.time_to_first_token_ms is None else f" first-token={stats.time_to_first_token_ms:.0f}ms"
    print(f"[{stats.provider}/{stats.model}] tokens={stats.prompt_tokens}+{stats.completion_tokens}"
          f"={stats.total_tokens} latency={stats.latency_ms:.0f}ms{ttft} retries={stats.retries} cost={cost}",
          file=sys.stderr)
    if note:
        print(note, file=sys.stderr)
    return 0


def _providers(args: argparse.Namespace) -> int:
    from . import providers

    for provider in providers():
        print(provider)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ai-lib-sync", description="One chat API over many LLM providers.")
    commands = parser.add_subparsers(dest="command", required=True)
    chat = commands.add_parser("chat", help="send one prompt; streams the answer, then prints one stats line")
    chat.add_argument("prompt")
    chat.add_argument("-m", "--model", help="provider/model, e.g. openai/gpt-4o (default: first provider with a key, else offline)")
    chat.add_argument("-s", "--system", help="system prompt")
    chat.add_argument("--max-tokens", type=int)
    chat.add_argument("--no-stream", action="store_true", help="wait for the whole answer")
    chat.add_argument("--timeout", type=float, default=60.0)
    chat.set_defaults(run=_chat)
    listing = commands.add_parser("providers", help="list the providers this installation knows")
    listing.set_defaults(run=_providers)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
