"""``agc``, the installed console script, run as a user would against a real control plane."""

from __future__ import annotations

import json
import os
import pty
import secrets
import select
import signal
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import LIMITED_CONFIG

from tests.support import ControlPlane, wait_for

AGC = Path(sys.executable).with_name("agc")


@pytest.fixture(scope="module")
def env(control_plane: ControlPlane, key: str) -> dict[str, str]:
    assert AGC.exists(), f"{AGC} is missing: `make install` installs the client into the venv"
    return {**os.environ, "AGCLUSTER_URL": control_plane.url, "ANTHROPIC_API_KEY": key, "AGCLUSTER_TOKEN": "",
            "COLUMNS": "200"}


def agc(env: dict[str, str], *args: str, stdin: str | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(AGC), *args], env=env, input=stdin, capture_output=True, text=True, timeout=300,
                          cwd=cwd)


@pytest.fixture(scope="module")
def sid(env: dict[str, str]) -> str:
    launched = agc(env, "launch", "code-assistant")
    assert launched.returncode == 0, launched.stderr
    return launched.stdout.strip()


def test_run_prints_the_command_its_output_and_the_cost(env: dict[str, str]) -> None:
    marker = "agc-" + secrets.token_hex(4)
    done = agc(env, "run", "--config", "code-assistant", f"run: echo {marker} && seq 1 30")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"Bash(echo {marker} && seq 1 30)" in out  # the call with its input
    assert f"⎿ {marker}" in out and "+23 lines" in out  # its output, trimmed
    assert "✓ done" in out and "$" in out.split("✓ done")[1]  # the cost at the end
    assert "\x1b[" not in out  # plain text when stdout is not a terminal
    assert "agc chat " in done.stderr


def test_a_failing_turn_exits_non_zero(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "limited.json"
    config.write_text(json.dumps(LIMITED_CONFIG))
    failed = agc(env, "run", "--config", str(config), "loop")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "error_max_turns" in failed.stdout


def test_json_prints_one_event_per_line(env: dict[str, str], sid: str) -> None:
    done = agc(env, "--json", "run", "--session", sid, "run: echo json-mode")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[0]["type"] == "user" and events[-1]["type"] == "done"
    assert [e["seq"] for e in events] == sorted({e["seq"] for e in events})
    assert all(e["session_id"] == sid for e in events)
    assert "json-mode" in next(e for e in events if e["type"] == "tool_result")["output"]


def test_configs_sessions_and_launch(env: dict[str, str], sid: str) -> None:
    configs = agc(env, "configs")
    assert configs.returncode == 0 and any(line.startswith("code-assistant\t") for line in configs.stdout.splitlines())
    as_json = [json.loads(line) for line in agc(env, "--json", "configs").stdout.splitlines()]
    assert "code-assistant" in [c["id"] for c in as_json]
    listed = agc(env, "sessions")
    assert listed.returncode == 0 and sid in listed.stdout
    assert sid in [s["session_id"] for s in map(json.loads, agc(env, "--json", "sessions").stdout.splitlines())]


def test_files_and_export(env: dict[str, str], sid: str, tmp_path: Path) -> None:
    local = tmp_path / "notes.txt"
    local.write_text("from-agc\n")
    put = agc(env, "files", sid, "put", str(local), "docs")
    assert put.returncode == 0 and "docs/notes.txt" in put.stdout, put.stderr
    listing = agc(env, "files", sid, "ls")
    assert "docs/" in listing.stdout and "notes.txt  9 B" in listing.stdout
    (tmp_path / "down").mkdir()
    got = agc(env, "files", sid, "get", "docs/notes.txt", cwd=tmp_path / "down")
    assert got.returncode == 0 and (tmp_path / "down" / "notes.txt").read_text() == "from-agc\n"
    assert agc(env, "files", sid, "get", "docs/notes.txt", "-").stdout == "from-agc\n"
    assert agc(env, "files", sid, "zip", str(tmp_path / "ws.zip")).returncode == 0
    assert zipfile.ZipFile(tmp_path / "ws.zip").read("docs/notes.txt") == b"from-agc\n"
    missing = agc(env, "files", sid, "get", "nope.txt", str(tmp_path / "nope.txt"))
    assert missing.returncode == 1 and "not_found" in missing.stderr and not (tmp_path / "nope.txt").exists()

    exported = agc(env, "export", sid)
    assert exported.returncode == 0 and exported.stdout.startswith("# Session") and "json-mode" in exported.stdout
    assert json.loads(agc(env, "export", sid, "--format", "json").stdout)


def test_errors_are_one_line_and_non_zero(env: dict[str, str], sid: str) -> None:
    missing = agc(env, "chat", "no-such-session", stdin="")
    assert missing.returncode == 1 and "not_found" in missing.stderr and "Traceback" not in missing.stderr
    no_key = agc({**env, "ANTHROPIC_API_KEY": ""}, "files", sid, "ls")
    assert no_key.returncode == 1 and "ANTHROPIC_API_KEY" in no_key.stderr
    unreachable = agc({**env, "AGCLUSTER_URL": "http://127.0.0.1:9"}, "configs")
    assert unreachable.returncode == 1 and "connection_failed" in unreachable.stderr


class Chat:
    """`agc chat` with piped stdin, its output collected as it arrives."""

    def __init__(self, env: dict[str, str], sid: str) -> None:
        self.proc = subprocess.Popen([str(AGC), "chat", sid], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.output = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output += line

    def say(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def seen(self, text: str) -> bool:
        return text in self.output


def test_chat_ctrl_c_interrupts_the_turn_then_continues(env: dict[str, str], sid: str) -> None:
    chat = Chat(env, sid)
    chat.say("run: echo chat-started && python3 -c 'import time; time.sleep(120)'")
    wait_for(lambda: chat.seen("Bash(echo chat-started"))
    chat.proc.send_signal(signal.SIGINT)
    wait_for(lambda: chat.seen("interrupting"))
    chat.say("run: echo after-ctrl-c")  # read once the interrupted turn has ended
    assert chat.proc.stdin is not None
    chat.proc.stdin.close()
    assert chat.proc.wait(timeout=120) in (0, 1), chat.output
    assert "after-ctrl-c" in chat.output.split("interrupting")[1]


def test_chat_second_ctrl_c_exits(env: dict[str, str], sid: str) -> None:
    chat = Chat(env, sid)
    chat.say("run: echo chat-twice && python3 -c 'import time; time.sleep(120)'")
    wait_for(lambda: chat.seen("Bash(echo chat-twice"))
    chat.proc.send_signal(signal.SIGINT)
    wait_for(lambda: chat.seen("interrupting"))
    chat.proc.send_signal(signal.SIGINT)
    assert chat.proc.wait(timeout=60) == 130


def test_run_in_a_terminal(env: dict[str, str]) -> None:
    """On a TTY the rich view (colours, spinner) renders the same turn."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: agc with the pty as its terminal
        os.execve(str(AGC), [str(AGC), "run", "--config", "code-assistant", "run: echo in-a-tty"], env)
    output = b""
    for chunk in _drain(fd):
        output += chunk
    _, status = os.waitpid(pid, 0)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "Bash(echo in-a-tty)" in text and "in-a-tty" in text.split("Bash(echo in-a-tty)")[1]
    assert "\x1b[" in text and "✓ done" in text


def _drain(fd: int) -> Iterator[bytes]:
    while True:
        ready, _, _ = select.select([fd], [], [], 300)
        if not ready:
            return
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return
        if not chunk:
            return
        yield chunk
