"""``python -m machine_agent`` as a real subprocess, listening each of the three ways.

TCP (``--host/--port``), a Unix socket it creates (``--unix``) and a socket its parent
already bound and put in listening state (``--listen-fd``, Unix, IPv4 and IPv6). Each answers
``/health`` with the machine token, refuses a wrong one with the JSON 401, runs as one
process, and exits cleanly on SIGTERM.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, free_port, wait_for

TOKEN = "listen-test-token"
O_CLOEXEC = 0o2000000


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class Agent:
    def __init__(self, tmp: Path, args: list[str], pass_fds: tuple[int, ...] = ()) -> None:
        (tmp / "ws").mkdir(exist_ok=True)
        self.log = tmp / "agent.log"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), "LANG": "C.UTF-8",
               "AGCLUSTER_MACHINE_TOKEN": TOKEN}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "machine_agent", *args, "--workspace", str(tmp / "ws")],
                                         cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, pass_fds=pass_fds,
                                         start_new_session=True)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"the agent ignored SIGTERM:\n{self.log.read_text()}") from None


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Any]:
    started: list[Agent] = []

    def start(args: list[str], pass_fds: tuple[int, ...] = ()) -> Agent:
        agent = Agent(tmp_path, args, pass_fds)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        if agent.proc.poll() is None:
            os.killpg(agent.proc.pid, signal.SIGKILL)
            agent.proc.wait()


def _get(conn: http.client.HTTPConnection, token: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    conn.request("GET", "/health", headers=headers)
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


def _until_up(connect: Any, agent: Agent) -> http.client.HTTPConnection:
    """A connection once the agent has created its listener."""

    def attempt() -> http.client.HTTPConnection | None:
        assert agent.proc.poll() is None, agent.log.read_text()
        conn = connect()
        try:
            conn.connect()
        except (ConnectionRefusedError, FileNotFoundError):
            return None
        return conn

    return wait_for(attempt)


def _check_auth_and_one_process(conn: http.client.HTTPConnection, agent: Agent) -> None:
    status, body = _get(conn, TOKEN)
    assert status == 200, body
    assert body["status"] == "ok" and body["configured"] is False
    status, body = _get(conn, "wrong-token")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = _get(conn, None)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    children = Path(f"/proc/{agent.proc.pid}/task/{agent.proc.pid}/children").read_text().split()
    assert children == [], "the agent must be one process (no arbiter, no worker)"


def _assert_clean_exit(agent: Agent) -> None:
    assert agent.stop() == 0, agent.log.read_text()
    assert "Traceback" not in agent.log.read_text()


def test_tcp_host_and_port(agents: Any) -> None:
    port = free_port()
    agent = agents(["--host", "127.0.0.1", "--port", str(port)])
    conn = _until_up(lambda: http.client.HTTPConnection("127.0.0.1", port, timeout=30), agent)
    _check_auth_and_one_process(conn, agent)
    _assert_clean_exit(agent)


def test_tcp_default_host_is_dual_stack(agents: Any) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    port = free_port()
    agent = agents(["--port", str(port)])  # --host defaults to ::
    conn4 = _until_up(lambda: http.client.HTTPConnection("127.0.0.1", port, timeout=30), agent)
    assert _get(conn4, TOKEN)[0] == 200
    conn6 = http.client.HTTPConnection("::1", port, timeout=30)
    assert _get(conn6, TOKEN)[0] == 200
    assert _get(conn6, "wrong")[0] == 401
    _assert_clean_exit(agent)


def test_unix_socket(agents: Any, tmp_path: Path) -> None:
    path = tmp_path / "agent.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))  # left over from an earlier run: replaced, not an error
    stale.close()
    agent = agents(["--unix", str(path)])
    conn = _until_up(lambda: UnixHTTPConnection(str(path)), agent)
    _check_auth_and_one_process(conn, agent)
    conn.close()
    _assert_clean_exit(agent)
    assert not path.exists(), "the agent removes the socket it created"


def test_unix_path_that_is_not_a_socket_is_left_alone(agents: Any, tmp_path: Path) -> None:
    path = tmp_path / "precious.txt"
    path.write_text("keep me")
    agent = agents(["--unix", str(path)])
    assert agent.proc.wait(timeout=60) != 0
    assert path.read_text() == "keep me"
    assert "cannot listen" in agent.log.read_text()


def _bound(family: socket.AddressFamily, tmp_path: Path) -> tuple[socket.socket, Any]:
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_UNIX:
        address: Any = str(tmp_path / "parent-owned.sock")
    elif family == socket.AF_INET6:
        address = ("::1", 0)
    else:
        address = ("127.0.0.1", 0)
    sock.bind(address)
    sock.listen(16)
    return sock, sock.getsockname()


@pytest.mark.parametrize("family", [socket.AF_UNIX, socket.AF_INET, socket.AF_INET6], ids=["unix", "ipv4", "ipv6"])
def test_listen_fd(agents: Any, tmp_path: Path, family: socket.AddressFamily) -> None:
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    parent, address = _bound(family, tmp_path)
    with parent:
        agent = agents(["--listen-fd", str(parent.fileno())], pass_fds=(parent.fileno(),))
        # The socket already listens: a client may connect before the agent has started
        # and is answered once it has, without polling.
        if family == socket.AF_UNIX:
            conn: http.client.HTTPConnection = UnixHTTPConnection(address)
        else:
            conn = http.client.HTTPConnection(address[0], address[1], timeout=60)
        conn.connect()
        _check_auth_and_one_process(conn, agent)
        flags = _fd_flags(agent.proc.pid, parent.fileno())
        assert flags & O_CLOEXEC, "the inherited listener must not leak into the CLI and tools"
        conn.close()
        _assert_clean_exit(agent)
        if family == socket.AF_UNIX:
            assert Path(address).exists(), "the parent owns the socket's path; the agent never unlinks it"
        # The parent's socket still works after the agent is gone (no shutdown() on it).
        assert parent.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1


O_NONBLOCK = 0o4000


def test_listen_fd_left_non_blocking_by_the_parent_is_served_blocking(agents: Any, tmp_path: Path) -> None:
    """A control plane under gevent hands over an O_NONBLOCK socket; an agent that kept it so
    would spin in accept() at 100 % CPU while idle."""
    parent, address = _bound(socket.AF_UNIX, tmp_path)
    with parent:
        parent.setblocking(False)
        assert _fd_flags(os.getpid(), parent.fileno()) & O_NONBLOCK
        agent = agents(["--listen-fd", str(parent.fileno())], pass_fds=(parent.fileno(),))
        conn = UnixHTTPConnection(address)
        conn.connect()
        _check_auth_and_one_process(conn, agent)
        assert not _fd_flags(agent.proc.pid, parent.fileno()) & O_NONBLOCK
        conn.close()
        _assert_clean_exit(agent)


def _fd_flags(pid: int, fd: int) -> int:
    for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines():
        if line.startswith("flags:"):
            return int(line.split()[1], 8)
    raise AssertionError("no flags in fdinfo")


def test_listen_fd_that_is_not_listening_is_refused(agents: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        agent = agents(["--listen-fd", str(sock.fileno())], pass_fds=(sock.fileno(),))
        assert agent.proc.wait(timeout=60) != 0
    assert "is not listening" in agent.log.read_text()


def test_listen_fd_that_is_not_open_is_refused(agents: Any) -> None:
    agent = agents(["--listen-fd", "97"])
    assert agent.proc.wait(timeout=60) != 0
    assert "not an open socket" in agent.log.read_text()


def test_the_token_is_required(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "machine_agent", "--port", str(free_port())], cwd=ROOT, env=env,
                         capture_output=True, timeout=60)
    assert out.returncode != 0 and b"AGCLUSTER_MACHINE_TOKEN is required" in out.stderr
