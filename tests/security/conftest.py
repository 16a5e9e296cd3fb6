"""Attack fixtures: a control plane to attack, a way to run a shell command as the agent,
and the host-side view to check what an attack really achieved.

Every test here is an attack a user could make by writing a prompt (the stand-in model's
``run: <cmd>`` makes the real CLI run a real Bash command in the real sandbox) or a
config, and asserts the safe outcome. They run as root in CI, as the product usually does
in containers; ``test_normal_user.py`` repeats the ones whose behaviour differs with the
control plane running as an ordinary user.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stubs.anthropic import StubAnthropic
from tests.support import ControlPlane, dump

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="attacks a root control plane (CI runs as root)")


def new_key() -> str:
    return "sk-ant-api03-" + secrets.token_hex(24)


@dataclass
class Agent:
    """One launched session, driven like an attacker with a prompt would drive it."""

    cp: ControlPlane
    sid: str
    key: str
    launch: dict[str, Any]

    def run(self, command: str) -> str:
        """Run ``command`` with the agent's Bash tool; its output (stdout and stderr)."""
        events = self.cp.chat_events(self.sid, self.key, f"run: {command}")
        results = [e for e in events if e["type"] == "tool_result"]
        assert results, dump(events)
        return str(results[-1]["output"])

    @property
    def row(self) -> dict[str, Any]:
        return self.cp.session_row(self.sid)

    @property
    def machine_dir(self) -> Path:
        return self.cp.data_dir / "machines" / self.row["machine_key"]


def steal_relay_token(victim: Agent, thief: Agent, model: StubAnthropic) -> None:
    """The victim's relay token, read inside its machine, used from the thief's machine:
    refused, and not one model call is spent on the victim's key."""
    token = victim.run("echo TOKEN=$ANTHROPIC_API_KEY").split("TOKEN=")[1].split()[0]
    assert token.startswith("agr.")
    digest = hashlib.sha256(victim.key.encode()).hexdigest()

    def spent_on_victim() -> int:
        return len([r for r in model.requests(path="/v1/messages")
                    if (r.get("credential") or {}).get("sha256") == digest])

    before = spent_on_victim()
    out = thief.run("curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' "
                    f"-H 'x-api-key: {token}' -d '{{\"model\":\"x\",\"max_tokens\":1,\"messages\":[]}}' "
                    "\"$ANTHROPIC_BASE_URL/v1/messages\"")
    assert out.strip().endswith("401"), out
    assert spent_on_victim() == before


def post_on_relay_socket(path: Path, body: str, headers: dict[str, str]) -> int:
    """A model call on a machine's own relay socket (its host side), as the machine's CLI
    would make it: the HTTP status, or 0 when the socket refused the connection."""
    import http.client
    import socket

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(30)
            self.sock.connect(str(path))

    conn = Conn("relay")
    try:
        conn.request("POST", "/relay/v1/messages", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        conn.close()


def launch(cp: ControlPlane, config: dict[str, Any] | None = None, config_id: str = "code-assistant") -> Agent:
    key = new_key()
    body = cp.launch(key, config=config) if config is not None else cp.launch(key, config_id)
    return Agent(cp, body["session_id"], key, body)


@pytest.fixture(scope="module")
def local_cp(tmp_path_factory: pytest.TempPathFactory, model: StubAnthropic) -> Iterator[ControlPlane]:
    cp = ControlPlane(tmp_path_factory.mktemp("sec"), {"ANTHROPIC_BASE_URL": model.url}).start()
    yield cp
    cp.stop()


@pytest.fixture(scope="module")
def agent(local_cp: ControlPlane) -> Agent:
    return launch(local_cp)
