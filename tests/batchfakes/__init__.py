"""Loopback fakes of the three provider Batch API families, written from the providers' docs.

Each fake is a small stateful server (``ai_lib_sync.testing.LoopbackServer``) that reads the
requests strictly in its family's documented shape (a wrong path, header, field or JSONL line
is answered 400 and recorded in ``violations``), keeps batches, advances them one state per
poll, and answers in the documented shapes. ``polls`` is how many status polls a batch takes
to end; ``fail``/``expire`` are custom ids answered with an error or left unrun;
``outcome="expired"|"failed"`` ends whole batches that way; ``lose_creates=N`` makes the first
N create calls create the batch and then answer 500, as when an answer is lost on the way.
"""

from .anthropic import AnthropicBatchFake
from .base import BatchFake, Violation
from .gemini import GeminiBatchFake
from .openai import OpenAIBatchFake

__all__ = ["AnthropicBatchFake", "BatchFake", "GeminiBatchFake", "OpenAIBatchFake", "Violation"]
