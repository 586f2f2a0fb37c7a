"""``ai-lib-sync validate PATH`` and ``ai-lib-sync models [PROVIDER]``.

``validate`` checks manifest files with the loader's own rules (``ai_lib_sync.manifest``: the
shipped JSON schema, id = file name, a known dialect, ``extends`` resolved), and reports every
top-level field that breaks them, not only the first, as ``file: field: problem``.
``models`` lists what the manifests say about each model: context window, max output, prices
per million tokens (cached input where published) and capabilities, plus each provider's
price source and date.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import AiLibError


def add_parsers(commands: Any) -> None:
    validate = commands.add_parser("validate", help="check a manifest file or a folder of manifests")
    validate.add_argument("path")
    validate.set_defaults(run=run_validate)
    models = commands.add_parser("models", help="known models: context, max output, prices, capabilities")
    models.add_argument("provider", nargs="?", help="only this provider")
    models.add_argument("--json", action="store_true", help="one JSON object per model")
    models.set_defaults(run=run_models)


def manifest_problems(path: Path) -> list[tuple[str, str]]:
    """(field, problem) pairs for one manifest file; empty when it loads cleanly."""
    from ..manifest import SCHEMA_FILE, ManifestError, _schema, builtin_dir, load_manifest
    from ..schema import SchemaViolation, validate

    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        return [("<root>", f"not valid JSON: {exc}")]
    if not isinstance(data, dict):
        return [("<root>", f"expected an object, found {type(data).__name__}")]
    schema = _schema(str(builtin_dir() / SCHEMA_FILE))
    problems: list[tuple[str, str]] = []
    if "extends" not in data:  # a partial file is checked merged, below
        for name in schema.get("required", ()):
            if name not in data:
                problems.append((name, "required field is missing"))
        for name, value in data.items():
            sub = schema.get("properties", {}).get(name)
            if sub is None:
                if schema.get("additionalProperties") is False:
                    problems.append((name, "unknown field"))
                continue
            try:
                validate(value, sub, schema, name)
            except SchemaViolation as exc:
                problems.append((exc.path, f"expected {exc.expected}, found {_short(exc.found)}"))
    if problems:
        return problems
    try:
        load_manifest(path.stem, [path.parent, builtin_dir()])
    except ManifestError as exc:
        message = exc.message.removeprefix(f"{path}: ")
        field, _, rest = message.partition(": ")
        return [(field.removeprefix("field ").strip("'"), rest or message)]
    except AiLibError as exc:
        return [("<root>", exc.message)]
    return []


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def run_validate(args: argparse.Namespace) -> int:
    from ..manifest import ALIASES_FILE, SCHEMA_FILE

    root = Path(args.path)
    if root.is_dir():
        files = sorted(p for p in root.glob("*.json") if p.name not in (SCHEMA_FILE, ALIASES_FILE))
    elif root.is_file():
        files = [root]
    else:
        print(f"error: {args.path!r} is neither a manifest file nor a folder", file=sys.stderr)
        return 2
    bad = 0
    for path in files:
        problems = manifest_problems(path)
        bad += bool(problems)
        for field, problem in problems:
            print(f"{path}: {field}: {problem}")
    print(f"{len(files)} manifest(s) checked, {bad} with problems", file=sys.stderr)
    return 1 if bad else 0


def _price(value: Any) -> str:
    return "-" if value is None else f"{value:g}"


def run_models(args: argparse.Namespace) -> int:
    from ..manifest import list_providers, load_manifest, search_dirs

    dirs = search_dirs()
    providers = [args.provider] if args.provider else list_providers(dirs)
    rows: list[dict[str, Any]] = []
    for provider in providers:
        try:
            manifest = load_manifest(provider, dirs)
        except AiLibError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            if args.provider:
                return 2
            continue
        pricing = manifest.data.get("pricing") or {}
        for model, info in manifest.models.items():
            price = manifest.price(model)
            rows.append({"model": f"{manifest.id}/{model}", "context_window": info.get("context_window"),
                         "max_output_tokens": info.get("max_output_tokens"),
                         "input_per_mtok": info.get("input_per_mtok"),
                         "cached_input_per_mtok": info.get("cached_input_per_mtok"),
                         "output_per_mtok": info.get("output_per_mtok"),
                         "currency": price.currency if price is not None else None,
                         "capabilities": info.get("capabilities") or [],
                         "price_source": info.get("source") or pricing.get("source"),
                         "price_as_of": info.get("as_of") or pricing.get("as_of")})
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    header = ("model", "context", "max out", "in/M", "cached/M", "out/M", "currency", "capabilities",
              "prices as of")
    table = [header] + [(row["model"], _price(row["context_window"]), _price(row["max_output_tokens"]),
                         _price(row["input_per_mtok"]), _price(row["cached_input_per_mtok"]),
                         _price(row["output_per_mtok"]), row["currency"] or "-", ",".join(row["capabilities"]) or "-",
                         row["price_as_of"] or "-") for row in rows]
    widths = [max(len(str(line[column])) for line in table) for column in range(len(header))]
    for line in table:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    return 0
