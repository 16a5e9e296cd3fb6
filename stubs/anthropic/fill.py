"""Building a value that satisfies a JSON schema.

Tool schemas (TaskCreate's fields, a structured-output title) change between CLI builds, so
the stub reads them from the request instead of hard-coding them. ``hints`` supplies the
meaningful values by property name; everything else gets a plain valid default.
"""

from __future__ import annotations

from typing import Any


def fill(schema: Any, hints: dict[str, Any], name: str = "", fallback_text: str = "") -> Any:
    """A minimal instance of ``schema``: required properties only, hinted where possible."""
    if not isinstance(schema, dict):
        return fallback_text
    if name in hints:
        return hints[name]
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return fill(options[0], hints, name, fallback_text)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        wanted = set(schema.get("required") or []) | (set(hints) & set(properties))
        return {key: fill(properties[key], hints, key, fallback_text) for key in properties if key in wanted}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    return fallback_text or name or "stub"
