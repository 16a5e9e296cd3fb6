from control.pricing import cost_usd


def test_prices_by_family_and_generation() -> None:
    assert cost_usd("claude-sonnet-4-6", 1_000_000, 0) == 3.0
    assert cost_usd("claude-haiku-4-5-20251001", 0, 1_000_000) == 5.0
    assert cost_usd("claude-opus-4-7", 1_000_000, 1_000_000) == 30.0
    assert cost_usd("claude-opus-4-1-20250805", 1_000_000, 0) == 15.0
    assert cost_usd("something-new", 1_000_000, 0) == 3.0  # priced as Sonnet


def test_cache_reads_and_writes() -> None:
    assert cost_usd("claude-sonnet-4-6", 0, 0, cache_read_tokens=1_000_000) == 0.3
    assert cost_usd("claude-sonnet-4-6", 0, 0, cache_write_tokens=1_000_000) == 3.75
