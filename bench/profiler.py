"""Sampling the control plane's gunicorn worker with py-spy, and reading the samples.

``py-spy record --format raw`` writes collapsed stacks: one line per distinct stack,
``frame;frame;...;leaf count`` with each frame ``function (path:line)``. We rank hot spots
by *self* samples (leaf frames) and project frames by *inclusive* samples.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# Leaves where the worker is waiting, not working: the gevent hub in epoll, and gevent's
# thread-pool threads parked on their queue. py-spy cannot tell these are idle.
IDLE_LEAVES = ("Hub.run (gevent/hub.py", "acquire_with_timeout (gevent/_threading.py")

FRAME = re.compile(r"^(?P<func>.*?) \((?P<path>[^()]*?):(?P<line>\d+)\)$")


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


class Recorder:
    """``py-spy record`` attached to one pid until :meth:`stop` (SIGINT makes it write)."""

    def __init__(self, pid: int, out: Path, rate: int = 200) -> None:
        self.pid = pid
        self.out = out
        self.rate = rate
        self.proc: subprocess.Popen[bytes] | None = None
        self.error: str | None = None

    def start(self) -> Recorder:
        exe = py_spy()
        if exe is None:
            self.error = "py-spy not installed (.venv/bin/pip install py-spy)"
            return self
        self.log = self.out.with_suffix(".log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([exe, "record", "--pid", str(self.pid), "--format", "raw", "--rate",
                                          str(self.rate), "--output", str(self.out), "--nonblocking"],
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.out.exists():
            tail = self.log.read_text(errors="replace")[-300:] if self.log.exists() else ""
            self.error = f"py-spy wrote no profile: {tail.strip()}"

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def parse_collapsed(text: str) -> list[tuple[list[str], int]]:
    stacks = []
    for line in text.splitlines():
        line = line.strip()
        if not line or " " not in line:
            continue
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        stacks.append((stack.split(";"), int(count)))
    return stacks


def split_frame(frame: str) -> tuple[str, str, int | None]:
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip(), "", None
    return match["func"], match["path"], int(match["line"])


def short_path(path: str, root: str) -> str:
    if root and path.startswith(root.rstrip("/") + "/"):
        return path[len(root.rstrip("/")) + 1:]
    for marker in ("/site-packages/", "/lib/python3"):
        if marker in path:
            rest = path.split(marker, 1)[1]
            return rest if marker == "/site-packages/" else "stdlib/" + rest.split("/", 1)[-1]
    return path


def hotspots(stacks: list[tuple[list[str], int]], root: str, top: int = 15,
             project_prefixes: tuple[str, ...] = ("control/", "wire/")) -> dict[str, Any]:
    """Self-time leaves (file:line), inclusive project functions, and the project frame nearest each leaf."""
    idle = 0
    busy = []
    for frames, count in stacks:
        func, path, line = split_frame(frames[-1])
        if f"{func} ({short_path(path, root)}:{line})".startswith(IDLE_LEAVES):
            idle += count
        else:
            busy.append((frames, count))
    stacks = busy
    total = sum(count for _, count in stacks)
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    nearest: Counter[str] = Counter()
    for frames, count in stacks:
        parsed = [split_frame(f) for f in frames]
        func, path, line = parsed[-1]
        leaf[f"{func} ({short_path(path, root)}:{line})"] += count
        seen: set[str] = set()
        owner = None
        for f_func, f_path, f_line in parsed:
            rel = short_path(f_path, root)
            if rel.startswith(project_prefixes):
                key = f"{f_func} ({rel})"
                if key not in seen:
                    inclusive[key] += count
                    seen.add(key)
                owner = f"{f_func} ({rel}:{f_line})"
        if owner:
            nearest[owner] += count

    def rows(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"frame": k, "samples": v, "share": v / total if total else 0.0} for k, v in counter.most_common(top)]

    return {"samples": total, "idle_samples": idle, "self": rows(leaf), "project_inclusive": rows(inclusive),
            "project_line": rows(nearest)}


def analyse(path: Path, root: str, top: int = 15) -> dict[str, Any]:
    return hotspots(parse_collapsed(path.read_text(errors="replace")), root, top)
