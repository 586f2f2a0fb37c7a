"""Per-client configuration resolved from a manifest, explicit arguments and the environment:
the base URL, the API key, and the headers and query parameters that carry it.

Explicit arguments win over environment variables, which win over manifest defaults. A key
that is required but missing fails here, before any request, naming where we looked.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigurationError

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass
class Endpoint:
    base_url: str
    query: dict[str, str] = field(default_factory=dict)
    embedded: Any = None  # an in-process loopback server the client must close


@dataclass
class Credentials:
    """How the key travels. ``secrets`` lists every value that must never be shown."""

    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    signer: str | None = None  # "aws_sigv4" when requests are signed instead of keyed

    def __repr__(self) -> str:
        return f"Credentials(headers={sorted(self.headers)}, query={sorted(self.query)}, signer={self.signer!r})"


def first_env(names: list[str] | tuple[str, ...], environ: Mapping[str, str]) -> str | None:
    for name in names:
        value = environ.get(name)
        if value:
            return value
    return None


def resolve_endpoint(manifest: Any, base_url: str | None, environ: Mapping[str, str],
                     url_params: Mapping[str, str] | None = None) -> Endpoint:
    endpoint = manifest.endpoint
    query = dict(endpoint.get("query", {}))
    for name, env_names in endpoint.get("query_env", {}).items():
        value = first_env(env_names, environ)
        if value:
            query[name] = value
    chosen = base_url or first_env(endpoint.get("base_url_env", ()), environ) or endpoint["base_url"]
    if chosen.startswith("embedded:"):
        _, module_name, factory = chosen.split(":", 2)
        server = getattr(importlib.import_module(module_name), factory)()
        return Endpoint(server.base_url, query, server)
    chosen = with_default_scheme(chosen, endpoint["base_url"])
    variables = endpoint.get("variables", {})
    params = dict(url_params or {})

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in params:
            return str(params[name])
        spec = variables.get(name, {})
        value = first_env(spec.get("env", ()), environ) or _ask_resolver(spec.get("resolver"), environ) \
            or spec.get("default")
        if not value:
            looked = ", ".join(spec.get("env", ())) or "no environment variable"
            raise ConfigurationError(
                f"{manifest.id}: the endpoint needs {name!r}; pass url_params={{'{name}': ...}} or base_url=..., "
                f"or set {looked}"
            )
        return value

    resolved = _PLACEHOLDER.sub(substitute, chosen).rstrip("/")
    if not resolved.startswith(("http://", "https://")):
        raise ConfigurationError(f"{manifest.id}: base URL must start with http:// or https://, got {resolved!r}")
    return Endpoint(resolved, query)


def _ask_resolver(target: str | None, environ: Mapping[str, str]) -> str | None:
    """A manifest variable's ``"resolver": "module:function"``, asked after its environment
    variables and before its default (e.g. the region of the active AWS profile)."""
    if not target:
        return None
    module_name, _, function = target.partition(":")
    return getattr(importlib.import_module(module_name), function)(environ)


def with_default_scheme(value: str, default: str) -> str:
    """Complete a base URL given without a scheme, as ``OLLAMA_HOST`` often is ("0.0.0.0",
    "gpu-box:11434"): it takes the scheme of the manifest's default URL and, when it names no
    port, the default's explicit port. Values with a scheme are left alone, as Ollama's own
    client does (``http://gpu-box`` means port 80)."""
    if "://" in value or value.startswith("{"):  # "{endpoint}" stands for a whole URL (Azure)
        return value
    default_parts = urlsplit(default)
    scheme = default_parts.scheme if default_parts.scheme in ("http", "https") else "https"
    parts = urlsplit(f"{scheme}://{value}")
    netloc = parts.netloc
    try:
        default_port, port = default_parts.port, parts.port
    except ValueError:  # a placeholder or garbage where the port goes: leave it to the checks
        return f"{scheme}://{value}"
    if port is None and default_port is not None and parts.hostname:
        netloc += f":{default_port}"
    return urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))


def resolve_credentials(manifest: Any, api_key: str | None, environ: Mapping[str, str]) -> Credentials:
    auth = manifest.auth
    kind = auth["type"]
    if kind == "none":
        return Credentials()
    env_names = list(auth.get("env", ()))
    if kind == "aws_sigv4":
        bearer = api_key or first_env(auth.get("bearer_env", ()), environ)
        if bearer:
            return Credentials(headers={"Authorization": f"Bearer {bearer}"}, secrets=(bearer,))
        return Credentials(signer="aws_sigv4")
    key = api_key or first_env(env_names, environ)
    if not key:
        if auth.get("optional"):
            return Credentials()
        looked = ", ".join(env_names) or "(no variable declared)"
        raise ConfigurationError(
            f"no API key for {manifest.id}: pass api_key=... or set one of {looked}"
        )
    if kind == "bearer":
        return Credentials(headers={"Authorization": f"Bearer {key}"}, secrets=(key,))
    if kind == "header":
        header = auth.get("header")
        if not header:
            raise ConfigurationError(f"{manifest.path}: field 'auth.header': expected a header name for auth type 'header'")
        return Credentials(headers={header: auth.get("prefix", "") + key}, secrets=(key,))
    param = auth.get("query_param") or "key"
    return Credentials(query={param: key}, secrets=(key,))


def environment() -> Mapping[str, str]:
    return os.environ
