"""A session's transcript as a downloadable JSON document or readable Markdown."""

from __future__ import annotations

import json
from typing import Any

from control.store import SessionRow

MAX_OUTPUT_IN_MARKDOWN = 20_000


def export_json(row: SessionRow, events: list[dict[str, Any]]) -> dict[str, Any]:
    turns: list[dict[str, Any]] = []
    tools: dict[str, dict[str, Any]] = {}
    for event in events:
        kind = event["type"]
        if kind == "user":
            turns.append({"user": event["text"], "assistant": [], "tool_calls": [], "result": None, "errors": []})
            continue
        if not turns:
            continue
        turn = turns[-1]
        if kind == "text":
            turn["assistant"].append(event["text"])
        elif kind == "tool_use":
            call = {"id": event["id"], "name": event["name"], "input": event["input"], "output": None,
                    "is_error": None, "parent_tool_use_id": event.get("parent_tool_use_id")}
            tools[event["id"]] = call
            turn["tool_calls"].append(call)
        elif kind == "tool_result" and event["tool_use_id"] in tools:
            tools[event["tool_use_id"]].update(output=event["output"], is_error=event["is_error"])
        elif kind == "result":
            turn["result"] = {k: event.get(k) for k in ("subtype", "is_error", "num_turns", "duration_ms",
                                                         "total_cost_usd", "usage")}
        elif kind == "error":
            turn["errors"].append({"code": event["code"], "message": event["message"]})
    return {
        "session_id": row.id,
        "agent_id": row.agent_id,
        "config_id": row.config_id,
        "created_at": row.created_at,
        "usage": {"input_tokens": row.input_tokens, "output_tokens": row.output_tokens,
                  "cost_usd": round(row.cost_usd, 6), "turns": row.turns},
        "turns": turns,
    }


def export_markdown(row: SessionRow, events: list[dict[str, Any]]) -> str:
    doc = export_json(row, events)
    lines = [f"# Session {row.id}", "", f"- Config: `{row.config_id}` ({row.config.get('name', '')})",
             f"- Tokens: {row.input_tokens} in / {row.output_tokens} out; cost ${row.cost_usd:.4f}", ""]
    for number, turn in enumerate(doc["turns"], start=1):
        lines += [f"## Turn {number}", "", "**User:**", "", _quote(turn["user"]), ""]
        for call in turn["tool_calls"]:
            nested = " (sub-agent)" if call["parent_tool_use_id"] else ""
            lines += [f"### Tool `{call['name']}`{nested}", "", "Input:", "",
                      _fence(json.dumps(call["input"], indent=2), "json"),
                      "", "Output:" + (" (error)" if call["is_error"] else ""), "",
                      _fence(str(call["output"] if call["output"] is not None else "")[:MAX_OUTPUT_IN_MARKDOWN]), ""]
        if turn["assistant"]:
            lines += ["**Assistant:**", "", "\n\n".join(turn["assistant"]), ""]
        for error in turn["errors"]:
            lines += [f"> Error `{error['code']}`: {error['message']}", ""]
        if turn["result"]:
            result = turn["result"]
            cost = result.get("total_cost_usd")
            lines += [f"_Result: {result.get('subtype')}, {result.get('num_turns')} model turns, "
                      f"{result.get('duration_ms')} ms" + (f", ${cost:.4f}" if cost else "") + "_", ""]
    return "\n".join(lines)


def _fence(text: str, lang: str = "") -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{lang}\n{text}\n{ticks}"


def _quote(text: str) -> str:
    return "\n".join("> " + line for line in text.splitlines()) or ">"
