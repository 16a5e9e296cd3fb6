"""The agent's own tools cannot read the machine token (real CLI, real bwrap sandbox).

The machine agent removes the token from its environment before the CLI starts, but the
kernel keeps the original environment block in ``/proc/<pid>/environ``, readable by every
process of the same user, and the CLI and its tools run as that user. With the token a
tool could call its own machine agent, e.g. to approve its own permission requests.
"""

from __future__ import annotations

import secrets

import pytest

from tests.support import ControlPlane

KEY = "sk-ant-api03-" + secrets.token_hex(24)
PROBE = ("grep -l AGCLUSTER_MACHINE_TOKEN /proc/[0-9]*/environ 2>/dev/null; "
         "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q machine_agent "
         "&& echo agent=${p#/proc/}; done; echo probe-done")


@pytest.fixture(scope="module")
def session(control_plane: ControlPlane) -> dict:
    return control_plane.launch(KEY)


def test_no_process_a_tool_can_read_holds_the_token(control_plane: ControlPlane, session: dict) -> None:
    events = control_plane.chat_events(session["session_id"], KEY, f"run: {PROBE}")
    output = next(e for e in events if e["type"] == "tool_result")["output"]
    assert "probe-done" in output, output
    assert "agent=" in output, f"the probe must see the machine agent's process to mean anything:\n{output}"
    assert "/environ" not in output, f"a tool can read an environment holding the machine token:\n{output}"
