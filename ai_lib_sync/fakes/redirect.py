"""Point every ``AiClient`` of this process at one loopback fake, without touching app code.

The redirect works at the transport boundary, so it reaches clients that were built before it
started (a module-level ``client = AiClient(...)`` in a Django ``views.py``) as well as clients
built later: while it is active, each HTTP attempt keeps its path and query but goes to the
fake's host and port. On the way out it also

- replaces every key the fake did not issue with ``REDACTED_KEY`` (a developer's real key held
  by a module-level client never leaves the process, not even to the fake's records);
- tags the attempt with the number of the call it belongs to (``x-ai-fake-call``; the fake
  strips it again), so a scripted error can answer every retry of one call;
- records retry back-off instead of sleeping (``fake.sleeps``), unless ``fake.real_sleep``.

``fake_environment`` gives the variables a client built during the test needs: a fake key in
every manifest's key variables and the fake's URL in its base-URL variable (so a subprocess or
an official SDK reading ``OPENAI_BASE_URL`` reaches the fake too). Everything is undone by
``stop()``. This patches ``Transport`` privately; tests/test_pytest_plugin.py breaks loudly if
the transport changes shape.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

REDACTED_KEY = "ai-fake-redacted-key"
CALL_HEADER = "x-ai-fake-call"
_SECRET_HEADERS = ("x-amz-security-token",)  # credentials that travel outside Prepared.secrets


class Target(Protocol):
    base_url: str
    issued_keys: set[str]
    sleeps: list[float]
    real_sleep: bool


class Redirect:
    """Patch the transport so that every request goes to ``target`` until ``stop()``."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._calls = itertools.count(1)
        self._local = threading.local()
        self._undo: list[Callable[[], None]] = []

    def start(self) -> Redirect:
        from .. import transport

        cls = transport.Transport
        for name in ("_send", "with_retries"):
            if not callable(getattr(cls, name, None)):
                raise RuntimeError(f"ai_lib_sync.transport.Transport.{name} is gone: the fake cannot redirect")
        send, with_retries, pause = cls._send, cls.with_retries, transport._pause
        redirect = self

        def redirected_send(self: Any, prepared: Any, *args: Any, **kwargs: Any) -> Any:
            return send(self, redirect.reroute(prepared), *args, **kwargs)

        def numbered_with_retries(self: Any, *args: Any, **kwargs: Any) -> Any:
            outer = getattr(redirect._local, "call", None)
            if outer is None:
                redirect._local.call = next(redirect._calls)
            try:
                return with_retries(self, *args, **kwargs)
            finally:
                if outer is None:
                    redirect._local.call = None

        def recorded_pause(seconds: float) -> None:
            redirect.target.sleeps.append(seconds)
            if redirect.target.real_sleep:
                return pause(seconds)
            scope = transport.current_scope()
            if scope is not None and scope.aborted.is_set():
                scope.check()
            return None

        self._patch(cls, "_send", redirected_send)
        self._patch(cls, "with_retries", numbered_with_retries)
        self._patch(transport, "_pause", recorded_pause)
        return self

    def stop(self) -> None:
        while self._undo:
            self._undo.pop()()

    def _patch(self, owner: Any, name: str, value: Any) -> None:
        original = owner.__dict__[name]
        setattr(owner, name, value)
        self._undo.append(lambda: setattr(owner, name, original))

    def reroute(self, prepared: Any) -> Any:
        """A copy of ``prepared`` aimed at the fake: signed first (a SigV4 signature covers the
        real host), keys not issued by the fake masked, tagged with its call number."""
        copy = dataclasses.replace(prepared, headers=dict(prepared.headers))
        if copy.sign is not None:
            copy.sign(copy)
            copy.sign = None
        issued = self.target.issued_keys
        hidden = [secret for secret in prepared.secrets if secret and secret not in issued]
        for name in list(copy.headers):
            value = copy.headers[name]
            if name.lower() in _SECRET_HEADERS and value not in issued:
                value = REDACTED_KEY
            for secret in hidden:
                value = value.replace(secret, REDACTED_KEY)
            copy.headers[name] = value
        url = copy.url
        for secret in hidden:
            url = url.replace(secret, REDACTED_KEY)
        parts, fake = urlsplit(url), urlsplit(self.target.base_url)
        copy.url = urlunsplit((fake.scheme, fake.netloc, parts.path, parts.query, ""))
        call = getattr(self._local, "call", None) or next(self._calls)
        copy.headers[CALL_HEADER] = str(call)
        return copy


def fake_environment(base_url: str, dirs: Any = None) -> dict[str, str]:
    """Environment variables that make a client built now use ``base_url`` and a fake key:
    every key variable of every known manifest, and each manifest's first base-URL variable
    (the fake's URL plus the path of the provider's documented base URL)."""
    from ..errors import AiLibError
    from ..manifest import list_providers, load_manifest, search_dirs

    dirs = search_dirs() if dirs is None else dirs
    env: dict[str, str] = {}
    for provider in list_providers(dirs):
        try:
            manifest = load_manifest(provider, dirs)
        except AiLibError:
            continue  # a broken user manifest is its own test's problem
        auth = manifest.auth
        for name in [*auth.get("env", ()), *auth.get("bearer_env", ())]:
            env[name] = f"ai-fake-key-{manifest.id}"
        endpoint = manifest.endpoint
        default = str(endpoint.get("base_url", ""))
        names = endpoint.get("base_url_env") or ()
        if names and default.startswith(("http://", "https://")):
            path = urlsplit(default).path if "{" not in urlsplit(default).path else ""
            env[names[0]] = base_url + path.rstrip("/")
        for spec in (endpoint.get("variables") or {}).values():
            # A variable that is the whole base URL (Azure's "{endpoint}") points at the fake too.
            if default.startswith("{") and default.endswith("}") and spec.get("env"):
                env[spec["env"][0]] = base_url
    return env


class Environment:
    """Set variables and restore the previous values (or their absence) afterwards."""

    def __init__(self, values: Mapping[str, str], environ: Any = None) -> None:
        self.values = dict(values)
        self.environ = os.environ if environ is None else environ
        self._saved: dict[str, str | None] = {}

    def start(self) -> Environment:
        for name, value in self.values.items():
            self._saved.setdefault(name, self.environ.get(name))
            self.environ[name] = value
        return self

    def stop(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                self.environ.pop(name, None)
            else:
                self.environ[name] = value
        self._saved.clear()
