"""``ai-lib-sync`` (also ``python -m ai_lib_sync``): chat, batch, validate, models, embed, providers.

Without ``-m`` the CLI picks the first provider whose API key is set in the environment and
otherwise falls back to the embedded offline provider, saying so in one line, so the first
command a new user runs works on a fresh machine with no key and no network.

Exit status: 0 success; 1 the work ran and something failed (a chat error, a failed batch
row, a manifest problem); 2 it could not start (bad options, missing input, unknown model).
"""

from __future__ import annotations

import argparse
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
    from ..manifest import load_manifest, search_dirs

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


def _providers(args: argparse.Namespace) -> int:
    from .. import providers

    for provider in providers():
        print(provider)
    return 0


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .. import cli_embed
    from . import batch, chat, manifests

    parser = argparse.ArgumentParser(prog="ai-lib-sync", description="One chat API over many LLM providers.")
    commands = parser.add_subparsers(dest="command", required=True)
    chat.add_parser(commands)
    batch.add_parser(commands)
    manifests.add_parsers(commands)
    cli_embed.add_parser(commands)
    listing = commands.add_parser("providers", help="list the providers this installation knows")
    listing.set_defaults(run=_providers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)
