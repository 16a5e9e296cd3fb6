"""The processes a benchmark drives: the stand-in model, control planes, machines.

Every process started here is registered with a :class:`Lab`, whose ``close()`` stops them
all (and removes the scratch directory), including after Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests

from bench import procs
from control.harness import ROOT, ControlPlaneProcess, free_port, wait_until

__all__ = ["ROOT", "ControlPlane", "Lab", "ModelProcess", "free_port", "wait_until"]


class Lab:
    """A scratch directory and every process started for one benchmark run."""

    def __init__(self, keep: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="agcluster-bench-"))
        self.keep = keep
        self._stack = contextlib.ExitStack()
        self._count = 0

    def dir(self, name: str) -> Path:
        self._count += 1
        path = self.root / f"{self._count:02d}-{name}"
        path.mkdir(parents=True)
        return path

    def on_close(self, callback: Callable[[], Any]) -> None:
        self._stack.callback(callback)

    def close(self) -> None:
        try:
            self._stack.close()
        finally:
            if not self.keep:
                shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class ModelProcess:
    """``python -m stubs.anthropic`` in its own process, so its CPU is not the bench's."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.client: Any = None

    def start(self) -> ModelProcess:
        from stubs.anthropic import StubAnthropicClient

        log = open(self.lab.dir("model") / "model.log", "w")  # noqa: SIM115 - closed at stop
        self.proc = subprocess.Popen([sys.executable, "-m", "stubs.anthropic", "--port", "0"], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
        self.lab.on_close(self.stop)
        self.lab.on_close(log.close)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if "listening on" not in line:
            raise RuntimeError(f"stubs.anthropic did not start: {line!r}")
        self.url = line.strip().rsplit(" ", 1)[1]
        self.client = StubAnthropicClient(self.url)
        return self

    def set_latency(self, ttft: float, tokens_per_second: float | None = None) -> None:
        self.client.set_latency(ttft, tokens_per_second)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.client is not None:
            self.client.close()
            self.client = None


class ControlPlane(ControlPlaneProcess):
    """``agcluster serve`` as a child process (``control.harness``) in the lab's scratch directory."""

    def __init__(self, lab: Lab, name: str, env: dict[str, str], tree: Any = None) -> None:
        """``tree``: a ``bench.baseline.Baseline`` to serve instead of this checkout."""
        super().__init__(lab.dir(name), {"RATE_LIMIT_PER_MINUTE": "0", **env})
        if tree is not None:
            self.source, self.python = tree.source, tree.python
        self.lab = lab
        self.swept = 0
        """Docker machines this control plane left behind after it stopped (removed by the bench)."""
        self.http = requests.Session()
        lab.on_close(self.stop)
        lab.on_close(self.http.close)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        super().stop(sig)
        if self.env.get("CONTAINER_PROVIDER") == "docker":
            self.swept += self.docker_sweep()

    def docker_sweep(self) -> int:
        """Remove whatever this control plane left on the engine (containers and their volumes).

        The Docker provider labels machines ``agcluster.instance=<sha256(database path)[:12]>``,
        which also catches warm-pool machines that no session row names.
        """
        removed = 0
        for container in docker_containers(f"agcluster.instance={self.docker_instance}"):
            mounts = subprocess.run(["docker", "inspect", container, "--format",
                                     "{{range .Mounts}}{{.Name}} {{end}}"], capture_output=True, text=True,
                                    timeout=60).stdout.split()
            out = subprocess.run(["docker", "rm", "-f", "-v", container], capture_output=True, text=True, timeout=60)
            removed += out.returncode == 0
            volumes = [m for m in mounts if m.startswith("agcluster-")]
            if volumes:
                subprocess.run(["docker", "volume", "rm", "-f", *volumes], capture_output=True, timeout=60)
        return removed

    # processes ------------------------------------------------------------------------
    @property
    def arbiter_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def worker_pid(self) -> int:
        """The gunicorn worker: the arbiter's child forked with the same command line."""
        mine = procs.cmdline(self.arbiter_pid)
        tree = procs.children_map()
        for child in tree.get(self.arbiter_pid, []):
            if procs.cmdline(child) == mine:
                return child
        raise RuntimeError("no gunicorn worker found under the control plane")

    def rss_mb(self) -> dict[str, float]:
        """Arbiter + worker memory (machines, which the worker forks, are not counted)."""
        worker = self.worker_pid()
        pids = [self.arbiter_pid, worker]
        return {"worker_rss_mb": procs.rss_kb(worker) / 1024, "rss_mb": sum(procs.rss_kb(p) for p in pids) / 1024,
                "pss_mb": sum(procs.pss_kb(p) for p in pids) / 1024}

    def machine_root_pids(self) -> dict[str, int]:
        """machine directory name → the root process of that local machine (bwrap or agent)."""
        found: dict[str, int] = {}
        tree = procs.children_map()
        try:
            worker = self.worker_pid()
        except RuntimeError:
            return found
        marker = str(self.machines_dir.resolve()) + "/"
        for child in tree.get(worker, []):
            line = procs.cmdline(child).decode(errors="replace")
            if marker in line:
                key = line.split(marker, 1)[1].split("/", 1)[0].split("\0", 1)[0]
                found[key] = child
        return found

    # API ------------------------------------------------------------------------------
    def launch(self, key: str, config_id: str = "code-assistant", timeout: float = 240,
               body: dict[str, Any] | None = None) -> requests.Response:
        """``body`` (``config_id`` or an inline ``config``) replaces the preset."""
        return self.http.post(f"{self.url}/api/agents/launch",
                              json={"api_key": key, **(body or {"config_id": config_id})}, timeout=timeout)

    def delete_session(self, session_id: str, key: str) -> int:
        try:
            return self.http.delete(f"{self.url}/api/agents/sessions/{session_id}",
                                    headers={"Authorization": f"Bearer {key}"}, timeout=60).status_code
        except requests.RequestException:
            return 0

    def chat_url(self, session_id: str) -> str:
        return f"{self.url}/api/agents/{session_id}/chat"

    def events(self, session_id: str, key: str, after: int = 0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            resp = self.http.get(f"{self.url}/api/agents/sessions/{session_id}/events",
                                 params={"after": after, "limit": 5000},
                                 headers={"Authorization": f"Bearer {key}"}, timeout=60)
            resp.raise_for_status()
            page = resp.json()["events"]
            out += page
            if len(page) < 5000:
                return out
            after = page[-1]["seq"]

    def health(self) -> dict[str, Any]:
        return self.http.get(f"{self.url}/health", timeout=10).json()

    def minter(self) -> Any:
        """The server's token minter, from its secret file (the bench plays the control plane)."""
        from control.secrets import TokenMinter, load_server_secret

        return TokenMinter(load_server_secret(self.data_dir))

    def machine_relay(self, session_id: str) -> tuple[str, str]:
        """(URL, relay token) of a local machine's own relay socket: the model API exactly as
        that machine's CLI reaches it (the relay answers only there, never on the public API)."""
        from urllib.parse import quote

        from control.unixhttp import SCHEME

        key = self.session_row(session_id).get("machine_key") or session_id
        for pid in procs.find_by_cmdline(f"/machines/{key}/"):
            argv = procs.cmdline(pid).decode(errors="replace").split("\0")
            for i, arg in enumerate(argv[:-2]):
                if arg == "--ro-bind" and argv[i + 2] == "/run/agcluster":
                    socket_path = f"{argv[i + 1]}/relay.sock"
                    return f"{SCHEME}{quote(socket_path, safe='')}/relay", self.minter().relay_token(key)
        raise RuntimeError(f"no local machine found for session {session_id}")

    def direct_machine(self, session_id: str) -> tuple[str, str]:
        """(machine URL, machine token) of a session, to talk to its agent without us."""
        row = self.session_row(session_id)
        if not row.get("machine_url"):
            raise RuntimeError(f"session {session_id} has no machine URL")
        return row["machine_url"], self.minter().machine_token(row["machine_key"] or session_id)


def new_key() -> str:
    return "sk-ant-api03-bench-" + os.urandom(16).hex()


def docker_engine() -> str | None:
    """None when a Docker engine answers; otherwise why not."""
    if shutil.which("docker") is None:
        return "docker CLI not installed"
    try:
        out = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                             text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker engine did not answer ({type(exc).__name__})"
    if out.returncode != 0 or not out.stdout.strip():
        return "docker engine not reachable: " + (out.stderr.strip().splitlines() or ["no answer"])[-1][:120]
    return None


def docker_image(image: str) -> str | None:
    """None when ``image`` exists locally; otherwise why not."""
    reason = docker_engine()
    if reason:
        return reason
    out = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True, timeout=30)
    return None if out.returncode == 0 else f"image {image} not built (make images)"


def docker_provider_missing() -> str | None:
    import importlib.util

    if importlib.util.find_spec("control.providers.docker") is None:
        return "control/providers/docker.py not present yet"
    reason = docker_image(os.environ.get("AGENT_IMAGE", "agcluster/agent:latest"))
    if reason:
        return reason
    # Start-up reconciliation removes machines of its instance label that it does not know. The
    # label is per database now; a provider still using the shared "default" label would remove
    # (and lose) other control planes' machines, so never start one next to such machines.
    foreign = docker_containers("agcluster.instance=default")
    if foreign:
        return (f"{len(foreign)} AgCluster container(s) labelled instance=default on this engine; "
                "a second control plane would reconcile them away")
    return None


def fly_stub_missing() -> str | None:
    import importlib.util

    if importlib.util.find_spec("stubs.fly") is None:
        return "stubs.fly not present"
    if importlib.util.find_spec("control.providers.fly") is None:
        return "control/providers/fly.py not present"
    return None


def docker_containers(label_filter: str) -> list[str]:
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={label_filter}"], capture_output=True,
                         text=True, timeout=30)
    return out.stdout.split()


def docker_memory_mb(container: str) -> float | None:
    """Memory use of a container as the engine reports it (cgroup usage)."""
    out = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{json .}}", container],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0 or not out.stdout.strip():
        return None
    usage = json.loads(out.stdout.splitlines()[0]).get("MemUsage", "").split("/")[0].strip()
    units = {"B": 1 / 1024 / 1024, "KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0, "kB": 1 / 1000, "MB": 1.0, "GB": 1000.0}
    for suffix, factor in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if usage.endswith(suffix):
            try:
                return float(usage[: -len(suffix)]) * factor
            except ValueError:
                return None
    return None


@contextlib.contextmanager
def signals_as_exit() -> Iterator[None]:
    """SIGTERM/SIGHUP unwind like Ctrl-C, so every ``finally`` (and Lab.close) runs."""
    def raise_exit(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {s: signal.signal(s, raise_exit) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
