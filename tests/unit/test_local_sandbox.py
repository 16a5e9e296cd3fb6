"""The bwrap command line: what is visible inside a local machine, and in which order."""

from pathlib import Path

from control.providers.local import sandbox_command


def argv_for(tmp_path: Path) -> list[str]:
    argv, env = sandbox_command(tmp_path / "m", "127.0.0.1", 9000, "machine-token", {}, bwrap="/usr/bin/bwrap",
                                hidden_dirs=[tmp_path / "data"])
    assert env == {}  # everything goes through --setenv after --clearenv
    return argv


def test_private_tmp_is_mounted_before_the_binds_it_could_hide(tmp_path: Path) -> None:
    argv = argv_for(tmp_path)
    tmp = argv.index("/tmp", argv.index("--tmpfs"))
    first_bind = min(i for i, a in enumerate(argv) if a in ("--ro-bind", "--bind"))
    assert tmp < first_bind


def test_workspace_home_and_identity(tmp_path: Path) -> None:
    argv = argv_for(tmp_path)
    joined = " ".join(argv)
    assert f"--bind {tmp_path / 'm' / 'workspace'} /workspace" in joined
    assert f"--bind {tmp_path / 'm' / 'home'} /home/agent" in joined
    assert "--uid 1000" in joined and "--unshare-pid" in joined and "--die-with-parent" in joined
    assert "--clearenv" in argv and "--setenv AGCLUSTER_MACHINE_TOKEN machine-token" in joined
    assert argv[argv.index("--") + 1:][-2:] == ["--workspace", "/workspace"]
