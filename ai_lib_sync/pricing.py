"""Prices from the manifests' catalogs, and what a call cost.

Prices are data: they live in the manifests (``pricing`` and each ``models`` entry), shipped
with the package and overridable in the user's own manifests. Nothing here fetches a price.

Token counts follow one rule across dialects (see ``Usage``): ``prompt_tokens`` includes the
cached prompt tokens, and ``completion_tokens`` includes the reasoning tokens (dialects add
them where a provider reports them apart, ``response.completion_excludes_reasoning``).
Reasoning is billed as output by every provider we ship, so it needs no price of its own and
is never counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .types import Usage


@dataclass(frozen=True)
class Price:
    """Price per million tokens of one model, in the currency its provider bills in (USD unless
    the manifest says otherwise: mainland-China endpoints bill in CNY, and we never convert), and
    where the figures come from."""

    input_per_mtok: float
    output_per_mtok: float
    # The price of a prompt token read from the provider's cache; None when the provider
    # publishes none, and cached tokens are then billed as ordinary input.
    cached_input_per_mtok: float | None = None
    # Fraction taken off list prices for the provider's Batch API (0.5 = half price).
    batch_discount: float | None = None
    source: str | None = None
    as_of: str | None = None
    currency: str = "USD"


def price_of(info: dict[str, Any], pricing: dict[str, Any]) -> Price | None:
    """The price of one catalog entry, the manifest's ``pricing`` filling in what the entry
    leaves out; None when the entry has no input and output price."""
    if "input_per_mtok" not in info or "output_per_mtok" not in info:
        return None
    return Price(
        float(info["input_per_mtok"]),
        float(info["output_per_mtok"]),
        _optional_float(info.get("cached_input_per_mtok")),
        _optional_float(info.get("batch_discount", pricing.get("batch_discount"))),
        info.get("source", pricing.get("source")),
        info.get("as_of", pricing.get("as_of")),
        str(info.get("currency", pricing.get("currency", "USD"))),
    )


def cost_of(price: Price, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0,
             *, batch: bool = False) -> float:
    """What a call cost, in ``price.currency``: uncached prompt tokens at the input price, cached ones at the cached
    price, completion tokens (reasoning included) at the output price; ``batch`` applies the
    provider's documented Batch API discount (none documented: list price)."""
    prompt = max(int(prompt_tokens or 0), 0)
    cached = min(max(int(cached_tokens or 0), 0), prompt)
    cached_price = price.input_per_mtok if price.cached_input_per_mtok is None else price.cached_input_per_mtok
    cost = ((prompt - cached) * price.input_per_mtok + cached * cached_price
            + max(int(completion_tokens or 0), 0) * price.output_per_mtok)
    if batch and price.batch_discount:
        cost *= 1.0 - price.batch_discount
    return round(cost / 1_000_000, 10)


def usage_cost_of(price: Price, usage: Usage, *, batch: bool = False) -> float:
    """``cost_of`` a unified ``Usage``."""
    return cost_of(price, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens or 0,
                    batch=batch)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
