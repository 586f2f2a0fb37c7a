"""ai-lib-sync: one blocking chat-completion API over many LLM providers.

Importing the package is cheap on purpose: no network, no manifest parsing, no thread, and
no heavy import. Public names are resolved on first access (PEP 562 ``__getattr__``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "AiClient": "client", "ChatBuilder": "client", "ChatStream": "client",
    "BatchExecutor": "batch", "BatchResults": "batch", "RateLimiter": "batch", "BatchJob": "batch",
    "Message": "types", "MessageRole": "types", "ChatResponse": "types", "CallStats": "types",
    "Usage": "types", "ToolCall": "types", "Tool": "types", "ImagePart": "types", "TextPart": "types",
    "ChatRequest": "types", "StreamEvent": "types", "ContentDelta": "types", "ThinkingDelta": "types",
    "ToolCallStarted": "types", "ToolCallDelta": "types", "ToolCallEnded": "types",
    "UsageEvent": "types", "FinishEvent": "types", "EmbeddingResponse": "types",
    "Manifest": "manifest",
    "AiLibError": "errors", "AuthenticationError": "errors", "PermissionDeniedError": "errors",
    "NotFoundError": "errors", "InvalidRequestError": "errors", "ContextLengthError": "errors",
    "RateLimitError": "errors", "QuotaExhaustedError": "errors", "ServerError": "errors",
    "OverloadedError": "errors", "APITimeoutError": "errors", "APIConnectionError": "errors",
    "ContentFilterError": "errors", "StructuredOutputError": "structured", "StreamInterruptedError": "errors",
    "ConfigurationError": "errors", "ManifestError": "errors",
}

__all__ = sorted([*_EXPORTS, "providers", "__version__"])


def providers(manifests_dir: Any = None) -> list[str]:
    """Ids of the providers this installation knows (file names only; nothing is parsed)."""
    from .manifest import list_providers, search_dirs

    return list_providers(search_dirs(manifests_dir))


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'ai_lib_sync' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from .batch import BatchExecutor, BatchJob, BatchResults, RateLimiter  # noqa: F401
    from .client import AiClient, ChatBuilder, ChatStream  # noqa: F401
    from .errors import *  # noqa: F401,F403
    from .manifest import Manifest  # noqa: F401
    from .types import *  # noqa: F401,F403
