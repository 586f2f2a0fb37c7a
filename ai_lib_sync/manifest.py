"""Provider manifests: find, parse, validate and merge exactly the one manifest in use.

A manifest is a JSON file named ``<id>.json``. Directories are searched in order: the
client's ``manifests_dir`` argument, then ``AI_LIB_SYNC_MANIFESTS`` (os.pathsep-separated),
then the manifests shipped in the package. The first file found wins; ``"extends"`` lets a
file start from another manifest (a later directory's file of the same id, or another id)
and override only some fields.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from .dicts import deep_merge
from .errors import ConfigurationError, ManifestError
from .pricing import Price, cost_of, price_of, usage_cost_of
from .schema import SchemaViolation, validate
from .types import CallStats, Usage

MANIFESTS_ENV = "AI_LIB_SYNC_MANIFESTS"
SCHEMA_FILE = "manifest.schema.json"
ALIASES_FILE = "_aliases.json"
_NON_MANIFESTS = {SCHEMA_FILE, ALIASES_FILE}

DEFAULT_RETRY_STATUSES = (408, 409, 429, 500, 502, 503, 504, 529)


def builtin_dir() -> Path:
    """The manifests shipped with the package (wheel) or beside it (source checkout)."""
    here = Path(__file__).resolve().parent
    packaged = here / "manifests"
    if packaged.is_dir():
        return packaged
    return here.parent / "manifests"


def search_dirs(manifests_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
                environ: dict[str, str] | os._Environ[str] | None = None) -> list[Path]:
    environ = os.environ if environ is None else environ
    dirs: list[Path] = []
    if manifests_dir:
        if isinstance(manifests_dir, (str, os.PathLike)):
            manifests_dir = [manifests_dir]
        dirs.extend(Path(item) for item in manifests_dir)
    dirs.extend(Path(item) for item in environ.get(MANIFESTS_ENV, "").split(os.pathsep) if item)
    dirs.append(builtin_dir())
    for directory in dirs[:-1]:
        if not directory.is_dir():
            raise ConfigurationError(f"manifests directory {str(directory)!r} does not exist")
    return dirs


class Manifest:
    """A validated provider manifest with defaults filled in. Read-only by convention."""

    __slots__ = ("data", "path", "id", "dialect", "endpoint", "auth", "headers", "params",
                 "streaming", "response", "errors", "retry", "rate_limit_headers", "models",
                 "dialect_options", "default_model", "name", "pricing")

    def __init__(self, data: dict[str, Any], path: Path) -> None:
        self.data = data
        self.path = path
        self.id: str = data["id"]
        self.name: str = data.get("name", self.id)
        self.dialect: str = data["dialect"]
        self.default_model: str | None = data.get("default_model")
        self.endpoint: dict[str, Any] = data["endpoint"]
        self.auth: dict[str, Any] = data["auth"]
        self.headers: dict[str, str] = data.get("headers", {})
        self.params: dict[str, Any] = data.get("params", {})
        self.streaming: dict[str, Any] = data.get("streaming", {})
        self.response: dict[str, Any] = data.get("response", {})
        self.errors: dict[str, Any] = data.get("errors", {})
        self.retry: dict[str, Any] = data.get("retry", {})
        self.rate_limit_headers: dict[str, str] = data.get("rate_limit_headers", {})
        self.models: dict[str, Any] = data.get("models", {})
        self.pricing: dict[str, Any] = data.get("pricing", {})
        self.dialect_options: dict[str, Any] = data.get("dialect_options", {})

    def __repr__(self) -> str:
        return f"Manifest({self.id!r}, dialect={self.dialect!r}, path={str(self.path)!r})"

    @property
    def retry_statuses(self) -> tuple[int, ...]:
        return tuple(self.retry.get("statuses", DEFAULT_RETRY_STATUSES))

    def model_info(self, model: str) -> dict[str, Any]:
        """Metadata of ``model``: an exact key, else the first glob key (``gpt-4o-2024-*``)."""
        if model in self.models:
            return self.models[model]
        for pattern, info in self.models.items():
            if "*" in pattern and fnmatch.fnmatchcase(model, pattern):
                return info
        return {}

    def price(self, model: str) -> Price | None:
        """The catalog price of ``model`` with its source and date; None for a model the
        catalog does not price (unknown ids still work, they just have no cost)."""
        return price_of(self.model_info(model), self.pricing)

    def cost_usd(self, model: str, prompt_tokens: int, completion_tokens: int,
                 cached_tokens: int = 0, *, batch: bool = False) -> float | None:
        """USD cost of one call (see ``ai_lib_sync.pricing``): ``prompt_tokens`` includes the
        ``cached_tokens``, ``completion_tokens`` includes reasoning; None when unpriced or
        priced in another currency (we never convert)."""
        price = self.price(model)
        if price is None or price.currency != "USD":
            return None
        return cost_of(price, prompt_tokens, completion_tokens, cached_tokens, batch=batch)

    def usage_cost(self, model: str, usage: Usage, *, batch: bool = False) -> tuple[float, str] | None:
        """What a call with this ``Usage`` cost and in which currency (cached and reasoning
        tokens accounted for); None when the catalog does not price ``model``."""
        price = self.price(model)
        return None if price is None else (usage_cost_of(price, usage, batch=batch), price.currency)

    def fill_cost(self, stats: CallStats, model: str, usage: Usage, *, batch: bool = False) -> CallStats:
        """Set ``stats.cost``/``currency`` (and ``cost_usd`` for USD prices) from the catalog."""
        cost = self.usage_cost(model, usage, batch=batch)
        if cost is not None:
            stats.cost, stats.currency = cost
            stats.cost_usd = cost[0] if cost[1] == "USD" else None
        return stats

    def usage_cost_usd(self, model: str, usage: Usage, *, batch: bool = False) -> float | None:
        """``usage_cost`` when it is in USD, else None."""
        cost = self.usage_cost(model, usage, batch=batch)
        return cost[0] if cost is not None and cost[1] == "USD" else None


@lru_cache(maxsize=8)
def _schema(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


@lru_cache(maxsize=128)
def _read_json(path: str, mtime_ns: int) -> Any:
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ManifestError(f"{path}: not valid JSON: {exc}") from None


def _read(path: Path) -> dict[str, Any]:
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read: {exc.strerror}") from None
    data = _read_json(str(path), mtime)
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: <root>: expected an object, found {type(data).__name__}")
    return json.loads(json.dumps(data))  # a private copy: callers may merge into it


def _find(provider: str, dirs: list[Path]) -> tuple[Path, int] | None:
    for index, directory in enumerate(dirs):
        candidate = directory / f"{provider}.json"
        if candidate.is_file():
            return candidate, index
    return None


def _resolve_alias(name: str, dirs: list[Path]) -> str | None:
    """Aliases of the shipped manifests come from a small index (so no other manifest is
    parsed); user directories are few and small, so their manifests are scanned."""
    for directory in dirs[:-1]:
        for path in sorted(directory.glob("*.json")):
            if path.name in _NON_MANIFESTS:
                continue
            data = _read(path)
            if name in data.get("aliases", ()):
                return data.get("id", path.stem)
    index_path = dirs[-1] / ALIASES_FILE
    if index_path.is_file():
        return _read(index_path).get(name)
    return None


def _load_raw(provider: str, dirs: list[Path], seen: tuple[str, ...] = ()) -> tuple[dict[str, Any], Path]:
    found = _find(provider, dirs)
    if found is None:
        raise ConfigurationError(
            f"unknown provider {provider!r}; known providers: {', '.join(list_providers(dirs))}"
        )
    path, index = found
    data = _read(path)
    parent = data.pop("extends", None)
    if parent:
        if not isinstance(parent, str):
            raise ManifestError(f"{path}: extends: expected a manifest id (string), found {parent!r}")
        if (parent, str(path)) in seen:
            raise ManifestError(f"{path}: extends: cycle through {parent!r}")
        parent_dirs = dirs[index + 1:] if parent == provider else dirs
        try:
            base, _ = _load_raw(parent, parent_dirs, seen + ((parent, str(path)),))
        except ConfigurationError as exc:
            if isinstance(exc, ManifestError):
                raise
            raise ManifestError(f"{path}: extends: no manifest {parent!r} to extend") from None
        base.pop("aliases", None)
        data = deep_merge(base, data)
    return data, path


def load_manifest(provider: str, dirs: list[Path] | None = None) -> Manifest:
    """Load, merge and validate the manifest of ``provider`` (an id or an alias)."""
    dirs = dirs if dirs is not None else search_dirs()
    name = provider
    if _find(name, dirs) is None:
        name = _resolve_alias(provider, dirs) or provider
    data, path = _load_raw(name, dirs)
    try:
        validate(data, _schema(str(builtin_dir() / SCHEMA_FILE)))
    except SchemaViolation as exc:
        raise ManifestError(f"{path}: field {exc.path!r}: expected {exc.expected}, found {_short(exc.found)}") from None
    if data["id"] != name:
        raise ManifestError(f"{path}: field 'id': expected {name!r} (the file name), found {data['id']!r}")
    from .dialects import dialect_names

    if data["dialect"] not in dialect_names():
        raise ManifestError(f"{path}: field 'dialect': expected one of {', '.join(dialect_names())}, found {data['dialect']!r}")
    return Manifest(data, path)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def list_providers(dirs: list[Path] | None = None) -> list[str]:
    """Provider ids known in ``dirs`` (file names only: nothing is parsed)."""
    dirs = dirs if dirs is not None else search_dirs()
    ids: set[str] = set()
    for directory in dirs:
        if directory.is_dir():
            ids.update(path.stem for path in directory.glob("*.json") if path.name not in _NON_MANIFESTS)
    return sorted(ids)


def split_model_id(model_id: str) -> tuple[str, str]:
    """``"openrouter/anthropic/claude-3.5-sonnet"`` -> ``("openrouter", "anthropic/claude-3.5-sonnet")``."""
    if not isinstance(model_id, str) or "/" not in model_id:
        raise ConfigurationError(
            f"model id {model_id!r} must be 'provider/model', for example 'openai/gpt-4o'"
        )
    provider, _, model = model_id.partition("/")
    if not provider or not model:
        raise ConfigurationError(f"model id {model_id!r} must be 'provider/model', for example 'openai/gpt-4o'")
    return provider.lower(), model


def build_alias_index(directory: Path | None = None) -> dict[str, str]:
    """The alias index of a directory, as ``_aliases.json`` must hold it."""
    directory = directory or builtin_dir()
    index: dict[str, str] = {}
    for path in sorted(directory.glob("*.json")):
        if path.name in _NON_MANIFESTS:
            continue
        data = _read(path)
        for alias in data.get("aliases", ()):
            index[alias] = data["id"]
    return index


if __name__ == "__main__":  # python -m ai_lib_sync.manifest: rewrite the shipped alias index
    target = builtin_dir() / ALIASES_FILE
    target.write_text(json.dumps(build_alias_index(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {target}")


def manifest_for_api(manifest: Manifest, model: str, api: str | None) -> Manifest:
    """The manifest seen through one of the APIs it declares under ``apis`` (the OpenAI
    Responses API, say): ``api`` when given, else the API that alone serves ``model``, else
    the main one, which ``api="chat"`` names."""
    apis = manifest.data.get("apis", {})
    if api is None:
        api = next((name for name, spec in apis.items()
                    if any(fnmatch.fnmatchcase(model.lower(), glob.lower()) for glob in spec.get("models", ()))),
                   "chat")
    if api == "chat":
        return manifest
    if api not in apis:
        raise ConfigurationError(f"{manifest.id} offers the APIs {', '.join(['chat', *apis])}, not api={api!r}")
    spec = apis[api]
    data = {**manifest.data, "dialect": spec["dialect"], "endpoint": {**manifest.endpoint, **spec["endpoint"]}}
    return Manifest(data, manifest.path)
