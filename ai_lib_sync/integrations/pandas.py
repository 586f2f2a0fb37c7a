"""The notebook case: a DataFrame column of prompts in, result columns out, over the executor.

    from ai_lib_sync.integrations.pandas import chat_column
    df = chat_column(df, "prompt", model="openai/gpt-4o-mini", max_workers=16, rpm=500)
    df[["content", "total_tokens", "cost_usd", "error"]]

Returns a new DataFrame: ``df`` plus the record columns (``integrations.records``: content,
finish_reason, prompt/completion/total tokens, cost_usd, error kind, error_message), each
prefixed with ``prefix`` (default none); ``df`` itself is left unchanged. A failed row has its
error kind and message and no content: one bad prompt never loses the column. Cells may be
prompt strings or OpenAI-style dicts; ``request_options`` (``temperature=0``,
``max_tokens=...``) apply to every row. Other keyword arguments go to ``BatchExecutor``
(``rpm``, ``tpm``, ``limiter`` (shared budget), ``progress``, ``checkpoint``/``resume``,
``client``). pandas is imported only here (extra ``[pandas]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigurationError
from .records import FIELDS, record, with_options

_EXECUTOR_OPTIONS = ("client", "rpm", "tpm", "max_concurrent", "burst", "adaptive", "limiter",
                     "progress", "on_progress", "checkpoint", "resume", "checkpoint_raw",
                     "max_in_flight", "max_buffered", "client_options", "estimate")


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ConfigurationError("chat_column needs pandas: pip install 'ai-lib-sync[pandas]'") from None
    return pandas


def chat_column(df: Any, column: str, *, model: str | None = None, max_workers: int = 8,
                prefix: str = "", request_options: Mapping[str, Any] | None = None,
                **options: Any) -> Any:
    """Run every cell of ``df[column]`` as a chat request; ``df`` with result columns added."""
    pandas = _pandas()
    if not isinstance(df, pandas.DataFrame):
        raise ConfigurationError(f"chat_column takes a pandas DataFrame, got {type(df).__name__}")
    if column not in df.columns:
        raise ConfigurationError(f"no column {column!r} in the DataFrame (columns: {list(df.columns)})")
    unknown = sorted(set(options) - set(_EXECUTOR_OPTIONS))
    if unknown:
        raise ConfigurationError(f"unknown option(s) {unknown}: put request fields in request_options=")
    if model is None and options.get("client") is None:
        raise ConfigurationError("chat_column needs model='provider/model' or client=")
    clashes = [prefix + name for name in FIELDS if prefix + name in df.columns and prefix + name != column]
    if clashes:
        raise ConfigurationError(f"columns {clashes} exist already: pass prefix='...'")
    from ..batch import BatchExecutor

    extra = dict(request_options or {})
    items = [with_options(cell, extra) for cell in df[column].tolist()]
    with BatchExecutor(max_workers, model=model, **options) as executor:
        results = executor.run(items)
        client = executor._client
        rows = [record(result, client) for result in results]
    out = df.copy()
    frame = pandas.DataFrame(rows, columns=list(FIELDS), index=df.index)
    for name in FIELDS:
        if name == "custom_id" and frame[name].isna().all():
            continue
        out[prefix + name] = frame[name]
    return out
