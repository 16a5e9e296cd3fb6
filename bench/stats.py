"""Pure helpers: percentiles, summaries, ratios, "n/a" markers and the printed table.

Nothing here starts a process or reads a clock, so it is unit-tested (tests/unit/test_bench_smoke.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, overload


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0–100) with linear interpolation between closest ranks.

    Matches numpy's default ("linear") method; ``None`` for no values.
    """
    data = sorted(float(v) for v in values)
    if not data:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, not {q}")
    if len(data) == 1:
        return data[0]
    rank = (len(data) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return data[low]
    return data[low] + (data[high] - data[low]) * (rank - low)


def summarize(values: Iterable[float]) -> dict[str, Any]:
    """n, p50, p95, min, max and mean of a sample (``None`` entries when it is empty)."""
    data = [float(v) for v in values]
    if not data:
        return {"n": 0, "p50": None, "p95": None, "min": None, "max": None, "mean": None}
    return {"n": len(data), "p50": percentile(data, 50), "p95": percentile(data, 95), "min": min(data),
            "max": max(data), "mean": sum(data) / len(data)}


def ratio(numerator: float | dict[str, str] | None, denominator: float | dict[str, str] | None) -> float | None:
    """``numerator / denominator``; ``None`` when either is missing (or ``na``) or the denominator is 0."""
    if isinstance(numerator, dict) or isinstance(denominator, dict):  # na(...)
        return None
    if numerator is None or denominator is None or denominator == 0:
        return None
    return float(numerator) / float(denominator)


def paired_differences(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """Element-wise ``a[i] - b[i]`` for measurements taken in interleaved pairs."""
    return [float(x) - float(y) for x, y in zip(a, b, strict=False)]


def na(reason: str) -> dict[str, str]:
    """A figure that could not be measured, with the reason (never a made-up number)."""
    return {"na": reason}


def is_na(value: Any) -> bool:
    return isinstance(value, dict) and "na" in value


@overload
def ms(seconds: float) -> float: ...
@overload
def ms(seconds: None) -> None: ...
@overload
def ms(seconds: float | None) -> float | None: ...
def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def fmt(value: Any, unit: str = "") -> str:
    """A compact human form: 3 significant figures for floats, thousands separators for ints."""
    if value is None:
        return "-"
    if is_na(value):
        return f"n/a: {value['na']}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        text = f"{value:,}"
    elif isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            text = str(value)
        elif value == 0:
            text = "0"
        else:
            magnitude = abs(value)
            if magnitude >= 1000:
                text = f"{value:,.0f}"
            elif magnitude >= 100:
                text = f"{value:.0f}"
            elif magnitude >= 10:
                text = f"{value:.1f}"
            elif magnitude >= 1:
                text = f"{value:.2f}"
            else:
                text = f"{value:.3g}"
    else:
        text = str(value)
    return f"{text} {unit}".rstrip() if unit else text


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


@dataclass
class Table:
    """One benchmark's figures: a row per metric, a column per variant, plus a note."""

    title: str
    columns: list[str]
    rows: list[tuple[str, list[Any], str]] = field(default_factory=list)

    def add(self, metric: str, cells: Sequence[Any], note: str = "") -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{metric}: {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append((metric, list(cells), note))

    def as_dict(self) -> dict[str, Any]:
        return {"title": self.title, "columns": self.columns,
                "rows": [{"metric": m, "cells": c, "note": n} for m, c, n in self.rows]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Table:
        table = cls(data["title"], list(data["columns"]))
        for row in data["rows"]:
            table.rows.append((row["metric"], list(row["cells"]), row.get("note", "")))
        return table


def _cell_text(cell: Any) -> str:
    if isinstance(cell, str):
        return cell
    return fmt(cell)


def render_table(table: Table, max_cell: int = 60) -> str:
    """A plain-text table; n/a reasons are clipped to ``max_cell`` characters."""
    header = ["metric", *table.columns, "note"]
    body = []
    for metric, cells, note in table.rows:
        texts = [_cell_text(c) for c in cells]
        texts = [t if len(t) <= max_cell else t[: max_cell - 1] + "…" for t in texts]
        body.append([metric, *texts, note])
    widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]
    def line(row: Sequence[str]) -> str:
        return "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip()
    out = [f"== {table.title} ==", line(header), line(["-" * w for w in widths])]
    out += [line(row) for row in body]
    return "\n".join(out)


def render_markdown(table: Table) -> str:
    """The same table as GitHub Markdown (for docs/PERFORMANCE.md)."""
    header = ["metric", *table.columns, "note"]
    rows = [[m, *[_cell_text(c) for c in cells], n] for m, cells, n in table.rows]
    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |"
    return "\n".join([f"**{table.title}**", "", line(header), line(["---"] * len(header)), *map(line, rows)])


def verdict(measured: Any, target: float, *, at_most: bool = True) -> str:
    """``met`` / ``missed`` against a target, or ``n/a`` when nothing was measured."""
    if measured is None or is_na(measured):
        return "n/a"
    ok = measured <= target if at_most else measured >= target
    return "met" if ok else "missed"
