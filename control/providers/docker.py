"""Machines as local Docker containers: the development provider (``CONTAINER_PROVIDER=docker``).

One container per session, built from ``agcluster/agent:latest`` (``make images``), with:

* two named volumes per session, ``agcluster-ws-<session>`` at ``/workspace`` and
  ``agcluster-home-<session>`` at ``/home/agent``, so the workspace and the CLI's own
  session files survive ``suspend``/``resume`` and a container being replaced; both are
  removed by ``destroy``;
* a read-only root, tmpfs ``/tmp``, uid 1000, every capability dropped,
  ``no-new-privileges``, CPU/memory/pids limits, no swap, bounded logs, no restart policy
  (a dead machine stays dead so reconciliation sees the truth) and no Docker socket;
* the user-defined bridge network ``agcluster-agents``.

Disk: ``storage_opt size`` only caps a container's writable layer and only on storage
drivers with quota support (overlay2 on xfs with ``pquota``, btrfs, zfs, devicemapper). It
is applied where the engine accepts it; elsewhere (overlay2 on ext4, the common case) the
limit is not enforced by Docker and ``usage()["disk_used_mb"]`` reports what the workspace
and home volumes hold so the control plane can act on it. Volumes of the ``local`` driver
have no size cap on any storage driver.

Reaching machines, and machines reaching the model relay (docs/SECURITY.md):

* the agents network ``agcluster-agents`` is an *internal* bridge with inter-container
  traffic off: no route out of it, and agents never reach each other. The control plane
  reaches a machine at its address on that network; the machine reaches exactly two ports
  of the control plane there: the model relay (``RELAY_PORT``) and, for configs with
  ``network: internet``, the egress proxy (``EGRESS_PORT``), which connects to public
  addresses only. Both identify the calling machine by its address
  (:meth:`DockerProvider.machine_for_peer`).
* control plane on the host (default): both listen on the network's gateway address, and
  when this process is root a host firewall chain drops everything else the agents'
  bridge sends to the host (``hostfirewall.py``), so host services bound to every
  address stay out of reach.
* control plane in a container (``AGCLUSTER_IN_DOCKER=1``, docker-compose.local.yml): it
  joins the agents network itself and listens on its own address there; machines are
  reached as ``http://<container>:8080``.

Machines are labelled ``agcluster.instance=<instance>`` and only those are listed, so two
control planes sharing one engine never reconcile away each other's machines.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from control.providers.base import AGENT_PORT, Machine, MachineSpec, Provider, ProviderError, wait_healthy
from wire.protocol import MACHINE_TOKEN_ENV

if TYPE_CHECKING:  # the SDK is imported lazily: a local install never needs an engine
    from docker import DockerClient
    from docker.models.containers import Container

log = logging.getLogger(__name__)

NETWORK = "agcluster-agents"
CONTAINER_PREFIX = "agcluster-agent-"
WORKSPACE_VOLUME = "agcluster-ws-{}"
HOME_VOLUME = "agcluster-home-{}"
LABEL_SESSION = "agcluster.session_id"
LABEL_AGENT = "agcluster.agent_id"
LABEL_PROVIDER = "agcluster.provider"
LABEL_MANAGED = "agcluster.managed"
LABEL_INSTANCE = "agcluster.instance"
AGENT_UID = "1000:1000"
# What the entrypoint needs to become uid 1000 and empty every capability set on the way.
ENTRYPOINT_CAPS = ("SETUID", "SETGID", "SETPCAP")
IN_DOCKER_ENV = "AGCLUSTER_IN_DOCKER"
CONTROL_HOST_ENV = "AGCLUSTER_CONTROL_HOST"
NETWORK_ENV = "AGCLUSTER_DOCKER_NETWORK"

# Names that only ever hold credentials. MachineSpec.env is documented as non-secret; this
# turns a slip into an error instead of a key in `docker inspect` (docs/SECURITY.md: keys
# never reach machine env or config).
_SECRET_ENV = re.compile(r"(API_KEY|AUTH_TOKEN|OAUTH_TOKEN|SECRET|PASSWORD|PRIVATE_KEY|ACCESS_KEY)", re.IGNORECASE)
_NAME_SAFE = re.compile(r"[^a-zA-Z0-9_.-]")
_STATES = {"running": "started", "created": "stopped", "exited": "stopped", "paused": "suspended",
           "restarting": "starting", "removing": "destroying", "dead": "failed"}
# Storage drivers that can cap a container's writable layer at all (overlay2 only on xfs+pquota).
_QUOTA_DRIVERS = {"overlay2", "btrfs", "zfs", "devicemapper", "windowsfilter"}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def container_name(session_id: str) -> str:
    return CONTAINER_PREFIX + _NAME_SAFE.sub("-", session_id)


def _session_of(machine_id: str) -> str | None:
    return machine_id[len(CONTAINER_PREFIX):] if machine_id.startswith(CONTAINER_PREFIX) else None


@contextmanager
def _docker_errors(action: str, image: str | None = None) -> Iterator[None]:
    """The one place Docker's exceptions become messages a user can act on."""
    import docker.errors
    import requests

    try:
        yield
    except ProviderError:
        raise
    except docker.errors.ImageNotFound:
        raise ProviderError(f"the agent image {image or ''} is not built: run `make images` "
                            "(or scripts/build-images.sh) and try again") from None
    except docker.errors.NotFound as exc:
        raise ProviderError(f"cannot {action}: {_explain(exc)}") from None
    except docker.errors.APIError as exc:
        retryable = exc.status_code is None or exc.status_code >= 500
        raise ProviderError(f"Docker refused to {action}: {_explain(exc)}", retryable=retryable) from None
    except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
        raise ProviderError(f"cannot {action}: the Docker engine did not answer ({type(exc).__name__}); "
                            "is Docker running and may this user use it?", retryable=True) from None


def _explain(exc: Any) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    return str(text).strip()[:300]


def _connect(client: DockerClient | None = None) -> DockerClient:
    if client is not None:
        return client
    with _docker_errors("connect to Docker"):
        import docker

        return docker.from_env(timeout=60)


class DockerProvider(Provider):
    name = "docker"

    def __init__(self, image: str, relay_port: int, egress_port: int, in_docker: bool | None = None,
                 client: DockerClient | None = None, *, control_host: str | None = None, network: str | None = None,
                 instance: str = "default", startup_timeout: float = 60.0) -> None:
        """``in_docker=None`` reads ``AGCLUSTER_IN_DOCKER`` and ``network=None`` reads
        ``AGCLUSTER_DOCKER_NETWORK`` (compose uses a network of its own, see
        docker-compose.local.yml); ``relay_port``/``egress_port`` are where the control plane
        serves machines on the agents network; ``instance`` labels machines so two control
        planes on one engine (tests, a second checkout) never reconcile away each other's
        machines."""
        self.image = image
        self.relay_port = relay_port
        self.egress_port = egress_port
        self.in_docker = _env_flag(IN_DOCKER_ENV) if in_docker is None else in_docker
        self.control_host = control_host or os.environ.get(CONTROL_HOST_ENV) or socket.gethostname()
        self.network = network or os.environ.get(NETWORK_ENV) or NETWORK
        self.instance = instance
        self.startup_timeout = startup_timeout
        self.client = _connect(client)
        self._lock = threading.Lock()
        self._gateway: str | None = None
        self._peers: dict[str, str] = {}
        self._firewall: str | None = None
        self._attached = False
        self._storage_quota: bool | None = None
        self._ncpu: int | None = None
        self._cpu_samples: dict[str, tuple[int, int]] = {}

    # Provider API ---------------------------------------------------------------------
    def start(self, spec: MachineSpec) -> Machine:
        _check_env(spec.env)
        image = spec.image or self.image
        name = container_name(spec.session_id)
        with _docker_errors("start a machine", image):
            self.client.images.get(image)
            self._ensure_network()
            self._replace_stale(name, spec.session_id)
            created = self._ensure_volumes(spec.session_id)
            container: Container | None = None
            try:
                container = self._create(spec, image, name)
                container.start()
                url = self._url(container)
                wait_healthy(url, spec.machine_token, self.startup_timeout, alive=lambda: self._running(container))
            except BaseException as exc:
                detail = self._exit_detail(container, spec.machine_token) if container is not None else ""
                self._discard(container, created)
                if isinstance(exc, ProviderError):
                    raise ProviderError(f"{exc.message}{detail}", retryable=exc.retryable) from None
                raise
        self._remember_peer(url, spec.session_id)
        return Machine(name, url, "started", spec.session_id)

    def destroy(self, machine_id: str) -> None:
        with _docker_errors("remove a machine"):
            container = self._get(machine_id)
            session_id = _session_of(machine_id)
            if container is not None:
                labels = container.labels or {}
                if labels.get(LABEL_MANAGED) != "1":
                    raise ProviderError(f"{machine_id} is not an AgCluster machine; leaving it alone")
                session_id = labels.get(LABEL_SESSION) or session_id
                container.remove(force=True)
            self._cpu_samples.pop(machine_id, None)
            if session_id:
                self._forget_peer(session_id)
                self._remove_volumes(session_id)

    def inspect(self, machine_id: str) -> Machine | None:
        with _docker_errors("inspect a machine"):
            container = self._get(machine_id)
            return self._machine(container) if container is not None else None

    def list_machines(self) -> list[Machine]:
        with _docker_errors("list machines"):
            containers = self.client.containers.list(all=True, filters={"label": self._selector()})
            return [self._machine(c) for c in containers]

    def relay_url(self) -> str:
        return f"http://{self._listen_host()}:{self.relay_port}/relay"

    def relay_listen_address(self) -> tuple[str, int]:
        return self._listen_host(), self.relay_port

    def egress_listen_address(self) -> tuple[str, int]:
        return self._listen_host(), self.egress_port

    def machine_for_peer(self, address: str) -> str | None:
        """Which machine has this address on the agents network (cached; a miss refreshes,
        since a restarted container may get a new address)."""
        with self._lock:
            key = self._peers.get(address)
        if key is not None:
            return key
        with _docker_errors("identify a machine"):
            containers = self.client.containers.list(filters={"label": self._selector(), "network": self.network})
            peers = {}
            for container in containers:
                networks = (container.attrs.get("NetworkSettings") or {}).get("Networks") or {}
                ip = (networks.get(self.network) or {}).get("IPAddress")
                if ip:
                    peers[ip] = (container.labels or {}).get(LABEL_SESSION, "")
        with self._lock:
            self._peers = peers
            return peers.get(address) or None

    def enforcement(self, network: str = "relay") -> dict[str, str | None]:
        self._read_engine()
        return {"memory": "docker", "cpu": "docker", "pids": "docker",
                "storage": "docker storage quota" if self._storage_quota else None,
                "network": "internal Docker network" + (" + egress proxy" if network == "internet" else "")
                           + ("" if self.in_docker or self._firewall else "; host services on the gateway "
                              "address are reachable (no host firewall: not root or no iptables)")}

    def _remember_peer(self, url: str, key: str) -> None:
        """A started machine's address is known at once; Docker reuses the addresses of
        removed containers, so an entry must never outlive its machine."""
        address = urlsplit(url).hostname
        if address and key:
            with self._lock:
                self._peers = {ip: k for ip, k in self._peers.items() if k != key}
                self._peers[address] = key

    def _forget_peer(self, key: str) -> None:
        with self._lock:
            self._peers = {ip: k for ip, k in self._peers.items() if k != key}

    def _listen_host(self) -> str:
        """The control plane's own address on the agents network."""
        if self.in_docker:
            return self._own_address()
        return self.gateway()

    def _own_address(self) -> str:
        network = self._ensure_network()
        with _docker_errors("find this control plane on the agents network"):
            me = self.client.containers.get(self.control_host)
            networks = (me.attrs.get("NetworkSettings") or {}).get("Networks") or {}
            address = (networks.get(network.name) or {}).get("IPAddress")
        if not address:
            raise ProviderError(f"this control plane ({self.control_host}) has no address on {network.name}")
        return str(address)

    def suspend(self, machine_id: str) -> None:
        """docker stop: memory is released, both volumes (workspace and CLI state) stay."""
        with _docker_errors("stop a machine"):
            container = self._require(machine_id)
            container.stop(timeout=10)
            self._cpu_samples.pop(machine_id, None)

    def resume(self, machine_id: str) -> Machine:
        """docker start; the published host port is new after every start, so it is re-read."""
        with _docker_errors("resume a machine"):
            container = self._require(machine_id)
            if container.status != "running":
                container.start()
            url = self._url(container)
            token = _container_env(container).get(MACHINE_TOKEN_ENV, "")
            try:
                wait_healthy(url, token, self.startup_timeout, alive=lambda: self._running(container))
            except ProviderError as exc:
                raise ProviderError(f"{exc.message}{self._exit_detail(container, token)}",
                                    retryable=exc.retryable) from None
            machine = self._machine(container)
            self._remember_peer(url, machine.session_id or "")
            return machine

    def usage(self, machine_id: str) -> dict[str, Any] | None:
        with _docker_errors("read a machine's usage"):
            container = self._get(machine_id)
            if container is None or container.status != "running":
                return None
            previous = self._cpu_samples.get(machine_id)
            # A one-shot read is instant; CPU % then comes from our previous sample. The
            # first read has none, so it lets the engine take two samples (about a second).
            stats = container.stats(stream=False, one_shot=True) if previous else container.stats(stream=False)
            if not isinstance(stats, dict):  # stream=False: always one document
                return None
            cpu, sample = _cpu_percent(stats, previous)
            if sample is not None:
                self._cpu_samples[machine_id] = sample
            memory = stats.get("memory_stats") or {}
            mem_stats = memory.get("stats") or {}
            used = max(0, int(memory.get("usage", 0)) - int(mem_stats.get("inactive_file", mem_stats.get("cache", 0))))
            return {
                "cpu_percent": cpu,
                "memory_used_mb": round(used / 2**20, 1),
                "memory_limit_mb": round(int(memory.get("limit", 0)) / 2**20, 1) or None,
                "disk_used_mb": self._disk_used_mb(container),
            }

    def close(self) -> None:
        if self._firewall:
            from control.providers import hostfirewall

            hostfirewall.release([self.relay_port, self.egress_port])
            self._firewall = None
        try:
            self.client.close()
        except Exception as exc:  # noqa: BLE001 - closing a dead connection must not fail shutdown
            log.debug("closing the Docker client failed: %s", exc)

    # network --------------------------------------------------------------------------
    def gateway(self) -> str:
        """The agents network's gateway: the host's address as seen from inside a machine."""
        if self._gateway is None:
            with _docker_errors("prepare the agents network"):
                network = self._ensure_network()
                self._gateway = _ipv4_gateway(network)
                if not self.in_docker:
                    from control.providers import hostfirewall

                    bridge = "br-" + network.id[:12]
                    self._firewall = hostfirewall.confine(bridge, [self.relay_port, self.egress_port])
        return self._gateway

    def _ensure_network(self) -> Any:
        with self._lock:
            # On the host only the gateway talks to agents, so agents are cut off from each
            # other. In compose the control plane is itself a container on this network
            # (the compose file creates it, with inter-container traffic on).
            network = _agents_network(self.client, self.network, isolate=not self.in_docker)
            if self.in_docker and not self._attached:
                self._attached = self._attach_self(network)
            return network

    def _attach_self(self, network: Any) -> bool:
        """In a container, join the agents network if compose did not already, or no agent
        could ever be reached by name."""
        import docker.errors

        try:
            me = self.client.containers.get(self.control_host)
            if network.name not in (me.attrs.get("NetworkSettings") or {}).get("Networks", {}):
                network.connect(me)
                log.info("joined the Docker network %s", network.name)
            return True
        except docker.errors.DockerException as exc:
            log.warning("could not check that this control plane is on %s (%s); set %s to its container name",
                        network.name, _explain(exc)[:120], CONTROL_HOST_ENV)
            return False

    # containers -----------------------------------------------------------------------
    def _selector(self) -> list[str]:
        return [f"{LABEL_MANAGED}=1", f"{LABEL_PROVIDER}=docker", f"{LABEL_INSTANCE}={self.instance}"]

    def _get(self, machine_id: str) -> Container | None:
        import docker.errors

        try:
            return self.client.containers.get(machine_id)
        except docker.errors.NotFound:
            return None

    def _require(self, machine_id: str) -> Container:
        container = self._get(machine_id)
        if container is None:
            raise ProviderError(f"the machine {machine_id} no longer exists")
        return container

    def _replace_stale(self, name: str, session_id: str) -> None:
        """A session restarted after a crash keeps its volumes but gets a fresh container."""
        old = self._get(name)
        if old is None:
            return
        if (old.labels or {}).get(LABEL_SESSION) != session_id:
            raise ProviderError(f"a container named {name} exists and is not this session's machine")
        old.remove(force=True)

    def _ensure_volumes(self, session_id: str) -> list[str]:
        """Create missing volumes; returns the ones created now, to undo on a failed start."""
        import docker.errors

        created = []
        for template in (WORKSPACE_VOLUME, HOME_VOLUME):
            name = template.format(_NAME_SAFE.sub("-", session_id))
            try:
                self.client.volumes.get(name)
            except docker.errors.NotFound:
                self.client.volumes.create(name, labels=self._labels(session_id, None))
                created.append(name)
        return created

    def _remove_volumes(self, session_id: str) -> None:
        import docker.errors

        for template in (WORKSPACE_VOLUME, HOME_VOLUME):
            name = template.format(_NAME_SAFE.sub("-", session_id))
            for attempt in range(20):
                try:
                    self.client.volumes.get(name).remove(force=True)
                    break
                except docker.errors.NotFound:
                    break
                except docker.errors.APIError as exc:
                    # "volume is in use" while a just-removed container is still being torn down.
                    if exc.status_code != 409 or attempt == 19:
                        raise
                    time.sleep(0.1)

    def _labels(self, session_id: str, agent_id: str | None) -> dict[str, str]:
        labels = {LABEL_SESSION: session_id, LABEL_PROVIDER: "docker", LABEL_MANAGED: "1",
                  LABEL_INSTANCE: self.instance}
        if agent_id:
            labels[LABEL_AGENT] = agent_id
        return labels

    def _create(self, spec: MachineSpec, image: str, name: str) -> Container:
        from docker.types import LogConfig, Mount

        limits = spec.resources
        session = _NAME_SAFE.sub("-", spec.session_id)
        tmp_mb = min(1024, max(64, limits.memory_mb // 4))
        kwargs: dict[str, Any] = {
            "name": name,
            "labels": self._labels(spec.session_id, spec.agent_id),
            "environment": {**spec.env, **self._proxy_env(spec), MACHINE_TOKEN_ENV: spec.machine_token,
                            "HOME": "/home/agent"},
            # Root only for pid 1 (tini, which holds the machine token in its environment):
            # the entrypoint drops the agent to uid 1000 with no capabilities at all.
            "user": "0:0",
            "working_dir": "/workspace",
            "mounts": [
                Mount("/workspace", WORKSPACE_VOLUME.format(session), type="volume"),
                Mount("/home/agent", HOME_VOLUME.format(session), type="volume"),
            ],
            "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={tmp_mb}m,mode=1777"},
            "read_only": True,
            "cap_drop": ["ALL"],
            "cap_add": list(ENTRYPOINT_CAPS),
            "security_opt": ["no-new-privileges"],
            "nano_cpus": int(min(limits.cpus, self._host_cpus()) * 1e9),
            "mem_limit": f"{limits.memory_mb}m",
            "memswap_limit": f"{limits.memory_mb}m",
            "pids_limit": limits.pids,
            "ipc_mode": "private",
            "network": self.network,
            "restart_policy": {"Name": "no"},
            "log_config": LogConfig(type="json-file", config={"max-size": "10m", "max-file": "2"}),
        }
        self._read_engine()
        if limits.storage_mb and self._storage_quota is not False:
            try:
                container = self.client.containers.create(image, storage_opt={"size": f"{limits.storage_mb}M"},
                                                          **kwargs)
                self._storage_quota = True
                return container
            except Exception as exc:  # only the quota refusal is handled here; the rest is re-raised
                if not _is_quota_refusal(exc):
                    raise
                self._storage_quota = False
                log.info("the Docker storage driver cannot cap container disk (%s); CONTAINER_STORAGE_LIMIT "
                         "is reported through usage(), not enforced", _explain(exc)[:120])
        return self.client.containers.create(image, **kwargs)

    def _host_cpus(self) -> float:
        self._read_engine()
        return float(self._ncpu or 1)

    def _read_engine(self) -> None:
        """CPU count (limits above it are refused) and whether disk quotas are possible at all."""
        if self._ncpu is not None:
            return
        info = self.client.info()
        self._ncpu = int(info.get("NCPU") or os.cpu_count() or 1)
        driver = info.get("Driver", "")
        backing = dict(info.get("DriverStatus") or []).get("Backing Filesystem", "")
        if driver not in _QUOTA_DRIVERS or (driver == "overlay2" and backing != "xfs"):
            self._storage_quota = False

    def _running(self, container: Container | None) -> bool:
        if container is None:
            return False
        container.reload()
        return container.status in ("running", "created")

    def _proxy_env(self, spec: MachineSpec) -> dict[str, str]:
        """Machines that may use the internet reach it through the egress proxy only."""
        if spec.network != "internet":
            return {}
        proxy = f"http://{self._listen_host()}:{self.egress_port}"
        return {"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "http_proxy": proxy, "https_proxy": proxy,
                "NO_PROXY": self._listen_host(), "no_proxy": self._listen_host()}

    def _url(self, container: Container) -> str:
        """The machine's address on the agents network (nothing is published on the host)."""
        if self.in_docker:
            return f"http://{container.name}:{AGENT_PORT}"
        container.reload()
        networks = (container.attrs.get("NetworkSettings") or {}).get("Networks") or {}
        address = (networks.get(self.network) or {}).get("IPAddress")
        if not address:
            raise ProviderError(f"the machine {container.name} has no address on {self.network} "
                                f"(state {container.status})")
        return f"http://{address}:{AGENT_PORT}"

    def _machine(self, container: Container) -> Machine:
        state = _STATES.get(container.status, container.status)
        url = ""
        if state == "started":
            try:
                url = self._url(container)
            except ProviderError:
                url = ""
        return Machine(container.name or "", url, state, (container.labels or {}).get(LABEL_SESSION))

    def _exit_detail(self, container: Container, token: str) -> str:
        """Why a machine failed: exit state and its last log lines, with the token scrubbed."""
        try:
            container.reload()
            state = container.attrs.get("State") or {}
            lines = container.logs(tail=15).decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - diagnostics must not mask the real failure
            return ""
        if token:
            lines = lines.replace(token, "[redacted]")
        status = f"exit code {state.get('ExitCode')}" + (", out of memory" if state.get("OOMKilled") else "")
        tail = lines.strip()[-1500:]
        return f" ({status}). Last agent output:\n{tail}" if tail else f" ({status}, no output)"

    def _discard(self, container: Container | None, volumes: list[str]) -> None:
        try:
            if container is not None:
                container.remove(force=True)
            for name in volumes:
                self.client.volumes.get(name).remove(force=True)
        except Exception:  # noqa: BLE001 - best effort; destroy() and reconcile clean up the rest
            log.warning("could not clean up after a failed machine start")

    def _disk_used_mb(self, container: Container) -> float | None:
        result = container.exec_run(["timeout", "5", "du", "-skx", "/workspace", "/home/agent"], user=AGENT_UID)
        if result.exit_code != 0 or not isinstance(result.output, bytes):
            return None
        kb = sum(int(line.split()[0]) for line in result.output.decode().splitlines() if line.strip())
        return round(kb / 1024, 1)


def _check_env(env: dict[str, str]) -> None:
    bad = sorted(k for k in env if k == MACHINE_TOKEN_ENV or _SECRET_ENV.search(k))
    if bad:
        raise ProviderError(f"refusing to put {', '.join(bad)} in a machine's environment: secrets reach "
                            "machines only at configure time, through the relay")


def _container_env(container: Container) -> dict[str, str]:
    pairs = (container.attrs.get("Config") or {}).get("Env") or []
    return dict(p.split("=", 1) for p in pairs if "=" in p)


def _is_quota_refusal(exc: Exception) -> bool:
    text = _explain(exc).lower()
    return "storage-opt" in text or "storage opt" in text or "quota" in text or "storageopt" in text


def _cpu_percent(stats: dict[str, Any],
                 previous: tuple[int, int] | None) -> tuple[float | None, tuple[int, int] | None]:
    cpu = stats.get("cpu_stats") or {}
    total = int((cpu.get("cpu_usage") or {}).get("total_usage") or 0)
    system = int(cpu.get("system_cpu_usage") or 0)
    if not system:
        return None, None
    pre = stats.get("precpu_stats") or {}
    pre_total = int((pre.get("cpu_usage") or {}).get("total_usage") or 0)
    pre_system = int(pre.get("system_cpu_usage") or 0)
    if not pre_system and previous:
        pre_total, pre_system = previous
    online = int(cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1)
    if pre_system and system > pre_system:
        return round(max(0, total - pre_total) / (system - pre_system) * online * 100, 1), (total, system)
    return None, (total, system)


def _agents_network(client: DockerClient, name: str, *, isolate: bool) -> Any:
    import docker.errors

    found = [n for n in client.networks.list(names=[name]) if n.name == name]
    if found:
        network = client.networks.get(found[0].id or name)
        if network.attrs.get("Internal"):
            return network
        # A network from before agents were cut off from the outside: replace it when no
        # machine uses it, and say so plainly otherwise.
        if network.attrs.get("Containers"):
            raise ProviderError(f"the Docker network {name} is not internal (made by an older AgCluster) and still "
                                "has containers; delete those sessions or the network, then start again")
        network.remove()
        log.info("replaced the Docker network %s with an internal one", name)
    options = {"com.docker.network.bridge.enable_icc": "false"} if isolate else {}
    try:
        network = client.networks.create(name, driver="bridge", check_duplicate=True, options=options, internal=True,
                                         labels={LABEL_MANAGED: "1", LABEL_PROVIDER: "docker"})
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # created by a concurrent start
            raise
        network = client.networks.get(name)
    else:
        log.info("created the Docker network %s for agent machines", name)
    return client.networks.get(network.id or name)


def _ipv4_gateway(network: Any) -> str:
    return _gateway_of(network.attrs, network.name)


def _gateway_of(attrs: dict[str, Any], name: str) -> str:
    configs = (attrs.get("IPAM") or {}).get("Config") or []
    gateways = [c["Gateway"] for c in configs if c.get("Gateway") and ":" not in c["Gateway"]]
    if not gateways:
        raise ProviderError(f"the Docker network {name} has no IPv4 gateway")
    return str(gateways[0])


__all__ = ["NETWORK", "DockerProvider", "container_name"]
