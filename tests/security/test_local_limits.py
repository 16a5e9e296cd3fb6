"""Finding 8: the local provider enforces memory, CPU and process limits (cgroups when the
control plane may write them), and says which it enforces."""

from __future__ import annotations

from pathlib import Path

import requests

from tests.security.conftest import ROOT_ONLY, launch
from tests.support import ControlPlane

pytestmark = ROOT_ONLY
SMALL = {"id": "small-local", "name": "Small", "allowed_tools": ["Bash"],
         "resource_limits": {"memory_limit": "512m", "cpu_quota": 50000}}
ROOMY = {**SMALL, "id": "roomy-local", "resource_limits": {"memory_limit": "2g", "cpu_quota": 50000}}


def test_a_512m_limit_kills_a_1g_allocation_not_the_machine(local_cp: ControlPlane) -> None:
    agent = launch(local_cp, config=SMALL)
    assert agent.launch["enforced"]["memory"] and agent.launch["enforced"]["pids"]
    out = agent.run("python3 -c 'x = bytearray(1024 * 1024 * 1024); print(len(x))'; echo exit=$?")
    assert "1073741824" not in out and "exit=137" in out, out
    # The machine lives on: the next command runs, and usage reports the kill.
    assert "still-here" in agent.run("echo still-here")
    details = local_cp.get(f"/api/agents/sessions/{agent.sid}", agent.key).json()
    assert details["resources"]["memory_limit_mb"] == 512
    assert details["resources"]["oom_kills"] >= 1


def test_a_process_limit_holds(local_cp: ControlPlane) -> None:
    """A fork bomb hits the machine's process cap (threads count too, so the CLI may go down
    with it, as in a container); the host is unaffected and the next turn works."""
    agent = launch(local_cp, config=ROOMY)
    group = next(Path("/sys/fs/cgroup/pids").rglob(f"agcluster/{agent.row['machine_key']}"))
    assert (group / "pids.max").read_text().strip() == "512"
    local_cp.chat_events(agent.sid, agent.key, "run: for i in $(seq 1 3000); do sleep 30 & done; wait")
    hits = int(dict(line.split() for line in (group / "pids.events").read_text().splitlines())["max"])
    assert hits > 0  # the cap was reached and refused forks
    assert local_cp.get("/health").status_code == 200
    assert "still-here" in agent.run("pkill sleep; echo still-here")


def test_cpu_is_capped(local_cp: ControlPlane) -> None:
    agent = launch(local_cp, config=SMALL)
    quota = agent.run("cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo none")
    # The group is the host's business; what the agent can observe is the result.
    assert agent.launch["enforced"]["cpu"]
    details = requests.get(f"{local_cp.url}/health", timeout=10).json()
    assert details["enforced"]["relay"]["cpu"] == agent.launch["enforced"]["cpu"]
    assert quota  # the command ran


def test_limits_a_local_machine_could_never_honour_are_refused_up_front(local_cp: ControlPlane) -> None:
    config = {**SMALL, "id": "tiny-local", "resource_limits": {"memory_limit": "128m", "cpu_quota": 1_600_000}}
    resp = requests.post(f"{local_cp.url}/api/agents/launch", json={"api_key": "sk-ant-api03-" + "x" * 40,
                                                                    "config": config}, timeout=60)
    assert resp.status_code == 400, resp.text
    problems = resp.json()["error"]["details"]["resource_limits"]
    assert "memory_limit" in problems and "384 MB" in problems["memory_limit"]
