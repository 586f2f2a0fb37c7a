"""Many requests at once: a thread pool with shared limits, progress and checkpoints.

``executor`` (``BatchExecutor``, ``BatchResults``), ``limits`` (``RateLimiter``),
``checkpoint`` (resumable JSONL rows), ``progress`` (``BatchProgress``). This package sits
above the client; the client reaches it only lazily, from ``AiClient.batch``.
"""

from .executor import BatchExecutor, BatchInterrupted, BatchResults, UnfinishedError
from .limits import RateLimiter
from .progress import BatchProgress
from .provider_jobs import BatchJob

__all__ = ["BatchExecutor", "BatchInterrupted", "BatchJob", "BatchProgress", "BatchResults", "RateLimiter",
           "UnfinishedError"]
