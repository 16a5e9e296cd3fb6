"""The bubblewrap sandbox one local machine runs in, shared with ``stubs.fly``'s process
backend so the Fly stand-in runs agents exactly as the embedded provider does.

What the agent gets, and why:

* **Who it is.** Run by root, the sandbox does not use a user namespace at all: bubblewrap
  builds the mounts as root, then ``setpriv`` drops to an unprivileged host uid of the
  machine's own (from ``SANDBOX_UID_BASE``, kept in the machine's directory so a woken
  machine keeps its files), clears groups, empties every capability set and sets
  no_new_privs. Files the agent creates belong to that uid, never to root, and root-only
  host files (``/etc/shadow``, ``/etc/docker/key.json``) stay unreadable. Run by anyone
  else, the agent is uid 1000 in a user namespace that maps to the caller (who owns
  nothing a sandbox could steal beyond the data directory, which is hidden).
* **What it sees.** A read-only system (``/usr``, ``/etc``, ``/opt``, the interpreter and
  the project source), a private ``/tmp``, its own ``/workspace`` and ``/home/agent``, and
  in ``/run/agcluster`` the Unix sockets of its relay (and egress proxy). The control
  plane's data directory is covered by an empty tmpfs wherever it sits, so no
  ``DATABASE_PATH`` can put ``server.secret`` or another machine in view.
* **What it reaches.** Nothing: its own empty network namespace (``network="none"``),
  with the machine agent serving on a socket the control plane created and passed in,
  and loopback forwarders to the relay (and egress) sockets. The Fly stand-in instead uses
  ``network="host"`` with a TCP address, like a Fly VM.
* **What it cannot write.** setuid/setgid bits (a seccomp filter, see ``seccomp.py``), on
  mounts that are ``nosuid`` anyway.
"""

from __future__ import annotations

import os
import pwd
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import machine_agent  # only to locate its source; never imported for its internals
from wire.protocol import MACHINE_TOKEN_ENV

SOURCE_ROOT = Path(machine_agent.__file__).resolve().parent.parent
SANDBOX_UID = 1000
SANDBOX_UID_BASE = 600_000_000
SANDBOX_UID_COUNT = 65_536
RUN_DIR = "/run/agcluster"
RELAY_SOCKET = "relay.sock"
EGRESS_SOCKET = "egress.sock"
RELAY_PORT = 41001
"""Where the relay answers on a local machine's own loopback (its network namespace is empty)."""
EGRESS_PORT = 41002
UID_FILE = "uid"


def compile_sources() -> None:
    """Write the machine agent's bytecode once, here: a sandbox sees the source read-only, so
    missing or stale ``__pycache__`` files would be recompiled in memory at every machine
    start. Quietly does nothing where the source is not ours to write."""
    import compileall

    for package in ("machine_agent", "wire"):
        compileall.compile_dir(str(SOURCE_ROOT / package), quiet=2)


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def runs_as_root() -> bool:
    return os.geteuid() == 0


@dataclass(frozen=True)
class MachineDirs:
    """One machine's directories on the host: its files under ``machines/<key>/``, and its
    sockets under a short runtime directory, since a Unix socket's path may not exceed 107
    bytes and a data directory can be deep."""

    root: Path
    sockets: Path | None = None

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def run(self) -> Path:
        """Sockets the control plane serves to this machine; bound read-only inside."""
        return (self.sockets or self.root) / "run"

    @property
    def agent_socket(self) -> Path:
        """Where the control plane reaches the machine agent (never visible inside)."""
        return (self.sockets or self.private) / "agent.sock"

    @property
    def private(self) -> Path:
        """The control plane's side only: the agent socket, the generated passwd file."""
        return self.root / "private"


def allocate_uid(machines_dir: Path, key: str) -> int:
    """This machine's host uid: kept in its directory, else the lowest one nobody holds.

    Callers serialise allocation (one spawner thread), so two machines never race for a uid.
    """
    uid_file = MachineDirs(machines_dir / key).private / UID_FILE
    try:
        return int(uid_file.read_text())
    except (OSError, ValueError):
        pass
    taken = set()
    for other in machines_dir.iterdir() if machines_dir.is_dir() else []:
        try:
            taken.add(int((other / "private" / UID_FILE).read_text()))
        except (OSError, ValueError):
            continue
    for uid in range(SANDBOX_UID_BASE, SANDBOX_UID_BASE + SANDBOX_UID_COUNT):
        if uid not in taken and not _uid_in_use(uid):
            uid_file.parent.mkdir(parents=True, exist_ok=True)
            uid_file.write_text(str(uid))
            return uid
    raise RuntimeError("no free sandbox uid left")


def _uid_in_use(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


def prepare_dirs(dirs: MachineDirs, owner: int | None) -> None:
    """Create the machine's directories with modes that keep everyone else out.

    ``owner`` is the sandbox's host uid when there is one (root control plane); the
    workspace and home then belong to it, 0700. The machine directory itself and its
    ``run``/``private`` parts stay the control plane's (a sandbox can never swap a socket).
    """
    for path in (dirs.root, dirs.private, *([dirs.sockets] if dirs.sockets else [])):
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    dirs.run.mkdir(exist_ok=True)
    os.chmod(dirs.run, 0o755)
    for path in (dirs.workspace, dirs.home):
        path.mkdir(exist_ok=True)
        if owner is not None:
            os.chown(path, owner, owner)
        os.chmod(path, 0o700)


def _identity_files(dirs: MachineDirs, uid: int) -> tuple[Path, Path]:
    """/etc/passwd and /etc/group as the sandbox sees them: the host's, plus an ``agent``
    entry for the sandbox uid, so tools that look up their user (git, ssh, the CLI) work."""
    dirs.private.mkdir(parents=True, exist_ok=True)
    passwd = dirs.private / "passwd"
    group = dirs.private / "group"
    entries = [line for line in _read("/etc/passwd").splitlines() if not line.startswith("agent:")]
    entries.append(f"agent:x:{uid}:{uid}:AgCluster agent:/home/agent:/bin/bash")
    passwd.write_text("\n".join(entries) + "\n")
    groups = [line for line in _read("/etc/group").splitlines() if not line.startswith("agent:")]
    groups.append(f"agent:x:{uid}:")
    group.write_text("\n".join(groups) + "\n")
    for path in (passwd, group):
        os.chmod(path, 0o644)
    return passwd, group


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


@dataclass(frozen=True)
class Sandbox:
    """Everything that varies between two machines' sandboxes."""

    dirs: MachineDirs
    token: str
    hidden_dirs: list[Path]
    env: dict[str, str] = field(default_factory=dict)
    network: str = "none"
    """``none``: an empty network namespace (local provider); ``host``: the host's (Fly stand-in)."""
    listen_fd: int | None = None
    """The machine agent's listening socket, inherited (network none)."""
    host: str = "127.0.0.1"
    port: int = 8080
    """Where the machine agent listens itself (network host)."""
    internet: bool = False
    """Also forward an egress proxy (config ``network: internet``)."""
    uid: int | None = None
    """The sandbox's own host uid (root control plane), or None for a user namespace."""
    seccomp_fd: int | None = None
    max_upload_mb: int = 50


def command(box: Sandbox, bwrap: str | None) -> tuple[list[str], dict[str, str]]:
    """The argv (and environment) that runs one machine agent in its sandbox.

    With ``bwrap=None`` (only ``stubs.fly``'s process backend, when told not to sandbox) the
    agent runs as a plain process and the returned environment is the one to start it with.
    """
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        MACHINE_TOKEN_ENV: box.token,
        "MAX_UPLOAD_MB": str(box.max_upload_mb),
        **box.env,
    }
    agent = [sys.executable, "-m", "machine_agent"]
    if box.network == "none" and box.listen_fd is not None:
        agent += ["--listen-fd", str(box.listen_fd)]
    else:
        agent += ["--host", box.host, "--port", str(box.port)]
    if bwrap is None:
        env["HOME"] = str(box.dirs.home)
        return [*agent, "--workspace", str(box.dirs.workspace)], env
    env["HOME"] = "/home/agent"
    if box.network == "none":
        agent += ["--forward", f"{RELAY_PORT}={RUN_DIR}/{RELAY_SOCKET}"]
        if box.internet:
            agent += ["--forward", f"{EGRESS_PORT}={RUN_DIR}/{EGRESS_SOCKET}"]
            proxy = f"http://127.0.0.1:{EGRESS_PORT}"
            env.update({"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "http_proxy": proxy, "https_proxy": proxy,
                        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    argv = [bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--hostname", "agcluster-machine"]
    if box.network == "none":
        argv.append("--unshare-net")
    if box.uid is None:
        argv += ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    if box.seccomp_fd is not None:
        argv += ["--seccomp", str(box.seccomp_fd)]
    # The fresh /tmp comes first: binds below may live under /tmp (a checkout or a venv
    # there) and must be laid on top of it, not hidden by it.
    argv += ["--perms", "1777", "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs",
             "/dev/shm"]
    bound: list[Path] = []
    for system_dir in ("/usr", "/etc", "/opt"):
        if Path(system_dir).is_dir():
            argv += ["--ro-bind", system_dir, system_dir]
            bound.append(Path(system_dir))
    for link in ("/bin", "/lib", "/lib64", "/sbin", "/lib32", "/libx32"):
        target = Path(link)
        if target.is_symlink():
            argv += ["--symlink", os.readlink(link), link]
        elif target.is_dir():
            argv += ["--ro-bind", link, link]
            bound.append(target)
    made: set[Path] = set()
    for python_dir in sorted({Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), SOURCE_ROOT}):
        # bubblewrap would create the missing parents 0700 as root, which an unprivileged
        # sandbox uid could not traverse: create them world-traversable first.
        for parent in reversed(python_dir.parents):
            if parent != Path("/") and parent not in made and not any(parent == b or parent.is_relative_to(b)
                                                                       for b in bound):
                argv += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        argv += ["--ro-bind", str(python_dir), str(python_dir)]
        bound.append(python_dir)
    identity_uid = box.uid if box.uid is not None else SANDBOX_UID
    passwd, group = _identity_files(box.dirs, identity_uid)
    argv += ["--ro-bind", str(passwd), "/etc/passwd", "--ro-bind", str(group), "/etc/group"]
    # Whatever the data directory's location, nothing of it stays visible: every hidden
    # directory that falls inside something bound above is covered by an empty tmpfs.
    covered: list[Path] = []
    for hidden in sorted(box.hidden_dirs):
        if any(hidden.is_relative_to(c) for c in covered):
            continue  # inside a directory already covered: nothing of it shows
        if any(hidden == b or hidden.is_relative_to(b) for b in bound):
            argv += ["--tmpfs", str(hidden)]
            covered.append(hidden)
    argv += ["--bind", str(box.dirs.workspace), "/workspace",
             "--perms", "0755", "--dir", "/home", "--bind", str(box.dirs.home), "/home/agent"]
    if box.network == "none":
        argv += ["--perms", "0755", "--dir", "/run", "--ro-bind", str(box.dirs.run), RUN_DIR]
    argv += ["--chdir", "/workspace", "--clearenv"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv.append("--")
    if box.uid is not None:
        argv += [_setpriv(), f"--reuid={box.uid}", f"--regid={box.uid}", "--clear-groups", "--no-new-privs",
                 "--inh-caps=-all", "--bounding-set=-all", "--"]
    return argv + agent + ["--workspace", "/workspace"], {}


def _setpriv() -> str:
    path = shutil.which("setpriv") or "/usr/bin/setpriv"
    if not Path(path).exists():
        raise RuntimeError("setpriv (util-linux) is needed to run local machines as an unprivileged uid")
    return path
