"""How a turn looks in a terminal: the assistant's text as it arrives, each tool call with
its input and a trimmed output, the task list, a spinner while the model works, the cost at
the end. The same view prints plain text (no colour, no spinner) when stdout is not a
terminal, and :class:`JsonView` prints the wire objects, one per line, for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any, Protocol

from rich.console import Console
from rich.status import Status
from rich.text import Text

from .._wire.events import (
    ErrorEvent,
    Event,
    PermissionRequestEvent,
    ResultEvent,
    TextDeltaEvent,
    TextEvent,
    ThinkingEvent,
    TodoEvent,
    ToolResultEvent,
    ToolUseEvent,
)

OUTPUT_LINES = 8
LINE_CHARS = 200
INPUT_CHARS = 160
# The one field that says what a well-known tool call does; others show all their fields.
PRIMARY_INPUT = {"Bash": "command", "Read": "file_path", "Write": "file_path", "Edit": "file_path",
                 "MultiEdit": "file_path", "NotebookEdit": "notebook_path", "Glob": "pattern", "Grep": "pattern",
                 "WebFetch": "url", "WebSearch": "query", "Task": "description", "Agent": "description",
                 "TaskCreate": "subject"}
TODO_MARKS = {"completed": "[x]", "in_progress": "[~]", "pending": "[ ]"}
TODO_STYLES = {"completed": "dim strike", "in_progress": "bold"}


class View(Protocol):
    def begin(self) -> None: ...
    def show(self, event: Event) -> None: ...
    def note(self, message: str) -> None: ...
    def pause(self) -> None: ...
    def end(self) -> None: ...


def tool_call(name: str, tool_input: Mapping[str, Any]) -> str:
    """``Bash(echo hi)`` / ``Foo(a=1, b="x")``: the call on one line, trimmed."""
    key = PRIMARY_INPUT.get(name)
    if key and isinstance(tool_input.get(key), str):
        inner = str(tool_input[key])
    else:
        inner = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in tool_input.items())
    inner = " ".join(inner.split("\n"))
    return f"{name}({trim(inner, INPUT_CHARS)})"


def trim(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def trimmed_output(output: str) -> list[str]:
    lines = output.rstrip("\n").split("\n") if output.strip() else ["(no output)"]
    shown = [trim(line, LINE_CHARS) for line in lines[:OUTPUT_LINES]]
    if len(lines) > OUTPUT_LINES:
        shown.append(f"… +{len(lines) - OUTPUT_LINES} lines")
    return shown


class TurnView:
    """Renders one turn's events onto a rich console."""

    def __init__(self, console: Console, *, spinner: bool | None = None) -> None:
        self.console = console
        self.spinner = console.is_terminal if spinner is None else spinner
        self._status: Status | None = None
        self._mid_line = False  # streamed text left the cursor mid-line
        self._streamed = False  # the current text block already arrived as deltas

    # the spinner ----------------------------------------------------------------------
    def _working(self, label: str) -> None:
        if not self.spinner:
            return
        if self._status is None:
            self._status = self.console.status(label, spinner="dots")
            self._status.start()
        else:
            self._status.update(label)

    def pause(self) -> None:
        """Stop the spinner (before printing mid-line or asking a question)."""
        if self._status is not None:
            self._status.stop()
            self._status = None

    def _line_break(self) -> None:
        if self._mid_line:
            self.console.print()
            self._mid_line = False

    def _print(self, text: str | Text, style: str = "") -> None:
        self.pause()
        self._line_break()
        self.console.print(text, style=style or None, markup=False, highlight=False, emoji=False, soft_wrap=True)

    # events -----------------------------------------------------------------------------
    def begin(self) -> None:
        self._working("thinking…")

    def end(self) -> None:
        self.pause()
        self._line_break()

    def note(self, message: str) -> None:
        self._print(message, "dim")

    def show(self, event: Event) -> None:
        if isinstance(event, TextDeltaEvent):
            self.pause()
            self.console.print(event.text, end="", markup=False, highlight=False, emoji=False, soft_wrap=True)
            self._mid_line = not event.text.endswith("\n")
            self._streamed = True
        elif isinstance(event, TextEvent):
            if event.parent_tool_use_id:
                self._print(Text("  │ " + trim(event.text, 1600).replace("\n", "\n  │ "), style="dim"))
            elif not self._streamed:
                self._print(event.text)
            self._streamed = False
            self._line_break()
            self._working("thinking…")
        elif isinstance(event, ThinkingEvent):
            self._print(Text("✻ " + trim(event.text, 600), style="dim italic"))
            self._working("thinking…")
        elif isinstance(event, ToolUseEvent):
            prefix = "  " if event.parent_tool_use_id else ""
            line = Text(prefix + "● ", style="bold cyan")
            line.append(tool_call(event.name, event.input), style="bold")
            self._print(line)
            self._working(f"running {event.name}…")
        elif isinstance(event, ToolResultEvent):
            prefix = "  " if event.parent_tool_use_id else ""
            style = "red" if event.is_error else "dim"
            body = Text()
            for i, output_line in enumerate(trimmed_output(event.output)):
                body.append(("\n" if i else "") + prefix + ("  ⎿ " if i == 0 else "    ") + output_line, style=style)
            self._print(body)
            self._working("thinking…")
        elif isinstance(event, TodoEvent):
            lines = Text("Tasks", style="bold")
            for item in event.todos:
                status = str(item.get("status", "pending"))
                lines.append(f"\n  {TODO_MARKS.get(status, '[ ]')} {item.get('content', '')}",
                             style=TODO_STYLES.get(status, ""))
            self._print(lines)
            self._working("thinking…")
        elif isinstance(event, PermissionRequestEvent):
            self._print(Text(f"? {tool_call(event.tool_name, event.input)} needs your approval", style="yellow"))
        elif isinstance(event, ErrorEvent):
            self._print(Text(f"error [{event.code}]: {event.message}", style="bold red"))
        elif isinstance(event, ResultEvent):
            self._print(self._summary(event))
        elif event.type == "done":
            self.end()

    @staticmethod
    def _summary(result: ResultEvent) -> Text:
        parts = []
        if result.total_cost_usd is not None:
            parts.append(f"${result.total_cost_usd:.4f}")
        parts.append(f"{result.num_turns} turn{'s' if result.num_turns != 1 else ''}")
        parts.append(f"{result.duration_ms / 1000:.1f}s")
        usage = result.usage or {}
        if usage.get("input_tokens") is not None:
            parts.append(f"{usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out tokens")
        head = Text(f"✗ {result.subtype or 'error'}" if result.is_error else "✓ done",
                    style="bold red" if result.is_error else "green")
        head.append(" · " + " · ".join(parts), style="dim")
        return head


class JsonView:
    """One wire object per line on stdout; notes go to stderr so stdout stays parseable."""

    def begin(self) -> None:
        pass

    def show(self, event: Event) -> None:
        sys.stdout.write(json.dumps(dict(event.data), ensure_ascii=False, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    def note(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def pause(self) -> None:
        pass

    def end(self) -> None:
        pass
