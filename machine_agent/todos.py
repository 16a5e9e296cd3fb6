"""The current task list, whichever tool family the model uses to keep it.

The pinned CLI drops ``TodoWrite`` and, with ``CLAUDE_CODE_ENABLE_TODO_TOOLS=1``, offers
``TaskCreate``/``TaskUpdate``/``TaskList``/``TaskGet`` instead. The dashboard only knows
one shape — ``{content, status, activeForm}`` — so both families are folded into it here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

TODO_TOOLS = frozenset({"TodoWrite", "TaskCreate", "TaskUpdate"})
_TASK_ID = re.compile(r"#\s*(\d+)")
_STATUSES = {"pending", "in_progress", "completed"}


@dataclass
class _Task:
    content: str
    status: str = "pending"
    active_form: str = ""
    task_id: str | None = None


@dataclass
class TodoTracker:
    tasks: list[_Task] = field(default_factory=list)
    _pending_creates: dict[str, _Task] = field(default_factory=dict)

    def on_tool_use(self, tool_use_id: str, name: str, tool_input: dict[str, Any]) -> bool:
        """Apply a tool call; True when the visible list changed."""
        if name == "TodoWrite":
            self.tasks = [
                _Task(str(t.get("content", "")), _status(t.get("status")), str(t.get("activeForm", "")))
                for t in tool_input.get("todos") or []
                if isinstance(t, dict)
            ]
            return True
        if name == "TaskCreate":
            content = str(tool_input.get("subject") or tool_input.get("content") or tool_input.get("description") or "")
            created = _Task(content, "pending", str(tool_input.get("activeForm") or ""))
            self.tasks.append(created)
            self._pending_creates[tool_use_id] = created
            return True
        if name == "TaskUpdate":
            task = self._find(str(tool_input.get("taskId") or tool_input.get("id") or ""))
            if task is None:
                return False
            if tool_input.get("status") == "deleted":
                self.tasks.remove(task)
                return True
            if tool_input.get("status") in _STATUSES:
                task.status = tool_input["status"]
            if tool_input.get("subject"):
                task.content = str(tool_input["subject"])
            if tool_input.get("activeForm"):
                task.active_form = str(tool_input["activeForm"])
            return True
        return False

    def on_tool_result(self, tool_use_id: str, output: str) -> None:
        """Learn the id the CLI gave a created task, so later updates find it."""
        task = self._pending_creates.pop(tool_use_id, None)
        if task is not None:
            match = _TASK_ID.search(output)
            task.task_id = match.group(1) if match else str(self.tasks.index(task) + 1)

    def snapshot(self) -> list[dict[str, str]]:
        return [{"content": t.content, "status": t.status, "activeForm": t.active_form} for t in self.tasks]

    def _find(self, task_id: str) -> _Task | None:
        for task in self.tasks:
            if task.task_id == task_id:
                return task
        if task_id.isdigit() and 0 < int(task_id) <= len(self.tasks):
            candidate = self.tasks[int(task_id) - 1]
            return candidate if candidate.task_id in (None, task_id) else None
        return None


def _status(value: Any) -> str:
    return value if value in _STATUSES else "pending"
