"""The ``agc`` subcommands, each a function of the parsed arguments returning an exit code."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from .. import AgCluster, Session
from .._models import FileEntry
from .render import JsonView, TurnView, View
from .turns import Quit, run_turn


class UsageError(Exception):
    """Bad arguments that argparse could not catch (exit status 2)."""


def run(ac: AgCluster, args: argparse.Namespace, out: Console, err: Console) -> int:
    handler: Callable[[AgCluster, argparse.Namespace, Console, Console], int] = {
        "configs": configs, "sessions": sessions, "launch": launch, "run": run_once, "chat": chat,
        "files": files, "export": export,
    }[args.command]
    return handler(ac, args, out, err)


def _lines(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        sys.stdout.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")


def _table(out: Console, columns: list[str], rows: list[list[str]]) -> None:
    """A table on a terminal; tab-separated lines (easy to cut/awk) when piped."""
    if not out.is_terminal:
        for row in rows:
            sys.stdout.write("\t".join(row) + "\n")
        return
    table = Table(*columns, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        table.add_row(*row)
    out.print(table)


def configs(ac: AgCluster, args: argparse.Namespace, out: Console, err: Console) -> int:
    found = ac.configs()
    if args.json:
        _lines([dict(c.data) for c in found])
    else:
        _table(out, ["ID", "NAME", "TOOLS"], [[c.id, c.name, ", ".join(c.tools)] for c in found])
    return 0


def sessions(ac: AgCluster, args: argparse.Namespace, out: Console, err: Console) -> int:
    found = ac.sessions()
    if args.json:
        _lines([dict(s.data) for s in found])
        return 0
    rows = []
    for s in found:
        cost = (s.data.get("usage") or {}).get("cost_usd")
        rows.append([s.id, str(s.config_id or ""), s.status, str(s.data.get("turns", "")),
                     f"${cost:.4f}" if isinstance(cost, (int, float)) else ""])
    _table(out, ["SESSION", "CONFIG", "STATUS", "TURNS", "COST"], rows)
    return 0


def _launch(ac: AgCluster, config: str) -> Session:
    """``config`` is an id, or a path to a JSON file holding an inline config."""
    path = Path(config)
    if config.endswith(".json") or path.is_file():
        try:
            inline = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read config file {config}: {exc}") from None
        return ac.launch(config=inline)
    return ac.launch(config)


def launch(ac: AgCluster, args: argparse.Namespace, out: Console, err: Console) -> int:
    session = _launch(ac, args.config)
    if args.json:
        _lines([dict(session.data)])
    else:
        out.print(session.id, markup=False)
    return 0


def _view(args: argparse.Namespace, out: Console) -> View:
    return JsonView() if args.json else TurnView(out)


def run_once(ac: AgCluster, args: argparse.Namespace, out: Console, err: Console) -> int:
    if args.config:
        session = _launch(ac, args.config)
        err.print(f"session {session.id} ({session.config_id}) — continue with: agc chat {session.id}",
                  markup=False, style="dim")
    else:
        session = ac.session(args.session)
    try:
        ok = run_turn(session, args.message, _view(args, out))
    except Quit:
        return 130
    return 0 if ok else 1


def chat(ac: AgCluster, args: argparse.Namespace, out: Console, err: Console) -> int:
    session = ac.session(args.session)
    view = _view(args, out)
    if not args.json:
        err.print(f"chatting with {session.id} ({session.config_id}); Ctrl-C interrupts a turn, Ctrl-D quits",
                  markup=False, style="dim")
    ok = True
    while True:
        try:
            message = input("› " if sys.stdin.isatty() else "")
        except EOFError:
            break
        except KeyboardInterrupt:
            return 130
        if not message.strip():
            continue
        if message.strip() in ("/exit", "/quit"):
            break
        try:
            ok = run_turn(session, message, view)
        except Quit:
            return 130
    return 0 if ok else 1


# files ------------------------------------------------------------------------------------
@contextmanager
def _progress(err: Console, label: str) -> Iterator[Callable[[int, int | None], None] | None]:
    """A progress bar on stderr when it is a terminal; no callback otherwise."""
    if not err.is_terminal:
        yield None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def advance(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def files(ac: AgCluster, args: argparse.Namespace, out: Console, err: Console) -> int:
    session = Session(ac, {"session_id": args.session})
    action = args.action or "ls"
    if action == "ls":
        listing = session.files.tree(getattr(args, "path", ""))
        entries = list(listing.walk())
        if args.json:
            _lines([{k: v for k, v in vars(e).items() if k != "children"} for e in entries])
        else:
            for entry in entries:
                out.print(_entry_line(entry), markup=False)
            if listing.truncated:
                err.print("(listing truncated)", style="dim")
    elif action == "get":
        if args.out == "-":
            session.files.download(args.path, sys.stdout.buffer)
        else:
            target = Path(args.out or Path(args.path).name)
            with _progress(err, f"get {args.path}") as progress:
                session.files.download(args.path, target, progress=progress)
            err.print(f"saved {target}", markup=False, style="dim")
    elif action == "put":
        if not Path(args.file).is_file():
            raise UsageError(f"no such file: {args.file}")
        with _progress(err, f"put {args.file}") as progress:
            stored = session.files.upload(args.file, args.dest, overwrite=args.overwrite, progress=progress)
        if args.json:
            _lines(stored)
        else:
            for item in stored:
                out.print(f"uploaded {item.get('path')} ({item.get('size')} bytes)", markup=False)
    elif action == "zip":
        with _progress(err, "workspace.zip") as progress:
            session.files.download_zip(args.out, progress=progress)
        err.print(f"saved {args.out}", markup=False, style="dim")
    return 0


def _entry_line(entry: FileEntry) -> str:
    depth = entry.path.count("/")
    name = entry.name + ("/" if entry.type == "directory" else "")
    size = "" if entry.type == "directory" else f"  {entry.size} B"
    return "  " * depth + name + size


def export(ac: AgCluster, args: argparse.Namespace, out: Console, err: Console) -> int:
    session = Session(ac, {"session_id": args.session})
    document = session.export(args.format)
    text = document if isinstance(document, str) else json.dumps(document, indent=1, ensure_ascii=False)
    if args.output:
        Path(args.output).write_text(text)
        err.print(f"saved {args.output}", markup=False, style="dim")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
