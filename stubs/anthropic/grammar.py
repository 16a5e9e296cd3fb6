"""The demo model's grammar (the README's "The demo model"): the latest user text decides the reply.

Tool calls are only made with tools the request actually offers, so a config that removes
a tool visibly changes behaviour ("the Write tool is unavailable"). Tools the CLI defers
behind ``ToolSearch`` are loaded first with ``select:<name>``, exactly as a real model must,
and the command is re-planned once the search result comes back.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .conversation import MAIN, PROBE, SIDE, STRUCTURED, Conversation, ToolResult
from .fill import fill
from .reply import Reply, Text, Thinking, ToolUse

DEFAULT_WORKDIR = "/workspace"
MAX_RESULT_CHARS = 4000
MAX_STREAM_DELTAS = 200_000
TOOL_SEARCH = "ToolSearch"

HELP = (
    "I am the AgCluster demo model, a scripted stand-in for Claude. I understand:\n"
    "- `run: <command>` runs a shell command with Bash\n"
    "- `write <path>: <text>` writes a file\n"
    "- `read <path>` reads a file\n"
    "- `todo: a; b; c` records a todo list\n"
    "- `think: <text>` thinks out loud, then answers\n"
    "- `mcp <server>.<tool> <json-args>` calls an MCP tool\n"
    "- `agent <type>: <prompt>` delegates to a sub-agent\n"
    "- `loop` keeps calling a harmless tool (to exercise turn limits)\n"
    "- `stream <N>` streams a long reply in N pieces"
)


@dataclass(frozen=True)
class Want:
    """A tool call the grammar would like to make; ``build`` gets the tool's input schema."""

    tool: str
    build: Callable[[dict[str, Any]], dict[str, Any]]


Planned = Reply | list[Want]


def plan_reply(conv: Conversation) -> Reply:
    """Entry point: the default reply for any request nobody scripted."""
    if conv.kind == STRUCTURED:
        return structured_reply(conv)
    if conv.kind == PROBE:
        return Reply.text("ok")
    assert conv.kind in (MAIN, SIDE)
    results = conv.trailing_tool_results
    if results and not conv.final_user_text:
        return after_tool_results(conv, results)
    if conv.final_user_text == "":
        return notification_reply(conv)
    return resolve(conv, command_plan(conv))


def notification_reply(conv: Conversation) -> Reply:
    """A user turn of only reminders is the CLI talking (e.g. a background agent finished),
    not a new command: acknowledge it rather than re-running the previous command."""
    if conv.notification_results:
        return Reply.text("Background task finished:\n" + "\n\n".join(conv.notification_results))
    return Reply.text("Noted.")


def structured_reply(conv: Conversation) -> Reply:
    """Side requests that demand JSON (the CLI's session title) get a schema-valid object."""
    schema = ((conv.body.get("output_config") or {}).get("format") or {}).get("schema") or {}
    text = conv.latest_user_text
    session = re.search(r"<session>(.*?)</session>", text, re.DOTALL)
    words = (session.group(1) if session else text).split()
    summary = " ".join(words[:5]) or "Demo session"
    return Reply.text(json.dumps(fill(schema, {}, fallback_text=summary)))


def after_tool_results(conv: Conversation, results: list[ToolResult]) -> Reply:
    if any(r.tool_name == TOOL_SEARCH for r in results):
        replanned = command_plan(conv)
        if isinstance(replanned, list) and any(w.tool not in conv.tools for w in replanned):
            missing = next(w.tool for w in replanned if w.tool not in conv.tools)
            return unavailable(missing)
        return resolve(conv, replanned)
    if LOOP.fullmatch(conv.latest_user_text.strip()):
        return resolve(conv, loop_wants())
    return Reply.text(summarise(results))


def summarise(results: list[ToolResult]) -> str:
    """Echo the tool output verbatim (tests grep for it), trimmed so replies stay small."""
    parts: list[str] = []
    for result in results:
        output = result.output
        if len(output) > MAX_RESULT_CHARS:
            output = output[:MAX_RESULT_CHARS] + f"\n… [{len(result.output) - MAX_RESULT_CHARS} more characters]"
        verdict = "failed" if result.is_error else "finished"
        parts.append(f"{result.tool_name} {verdict}. Output:\n{output}")
    return "\n\n".join(parts)


def unavailable(tool: str) -> Reply:
    return Reply.text(f"The {tool} tool is unavailable in this session, so I cannot do that.")


def resolve(conv: Conversation, planned: Planned) -> Reply:
    """Turn wanted tool calls into tool_use blocks, a ToolSearch, or an 'unavailable' text."""
    if isinstance(planned, Reply):
        return planned
    missing = [w.tool for w in planned if w.tool not in conv.tools]
    if not missing:
        return Reply(tuple(ToolUse(w.tool, w.build(conv.tools[w.tool].get("input_schema") or {})) for w in planned))
    if all(name in conv.deferred_tools for name in missing) and TOOL_SEARCH in conv.tools:
        names = ",".join(dict.fromkeys(missing))
        return Reply((ToolUse(TOOL_SEARCH, {"query": f"select:{names}", "max_results": len(set(missing))}),))
    return unavailable(missing[0])


def pick(conv: Conversation, *names: str) -> str:
    """The first of several equivalent tools that is offered (directly, else deferred)."""
    for name in names:
        if name in conv.tools:
            return name
    for name in names:
        if name in conv.deferred_tools:
            return name
    return names[0]


def absolute(conv: Conversation, path: str) -> str:
    if path.startswith("/"):
        return path
    return os.path.normpath(os.path.join(conv.working_directory or DEFAULT_WORKDIR, path))


RUN = re.compile(r"run:\s*(?P<cmd>.+)", re.DOTALL | re.IGNORECASE)
WRITE = re.compile(r"write\s+(?P<path>\S+?):[ \t]?(?P<text>.*)", re.DOTALL | re.IGNORECASE)
READ = re.compile(r"read\s+(?P<path>\S+)\s*", re.IGNORECASE)
TODO = re.compile(r"todo:\s*(?P<items>.+)", re.DOTALL | re.IGNORECASE)
THINK = re.compile(r"think:\s*(?P<text>.+)", re.DOTALL | re.IGNORECASE)
MCP = re.compile(r"mcp\s+(?P<server>[\w-]+)\.(?P<tool>[\w-]+)\s*(?P<args>.*)", re.DOTALL | re.IGNORECASE)
AGENT = re.compile(r"agent\s+(?P<type>[\w-]+):\s*(?P<prompt>.+)", re.DOTALL | re.IGNORECASE)
LOOP = re.compile(r"loop", re.IGNORECASE)
STREAM = re.compile(r"stream\s+(?P<n>\d+)", re.IGNORECASE)


def command_plan(conv: Conversation) -> Planned:
    """Parse the latest user text into either a ready reply or the tool calls it needs."""
    text = conv.latest_user_text.strip()
    if m := RUN.fullmatch(text):
        cmd = m["cmd"].strip()
        return [Want("Bash", lambda _s: {"command": cmd, "description": f"Run: {cmd[:60]}"})]
    if m := WRITE.fullmatch(text):
        path, content = absolute(conv, m["path"]), m["text"]
        return [Want("Write", lambda _s: {"file_path": path, "content": content})]
    if m := READ.fullmatch(text):
        path = absolute(conv, m["path"])
        return [Want("Read", lambda _s: {"file_path": path})]
    if m := TODO.fullmatch(text):
        return todo_wants(conv, [i.strip() for i in m["items"].split(";") if i.strip()])
    if m := THINK.fullmatch(text):
        thought = m["text"].strip()
        return Reply((Thinking(thought), Text(f"Having thought about it: {thought}")))
    if m := MCP.fullmatch(text):
        return mcp_wants(m["server"], m["tool"], m["args"].strip())
    if m := AGENT.fullmatch(text):
        return agent_wants(conv, m["type"], m["prompt"].strip())
    if LOOP.fullmatch(text):
        return loop_wants()
    if m := STREAM.fullmatch(text):
        count = max(1, min(int(m["n"]), MAX_STREAM_DELTAS))
        chunks = tuple(f"w{i} " for i in range(count))
        return Reply((Text("".join(chunks), chunks),))
    return Reply.text(HELP)


def loop_wants() -> list[Want]:
    return [Want("Bash", lambda _s: {"command": "echo loop", "description": "Keep looping"})]


def todo_wants(conv: Conversation, items: list[str]) -> Planned:
    """TodoWrite if offered; the pinned CLI instead offers one TaskCreate call per item."""
    if not items:
        return Reply.text("The todo list is empty.")
    tool = pick(conv, "TodoWrite", "TaskCreate")
    if tool == "TodoWrite":
        todos = [
            {"content": item, "status": "in_progress" if i == 0 else "pending", "activeForm": f"Working on {item}"}
            for i, item in enumerate(items)
        ]
        return [Want("TodoWrite", lambda _s: {"todos": todos})]

    def task(item: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        hints = {
            "subject": item,
            "content": item,
            "title": item,
            "description": item,
            "activeForm": f"Working on {item}",
        }
        return lambda schema: fill(schema, hints, fallback_text=item)

    return [Want("TaskCreate", task(item)) for item in items]


def mcp_wants(server: str, tool: str, raw_args: str) -> Planned:
    try:
        args = json.loads(raw_args) if raw_args else {}
    except json.JSONDecodeError as exc:
        return Reply.text(f"The MCP arguments are not valid JSON: {exc.msg}.")
    if not isinstance(args, dict):
        return Reply.text("The MCP arguments must be a JSON object.")
    return [Want(f"mcp__{server}__{tool}", lambda _s: args)]


def agent_wants(conv: Conversation, subagent_type: str, prompt: str) -> Planned:
    tool = pick(conv, "Agent", "Task")
    # Foreground, so the sub-agent's answer is the tool result and the turn ends with it.
    hints = {
        "description": f"{subagent_type} sub-task",
        "prompt": prompt,
        "subagent_type": subagent_type,
        "run_in_background": False,
    }
    return [Want(tool, lambda schema: fill(schema, hints, fallback_text=prompt))]
