"""Typed views of what the API returns. Each keeps the JSON it came from as ``data``, so a
field the server adds later is reachable before this library knows about it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._wire.events import ErrorEvent, Event, ResultEvent, TextEvent


@dataclass(frozen=True)
class Config:
    """An agent configuration (a preset or a custom one); ``tools`` are its allowed tools."""

    id: str
    name: str
    tools: list[str]
    description: str = ""
    preset: bool = False
    data: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Config:
        return cls(id=str(data.get("id", "")), name=str(data.get("name", "")),
                   tools=list(data.get("allowed_tools") or []), description=str(data.get("description") or ""),
                   preset=bool(data.get("preset")), data=data)


@dataclass(frozen=True)
class FileEntry:
    """A workspace entry; a directory's ``children`` is None when it was not listed (ask
    :meth:`Files.tree` again with its ``path``)."""

    name: str
    path: str
    type: str
    size: int = 0
    modified: str = ""
    children: list[FileEntry] | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileEntry:
        children = data.get("children")
        return cls(name=str(data.get("name", "")), path=str(data.get("path", "")), type=str(data.get("type", "")),
                   size=int(data.get("size") or 0), modified=str(data.get("modified") or ""),
                   children=[cls.from_json(c) for c in children] if isinstance(children, list) else None)

    def walk(self) -> Iterator[FileEntry]:
        yield self
        for child in self.children or ():
            yield from child.walk()


@dataclass(frozen=True)
class FileTree:
    """A listing of ``path`` (``""`` = the workspace root); ``truncated`` when capped."""

    path: str
    entries: list[FileEntry]
    truncated: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileTree:
        return cls(path=str(data.get("path", "")), entries=[FileEntry.from_json(e) for e in data.get("tree") or []],
                   truncated=bool(data.get("truncated")))

    def walk(self) -> Iterator[FileEntry]:
        """Every listed entry, depth first."""
        for entry in self.entries:
            yield from entry.walk()


@dataclass(frozen=True)
class Reply:
    """A finished turn, as :meth:`Session.chat` returns it."""

    events: list[Event]

    @property
    def text(self) -> str:
        """The assistant's top-level text blocks (sub-agents' text is left out), joined."""
        return "".join(e.text for e in self.events if isinstance(e, TextEvent) and not e.parent_tool_use_id)

    @property
    def result(self) -> ResultEvent | None:
        return next((e for e in reversed(self.events) if isinstance(e, ResultEvent)), None)

    @property
    def errors(self) -> list[ErrorEvent]:
        return [e for e in self.events if isinstance(e, ErrorEvent)]

    @property
    def cost_usd(self) -> float | None:
        result = self.result
        return result.total_cost_usd if result is not None else None

    @property
    def is_error(self) -> bool:
        return turn_failed(self.events)


def turn_failed(events: Sequence[Event]) -> bool:
    """A turn failed when it carried an ``error`` event or its result says so."""
    return any(isinstance(e, ErrorEvent) for e in events) or any(
        isinstance(e, ResultEvent) and e.is_error for e in events)
