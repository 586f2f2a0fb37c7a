"""The error taxonomy: one base class, one subclass per ``kind``, secrets always redacted.

Classification (which kind an HTTP failure is) lives in the dialects and manifests; this
module only defines the classes, the shared defaults, and the redaction that every error
message and body passes through.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

KINDS = (
    "authentication", "permission", "not_found", "invalid_request", "context_length",
    "rate_limited", "quota_exhausted", "server_error", "overloaded", "timeout",
    "connection", "content_filter", "stream_interrupted", "configuration", "manifest",
)
RETRYABLE_KINDS = frozenset({"rate_limited", "server_error", "overloaded", "timeout", "connection"})

# Shapes that look like credentials; redacted even when we do not know the exact secret
# (a provider may echo a different key, or part of it, in an error message).
_SECRET_PATTERNS = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|(?<=[?&]key=)[^&\s\"']+|"
    r"(?i:bearer)\s+[A-Za-z0-9._\-]{8,}|(?i:x-amz-security-token)[:=]\s*[^\s'\"&,\\]+)"
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove known secrets and anything shaped like an API key from ``text``."""
    if not text:
        return text
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _SECRET_PATTERNS.sub("***", text)


class AiLibError(Exception):
    """Base of every error ai-lib-sync raises. ``kind`` says what went wrong."""

    kind = "invalid_request"
    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        provider: str | None = None,
        model: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
        body: str | None = None,
        code: str | None = None,
        partial_content: str | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        secrets = tuple(secrets)
        self.message = redact(message, secrets)
        super().__init__(self.message)
        self.status_code = status_code
        self.provider = provider
        self.model = model
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after
        self.request_id = request_id
        self.body = redact(body, secrets) if body else body
        self.code = code
        self.partial_content = partial_content

    def __str__(self) -> str:
        where = "/".join(part for part in (self.provider, self.model) if part)
        prefix = f"[{self.kind}{' ' + str(self.status_code) if self.status_code else ''}"
        prefix += f" {where}]" if where else "]"
        return f"{prefix} {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep errors picklable (process pools, multiprocessing results).
        state = dict(self.__dict__)
        return (_rebuild_error, (type(self), state))


def _rebuild_error(cls: type[AiLibError], state: dict[str, Any]) -> AiLibError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    error.__dict__.update(state)
    return error


class AuthenticationError(AiLibError):
    kind = "authentication"


class PermissionDeniedError(AiLibError):
    kind = "permission"


class NotFoundError(AiLibError):
    kind = "not_found"


class InvalidRequestError(AiLibError, ValueError):
    kind = "invalid_request"


class ContextLengthError(InvalidRequestError):
    kind = "context_length"


class RateLimitError(AiLibError):
    kind = "rate_limited"
    default_retryable = True


class QuotaExhaustedError(AiLibError):
    kind = "quota_exhausted"


class ServerError(AiLibError):
    kind = "server_error"
    default_retryable = True


class OverloadedError(ServerError):
    kind = "overloaded"


class APITimeoutError(AiLibError):
    kind = "timeout"
    default_retryable = True


class APIConnectionError(AiLibError):
    kind = "connection"
    default_retryable = True


class ContentFilterError(AiLibError):
    kind = "content_filter"


class StreamInterruptedError(AiLibError):
    kind = "stream_interrupted"


class ConfigurationError(AiLibError, ValueError):
    kind = "configuration"


class ManifestError(ConfigurationError):
    kind = "manifest"


ERROR_CLASSES: dict[str, type[AiLibError]] = {
    cls.kind: cls
    for cls in (
        AuthenticationError, PermissionDeniedError, NotFoundError, InvalidRequestError,
        ContextLengthError, RateLimitError, QuotaExhaustedError, ServerError, OverloadedError,
        APITimeoutError, APIConnectionError, ContentFilterError, StreamInterruptedError,
        ConfigurationError, ManifestError,
    )
}
assert set(ERROR_CLASSES) == set(KINDS)

# Status -> kind when neither the manifest nor the dialect knows better.
STATUS_KINDS = {
    400: "invalid_request", 401: "authentication", 402: "quota_exhausted", 403: "permission",
    404: "not_found", 408: "timeout", 409: "server_error", 413: "context_length",
    422: "invalid_request", 429: "rate_limited", 500: "server_error", 502: "server_error",
    503: "overloaded", 504: "timeout", 529: "overloaded",
}


def kind_for_status(status: int | None) -> str:
    if status is None:
        return "server_error"
    if status in STATUS_KINDS:
        return STATUS_KINDS[status]
    if status >= 500:
        return "server_error"
    return "invalid_request"


def make_error(kind: str, message: str, **kwargs: Any) -> AiLibError:
    """Instantiate the subclass for ``kind``; unknown kinds fall back to ``server_error``."""
    return ERROR_CLASSES.get(kind, ServerError)(message, **kwargs)
