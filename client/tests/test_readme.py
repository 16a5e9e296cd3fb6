"""The README's "Use it from Python" and "Use it from a terminal" sections run as shown
(only the server URL and the key are swapped for the test control plane's)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support import ROOT, ControlPlane

README_URL, README_KEY = "http://127.0.0.1:8000", "sk-ant-..."


def blocks(section: str, language: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", body, flags=re.S)


def adapt(code: str, control_plane: ControlPlane, key: str) -> str:
    assert README_URL in code and README_KEY in code
    return code.replace(README_URL, control_plane.url).replace(README_KEY, key)


def test_python_section_runs(control_plane: ControlPlane, key: str, tmp_path: Path) -> None:
    (code,) = blocks("Use it from Python", "python")
    done = subprocess.run([sys.executable, "-c", adapt(code, control_plane, key)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "tool: Bash" in done.stdout and "output: hi" in done.stdout
    assert "NotFound not_found" in done.stdout
    assert zipfile.ZipFile(tmp_path / "ws.zip").read("inbox/data.csv") == b"a,b\n1,2\n"


def test_terminal_section_runs(control_plane: ControlPlane, key: str, tmp_path: Path) -> None:
    (script,) = blocks("Use it from a terminal", "bash")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("AGCLUSTER_TOKEN", None)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", adapt(script, control_plane, key)], cwd=tmp_path,
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "proof.txt").read_text() == "hi\n"
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert events[0]["type"] == "user" and events[-1]["type"] == "done"
    assert zipfile.ZipFile(tmp_path / "workspace.zip").read("inbox/data.csv") == b"a,b\n"
    assert (tmp_path / "conversation.md").read_text().startswith("# Session")
    assert "Bash(echo hi > proof.txt && cat proof.txt)" in done.stdout
