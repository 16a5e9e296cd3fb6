"""Fly Machines: one machine and one Fly Volume per session, reached over the agents' 6PN.

Lifecycle policy lives here; the HTTP surface lives in :mod:`control.providers.fly_api`.
docs/FLY.md explains the choices for operators; in short:

- **Guest size** comes from the session's ``resource_limits``, rounded *up* to a size Fly
  sells (fly-go ``MachinePresets``): shared CPUs 1/2/4/6/8 with 256–2048 MB each in 256 MB
  steps, performance CPUs 1/2/4/6/8/10/12/14/16 with 2048–8192 MB each in 1024 MB steps. A
  request no size can satisfy is a 400 at launch (:meth:`FlyProvider.validate_resources`).
- **The workspace is a Fly Volume** (``/workspace``), one per session, named after the
  session's machine key, sized from ``storage_limit``, created next to the machine's guest
  size (``compute``) so Fly places both on one host. A Fly Machine's root filesystem is reset
  on every stop (and capped at 2000 IOPS / 8 MiB/s); a volume survives stop, cold boot,
  a replaced machine (new image) and, through Fly's daily snapshots, a dead host. Deleting
  the session destroys it; a launch that fails destroys the volume it created.
- **Idle = suspend** where Fly can (at most 2 GB of memory, no swap, no schedule): memory
  and processes are kept. Otherwise, or when Fly refuses, **stop**: the next start is a cold
  boot with the same volume, and the conversation comes back from the control plane's
  session-store mirror. A resume may also cold-boot (snapshots are dropped on migration);
  nothing here depends on it not doing so.
- **Addressing.** On Fly the agent is reached at ``<id>.vm.<agents-app>.internal`` (6PN
  addresses change when a machine migrates), falling back to ``[private_ip]`` when the name
  does not resolve. The relay identifies a calling machine by its peer address through
  :meth:`FlyProvider.machine_for_peer`, refreshed from the API on a miss.
- **The machine agent accepts only the control plane**: ``AGCLUSTER_CONTROL_PLANE`` (non-
  secret) names the host(s) its requests come from (the relay URL's host by default, e.g.
  ``agcluster.internal``); see ``machine_agent/peers.py``.
- **No services, restart: no, auto_destroy: false.** Reached over 6PN only; the control
  plane owns the lifecycle (a crashed agent must show up as ``stopped``).
- **Env** carries the machine token and non-secret settings only; names that would carry a
  key are refused.
- **Every change is lease-guarded.** The start lease is refreshed while a slow first start
  goes on (image pull, a busy host), so it never lapses halfway. (Not taken at create with
  ``lease_ttl``: after an ambiguous create the nonce would be lost with the answer, locking
  us out of our own machine for the TTL.) An acquire whose answer is lost is read back
  (``GET …/lease``) and adopted when its description is ours.
- **Nothing leaks.** Machine names carry a random suffix (a name still held by a machine
  being destroyed never blocks a new one); ambiguous creates of machines and volumes are
  resolved by looking them up before trying again; a volume left behind by a failed launch
  shows up in :meth:`FlyProvider.list_machines` under its session, so reconciliation and
  the janitor remove it.
- **Host trouble.** A machine or volume whose host flyd cannot reach (``host_status`` not
  ``ok``) is never destroyed or replaced on that basis: the session's wake fails with a
  retryable error naming the problem, and the data stays where it is.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import math
import os
import random
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from control.providers.base import (
    AGENT_PORT,
    Machine,
    MachineSpec,
    Provider,
    ProviderError,
    ResourceLimits,
    wait_healthy,
)
from control.providers.fly_api import (
    FlyApiError,
    FlyCapacityError,
    FlyConnectionError,
    FlyMachine,
    FlyMachinesClient,
    FlyNotFound,
    FlyRateLimited,
    FlyServerError,
    FlyVolume,
    FlyWaitTimeout,
    LeaseHeld,
)
from control.settings import Settings
from wire.errors import ValidationFailed
from wire.protocol import MACHINE_TOKEN_ENV

log = logging.getLogger(__name__)

ROLE_KEY = "agcluster_role"
ROLE = "session-machine"
SESSION_KEY = "agcluster_session"
AGENT_KEY = "agcluster_agent"
# Read by machine_agent/peers.py (the control-plane image does not ship machine_agent, so
# the name is written twice; tests/unit/test_fly_peers.py keeps the two equal).
CONTROL_PLANE_ENV = "AGCLUSTER_CONTROL_PLANE"
WORKSPACE_PATH = "/workspace"

CPU_COUNTS = {"shared": (1, 2, 4, 6, 8), "performance": (1, 2, 4, 6, 8, 10, 12, 14, 16)}
MEMORY_PER_CPU_MB = {"shared": (256, 2048), "performance": (2048, 8192)}
MEMORY_STEP_MB = {"shared": 256, "performance": 1024}
SUSPEND_MAX_MEMORY_MB = 2048
VOLUME_GB = (1, 500)
GONE = ("destroying", "destroyed")
VOLUME_PSEUDO_STATE = "volume"
SECRET_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "FLY_API_TOKEN")
PEER_TTL = 60.0


# --------------------------------------------------------------------------- guest sizes
@dataclass(frozen=True)
class Guest:
    cpu_kind: str
    cpus: int
    memory_mb: int

    @property
    def size_name(self) -> str:
        return f"shared-cpu-{self.cpus}x" if self.cpu_kind == "shared" else f"performance-{self.cpus}x"

    def as_config(self) -> dict[str, Any]:
        return {"cpu_kind": self.cpu_kind, "cpus": self.cpus, "memory_mb": self.memory_mb}


def guest_for(limits: ResourceLimits, cpu_kind: str | None = None) -> Guest:
    """The cheapest Fly guest that gives at least the requested CPUs and memory.

    Shared CPUs are tried first (they are what an interactive agent needs); CPUs are raised
    when the memory needs them, and memory is raised to Fly's per-CPU minimum and step.
    """
    want_cpus = max(1, math.ceil(round(limits.cpus, 6)))
    for kind in ([cpu_kind] if cpu_kind else ["shared", "performance"]):
        step = MEMORY_STEP_MB[kind]
        want_memory = max(step, math.ceil(limits.memory_mb / step) * step)
        low, high = MEMORY_PER_CPU_MB[kind]
        for cpus in CPU_COUNTS[kind]:
            if cpus >= want_cpus and want_memory <= high * cpus:
                return Guest(kind, cpus, max(want_memory, low * cpus))
    raise ValidationFailed(
        f"no Fly Machine size gives {limits.cpus:g} CPUs with {limits.memory_mb} MB: shared CPUs come in "
        "1, 2, 4, 6 or 8 with 256-2048 MB each, performance CPUs in 1, 2, 4, 6, 8, 10, 12, 14 or 16 with "
        "2048-8192 MB each",
        details={"resource_limits": {"cpus": limits.cpus, "memory_mb": limits.memory_mb,
                                     "max_cpus": 16, "max_memory_mb": 16 * 8192}},
    )


def can_suspend(config: dict[str, Any]) -> bool:
    """Whether Fly suspends a machine with this config (at most 2 GB, no swap, no schedule, no GPU)."""
    guest = config.get("guest") or {}
    init = config.get("init") or {}
    return (int(guest.get("memory_mb") or 0) <= SUSPEND_MAX_MEMORY_MB and not init.get("swap_size_mb")
            and not config.get("schedule") and not guest.get("gpus"))


def volume_gb(limits: ResourceLimits) -> int:
    """The workspace volume's size: ``storage_limit`` rounded up to whole GB (Fly's unit)."""
    if not limits.storage_mb:
        return VOLUME_GB[0]
    return max(VOLUME_GB[0], math.ceil(limits.storage_mb / 1024))


# --------------------------------------------------------------------------- names
_B32 = re.compile(r"^[a-z2-7]+$")


def volume_name(key: str) -> str:
    """The session's volume name, which Fly limits to 30 of ``[a-z0-9_]``.

    Session keys (UUIDs) and warm-pool keys (``pool-<20 hex>``) are encoded reversibly, so
    a volume whose machine is gone still names its session (:func:`session_of_volume`);
    anything else is hashed.
    """
    try:
        parsed = uuid.UUID(key)
    except ValueError:
        parsed = None
    if parsed is not None and str(parsed) == key:  # exactly: it must decode back to the same key
        return "ws_u" + _b32(parsed.bytes)
    match = re.fullmatch(r"pool-([0-9a-f]{20})", key)
    if match:
        return "ws_p" + _b32(bytes.fromhex(match.group(1)))
    return "ws_h" + hashlib.sha256(key.encode()).hexdigest()[:26]


def session_of_volume(name: str) -> str | None:
    kind, body = name[:4], name[4:]
    if not _B32.match(body or "-"):
        return None
    raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
    if kind == "ws_u" and len(raw) == 16:
        return str(uuid.UUID(bytes=raw))
    if kind == "ws_p" and len(raw) == 10:
        return "pool-" + raw.hex()
    return None


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=").lower()


def machine_name(key: str) -> str:
    """``agcluster-<key>-<random>``: never the name of a machine still being destroyed."""
    safe = re.sub(r"[^a-z0-9-]+", "-", key.lower()).strip("-")[:45] or "session"
    return f"agcluster-{safe}-{secrets.token_hex(3)}"


def machine_address(private_ip: str, port: int = AGENT_PORT) -> str:
    """``http://[fdaa::3]:8080`` for 6PN (IPv6); plain for IPv4 (the stand-in's loopback)."""
    if not private_ip:
        raise ProviderError("Fly reported no private IP for the machine")
    host = f"[{private_ip}]" if ":" in private_ip else private_ip
    return f"http://{host}:{port}"


def normalize_ip(value: str) -> str | None:
    """One spelling per address: compressed IPv6, IPv4-mapped IPv6 as plain IPv4, no zone."""
    try:
        address = ipaddress.ip_address(value.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def resolves(name: str) -> bool:
    """Whether ``name`` has an address now (the default check for ``.internal`` names)."""
    try:
        return bool(socket.getaddrinfo(name, AGENT_PORT, type=socket.SOCK_STREAM))
    except (OSError, UnicodeError):
        return False


# --------------------------------------------------------------------------- leases
class LeaseHold:
    """A held machine lease; ``keep_alive`` refreshes it once half its TTL has passed."""

    def __init__(self, api: FlyMachinesClient, machine_id: str, nonce: str, ttl: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.machine_id = machine_id
        self.nonce = nonce
        self.ttl = ttl
        self._clock = clock
        self._renewed = clock()

    @property
    def round_seconds(self) -> int:
        """``/wait`` rounds short enough that the lease is refreshed before it can lapse."""
        return max(1, self.ttl // 3)

    def keep_alive(self) -> None:
        if self._clock() - self._renewed < self.ttl / 2:
            return
        try:
            self.api.refresh_lease(self.machine_id, self.nonce, ttl=self.ttl)
            self._renewed = self._clock()
        except FlyApiError as exc:
            log.warning("could not refresh the lease on %s (%s)", self.machine_id, exc.message)


# --------------------------------------------------------------------------- the provider
class FlyProvider(Provider):
    name = "fly_machines"

    def __init__(self, api: FlyMachinesClient, *, image: str, relay_url: str, region: str = "",
                 max_upload_mb: int = 50, start_timeout: float = 180.0, stop_timeout: float = 30.0,
                 lease_ttl: int = 60, lease_wait: float = 30.0, create_attempts: int = 3,
                 control_plane: str | None = None, internal_dns: bool = False,
                 resolver: Callable[[str], bool] = resolves, peer_refresh_seconds: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.api = api
        self.image = image
        self._relay_url = relay_url
        self.region = region
        self.max_upload_mb = max_upload_mb
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.lease_ttl = lease_ttl
        self.lease_wait = lease_wait
        self.create_attempts = create_attempts
        # Where the control plane's requests come from, as the machine agent checks it:
        # the host machines reach it at (on Fly, <control-app>.internal).
        self.control_plane = control_plane if control_plane is not None else (urlsplit(relay_url).hostname or "")
        self.internal_dns = internal_dns
        self._resolves = resolver
        self._sleep = sleep
        self._peers: dict[str, tuple[str, float]] = {}
        self._peers_at = -math.inf
        self._peers_lock = threading.Lock()
        self._peers_refreshing = False
        self.peer_refresh_seconds = peer_refresh_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> FlyProvider:
        if not settings.relay_url:
            raise ProviderError(
                "RELAY_URL is required with CONTAINER_PROVIDER=fly_machines: machines reach the control plane's "
                "model relay over Fly's private network, e.g. RELAY_URL=http://<control-plane-app>.internal:8001/relay")
        # Fly sets FLY_APP_NAME in every machine to that machine's own app. If it still names
        # the control plane's app, agents would be created next to it and receive its secrets
        # (FLY_API_TOKEN included): Fly injects app secrets into every machine of an app.
        on_fly = bool(os.environ.get("FLY_MACHINE_ID"))
        if on_fly and settings.fly_app_name == os.environ.get("FLY_APP_NAME"):
            raise ProviderError(
                f"session machines would run in the control plane's own Fly app ({settings.fly_app_name}) and "
                "receive its secrets; create a separate agents app and set AGCLUSTER_AGENTS_APP to its name")
        relay_port = getattr(settings, "relay_port", None)
        url_port = urlsplit(settings.relay_url).port or 80
        if relay_port and url_port != relay_port:
            raise ProviderError(
                f"RELAY_URL's port ({url_port}) must be RELAY_PORT ({relay_port}): machines connect to the one, the "
                "relay listens on the other (docs/FLY.md)")
        api = FlyMachinesClient(settings.fly_app_name, settings.fly_api_token, settings.machines_api_url)
        return cls(api, image=settings.agent_image, relay_url=settings.relay_url, region=settings.fly_region,
                   max_upload_mb=settings.max_upload_mb, internal_dns=on_fly)

    # Provider API ---------------------------------------------------------------------
    def validate_resources(self, limits: ResourceLimits) -> None:
        guest_for(limits)
        if volume_gb(limits) > VOLUME_GB[1]:
            raise ValidationFailed(
                f"a Fly Volume holds at most {VOLUME_GB[1]} GB; storage_limit asks for {volume_gb(limits)} GB",
                details={"resource_limits": {"storage_mb": limits.storage_mb, "max_storage_gb": VOLUME_GB[1]}})

    def machine_config(self, spec: MachineSpec, volume_id: str | None = None) -> dict[str, Any]:
        """The whole machine config; the one place that decides what a session machine is."""
        leaked = sorted(set(spec.env) & set(SECRET_ENV))
        if leaked:
            raise ProviderError(f"refusing to put {', '.join(leaked)} into a machine's environment")
        env = {**spec.env, MACHINE_TOKEN_ENV: spec.machine_token, "MAX_UPLOAD_MB": str(self.max_upload_mb)}
        if self.control_plane:
            env[CONTROL_PLANE_ENV] = self.control_plane
        config: dict[str, Any] = {
            "image": spec.image or self.image,
            "guest": guest_for(spec.resources).as_config(),
            "env": env,
            "metadata": {ROLE_KEY: ROLE, SESSION_KEY: spec.session_id, AGENT_KEY: spec.agent_id},
            "services": [],
            "restart": {"policy": "no"},
            "auto_destroy": False,
        }
        if volume_id:
            config["mounts"] = [{"volume": volume_id, "path": WORKSPACE_PATH}]
        return config

    def start(self, spec: MachineSpec) -> Machine:
        """This session's machine on its workspace volume, once its agent answers ``/health``.

        Idempotent per session: a wake or a retry reuses the machine and always the volume.
        """
        deadline = time.monotonic() + self.start_timeout
        self.machine_config(spec)  # refuse a bad spec before anything is created
        volume, created = self._workspace_volume(spec)
        try:
            return self._start_on(spec, volume, deadline, volume_is_new=created)
        except BaseException:
            if created:
                self._discard_volume(volume.id)
            raise

    def resume(self, machine_id: str) -> Machine:
        """Start a suspended or stopped machine again and wait for its agent."""
        deadline = time.monotonic() + self.start_timeout
        try:
            machine = self.api.get_machine(machine_id)
        except FlyApiError as exc:
            raise _provider_error("find the machine", exc) from None
        if machine.state in GONE:
            raise ProviderError(f"machine {machine_id} no longer exists")
        self._require_host(machine)
        return self._bring_up(machine, machine.env.get(MACHINE_TOKEN_ENV, ""), deadline, discard_on_failure=False)

    def suspend(self, machine_id: str) -> None:
        """Idle: suspend where Fly can (memory and processes kept), stop otherwise (volume kept)."""
        try:
            with self._lease(machine_id, "suspend") as hold:
                machine = self.api.get_machine(machine_id)
                if machine.state in ("suspended", "stopped", *GONE):
                    return
                self._require_host(machine)
                if can_suspend(machine.config):
                    try:
                        self.api.suspend_machine(machine_id, nonce=hold.nonce)
                        self.api.wait_machine(machine_id, "suspended", version=machine.version or None,
                                              timeout=self.stop_timeout)
                        return
                    except FlyNotFound:
                        raise
                    except FlyApiError as exc:
                        log.info("could not suspend machine %s (%s); stopping it instead", machine_id, exc.message)
                self.api.stop_machine(machine_id, signal="SIGTERM", timeout=10, nonce=hold.nonce)
                self.api.wait_machine(machine_id, "stopped", version=machine.version or None,
                                      timeout=self.stop_timeout)
        except FlyNotFound:
            return
        except FlyApiError as exc:
            raise _provider_error("suspend the machine", exc) from None

    def destroy(self, machine_id: str) -> None:
        """Remove the machine and its workspace volume. Idempotent: gone is done.

        A volume id (``vol_…``, as :meth:`list_machines` reports a machine-less volume)
        removes just that volume.
        """
        if machine_id.startswith("vol_"):
            self._destroy_volume(machine_id)
            return
        try:
            machine = self.api.get_machine(machine_id)
        except FlyNotFound:
            return
        except FlyApiError as exc:
            raise _provider_error("destroy the machine", exc) from None
        self._require_host(machine)
        mounted = {m.get("volume") for m in machine.mounts if m.get("volume")}
        name = volume_name(machine.metadata[SESSION_KEY]) if machine.metadata.get(SESSION_KEY) else None
        if machine.state != "destroyed":
            self._destroy_machine(machine_id)
        # Its own volume, and any other of the session's volumes no machine holds (also after
        # an earlier attempt got the machine but not its volume: a retry finishes); never a
        # volume another machine of the session is using.
        try:
            doomed = sorted(v.id for v in self.api.list_volumes() if not v.gone and (
                v.id in mounted or (v.name == name and v.attached_machine_id in (None, machine_id))))
        except FlyApiError as exc:
            raise _provider_error("list the session's volumes", exc) from None
        for volume_id in doomed:
            self._destroy_volume(volume_id)

    def inspect(self, machine_id: str) -> Machine | None:
        try:
            machine = self.api.get_machine(machine_id)
        except FlyNotFound:
            return None
        except FlyApiError as exc:
            raise _provider_error("inspect the machine", exc) from None
        return None if machine.state in GONE else self._as_machine(machine)

    def list_machines(self) -> list[Machine]:
        """Our machines, plus any session volume no machine holds (so it can be cleaned up)."""
        try:
            machines = self.api.list_machines(metadata={ROLE_KEY: ROLE})
            volumes = self.api.list_volumes()
        except FlyApiError as exc:
            raise _provider_error("list machines", exc) from None
        found = [self._as_machine(m) for m in machines if m.state not in GONE]
        for volume in volumes:
            key = session_of_volume(volume.name)
            if key and not volume.gone and not volume.attached_machine_id and volume.host_ok:
                found.append(Machine(volume.id, "", VOLUME_PSEUDO_STATE, key))
        return found

    def relay_url(self) -> str:
        return self._relay_url

    def relay_listen_address(self) -> tuple[str, int]:
        """Where the control plane serves the relay: its own 6PN address, on RELAY_URL's port.

        On Fly, ``fly-local-6pn`` (or ``FLY_PRIVATE_IP``) is this machine's own address on
        the private network, so the relay is never on the public edge; elsewhere (the
        stand-in) it is RELAY_URL's host itself.
        """
        parts = urlsplit(self._relay_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if self.internal_dns:
            own = os.environ.get("FLY_PRIVATE_IP") or _first_address("fly-local-6pn")
            if own:
                return own, port
        return parts.hostname or "", port

    def enforcement(self, network: str = "relay") -> dict[str, str | None]:
        """Fly enforces size in the VM itself; nothing here limits processes, and a Fly Machine
        reaches the internet directly (the custom network only keeps other apps out), so a
        relay-only network policy is not enforced (docs/FLY.md)."""
        return {"memory": "Fly Machine guest (VM memory)", "cpu": "Fly Machine guest (VM CPUs)", "pids": None,
                "storage": "Fly Volume size (workspace)", "network": None}

    def machine_for_peer(self, ip: str) -> str | None:
        """The machine key of the machine at peer address ``ip`` (the relay's caller), or None.

        Served from memory (machines this provider started are remembered at once); a miss
        or an entry older than a minute (6PN addresses change when a machine migrates)
        refreshes the map from the API, at most once per ``peer_refresh_seconds``.
        """
        address = normalize_ip(ip)
        if address is None:
            return None
        with self._peers_lock:
            now = time.monotonic()
            known, seen = self._peers.get(address, (None, -math.inf))
            if known is not None and now - seen < PEER_TTL:
                return known
            if now - self._peers_at < self.peer_refresh_seconds or self._peers_refreshing:
                return known
            self._peers_refreshing = True
        try:
            machines = self.api.list_machines(metadata={ROLE_KEY: ROLE})
            listed_at = time.monotonic()
            fresh = {normalize_ip(m.private_ip): (m.metadata.get(SESSION_KEY), listed_at) for m in machines
                     if m.private_ip and m.state not in GONE and m.host_ok and m.metadata.get(SESSION_KEY)}
            with self._peers_lock:
                self._peers = {ip_: (session, at) for ip_, (session, at) in fresh.items() if ip_ and session}
                self._peers_at = listed_at
        except FlyApiError as exc:
            log.warning("could not refresh the machine address map (%s)", exc.message)
        finally:
            with self._peers_lock:
                self._peers_refreshing = False
        with self._peers_lock:
            return self._peers.get(address, (None, 0.0))[0]

    def close(self) -> None:
        self.api.close()

    # start-up internals ---------------------------------------------------------------
    def _start_on(self, spec: MachineSpec, volume: FlyVolume, deadline: float, *, volume_is_new: bool) -> Machine:
        config = self.machine_config(spec, volume.id)
        last_error = "no attempt made"
        for _attempt in range(self.create_attempts):
            machine = self._reusable_machine(spec.session_id, config["image"], volume.id)
            if machine is None:
                try:
                    machine = self.api.create_machine(config, name=machine_name(spec.session_id),
                                                      region=volume.region or self.region or None)
                except (FlyServerError, FlyConnectionError) as exc:
                    # Fly may have created it anyway: the next round finds it by metadata.
                    last_error = exc.message
                    continue
                except FlyCapacityError as exc:
                    raise self._capacity_error(config, exc) from None
                except FlyApiError as exc:
                    raise _provider_error("create the machine", exc) from None
            return self._bring_up(machine, spec.machine_token, deadline, keep_volume=not volume_is_new)
        raise ProviderError(f"could not create a Fly machine: {last_error}", retryable=True)

    def _workspace_volume(self, spec: MachineSpec) -> tuple[FlyVolume, bool]:
        """The session's volume (found by name) or a new one; ``True`` when created now."""
        name = volume_name(spec.session_id)
        guest = guest_for(spec.resources)
        last_error = "no attempt made"
        for _attempt in range(self.create_attempts):
            existing = self._volumes_named(name)
            reachable = [v for v in existing if v.host_ok]
            if reachable:
                # The one a machine holds, else the oldest. A volume restored from a snapshot
                # under the same name wins over one on a lost host (docs/FLY.md, Host trouble);
                # any other duplicate is left for delete, which removes every volume of the name.
                return sorted(reachable, key=lambda v: (v.attached_machine_id is None, v.id))[0], False
            if existing:
                raise _host_error("the workspace volume", existing[0].id)
            try:
                return self.api.create_volume(name, size_gb=volume_gb(spec.resources), region=self.region or None,
                                              compute=guest.as_config()), True
            except (FlyServerError, FlyConnectionError) as exc:
                last_error = exc.message  # it may exist now: look again before creating
            except FlyCapacityError as exc:
                raise ProviderError(f"Fly has no room for a {volume_gb(spec.resources)} GB volume next to a "
                                    f"{guest.size_name} machine{self._where()} right now; try again, another "
                                    f"FLY_REGION or a smaller storage_limit ({exc.message})", retryable=True) from None
            except FlyApiError as exc:
                raise _provider_error("create the workspace volume", exc) from None
        raise ProviderError(f"could not create a Fly volume: {last_error}", retryable=True)

    def _volumes_named(self, name: str) -> list[FlyVolume]:
        try:
            return [v for v in self.api.list_volumes() if v.name == name and not v.gone]
        except FlyApiError as exc:
            raise _provider_error("list volumes", exc) from None

    def _reusable_machine(self, session_id: str, image: str, volume_id: str) -> FlyMachine | None:
        """This session's machine if it can serve again on its volume; other leftovers go.

        Makes ``start`` idempotent per session: a wake after a stop, or a retry after an
        ambiguous create, reuses the machine instead of creating a second one; a machine of
        an older image is replaced, and the new one mounts the same volume.
        """
        try:
            found = [m for m in self.api.list_machines(metadata={SESSION_KEY: session_id}) if m.state not in GONE]
        except FlyApiError as exc:
            raise _provider_error("list the session's machines", exc) from None
        keep = None
        for machine in found:
            if not machine.host_ok:
                # Its volume is reachable (checked first), so this machine is a leftover on a
                # lost host: neither reusable nor removable now. Leave it; delete retries.
                log.warning("machine %s of session %s is on an unreachable host; starting without it",
                            machine.id, session_id)
                continue
            mounted = {m.get("volume") for m in machine.mounts}
            if keep is None and machine.image == image and machine.state != "failed" and volume_id in mounted:
                keep = machine
            else:
                self._destroy_machine(machine.id)
        return keep

    def _bring_up(self, machine: FlyMachine, token: str, deadline: float, *,
                  discard_on_failure: bool = True, keep_volume: bool = True) -> Machine:
        try:
            with self._lease(machine.id, "start") as hold:
                current = self._settle(machine.id)
                if current.state in ("stopped", "suspended", "failed"):
                    self.api.start_machine(machine.id, nonce=hold.nonce, ready_timeout=_left(deadline),
                                           on_retry=hold.keep_alive)
                self.api.wait_machine(machine.id, "started", version=current.version or None,
                                      timeout=_left(deadline), round_seconds=hold.round_seconds,
                                      on_round=hold.keep_alive)
            current = self.api.get_machine(machine.id)
            url = self._address(current)
            wait_healthy(url, token, _left(deadline), alive=self._alive(machine.id))
            self._remember_peer(current)
            return Machine(current.id, url, "started", current.metadata.get(SESSION_KEY))
        except (FlyApiError, ProviderError) as exc:
            state = self._state_of(machine.id) if isinstance(exc, FlyWaitTimeout) else ""
            if discard_on_failure:
                self._discard(machine.id, keep_volume=keep_volume)
            if isinstance(exc, FlyWaitTimeout):
                raise ProviderError(f"the Fly machine did not start in {self.start_timeout:.0f}s "
                                    f"(it stayed {state})", retryable=True) from None
            if isinstance(exc, FlyCapacityError):
                raise self._capacity_error(machine.config, exc) from None
            if isinstance(exc, FlyApiError):
                raise _provider_error("start the machine", exc) from None
            raise

    def _settle(self, machine_id: str) -> FlyMachine:
        """The machine, once a stop or suspend in flight has finished (a start would be refused)."""
        machine = self.api.get_machine(machine_id)
        target = {"stopping": "stopped", "suspending": "suspended"}.get(machine.state)
        if target:
            self.api.wait_machine(machine_id, target, version=machine.version or None, timeout=self.stop_timeout)
            machine = self.api.get_machine(machine_id)
        return machine

    def _address(self, machine: FlyMachine) -> str:
        """``<id>.vm.<app>.internal`` when it resolves (it follows a migrated machine), else the IP."""
        if self.internal_dns:
            name = f"{machine.id}.vm.{self.api.app}.internal"
            if self._resolves(name):
                return f"http://{name}:{AGENT_PORT}"
        return machine_address(machine.private_ip)

    def _remember_peer(self, machine: FlyMachine) -> None:
        address, key = normalize_ip(machine.private_ip), machine.metadata.get(SESSION_KEY)
        if address and key:
            with self._peers_lock:
                self._peers[address] = (key, time.monotonic())

    def _alive(self, machine_id: str) -> Callable[[], bool]:
        """For wait_healthy: a machine that stopped while booting fails fast, at most 1 GET/s."""
        last = {"at": 0.0, "alive": True}

        def alive() -> bool:
            now = time.monotonic()
            if now - last["at"] >= 1.0:
                last["at"] = now
                try:
                    last["alive"] = self.api.get_machine(machine_id).state in ("started", "starting")
                except FlyNotFound:
                    last["alive"] = False
                except FlyApiError:
                    pass  # an API hiccup is not a dead machine
            return bool(last["alive"])

        return alive

    # removal internals ----------------------------------------------------------------
    def _destroy_machine(self, machine_id: str) -> None:
        """Stop (unless Fly destroys it as it is), then destroy, forced if the clean way fails."""
        try:
            with self._lease(machine_id, "destroy") as hold:
                machine = self.api.get_machine(machine_id)
                if machine.state in GONE:
                    return
                if machine.state not in ("stopped", "suspended", "created", "failed"):
                    try:
                        self.api.stop_machine(machine_id, signal="SIGTERM", timeout=10, nonce=hold.nonce)
                        self.api.wait_machine(machine_id, "stopped", version=machine.version or None,
                                              timeout=self.stop_timeout)
                    except FlyNotFound:
                        raise
                    except FlyApiError as exc:
                        log.info("machine %s did not stop cleanly (%s); destroying with force", machine_id,
                                 exc.message)
                try:
                    self.api.destroy_machine(machine_id, nonce=hold.nonce)
                except FlyNotFound:
                    raise
                except FlyApiError:
                    self.api.destroy_machine(machine_id, force=True, nonce=hold.nonce)
            self._await_destroyed(machine_id)
        except FlyNotFound:
            return
        except FlyApiError as exc:
            raise _provider_error("destroy the machine", exc) from None

    def _destroy_volume(self, volume_id: str) -> None:
        """Destroy a volume; a volume still detaching from its destroyed machine is retried."""
        deadline = time.monotonic() + self.stop_timeout
        attempt = 0
        while True:
            try:
                self.api.destroy_volume(volume_id)
                return
            except FlyNotFound:
                return
            except FlyApiError as exc:
                if exc.status not in (409, 412) or time.monotonic() >= deadline:
                    raise _provider_error("destroy the workspace volume", exc) from None
            self._sleep(min(1.0, 0.05 * 2 ** attempt))
            attempt += 1

    def _discard(self, machine_id: str, *, keep_volume: bool) -> None:
        try:
            if keep_volume:
                self._destroy_machine(machine_id)
            else:
                self.destroy(machine_id)
        except ProviderError as exc:
            log.warning("could not remove machine %s after a failed start (%s); start-up reconciliation "
                        "will remove it", machine_id, exc.message)

    def _discard_volume(self, volume_id: str) -> None:
        try:
            self._destroy_volume(volume_id)
        except ProviderError as exc:
            log.warning("could not remove volume %s after a failed start (%s); it is listed under its session "
                        "so the janitor and start-up reconciliation remove it", volume_id, exc.message)

    def _await_destroyed(self, machine_id: str) -> None:
        try:
            self.api.wait_machine(machine_id, "destroyed", timeout=self.stop_timeout)
        except FlyNotFound:
            pass
        except FlyWaitTimeout:
            log.warning("machine %s is still being destroyed", machine_id)

    # small helpers --------------------------------------------------------------------
    def _require_host(self, machine: FlyMachine) -> None:
        if not machine.host_ok:
            raise _host_error(f"machine {machine.id}", machine.id)

    def _state_of(self, machine_id: str) -> str:
        try:
            return self.api.get_machine(machine_id).state or "unknown"
        except FlyApiError:
            return "unknown"

    def _where(self) -> str:
        return f" in {self.region}" if self.region else ""

    def _capacity_error(self, config: dict[str, Any], exc: FlyApiError) -> ProviderError:
        guest = config.get("guest") or {}
        size = Guest(str(guest.get("cpu_kind") or "shared"), int(guest.get("cpus") or 1),
                     int(guest.get("memory_mb") or 256)).size_name
        return ProviderError(f"Fly has no capacity for a {size} machine{self._where()} right now; try again, "
                             f"another FLY_REGION or smaller resource_limits ({exc.message})", retryable=True)

    @contextmanager
    def _lease(self, machine_id: str, purpose: str) -> Iterator[LeaseHold]:
        """Hold the machine's lease for one change; wait a little if someone else holds it.

        An acquire whose answer is lost (a 5xx or a dropped connection after Fly granted it)
        would lock us out of our own machine for the whole TTL. Each acquisition carries a
        description of its own, so the lease can be read back (``GET …/lease`` returns the
        nonce, as ``fly machine leases clear`` relies on) and adopted when it is ours.
        """
        deadline = time.monotonic() + self.lease_wait
        description = f"agcluster {purpose} {secrets.token_hex(6)}"
        attempt = 0
        while True:
            try:
                nonce = self.api.acquire_lease(machine_id, ttl=self.lease_ttl, description=description).nonce
                break
            except FlyNotFound:
                raise
            except (LeaseHeld, FlyServerError, FlyConnectionError) as exc:
                adopted = self._our_lease(machine_id, description)
                if adopted:
                    nonce = adopted
                    break
                if time.monotonic() >= deadline:
                    if isinstance(exc, LeaseHeld):
                        raise ProviderError(f"machine {machine_id} is leased by another process, so AgCluster "
                                            f"cannot {purpose} it now; try again when the lease expires "
                                            f"({exc.message})", retryable=True) from None
                    raise
                self._sleep(min(2.0, random.uniform(0.05, 0.2 * 2 ** min(attempt, 4))))
                attempt += 1
        hold = LeaseHold(self.api, machine_id, nonce, self.lease_ttl)
        try:
            yield hold
        finally:
            try:
                self.api.release_lease(machine_id, nonce)
            except FlyNotFound:
                pass  # the machine went away, and its lease with it
            except FlyApiError as exc:
                log.warning("could not release the lease on %s (%s); it expires in %ss", machine_id,
                            exc.message, self.lease_ttl)

    def _our_lease(self, machine_id: str, description: str) -> str | None:
        """The nonce of the machine's current lease if this very acquisition holds it."""
        try:
            lease = self.api.get_lease(machine_id)
        except FlyApiError:
            return None  # no lease (404), or Fly cannot say now: not known to be ours
        return lease.nonce if lease.description == description and lease.nonce else None

    def _as_machine(self, machine: FlyMachine) -> Machine:
        state = machine.state if machine.host_ok else "unknown"
        url = self._address(machine) if machine.private_ip and machine.host_ok else ""
        return Machine(machine.id, url, state, machine.metadata.get(SESSION_KEY))


def _first_address(name: str) -> str | None:
    try:
        return str(socket.getaddrinfo(name, None, socket.AF_INET6)[0][4][0])
    except (OSError, IndexError):
        return None


def _left(deadline: float) -> float:
    return max(1.0, deadline - time.monotonic())


def _host_error(what: str, ident: str) -> ProviderError:
    return ProviderError(f"the Fly host holding {what} is unreachable right now, so the session cannot be woken; "
                         f"it is left untouched (try again later, or see docs/FLY.md 'Host trouble' for {ident})",
                         retryable=True)


def _provider_error(doing: str, exc: FlyApiError) -> ProviderError:
    retryable = isinstance(exc, (FlyRateLimited, FlyServerError, FlyConnectionError, FlyWaitTimeout,
                                 FlyCapacityError, LeaseHeld))
    return ProviderError(f"could not {doing} on Fly: {exc.message}", retryable=retryable)
