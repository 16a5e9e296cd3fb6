"""The bwrap command line: what is visible inside a local machine, and in which order."""

from __future__ import annotations

from pathlib import Path

from control.providers import sandbox
from control.providers.sandbox import SANDBOX_UID_BASE, MachineDirs, Sandbox


def argv_for(tmp_path: Path, **changes: object) -> list[str]:
    dirs = MachineDirs(tmp_path / "machines" / "m")
    sandbox.prepare_dirs(dirs, None)
    options: dict = {"dirs": dirs, "token": "machine-token", "hidden_dirs": [tmp_path / "data"], "listen_fd": 3,
                     **changes}
    argv, env = sandbox.command(Sandbox(**options), "/usr/bin/bwrap")
    assert env == {}  # everything goes through --setenv after --clearenv
    return argv


def test_private_tmp_is_mounted_before_the_binds_it_could_hide(tmp_path: Path) -> None:
    argv = argv_for(tmp_path)
    tmp = argv.index("/tmp", argv.index("--tmpfs"))
    first_bind = min(i for i, a in enumerate(argv) if a in ("--ro-bind", "--bind"))
    assert tmp < first_bind
    assert argv[argv.index("--tmpfs") - 1] == "1777"  # --perms for the tmpfs: any uid may use /tmp


def test_workspace_home_run_dir_and_no_network(tmp_path: Path) -> None:
    argv = argv_for(tmp_path)
    joined = " ".join(argv)
    dirs = MachineDirs(tmp_path / "machines" / "m")
    assert f"--bind {dirs.workspace} /workspace" in joined
    assert f"--bind {dirs.home} /home/agent" in joined
    assert f"--ro-bind {dirs.run} /run/agcluster" in joined
    assert "--unshare-net" in argv and "--unshare-pid" in argv and "--die-with-parent" in argv
    assert "--clearenv" in argv and "--setenv AGCLUSTER_MACHINE_TOKEN machine-token" in joined
    agent = argv[argv.index("machine_agent"):]
    assert "--listen-fd" in agent and "--forward" in agent and "--host" not in agent
    assert agent[-2:] == ["--workspace", "/workspace"]
    assert "HTTPS_PROXY" not in joined


def test_internet_adds_only_the_egress_forwarder_and_proxy_variables(tmp_path: Path) -> None:
    joined = " ".join(argv_for(tmp_path, internet=True))
    assert "--forward 41002=/run/agcluster/egress.sock" in joined
    assert "--setenv HTTPS_PROXY http://127.0.0.1:41002" in joined and "--setenv NO_PROXY" in joined


def test_a_user_namespace_without_root_and_setpriv_with_it(tmp_path: Path) -> None:
    joined = " ".join(argv_for(tmp_path))
    assert "--unshare-user --uid 1000 --gid 1000" in joined and "setpriv" not in joined
    uid = SANDBOX_UID_BASE + 7
    argv = argv_for(tmp_path, uid=uid)
    assert "--unshare-user" not in argv
    setpriv = argv[argv.index("--") + 1:]
    assert setpriv[0].endswith("setpriv") and f"--reuid={uid}" in setpriv and "--no-new-privs" in setpriv
    assert "--bounding-set=-all" in setpriv and "--clear-groups" in setpriv
    passwd = (tmp_path / "machines" / "m" / "private" / "passwd").read_text()
    assert f"agent:x:{uid}:{uid}:" in passwd


def test_the_data_dir_is_covered_wherever_it_sits(tmp_path: Path) -> None:
    for hidden in (Path("/usr/local/share/agcluster-data"), Path("/etc/agcluster"), sandbox.SOURCE_ROOT / "data"):
        argv = argv_for(tmp_path, hidden_dirs=[hidden])
        assert any(argv[i] == "--tmpfs" and argv[i + 1] == str(hidden) for i in range(len(argv) - 1)), hidden
    argv = argv_for(tmp_path, hidden_dirs=[Path("/srv/elsewhere")])  # not visible at all: nothing to cover
    assert "/srv/elsewhere" not in argv


def test_uids_are_kept_per_machine_and_never_shared(tmp_path: Path) -> None:
    machines = tmp_path / "machines"
    machines.mkdir()
    first = sandbox.allocate_uid(machines, "a")
    second = sandbox.allocate_uid(machines, "b")
    assert first != second and min(first, second) >= SANDBOX_UID_BASE
    assert sandbox.allocate_uid(machines, "a") == first
