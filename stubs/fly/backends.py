"""Where the stand-in's machines really run: sandboxed local processes or Docker containers.

* ``process``: the machine agent as a bubblewrap-sandboxed process bound to a loopback
  address of its own (127.0.0.N), reaching a control plane on 127.0.0.1.
* ``docker``: a container of the machine's image on a private IPv6 Docker network of the
  stand-in's own, like an app's 6PN: each machine has an ``fd…`` address as ``private_ip``
  (so clients are exercised on ``http://[addr]:8080``), machines reach each other and the
  host through the network's gateway, and the image's own ENTRYPOINT, CMD and USER run,
  as Fly's init runs them.

A backend knows nothing about Fly states; :mod:`stubs.fly.state` decides when to call it.
Every start is from a fresh root filesystem (the process backend empties the home and a
workspace that is not a volume; the docker backend runs a new container), as on Fly, where
a stopped machine's rootfs is reset; volumes keep their data; suspend freezes the
processes and keeps everything.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from control.procfs import descendants
from control.providers.base import AGENT_PORT
from control.providers.local import bwrap_path, sandbox_command
from wire.protocol import MACHINE_TOKEN_ENV


class BackendError(Exception):
    """The machine could not be run; the message ends up in the machine's events."""


@dataclass(frozen=True)
class RunSpec:
    """What a backend needs to run one machine (a view of the machine's config)."""

    machine_id: str
    private_ip: str
    image: str
    env: dict[str, str]
    cpus: int = 1
    memory_mb: int = 256
    mounts: tuple[tuple[str, str], ...] = ()
    """(volume id, path in the machine) for each volume the machine mounts."""


class Backend(Protocol):
    name: str

    def create_volume(self, volume_id: str) -> None: ...
    def destroy_volume(self, volume_id: str) -> None: ...
    def start(self, spec: RunSpec) -> Any: ...
    def wait_exit(self, handle: Any) -> int: ...
    def stop(self, handle: Any, sig: str, timeout: float) -> None: ...
    def suspend(self, handle: Any) -> None: ...
    def resume(self, handle: Any) -> None: ...
    def destroy(self, machine_id: str, handle: Any | None) -> None: ...
    def exec(self, handle: Any, command: list[str], timeout: float) -> tuple[int, str, str]: ...
    def close(self) -> None: ...


# --------------------------------------------------------------------------- addresses
@dataclass
class Reservation:
    ip: str
    _lock_file: Any = field(repr=False, default=None)
    _on_release: Any = field(repr=False, default=None)

    def release(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        if self._on_release is not None:
            self._on_release(self.ip)
            self._on_release = None


class AddressPool(Protocol):
    def reserve(self) -> Reservation: ...


class Ipv6Pool:
    """Addresses of one IPv6 subnet (the docker backend's network), handed out in order."""

    def __init__(self, subnet: str, first: int = 16) -> None:
        self.network = ipaddress.IPv6Network(subnet)
        self.first = first
        self._taken: set[str] = set()
        self._lock = threading.Lock()

    def reserve(self) -> Reservation:
        with self._lock:
            for offset in range(self.first, self.first + 65_000):
                ip = str(self.network.network_address + offset)
                if ip not in self._taken:
                    self._taken.add(ip)
                    return Reservation(ip, _on_release=self._release)
        raise BackendError(f"no address left in {self.network}")

    def _release(self, ip: str) -> None:
        with self._lock:
            self._taken.discard(ip)


class LoopbackPool:
    """Hands out 127.0.0.N addresses (N from 2 up) whose port 8080 is free.

    A lock file per address, held while the machine exists, keeps two stand-ins (say, two
    test runs) from handing out the same address at once.
    """

    def __init__(self, lock_dir: Path | None = None, first: int = 2, port: int = AGENT_PORT) -> None:
        self.lock_dir = lock_dir or Path(tempfile.gettempdir()) / "stubs-fly-addresses"
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        self.first = first
        self.port = port
        self._lock = threading.Lock()

    def reserve(self) -> Reservation:
        with self._lock:
            for n in range(self.first, 256 * 254):
                ip = f"127.0.{n // 254}.{n % 254 + 1}" if n >= 254 else f"127.0.0.{n}"
                handle = open(self.lock_dir / f"{ip}.lock", "w")  # noqa: SIM115 - held by the Reservation
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    handle.close()
                    continue
                if _port_free(ip, self.port):
                    return Reservation(ip, handle)
                handle.close()
        raise BackendError(f"no loopback address with a free port {self.port} is left")


def _port_free(ip: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, port))
        except OSError:
            return False
    return True


# --------------------------------------------------------------------------- process backend
@dataclass
class _Proc:
    popen: subprocess.Popen[bytes]
    log: Any
    machine_dir: Path
    env: dict[str, str]


class ProcessBackend:
    """The machine agent as a bubblewrap-sandboxed process (``LocalProvider``'s sandbox).

    Suspend is SIGSTOP of the whole process tree and resume SIGCONT: memory, open files and
    the CLI's session survive, which is what Fly's suspend promises. ``sandbox=None`` uses
    bubblewrap when it is installed and plain processes otherwise (a test tool should run
    anywhere); ``sandbox=True`` insists on it.
    """

    name = "process"

    def __init__(self, root: Path, *, sandbox: bool | None = None, hidden_dirs: list[Path] | None = None) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.bwrap = bwrap_path() if sandbox is not False else None
        if sandbox and self.bwrap is None:
            raise BackendError("bubblewrap (bwrap) is not installed; the process backend cannot sandbox machines")
        self.hidden_dirs = [d.resolve() for d in (hidden_dirs or [])] + [self.root]
        # PR_SET_PDEATHSIG fires when the forking *thread* exits: fork from one long-lived thread.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stubs-fly-spawner")

    def create_volume(self, volume_id: str) -> None:
        (self.root / "volumes" / volume_id).mkdir(parents=True, exist_ok=True)

    def destroy_volume(self, volume_id: str) -> None:
        shutil.rmtree(self.root / "volumes" / volume_id, ignore_errors=True)

    def addresses(self) -> AddressPool:
        return LoopbackPool()

    def start(self, spec: RunSpec) -> _Proc:
        machine_dir = self.root / spec.machine_id
        machine_dir.mkdir(parents=True, exist_ok=True)
        volumes = {path: volume_id for volume_id, path in spec.mounts}
        if set(volumes) - {"/workspace"}:
            raise BackendError("the process backend mounts volumes only at /workspace")
        for sub in ("workspace", "home"):
            target = machine_dir / sub
            if target.is_symlink():
                target.unlink()
            else:
                shutil.rmtree(target, ignore_errors=True)
        # The workspace is the volume's directory when one is mounted (it keeps its data),
        # else a fresh one, like the rest of a Fly Machine's root filesystem.
        if "/workspace" in volumes:
            (machine_dir / "workspace").symlink_to(self.root / "volumes" / volumes["/workspace"],
                                                   target_is_directory=True)
        for sub in ("workspace", "home"):
            (machine_dir / sub).mkdir(parents=True, exist_ok=True)
        token = spec.env.get(MACHINE_TOKEN_ENV, "")
        upload = int(spec.env.get("MAX_UPLOAD_MB", "50") or 50)
        argv, env = sandbox_command(machine_dir, spec.private_ip, AGENT_PORT, token, spec.env, bwrap=self.bwrap,
                                    hidden_dirs=self.hidden_dirs, max_upload_mb=upload)
        log = open(machine_dir / "agent.log", "ab")  # noqa: SIM115 - owned by _Proc
        try:
            popen = self._spawner.submit(
                subprocess.Popen, argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=str(machine_dir), start_new_session=True,
            ).result()
        except OSError as exc:
            log.close()
            raise BackendError(f"could not run the machine agent: {exc}") from None
        return _Proc(popen, log, machine_dir, dict(spec.env))

    def wait_exit(self, handle: _Proc) -> int:
        code = handle.popen.wait()
        handle.log.close()
        return code

    def stop(self, handle: _Proc, sig: str, timeout: float) -> None:
        _signal_tree(handle.popen.pid, signal.SIGCONT)  # a suspended machine must be able to act on it
        _signal_tree(handle.popen.pid, _signum(sig))
        try:
            handle.popen.wait(timeout=max(0.1, timeout))
        except subprocess.TimeoutExpired:
            _signal_tree(handle.popen.pid, signal.SIGKILL)
            handle.popen.wait(timeout=30)
        handle.log.close()

    def suspend(self, handle: _Proc) -> None:
        _signal_tree(handle.popen.pid, signal.SIGSTOP)

    def resume(self, handle: _Proc) -> None:
        _signal_tree(handle.popen.pid, signal.SIGCONT)

    def destroy(self, machine_id: str, handle: _Proc | None) -> None:
        if handle is not None and handle.popen.poll() is None:
            _signal_tree(handle.popen.pid, signal.SIGKILL)
            handle.popen.wait(timeout=30)
        if handle is not None:
            handle.log.close()
        workspace = self.root / machine_id / "workspace"
        if workspace.is_symlink():
            workspace.unlink()  # the volume outlives its machine
        shutil.rmtree(self.root / machine_id, ignore_errors=True)

    def exec(self, handle: _Proc, command: list[str], timeout: float) -> tuple[int, str, str]:
        """Run ``command`` in a sandbox laid out like the machine's (same workspace and home)."""
        argv, env = sandbox_command(handle.machine_dir, "127.0.0.1", AGENT_PORT,
                                    handle.env.get(MACHINE_TOKEN_ENV, ""), handle.env, bwrap=self.bwrap,
                                    hidden_dirs=self.hidden_dirs)
        if self.bwrap is not None:
            argv = argv[: argv.index("--") + 1] + command
            run_env: dict[str, str] | None = env
        else:
            argv, run_env = command, {**env, "PWD": str(handle.machine_dir / "workspace")}
        try:
            done = subprocess.run(argv, env=run_env, capture_output=True, timeout=timeout,
                                  cwd=str(handle.machine_dir / "workspace"), check=False)
        except subprocess.TimeoutExpired:
            return 124, "", f"command timed out after {timeout:g}s"
        except OSError as exc:
            return 127, "", str(exc)
        return done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")

    def close(self) -> None:
        self._spawner.shutdown(wait=False)


def _signal_tree(pid: int, sig: int) -> None:
    for target in descendants(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(target, sig)


def _signum(name: str | int | None) -> int:
    if isinstance(name, int):
        return name
    if not name:
        return signal.SIGINT  # Fly's default stop signal
    text = str(name).upper()
    if text.isdigit():
        return int(text)
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(getattr(signal, text))
    except AttributeError:
        raise BackendError(f"unknown signal {name!r}") from None


# --------------------------------------------------------------------------- docker backend
class DockerBackend:
    """The machine as a container of its image (never pulled: it must exist locally).

    Every stand-in gets its own Docker network with an IPv6 ULA subnet, playing the agents
    app's private network: machines get addresses from it (``private_ip``), the host is
    its gateway (a control plane on the host listens there for machines), and machines
    reach each other, as machines of one Fly app do. The image runs as built: its own
    ENTRYPOINT, CMD and USER, the environment Fly's init would give it, CPU and memory
    limits, no swap. Volumes are Docker volumes mounted without copying the image's
    directory into them, so they start empty and root-owned like a fresh Fly Volume.
    """

    name = "docker"

    def __init__(self, label: str, anchor_image: str = "agcluster/agent:latest") -> None:
        import docker  # lazily: the process backend must not need an engine

        try:
            self.client = docker.from_env()
            self.client.ping()
        except Exception as exc:  # noqa: BLE001 - any failure here means "no engine"
            raise BackendError(f"no Docker engine is reachable: {exc}") from None
        self.label = label
        self._errors = docker.errors
        self._types = docker.types
        self.network_name = f"stubs-fly-{label}"
        self.subnet = _random_ula_subnet()
        try:
            self.network = self.client.networks.create(
                self.network_name, driver="bridge", enable_ipv6=True, labels={"stubs.fly": label},
                ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=self.subnet)]))
        except self._errors.APIError as exc:
            raise BackendError(f"docker could not create the stand-in's IPv6 network: "
                               f"{exc.explanation or exc}") from None
        self.gateway = str(ipaddress.IPv6Network(self.subnet).network_address + 1)
        self._pool = Ipv6Pool(self.subnet)
        self._anchor_gateway(anchor_image)

    def _anchor_gateway(self, image: str) -> None:
        """Make the gateway address usable by the host at once, as a 6PN address is.

        Linux keeps a bridge's IPv6 address "tentative" (nothing can bind it) until the
        bridge has a port and duplicate address detection has run, i.e. until the first
        machine starts; a control plane must listen there before that. A sleeping container
        on the network gives the bridge its carrier.
        """
        try:
            self.client.images.get(image)
        except self._errors.ImageNotFound:
            return  # no machine can run either; nothing to anchor for
        self.client.containers.run(image, [], entrypoint=["sleep", "infinity"], detach=True, user="65534:65534",
                                   name=f"stubs-fly-{self.label}-anchor", network=self.network_name,
                                   labels={"stubs.fly": self.label}, cap_drop=["ALL"], mem_limit="64m")
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
                    probe.bind((self.gateway, 0))
                return
            except OSError:
                if time.monotonic() >= deadline:
                    raise BackendError(f"the network gateway {self.gateway} never became usable") from None
                time.sleep(0.1)

    def addresses(self) -> AddressPool:
        return self._pool

    def create_volume(self, volume_id: str) -> None:
        try:
            self.client.volumes.create(self._volume(volume_id), labels={"stubs.fly": self.label})
        except self._errors.APIError as exc:
            raise BackendError(f"docker could not create the volume: {exc.explanation or exc}") from None

    def destroy_volume(self, volume_id: str) -> None:
        with contextlib.suppress(self._errors.NotFound):
            self.client.volumes.get(self._volume(volume_id)).remove(force=True)

    def start(self, spec: RunSpec) -> Any:
        self._remove(spec.machine_id)
        try:
            self.client.images.get(spec.image)
        except self._errors.ImageNotFound:
            raise BackendError(f"image {spec.image} is not present on this Docker engine (the stand-in never "
                               "pulls; build it first, e.g. `make images`)") from None
        api = self.client.api
        cpus = min(float(spec.cpus), float(os.cpu_count() or 1))
        mounts = [self._types.Mount(path, self._volume(volume_id), type="volume", no_copy=True)
                  for volume_id, path in spec.mounts]
        endpoints = {self.network_name: api.create_endpoint_config(ipv6_address=spec.private_ip)}
        try:
            created = api.create_container(
                spec.image, name=self._name(spec.machine_id), hostname=spec.machine_id, environment=spec.env,
                labels={"stubs.fly": self.label, "stubs.fly.machine": spec.machine_id},
                host_config=api.create_host_config(mem_limit=f"{spec.memory_mb}m",
                                                   memswap_limit=f"{spec.memory_mb}m",
                                                   nano_cpus=int(cpus * 1e9), mounts=mounts,
                                                   network_mode=self.network_name),
                networking_config=api.create_networking_config(endpoints),  # type: ignore[arg-type]  # docker-py takes {network: EndpointConfig}
            )
            api.start(created["Id"])
            return self.client.containers.get(created["Id"])
        except self._errors.APIError as exc:
            self._remove(spec.machine_id)
            raise BackendError(f"docker could not run the machine: {exc.explanation or exc}") from None

    def wait_exit(self, handle: Any) -> int:
        try:
            return int(handle.wait().get("StatusCode", -1))
        except Exception:  # noqa: BLE001 - removed underneath us means it exited
            return -1

    def stop(self, handle: Any, sig: str, timeout: float) -> None:
        try:
            handle.reload()
            if handle.status == "paused":
                handle.unpause()
            handle.kill(signal=_signum(sig))
            handle.wait(timeout=max(1, int(timeout)))
        except Exception:  # noqa: BLE001 - fall through to a hard kill
            with contextlib.suppress(Exception):  # already gone
                handle.kill()

    def suspend(self, handle: Any) -> None:
        handle.pause()

    def resume(self, handle: Any) -> None:
        handle.unpause()

    def destroy(self, machine_id: str, handle: Any | None) -> None:
        self._remove(machine_id)

    def exec(self, handle: Any, command: list[str], timeout: float) -> tuple[int, str, str]:
        """As ``fly machine exec`` does: root, in the machine."""
        result = handle.exec_run(["timeout", str(int(max(1, timeout))), *command], demux=True, user="root")
        out, err = result.output if isinstance(result.output, tuple) else (result.output, b"")
        return int(result.exit_code or 0), (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")

    def close(self) -> None:
        selector: dict[str, str | list[str] | bool] = {"label": f"stubs.fly={self.label}"}
        # Best effort at shutdown: whatever one removal raises, the others still run.
        for container in self.client.containers.list(all=True, filters=selector):
            with contextlib.suppress(Exception):
                container.remove(force=True)
        for volume in self.client.volumes.list(filters=selector):
            with contextlib.suppress(Exception):
                volume.remove(force=True)
        with contextlib.suppress(Exception):
            self.network.remove()

    def _name(self, machine_id: str) -> str:
        return f"stubs-fly-{self.label}-{machine_id}"

    def _volume(self, volume_id: str) -> str:
        return f"stubs-fly-{self.label}-{volume_id}"

    def _remove(self, machine_id: str) -> None:
        name = self._name(machine_id)
        try:
            self.client.containers.get(name).remove(force=True)
        except self._errors.NotFound:
            return
        except self._errors.APIError as exc:
            # Two removals can race (a destroy while the machine's own exit is being
            # reaped): Docker answers the second 409 "removal already in progress".
            # The machine is still going away, so wait until it has, not fail the
            # transition that asked (which would leave it listed after Docker drops it).
            if exc.status_code != 409:
                raise
            with contextlib.suppress(self._errors.NotFound):
                self.client.api.wait(name, timeout=60, condition="removed")


def _random_ula_subnet() -> str:
    """A /64 of a random ``fd00::/8`` ULA prefix (RFC 4193), unlikely to meet another network."""
    raw = secrets.token_bytes(7)
    groups = [f"fd{raw[0]:02x}", raw[1:3].hex(), raw[3:5].hex(), raw[5:7].hex()]
    return ":".join(groups) + "::/64"
