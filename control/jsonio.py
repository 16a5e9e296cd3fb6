"""Request JSON that can only fail as a 400: no NaN/Infinity, no float overflow, no
RecursionError from hostile nesting (each of which used to surface as a 500 or 502)."""

from __future__ import annotations

import json
import math
from typing import Any

from flask.json.provider import DefaultJSONProvider


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


class StrictJSONProvider(DefaultJSONProvider):
    sort_keys = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        kwargs.setdefault("parse_constant", _no_constants)
        kwargs.setdefault("parse_float", _finite)
        try:
            value = json.loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
        # A lone surrogate ("\\ud800") parses into a str that cannot be encoded again; it
        # would fail later, far from here (at a machine, as a 502). Look only when the text
        # has such an escape at all.
        raw = s if isinstance(s, str) else s.decode("utf-8", "replace")
        if "\\ud" in raw.lower():
            _no_lone_surrogates(value)
        return value


def _no_lone_surrogates(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("the JSON holds a lone surrogate (an unpaired \\ud800-\\udfff escape)") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
