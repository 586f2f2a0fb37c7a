"""Test helpers: split wire bytes at awkward places and decode them without HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ai_lib_sync.dialects import get_dialect
from ai_lib_sync.fakes.base import awkward_chunks as fake_awkward_chunks
from ai_lib_sync.framing import FRAMERS
from ai_lib_sync.manifest import load_manifest, search_dirs
from ai_lib_sync.types import StreamEvent

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_bytes(relative: str) -> bytes:
    return (FIXTURES / relative).read_bytes()


def fixture_json(relative: str) -> Any:
    """JSON fixtures are ``{"_source": "<doc URL>", ...payload}``; the source key is dropped."""
    data = json.loads((FIXTURES / relative).read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = {key: value for key, value in data.items() if key != "_source"}
    return data


def awkward_chunks(data: bytes, sizes: tuple[int, ...] = (1, 2, 3, 5, 7, 11, 13)) -> list[bytes]:
    """Cut ``data`` into small, uneven pieces: every line and most multi-byte UTF-8 characters
    end up split across two chunks (the wire fakes' cutter, with smaller pieces)."""
    return fake_awkward_chunks(data, sizes)


def decode_stream(provider: str, data: bytes | list[bytes], model: str = "test-model",
                  awkward: bool = True) -> list[StreamEvent]:
    """Frame and decode a raw stream body with ``provider``'s manifest, as the client does,
    including the end-of-stream check."""
    manifest = load_manifest(provider, search_dirs())
    dialect = get_dialect(manifest.dialect)
    chunks = data if isinstance(data, list) else (awkward_chunks(data) if awkward else [data])
    framing = manifest.streaming.get("framing", dialect.framing)
    decoder = dialect.stream_decoder(manifest, model)
    events: list[StreamEvent] = []
    for event_name, payload in FRAMERS[framing](iter(chunks)):
        events.extend(decoder.feed(event_name, payload))
    events.extend(decoder.finish())
    return events


def text_of(events: list[StreamEvent]) -> str:
    return "".join(event.text for event in events if event.is_content_delta)


def kinds(events: list[StreamEvent]) -> list[str]:
    return [event.kind for event in events]
