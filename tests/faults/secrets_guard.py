"""A suite-wide guard: no test key may appear in an exception or a log record.

Cheap by design, so it can run around every test:

- **Which keys.** Every ``Credentials`` the library resolves (bearer, custom header and
  query-parameter keys) and every ``secrets=`` an ``AiLibError`` is built with (which includes a
  SigV4 session token added at signing) are remembered; values shorter than 8 characters are
  ignored (they would match by accident).
- **Logs.** One handler on the root logger at DEBUG sees every record of every logger; it
  formats the message only (no timestamps, no handlers of its own) and keeps the hits.
- **Exceptions.** Each ``AiLibError`` built during a test is kept by weak reference (it may be
  redacted after it is built, by the binding that stamps it); at teardown every one still alive
  (the ones a caller could still show) is scanned: ``str``, ``repr``,
  ``body`` and its whole ``__cause__``/``__context__`` chain (with any ``.request.headers`` and
  ``.request.url`` a requests exception carries), and so is the exception that failed the test,
  if any. Weak references keep the guard from holding 10,000 errors (and what their tracebacks
  hold) through a load test.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from ai_lib_sync import errors, resolve

MIN_SECRET = 8
SECRETS: set[str] = set()
_errors: list[weakref.ref[BaseException]] = []
_leaks: list[str] = []


def _remember(values: Any) -> None:
    for value in values or ():
        if isinstance(value, str) and len(value) >= MIN_SECRET:
            SECRETS.add(value)


def _found(text: str) -> str | None:
    for secret in SECRETS:
        if secret in text:
            return secret
    return None


class _LogScanner(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if not SECRETS:
            return
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken log call is not this guard's business
            return
        if record.exc_info and record.exc_info[1] is not None:
            text += " " + repr(record.exc_info[1])
        secret = _found(text)
        if secret:
            _leaks.append(f"log record of {record.name!r}: {text[:300]!r}")


def _texts(error: BaseException) -> Iterator[str]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        for name in ("body", "message"):
            value = getattr(current, name, None)
            if isinstance(value, str):
                yield value
        request = getattr(current, "request", None)
        if request is not None:
            yield str(getattr(request, "url", ""))
            yield repr(dict(getattr(request, "headers", None) or {}))
        current = current.__cause__ or current.__context__


def scan_error(error: BaseException) -> str | None:
    for text in _texts(error):
        secret = _found(text)
        if secret:
            return f"{type(error).__name__}: {text[:300]!r}"
    return None


def install() -> None:
    """Wrap the two constructors and attach the log handler (once per session)."""
    if getattr(errors.AiLibError, "_guarded", False):
        return
    original_error_init = errors.AiLibError.__init__
    original_credentials_init = resolve.Credentials.__init__

    def error_init(self: Any, *args: Any, **kwargs: Any) -> None:
        secrets = tuple(kwargs.get("secrets") or ())
        _remember(secrets)
        original_error_init(self, *args, **kwargs)
        _errors.append(weakref.ref(self))

    def credentials_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_credentials_init(self, *args, **kwargs)
        _remember(self.secrets)

    errors.AiLibError.__init__ = error_init  # type: ignore[method-assign]
    errors.AiLibError._guarded = True  # type: ignore[attr-defined]
    resolve.Credentials.__init__ = credentials_init  # type: ignore[method-assign]
    root = logging.getLogger()
    root.addHandler(_LogScanner(logging.DEBUG))
    root.setLevel(logging.DEBUG)


@pytest.fixture(autouse=True)
def secrets_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    _errors.clear()
    _leaks.clear()
    yield
    leaks = list(_leaks)
    for reference in _errors:
        error = reference()
        leak = None if error is None else scan_error(error)
        if leak:
            leaks.append(leak)
    _errors.clear()
    _leaks.clear()
    if leaks and "allow_secret_in_output" not in request.keywords:
        pytest.fail("a test key reached an exception or a log record:\n" + "\n".join(leaks[:5]), pytrace=False)


def check_report(item: pytest.Item, call: pytest.CallInfo) -> str | None:
    """The exception that failed a test must not show a key either."""
    if call.excinfo is None:
        return None
    return scan_error(call.excinfo.value)
