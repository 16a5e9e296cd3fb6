"""Estimated model prices, so the relay can meter dollars as well as tokens.

The relay is the one metering authority: it sees every model request a machine makes
(including the CLI's side requests), so budgets and usage reports use its figures.
Prices are USD per million tokens by model family; cache reads cost 0.1× input and cache
writes 1.25× input, as Anthropic bills them. Unknown models are priced as Sonnet.
"""

from __future__ import annotations

# Checked in order: the older Opus generations kept the higher price; Opus 4.5 and later
# cost 5/25. Families without a date or version fall through to the current price.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "haiku": (1.0, 5.0),
    "sonnet": (3.0, 15.0),
    "opus-4-0": (15.0, 75.0),
    "opus-4-1": (15.0, 75.0),
    "opus-4-2025": (15.0, 75.0),
    "3-opus": (15.0, 75.0),
    "opus": (5.0, 25.0),
}


def cost_usd(model: str, input_tokens: int, output_tokens: int, cache_read_tokens: int = 0,
             cache_write_tokens: int = 0) -> float:
    price_in, price_out = _prices(model)
    total = (input_tokens * price_in + output_tokens * price_out + cache_read_tokens * price_in * 0.1
             + cache_write_tokens * price_in * 1.25)
    return round(total / 1_000_000, 8)


def _prices(model: str) -> tuple[float, float]:
    name = (model or "").lower()
    for family, prices in PRICES_PER_MTOK.items():
        if family in name:
            return prices
    return PRICES_PER_MTOK["sonnet"]
