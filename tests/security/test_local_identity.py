"""Who the agent is on the host (local provider, control plane running as root): finding 1
and the file-mode part of finding 9."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from control.providers.sandbox import SANDBOX_UID_BASE, SANDBOX_UID_COUNT
from tests.security.conftest import ROOT_ONLY, Agent

pytestmark = ROOT_ONLY


def test_the_agent_is_an_unprivileged_host_uid_of_its_own(agent: Agent) -> None:
    out = agent.run("id -u; touch /workspace/mine.txt; echo made")
    assert "made" in out
    inside_uid = int(out.split()[0])
    host_file = agent.machine_dir / "workspace" / "mine.txt"
    owner = host_file.stat().st_uid
    assert owner != 0 and owner == inside_uid, (owner, inside_uid)
    assert SANDBOX_UID_BASE <= owner < SANDBOX_UID_BASE + SANDBOX_UID_COUNT


def test_no_setuid_binary_can_be_planted_on_the_host(agent: Agent) -> None:
    out = agent.run("cp /usr/bin/python3 /workspace/py; chmod 4755 /workspace/py; echo chmod=$?; "
                    "python3 -c \"import os; os.open('/workspace/sg', os.O_CREAT | os.O_WRONLY, 0o2755)\"; "
                    "echo open=$?; install -m 6755 /usr/bin/id /workspace/id2; echo install=$?")
    assert "chmod=1" in out and "open=1" in out and "install=1" in out, out
    for path in (agent.machine_dir / "workspace").iterdir():
        info = path.lstat()
        assert not info.st_mode & (stat.S_ISUID | stat.S_ISGID), (path, oct(info.st_mode))
        assert info.st_uid != 0, path
    # And what is there runs as its owner, never as root, for anyone who could reach it.
    python = agent.machine_dir / "workspace" / "py"
    assert python.exists() and python.stat().st_uid != 0


def test_root_only_host_files_stay_unreadable(agent: Agent) -> None:
    targets = [p for p in ("/etc/shadow", "/etc/gshadow", "/etc/docker/key.json", "/etc/ssh/ssh_host_ed25519_key")
               if Path(p).exists() and not Path(p).stat().st_mode & stat.S_IROTH]
    assert "/etc/shadow" in targets
    out = agent.run("; ".join(f"cat {p} >/dev/null 2>&1 && echo READ:{p} || echo DENIED:{p}" for p in targets))
    for path in targets:
        assert f"DENIED:{path}" in out and f"READ:{path}" not in out, out


def test_the_agent_cannot_become_root_again(agent: Agent) -> None:
    out = agent.run("grep -E '^(Cap(Prm|Eff|Bnd|Amb)|NoNewPrivs)' /proc/self/status; "
                    "su -c id root </dev/null 2>&1 | tail -1; echo ---")
    caps = {line.split(":")[0]: line.split(":")[1].strip() for line in out.splitlines() if ":" in line
            and line.startswith(("Cap", "NoNew"))}
    assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == "0000000000000000", out
    assert caps["NoNewPrivs"] == "1", out
    assert "uid=0" not in out, out


def test_data_dir_and_workspaces_are_private(agent: Agent) -> None:
    data_dir = agent.cp.data_dir
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for name in ("agcluster.db", "server.secret"):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name
    machines = data_dir / "machines"
    assert stat.S_IMODE(machines.stat().st_mode) == 0o700
    for sub in ("workspace", "home"):
        assert stat.S_IMODE((agent.machine_dir / sub).stat().st_mode) == 0o700, sub
    # A non-root host user cannot even find the workspace.
    nobody = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "ls",
                             str(agent.machine_dir / "workspace")], capture_output=True, text=True)
    assert nobody.returncode != 0 and "Permission denied" in nobody.stderr


def test_machines_cannot_touch_each_other(local_cp, agent: Agent) -> None:
    from tests.security.conftest import launch

    other = launch(local_cp)
    other.run("echo theirs > /workspace/secret.txt")
    assert agent.row["machine_key"] != other.row["machine_key"]
    their_uid = (other.machine_dir / "workspace" / "secret.txt").stat().st_uid
    my_uid = int(agent.run("id -u").split()[0])
    assert their_uid != my_uid
    out = agent.run(f"ls {other.machine_dir} 2>&1; cat {other.machine_dir}/workspace/secret.txt 2>&1; "
                    "ls /proc | grep -c '^[0-9]'")
    assert "theirs" not in out
    # Its own PID namespace: a handful of processes, none of the other machine's.
    assert int(out.strip().splitlines()[-1]) < 40, out
    os.stat(other.machine_dir)  # still there: nothing the attack did removed it
