"""Machines, their states and transitions, leases and waits: the semantic core of the stand-in.

Each API operation checks what Fly checks (state, lease, arguments), moves the machine to
Fly's transient state at once, and finishes the transition on a worker thread that drives
the backend, so clients observe ``starting``/``stopping``/``suspending``/``destroying``
and must ``/wait``, as on Fly. Operations raise :class:`StubError`, which the HTTP layer
turns into Fly's ``{"error": ...}`` body.
"""

from __future__ import annotations

import copy
import random
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import ids
from .backends import AddressPool, Backend, BackendError, LoopbackPool, Reservation, RunSpec

WAIT_STATES = ("started", "stopped", "suspended", "destroyed")
SUSPEND_MAX_MEMORY_MB = 2048
VOLUME_SIZE_GB = (1, 500)
VOLUME_NAME = re.compile(r"^[a-z0-9_]{1,30}$")
HOST_UNREACHABLE = "the machine's host is unreachable: flyd cannot act on it until the host is back"
RESTART_POLICIES = ("no", "on-failure", "always")
# Fly's guest rules, written out independently of the provider's copy on purpose: the
# stand-in must catch a provider that gets them wrong.
CPU_COUNTS = {"shared": (1, 2, 4, 6, 8), "performance": (1, 2, 4, 6, 8, 10, 12, 14, 16)}
MEMORY_PER_CPU = {"shared": (256, 2048), "performance": (2048, 8192)}
MEMORY_STEP = {"shared": 256, "performance": 1024}
PRESET_SIZES = {f"shared-cpu-{n}x": ("shared", n, 256 * n) for n in CPU_COUNTS["shared"]} | {
    f"performance-{n}x": ("performance", n, 2048 * n) for n in CPU_COUNTS["performance"]}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_NAME_WORDS = ("quiet", "bold", "damp", "late", "young", "proud", "misty", "sparkling", "lingering", "old")
_NAME_NOUNS = ("river", "sun", "moon", "forest", "meadow", "snow", "wave", "field", "dew", "flower")


class StubError(Exception):
    """An API error in Fly's shape: ``{"error": message}`` (plus ``status`` when Fly sends a code)."""

    def __init__(self, status: int, message: str, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message}
        if self.code:
            body["status"] = self.code
        return body


@dataclass
class LeaseRecord:
    nonce: str
    owner: str
    description: str
    expires_at: float
    version: str

    def to_api(self) -> dict[str, Any]:
        return {"status": "success", "data": {"nonce": self.nonce, "expires_at": int(self.expires_at),
                                              "owner": self.owner, "description": self.description,
                                              "version": self.version}}


@dataclass
class StubMachine:
    id: str
    name: str
    app: str
    region: str
    config: dict[str, Any]
    instance_id: str
    reservation: Reservation
    state: str = "created"
    created_at: str = field(default_factory=ids.timestamp)
    updated_at: str = field(default_factory=ids.timestamp)
    events: list[dict[str, Any]] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    lease: LeaseRecord | None = None
    handle: Any = None
    prepared: bool = False
    held: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    generation: int = 0
    restarts: int = 0
    unreachable: bool = False

    @property
    def private_ip(self) -> str:
        return self.reservation.ip

    def to_api(self) -> dict[str, Any]:
        image = str(self.config.get("image") or "")
        repository, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
        answer: dict[str, Any] = {
            "id": self.id, "name": self.name, "state": self.state, "region": self.region,
            "instance_id": self.instance_id, "version": self.instance_id, "private_ip": self.private_ip,
            "config": copy.deepcopy(self.config),
            "image_ref": {"registry": "", "repository": repository, "tag": tag or "latest", "digest": ""},
            "created_at": self.created_at, "updated_at": self.updated_at,
            "events": copy.deepcopy(list(reversed(self.events[-10:]))), "checks": [], "host_status": "ok",
        }
        if self.unreachable:
            # What flyd can still tell without the host: no config, a partial one rebuilt
            # from elsewhere (fly-go Machine.IncompleteConfig), the last state it saw.
            answer["host_status"] = "unknown"
            answer.pop("config")
            answer["incomplete_config"] = {k: copy.deepcopy(self.config[k]) for k in ("image", "metadata", "guest")
                                           if k in self.config}
        return answer


@dataclass
class StubVolume:
    id: str
    name: str
    app: str
    region: str
    size_gb: int
    encrypted: bool = True
    state: str = "created"
    attached_machine_id: str | None = None
    created_at: str = field(default_factory=ids.timestamp)
    unreachable: bool = False

    @property
    def gone(self) -> bool:
        return self.state in ("pending_destroy", "destroyed")

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "state": self.state, "size_gb": self.size_gb,
                "region": self.region, "zone": f"{self.region}-z1", "encrypted": self.encrypted,
                "attached_machine_id": self.attached_machine_id, "attached_alloc_id": None,
                "created_at": self.created_at, "snapshot_retention": 5, "auto_backup_enabled": True,
                "fstype": "ext4", "host_status": "unknown" if self.unreachable else "ok"}


class FlyState:
    """All apps' machines, behind one lock whose condition wakes ``/wait`` callers."""

    def __init__(self, backend: Backend, *, region: str = "ord", apps: Iterable[str] | None = None,
                 pool: AddressPool | None = None) -> None:
        self.backend = backend
        self.region = region
        self.apps = set(apps) if apps else None
        self.pool = pool or LoopbackPool()
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.machines: dict[str, StubMachine] = {}
        self.volumes: dict[str, StubVolume] = {}
        self._hold_next = 0
        self._workers: list[threading.Thread] = []
        self._cold_resume = 0.0
        self._rng = random.Random()

    # ------------------------------------------------------------------ helpers
    def check_app(self, app: str) -> None:
        if self.apps is not None and app not in self.apps:
            raise StubError(404, f"app {app} not found")

    def _machine(self, app: str, machine_id: str, *, allow_destroyed: bool = False) -> StubMachine:
        machine = self.machines.get(machine_id)
        if machine is None or machine.app != app or (machine.state == "destroyed" and not allow_destroyed):
            raise StubError(404, f"machine {machine_id} not found")
        return machine

    def _reachable(self, machine: StubMachine) -> StubMachine:
        if machine.unreachable:
            raise StubError(503, HOST_UNREACHABLE)
        return machine

    def _set_state(self, machine: StubMachine, state: str, event: str | None = None, **request: Any) -> None:
        machine.state = state
        machine.updated_at = ids.timestamp()
        if event:
            machine.events.append({"id": ids.ulid(), "type": event, "status": state,
                                   "source": request.pop("source", "user"), "timestamp": ids.now_ms(),
                                   "request": request})
        self.changed.notify_all()

    def _check_lease(self, machine: StubMachine, nonce: str | None) -> None:
        lease = machine.lease
        if lease is not None and lease.expires_at > time.time() and nonce != lease.nonce:
            raise StubError(409, f"machine {machine.id} is currently leased by {lease.owner} "
                                 f"({lease.description or 'no description'}) until {int(lease.expires_at)}; "
                                 "send the lease nonce in fly-machine-lease-nonce")

    def _spawn(self, target: Any, *args: Any) -> None:
        worker = threading.Thread(target=target, args=args, name="stubs-fly-transition", daemon=True)
        self._workers = [w for w in self._workers if w.is_alive()] + [worker]
        worker.start()

    def _run_spec(self, machine: StubMachine) -> RunSpec:
        guest = machine.config["guest"]
        env = {str(k): str(v) for k, v in (machine.config.get("env") or {}).items()}
        # What Fly's init adds to every machine's environment.
        env.update({"FLY_APP_NAME": machine.app, "FLY_MACHINE_ID": machine.id, "FLY_ALLOC_ID": machine.id,
                    "FLY_REGION": machine.region, "FLY_PRIVATE_IP": machine.private_ip,
                    "FLY_IMAGE_REF": str(machine.config.get("image")), "FLY_MACHINE_VERSION": machine.instance_id,
                    "FLY_VM_MEMORY_MB": str(guest["memory_mb"])})
        mounts = tuple((str(m["volume"]), str(m["path"])) for m in machine.config.get("mounts") or [])
        return RunSpec(machine.id, machine.private_ip, str(machine.config["image"]), env, int(guest["cpus"]),
                       int(guest["memory_mb"]), mounts)

    # ------------------------------------------------------------------ machines
    def list_machines(self, app: str, *, metadata: dict[str, str], region: str | None,
             include_deleted: bool) -> list[dict[str, Any]]:
        with self.lock:
            found = []
            for machine in self.machines.values():
                if machine.app != app or (machine.state == "destroyed" and not include_deleted):
                    continue
                if region and machine.region != region:
                    continue
                meta = machine.config.get("metadata") or {}
                if all(str(meta.get(k)) == v for k, v in metadata.items()):
                    found.append(machine.to_api())
            return found

    def create(self, app: str, body: Any, owner: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise StubError(400, "the request body must be a JSON object")
        config = normalize_config(body.get("config"))
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", name)):
            raise StubError(400, f"invalid machine name {name!r}: lowercase letters, digits and dashes, at most 63")
        lease_ttl = body.get("lease_ttl")
        if lease_ttl is not None and (not isinstance(lease_ttl, int) or lease_ttl < 1):
            raise StubError(400, "lease_ttl must be a positive number of seconds")
        with self.lock:
            if name and any(m.name == name and m.app == app and m.state != "destroyed" for m in self.machines.values()):
                raise StubError(409, f"a machine named {name} already exists")
            volumes = self._mountable(app, config, None)
            region = str(body.get("region") or (volumes[0].region if volumes else self.region))
            for volume in volumes:
                if volume.region != region:
                    raise StubError(400, f"volume {volume.id} is in region {volume.region}; a machine that mounts "
                                         f"it must be created there, not in {region}")
            try:
                reservation = self.pool.reserve()
            except BackendError as exc:
                raise StubError(422, f"insufficient resources available to fulfill request: {exc}",
                                code="insufficient_capacity") from None
            instance = ids.ulid()
            machine = StubMachine(
                id=ids.machine_id(), name=name or f"{secrets.choice(_NAME_WORDS)}-{secrets.choice(_NAME_NOUNS)}-"
                                                  f"{secrets.randbelow(9000) + 1000}",
                app=app, region=region, config=config, instance_id=instance,
                reservation=reservation, versions=[instance],
            )
            self.machines[machine.id] = machine
            for volume in volumes:
                volume.attached_machine_id = machine.id
            self._set_state(machine, "created", "launch")
            if self._hold_next > 0:
                self._hold_next -= 1
                machine.held = True
            answer = machine.to_api()
            if lease_ttl:
                machine.lease = LeaseRecord(ids.nonce(), owner, "created with lease_ttl", time.time() + lease_ttl,
                                            ids.ulid())
                answer["nonce"] = machine.lease.nonce
            self._spawn(self._prepare, machine, not bool(body.get("skip_launch")))
            return answer

    def get(self, app: str, machine_id: str) -> dict[str, Any]:
        with self.lock:
            return self._machine(app, machine_id, allow_destroyed=True).to_api()

    def update(self, app: str, machine_id: str, body: Any, nonce: str | None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise StubError(400, "the request body must be a JSON object")
        config = normalize_config(body.get("config"))
        with self.lock:
            machine = self._reachable(self._machine(app, machine_id))
            self._check_lease(machine, nonce)
            volumes = self._mountable(app, config, machine)
            if any(v.region != machine.region for v in volumes):
                raise StubError(400, f"a volume to mount is not in the machine's region {machine.region}")
            current = body.get("current_version")
            if current and current != machine.instance_id:
                raise StubError(412, f"machine version {current} is not current ({machine.instance_id})")
            if machine.state not in ("started", "stopped", "suspended", "failed") and not (
                    machine.state == "created" and machine.prepared):
                raise StubError(412, f"unable to update machine from current state: '{machine.state}'")
            was_running = machine.state in ("started", "suspended")
            old_handle, machine.handle = machine.handle, None
            machine.generation += 1
            machine.instance_id = ids.ulid()
            machine.versions.append(machine.instance_id)
            machine.config = config
            for volume in self.volumes.values():
                if volume.attached_machine_id == machine.id and volume not in volumes:
                    volume.attached_machine_id = None
            for volume in volumes:
                volume.attached_machine_id = machine.id
            self._set_state(machine, "replacing", "update")
            self._spawn(self._replace, machine, old_handle, was_running, bool(body.get("skip_launch")),
                        machine.generation)
            return machine.to_api()

    def start(self, app: str, machine_id: str, nonce: str | None) -> dict[str, Any]:
        with self.lock:
            machine = self._reachable(self._machine(app, machine_id))
            self._check_lease(machine, nonce)
            previous = machine.state
            if previous == "started":
                return {"previous_state": "started", "migrated": False, "new_host": ""}
            if previous not in ("stopped", "suspended", "failed") and not (previous == "created" and machine.prepared):
                raise StubError(412, f"unable to start machine from current state: '{previous}'")
            machine.generation += 1
            # Fly only *tries* to resume: a snapshot lost to a migration or host maintenance
            # means a cold boot from a fresh root filesystem (volumes kept).
            cold = previous == "suspended" and self._rng.random() < self._cold_resume
            self._set_state(machine, "starting", "start", **({"cold_boot": True} if cold else {}))
            if previous == "suspended" and not cold:
                self._spawn(self._resume, machine, machine.generation)
            else:
                stale, machine.handle = machine.handle, None
                self._spawn(self._boot, machine, machine.generation, stale)
            return {"previous_state": previous, "migrated": False, "new_host": ""}

    def stop(self, app: str, machine_id: str, body: Any, nonce: str | None) -> dict[str, Any]:
        body = body if isinstance(body, dict) else {}
        with self.lock:
            machine = self._reachable(self._machine(app, machine_id))
            stop_config = machine.config.get("stop_config") or {}
            sig = body.get("signal") or stop_config.get("signal") or "SIGINT"
            timeout = parse_duration(body.get("timeout"), default=parse_duration(stop_config.get("timeout"), 5.0))
            self._check_lease(machine, nonce)
            if machine.state in ("stopped", "stopping"):
                return {"ok": True}
            if machine.state == "failed":
                self._set_state(machine, "stopped", "stop")
                return {"ok": True}
            if machine.state not in ("started", "suspended"):
                raise StubError(412, f"unable to stop machine from current state: '{machine.state}'")
            handle, machine.handle = machine.handle, None
            machine.generation += 1
            self._set_state(machine, "stopping", "stop", signal=str(sig), timeout=timeout)
            self._spawn(self._halt, machine, handle, str(sig), timeout, machine.generation)
            return {"ok": True}

    def suspend(self, app: str, machine_id: str, nonce: str | None) -> dict[str, Any]:
        with self.lock:
            machine = self._reachable(self._machine(app, machine_id))
            self._check_lease(machine, nonce)
            if machine.state in ("suspended", "suspending"):
                return {"ok": True}
            if machine.state != "started":
                raise StubError(412, f"unable to suspend machine from current state: '{machine.state}'")
            refusal = suspend_refusal(machine.config)
            if refusal:
                raise StubError(412, f"failed_precondition: machine {machine.id} cannot be suspended: {refusal}; "
                                     "stop it instead")
            self._set_state(machine, "suspending", "suspend")
            self._spawn(self._freeze, machine, machine.generation)
            return {"ok": True}

    def wait(self, app: str, machine_id: str, states: list[str], timeout_raw: str | None,
             instance_id: str | None) -> dict[str, Any]:
        states = states or ["started"]
        bad = [s for s in states if s not in WAIT_STATES]
        if bad:
            raise StubError(400, f"invalid state {bad[0]!r}: one of {', '.join(WAIT_STATES)}")
        try:
            timeout = 60 if timeout_raw in (None, "") else int(str(timeout_raw))
        except ValueError:
            raise StubError(400, f"invalid timeout {timeout_raw!r}: whole seconds between 1 and 60") from None
        if not 1 <= timeout <= 60:
            raise StubError(400, f"invalid timeout {timeout}: must be between 1 and 60 seconds")
        if "stopped" in states and not instance_id:
            raise StubError(400, "version (instance_id in older clients) is required to wait for the stopped state")
        deadline = time.monotonic() + timeout
        with self.lock:
            machine = self._machine(app, machine_id, allow_destroyed=True)
            if instance_id and instance_id not in machine.versions:
                raise StubError(400, f"version {instance_id} is not a version of machine {machine_id}")
            while True:
                if machine.state in states and (machine.state == "destroyed" or not instance_id
                                                or instance_id == machine.instance_id):
                    return {"ok": True}
                if machine.state == "destroyed":
                    raise StubError(404, f"machine {machine_id} was destroyed")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StubError(408, f"deadline_exceeded: machine {machine_id} did not reach "
                                         f"{' or '.join(states)} within {timeout}s (state: {machine.state})")
                self.changed.wait(remaining)

    def destroy(self, app: str, machine_id: str, force: bool, nonce: str | None) -> dict[str, Any]:
        with self.lock:
            machine = self._reachable(self._machine(app, machine_id))
            self._check_lease(machine, nonce)
            if machine.state == "destroying":
                return {"ok": True}
            if not force and machine.state not in ("stopped", "suspended", "created", "failed"):
                raise StubError(412, f"unable to destroy machine, not currently stopped (state: {machine.state}); "
                                     "stop it first or pass force=true")
            handle, machine.handle = machine.handle, None
            machine.generation += 1
            machine.release.set()
            self._set_state(machine, "destroying", "destroy", force=force)
            self._spawn(self._remove, machine, handle)
            return {"ok": True}

    # ------------------------------------------------------------------ leases
    def lease_acquire(self, app: str, machine_id: str, body: Any, query_ttl: str | None, nonce: str | None,
                      owner: str) -> tuple[int, dict[str, Any]]:
        body = body if isinstance(body, dict) else {}
        ttl_raw = body.get("ttl", query_ttl)
        try:
            ttl = int(ttl_raw) if ttl_raw not in (None, "") else 30
        except (TypeError, ValueError):
            raise StubError(400, f"invalid ttl {ttl_raw!r}") from None
        if ttl < 1:
            raise StubError(400, "ttl must be at least 1 second")
        with self.lock:
            machine = self._reachable(self._machine(app, machine_id))
            lease, now = machine.lease, time.time()
            if lease is not None and lease.expires_at > now:
                if nonce and nonce == lease.nonce:
                    lease.expires_at = now + ttl
                    return 200, lease.to_api()
                raise StubError(409, f"lease currently held by {lease.owner} "
                                     f"({lease.description or 'no description'}), expires at {int(lease.expires_at)}")
            machine.lease = LeaseRecord(ids.nonce(), owner, str(body.get("description") or ""), now + ttl, ids.ulid())
            return 201, machine.lease.to_api()

    def lease_get(self, app: str, machine_id: str) -> dict[str, Any]:
        with self.lock:
            machine = self._machine(app, machine_id)
            if machine.lease is None or machine.lease.expires_at <= time.time():
                raise StubError(404, f"machine {machine_id} has no lease")
            return machine.lease.to_api()

    def lease_release(self, app: str, machine_id: str, nonce: str | None) -> dict[str, Any]:
        if not nonce:
            raise StubError(400, "the fly-machine-lease-nonce header is required to release a lease")
        with self.lock:
            machine = self._machine(app, machine_id)
            lease = machine.lease
            if lease is None or lease.expires_at <= time.time():
                raise StubError(404, f"machine {machine_id} has no lease")
            if lease.nonce != nonce:
                raise StubError(409, f"lease currently held by {lease.owner}; the nonce does not match")
            machine.lease = None
            return {"ok": True}

    # ------------------------------------------------------------------ inside the machine
    def exec(self, app: str, machine_id: str, body: Any) -> dict[str, Any]:
        body = body if isinstance(body, dict) else {}
        command = body.get("command")
        if not command and isinstance(body.get("cmd"), str):
            command = ["sh", "-c", body["cmd"]]
        if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
            raise StubError(400, "command must be a non-empty list of strings (or cmd a string)")
        timeout = body.get("timeout", 30)
        if not isinstance(timeout, int) or not 1 <= timeout <= 600:
            raise StubError(400, "timeout must be whole seconds between 1 and 600")
        with self.lock:
            machine = self._reachable(self._machine(app, machine_id))
            if machine.state != "started" or machine.handle is None:
                raise StubError(412, f"machine is not started (state: {machine.state})")
            handle = machine.handle
        code, out, err = self.backend.exec(handle, command, timeout)
        return {"exit_code": code, "exit_signal": 0, "stdout": out, "stderr": err}

    def events(self, app: str, machine_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(list(reversed(self._machine(app, machine_id, allow_destroyed=True).events)))

    # ------------------------------------------------------------------ metadata
    def metadata_get(self, app: str, machine_id: str) -> dict[str, str]:
        with self.lock:
            return dict(self._machine(app, machine_id).config.get("metadata") or {})

    def metadata_set(self, app: str, machine_id: str, key: str, body: Any, nonce: str | None) -> None:
        value = body.get("value") if isinstance(body, dict) else None
        if not isinstance(value, str):
            raise StubError(400, "value must be a string")
        with self.lock:
            machine = self._machine(app, machine_id)
            self._check_lease(machine, nonce)
            machine.config.setdefault("metadata", {})[key] = value

    def metadata_delete(self, app: str, machine_id: str, key: str, nonce: str | None) -> None:
        with self.lock:
            machine = self._machine(app, machine_id)
            self._check_lease(machine, nonce)
            (machine.config.get("metadata") or {}).pop(key, None)

    # ------------------------------------------------------------------ controls
    def hold_in_created(self, count: int) -> None:
        with self.lock:
            self._hold_next += count

    def release_held(self) -> None:
        with self.lock:
            self._hold_next = 0
            for machine in self.machines.values():
                if machine.held:
                    machine.held = False
                    machine.release.set()

    def cold_resume(self, probability: float, seed: int | None = None) -> None:
        """From now on a resume cold-boots with this probability (seedable, for repeatable runs)."""
        if not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        with self.lock:
            self._cold_resume = probability
            self._rng = random.Random(seed)

    def set_host_reachable(self, machine_id: str, reachable: bool) -> None:
        """Cut a machine's host off from flyd (and with it the volume it mounts), or restore it."""
        with self.lock:
            machine = self.machines[machine_id]
            machine.unreachable = not reachable
            for volume in self.volumes.values():
                if volume.attached_machine_id == machine_id:
                    volume.unreachable = not reachable
            self.changed.notify_all()

    def live_count(self) -> int:
        with self.lock:
            return sum(1 for m in self.machines.values() if m.state != "destroyed")

    def live_volumes(self) -> int:
        with self.lock:
            return sum(1 for v in self.volumes.values() if not v.gone)

    def volume_snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return [v.to_api() for v in self.volumes.values()]

    def snapshot(self, include_destroyed: bool = True) -> list[dict[str, Any]]:
        with self.lock:
            return [m.to_api() for m in self.machines.values() if include_destroyed or m.state != "destroyed"]

    def close(self) -> None:
        """Destroy everything, synchronously: the stand-in leaves no process or container."""
        with self.lock:
            self._hold_next = 0
            doomed = []
            for machine in self.machines.values():
                machine.release.set()
                machine.generation += 1
                if machine.state != "destroyed":
                    doomed.append((machine, machine.handle))
                    machine.handle = None
                    self._set_state(machine, "destroying")
        for machine, handle in doomed:
            self._remove(machine, handle)
        for worker in list(self._workers):
            worker.join(timeout=30)
        # Anything a late worker started is removed by its own generation check; make sure.
        with self.lock:
            leftovers = [(m, m.handle) for m in self.machines.values() if m.handle is not None]
            for machine, _ in leftovers:
                machine.handle = None
        for machine, handle in leftovers:
            self.backend.destroy(machine.id, handle)
        with self.lock:
            volumes = [v for v in self.volumes.values() if v.state != "destroyed"]
            for volume in volumes:
                volume.state = "destroyed"
        for volume in volumes:
            self.backend.destroy_volume(volume.id)

    # ------------------------------------------------------------------ transitions (worker threads)
    def _prepare(self, machine: StubMachine, launch: bool) -> None:
        """``created`` → image prepared → (unless skip_launch) ``starting`` → ``started``."""
        if machine.held:
            machine.release.wait()
        with self.lock:
            if machine.state != "created":
                return
            machine.prepared = True
            self.changed.notify_all()
            if not launch:
                return
            machine.generation += 1
            generation = machine.generation
            self._set_state(machine, "starting")
        self._boot(machine, generation)

    def _boot(self, machine: StubMachine, generation: int, stale: Any = None) -> None:
        if stale is not None:  # a snapshot discarded on resume: that VM is gone for good
            self.backend.stop(stale, "SIGKILL", 0)
        with self.lock:
            if machine.generation != generation or machine.state != "starting":
                return
            spec = self._run_spec(machine)
        try:
            handle = self.backend.start(spec)
        except Exception as exc:  # noqa: BLE001 - any failure to run it is a failed machine, never a hang
            with self.lock:
                if machine.generation == generation and machine.state == "starting":
                    self._set_state(machine, "failed", "exit", source="flyd", error=str(exc))
            return
        with self.lock:
            if machine.generation != generation or machine.state != "starting":
                stale = True
            else:
                stale = False
                machine.handle = handle
                self._set_state(machine, "started", "start", source="flyd")
        if stale:
            with self.lock:
                gone = machine.state in ("destroying", "destroyed")
            if gone:
                self.backend.destroy(machine.id, handle)
            else:
                self.backend.stop(handle, "SIGKILL", 0)
            return
        self._spawn(self._monitor, machine, handle, generation)

    def _monitor(self, machine: StubMachine, handle: Any, generation: int) -> None:
        code = self.backend.wait_exit(handle)
        with self.lock:
            if machine.handle is not handle or machine.generation != generation:
                return  # stopped, suspended-then-stopped, replaced or destroyed on purpose
            machine.handle = None
            restart = machine.config.get("restart") or {}
            policy = restart.get("policy", "on-failure")
            retries = int(restart.get("max_retries", 10) or 10)
            if policy == "always" or (policy == "on-failure" and code != 0 and machine.restarts < retries):
                machine.restarts += 1
                machine.generation += 1
                self._set_state(machine, "starting", "exit", source="flyd", exit_code=code, restarting=True)
                self._spawn(self._boot, machine, machine.generation)
            else:
                self._set_state(machine, "stopped", "exit", source="flyd", exit_code=code)

    def _resume(self, machine: StubMachine, generation: int) -> None:
        with self.lock:
            handle = machine.handle
        try:
            self.backend.resume(handle)
        except Exception as exc:  # noqa: BLE001 - a resume that fails leaves a failed machine
            with self.lock:
                if machine.generation == generation:
                    self._set_state(machine, "failed", "exit", source="flyd", error=str(exc))
            return
        with self.lock:
            if machine.generation == generation and machine.state == "starting":
                self._set_state(machine, "started", "start", source="flyd", resumed=True)

    def _freeze(self, machine: StubMachine, generation: int) -> None:
        with self.lock:
            handle = machine.handle
        try:
            if handle is not None:
                self.backend.suspend(handle)
        except Exception as exc:  # noqa: BLE001 - a suspend that fails leaves a failed machine
            with self.lock:
                if machine.generation == generation and machine.state == "suspending":
                    self._set_state(machine, "failed", "exit", source="flyd", error=str(exc))
            return
        with self.lock:
            if machine.generation == generation and machine.state == "suspending":
                self._set_state(machine, "suspended", "suspend", source="flyd")

    def _halt(self, machine: StubMachine, handle: Any, sig: str, timeout: float, generation: int) -> None:
        if handle is not None:
            try:
                self.backend.stop(handle, sig, timeout)
            except BackendError:
                self.backend.stop(handle, "SIGKILL", 0)
        with self.lock:
            if machine.generation == generation and machine.state == "stopping":
                self._set_state(machine, "stopped", "exit", source="flyd", signal=sig)

    def _replace(self, machine: StubMachine, old_handle: Any, was_running: bool, skip_launch: bool,
                 generation: int) -> None:
        if old_handle is not None:
            self.backend.stop(old_handle, "SIGKILL", 0)
        with self.lock:
            if machine.generation != generation or machine.state != "replacing":
                return
            if skip_launch:
                machine.prepared = True
                self._set_state(machine, "created")
                return
            if not was_running:
                self._set_state(machine, "stopped")
                return
            self._set_state(machine, "starting")
        self._boot(machine, generation)

    def _remove(self, machine: StubMachine, handle: Any) -> None:
        try:
            self.backend.destroy(machine.id, handle)
        finally:
            with self.lock:
                machine.lease = None
                machine.reservation.release()
                for volume in self.volumes.values():
                    if volume.attached_machine_id == machine.id:
                        volume.attached_machine_id = None
                self._set_state(machine, "destroyed", "destroy", source="flyd")

    # ------------------------------------------------------------------ volumes
    def _mountable(self, app: str, config: dict[str, Any], machine: StubMachine | None) -> list[StubVolume]:
        """The volumes ``config.mounts`` names, checked as Fly checks them."""
        found = []
        for mount in config.get("mounts") or []:
            volume = self.volumes.get(str(mount["volume"]))
            if volume is None or volume.app != app or volume.gone:
                raise StubError(404, f"volume {mount['volume']} not found")
            if volume.unreachable:
                raise StubError(503, f"the host of volume {volume.id} is unreachable")
            holder = self.machines.get(volume.attached_machine_id or "")
            if holder is not None and holder is not machine and holder.state != "destroyed":
                raise StubError(412, f"volume {volume.id} is already attached to machine {holder.id}")
            found.append(volume)
        return found

    def volume_create(self, app: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise StubError(400, "the request body must be a JSON object")
        name = body.get("name")
        if not isinstance(name, str) or not VOLUME_NAME.match(name):
            raise StubError(400, f"invalid volume name {name!r}: lowercase letters, digits and underscores, "
                                 "at most 30 characters")
        size = body.get("size_gb", 1)
        low, high = VOLUME_SIZE_GB
        if not isinstance(size, int) or isinstance(size, bool) or not low <= size <= high:
            raise StubError(400, f"invalid size_gb {size!r}: whole GB between {low} and {high}")
        region = body.get("region") or self.region
        if not isinstance(region, str) or not re.fullmatch(r"[a-z]{3}", region):
            raise StubError(400, f"invalid region {region!r}")
        if body.get("compute") is not None:
            validate_guest(body["compute"])
        volume = StubVolume(id="vol_" + ids.volume_suffix(), name=name, app=app, region=region, size_gb=size,
                            encrypted=body.get("encrypted") is not False)
        try:
            self.backend.create_volume(volume.id)
        except BackendError as exc:
            raise StubError(422, f"could not place the volume: {exc}", code="volume_placement_capacity") from None
        with self.lock:
            self.volumes[volume.id] = volume
            return volume.to_api()

    def volume_list(self, app: str) -> list[dict[str, Any]]:
        with self.lock:
            return [v.to_api() for v in self.volumes.values() if v.app == app and v.state != "destroyed"]

    def volume_get(self, app: str, volume_id: str) -> dict[str, Any]:
        with self.lock:
            return self._volume(app, volume_id).to_api()

    def volume_destroy(self, app: str, volume_id: str) -> dict[str, Any]:
        with self.lock:
            volume = self._volume(app, volume_id)
            if volume.gone:
                return volume.to_api()
            if volume.unreachable:
                raise StubError(503, f"the host of volume {volume.id} is unreachable")
            holder = self.machines.get(volume.attached_machine_id or "")
            if holder is not None and holder.state != "destroyed":
                raise StubError(412, f"volume {volume.id} is attached to machine {holder.id}; destroy the machine "
                                     "first")
            volume.state = "pending_destroy"  # listed for a while, as Fly does (fly-go filters it)
        self.backend.destroy_volume(volume.id)
        return volume.to_api()

    def _volume(self, app: str, volume_id: str) -> StubVolume:
        volume = self.volumes.get(volume_id)
        if volume is None or volume.app != app or volume.state == "destroyed":
            raise StubError(404, f"volume {volume_id} not found")
        return volume


# ---------------------------------------------------------------------- validation
def normalize_config(config: Any) -> dict[str, Any]:
    """Check a machine config as Fly does and fill the guest in, as Fly echoes it back."""
    if not isinstance(config, dict):
        raise StubError(400, "config is required and must be an object")
    image = config.get("image")
    if not isinstance(image, str) or not image.strip():
        raise StubError(400, "invalid config.image: an image reference is required")
    config = dict(config)
    guest, size = config.get("guest"), config.pop("size", None)
    if guest and size:
        raise StubError(400, "config.guest and config.size are mutually exclusive")
    if size:
        if size not in PRESET_SIZES:
            raise StubError(400, f"invalid size {size!r}: one of {', '.join(PRESET_SIZES)}")
        kind, cpus, memory = PRESET_SIZES[size]
        guest = {"cpu_kind": kind, "cpus": cpus, "memory_mb": memory}
    config["guest"] = validate_guest(guest or {})
    for name in ("env", "metadata"):
        value = config.get(name) or {}
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise StubError(400, f"config.{name} must map strings to strings")
        config[name] = dict(value)
    restart = config.get("restart")
    if restart is not None and (not isinstance(restart, dict) or restart.get("policy") not in RESTART_POLICIES):
        raise StubError(400, f"config.restart.policy must be one of {', '.join(RESTART_POLICIES)}")
    services = config.get("services")
    if services is not None and not isinstance(services, list):
        raise StubError(400, "config.services must be a list")
    mounts = config.get("mounts") or []
    if not isinstance(mounts, list) or not all(
            isinstance(m, dict) and isinstance(m.get("volume"), str) and isinstance(m.get("path"), str)
            and m["path"].startswith("/") for m in mounts):
        raise StubError(400, "config.mounts must be a list of {\"volume\": id, \"path\": absolute path}")
    if len(mounts) > 1:
        raise StubError(400, "a machine can mount one volume")
    rootfs = config.get("rootfs")
    if rootfs is not None and (not isinstance(rootfs, dict) or rootfs.get("persist", "never") != "never"):
        raise StubError(400, "config.rootfs.persist is not modelled by the stand-in (workspaces use volumes)")
    if "auto_destroy" in config and not isinstance(config["auto_destroy"], bool):
        raise StubError(400, "config.auto_destroy must be a boolean")
    return config


def suspend_refusal(config: dict[str, Any]) -> str:
    """Why Fly will not suspend a machine with this config ("" when it will).

    Fly suspends machines with at most 2 GB of memory, no swap and no schedule; the
    stand-in answers 412 otherwise (the status is its choice; Fly's docs name the rules).
    """
    guest = config.get("guest") or {}
    if int(guest.get("memory_mb") or 0) > SUSPEND_MAX_MEMORY_MB:
        return f"{guest.get('memory_mb')} MB of memory is more than {SUSPEND_MAX_MEMORY_MB} MB"
    if (config.get("init") or {}).get("swap_size_mb"):
        return "it has swap configured"
    if config.get("schedule"):
        return "it runs on a schedule"
    if guest.get("gpus"):
        return "it has GPUs"
    return ""


def validate_guest(guest: Any) -> dict[str, Any]:
    if not isinstance(guest, dict):
        raise StubError(400, "config.guest must be an object")
    kind = guest.get("cpu_kind") or "shared"
    if kind not in CPU_COUNTS:
        raise StubError(400, f"invalid cpu_kind {kind!r}: shared or performance")
    cpus = guest.get("cpus", 1)
    if not isinstance(cpus, int) or cpus not in CPU_COUNTS[kind]:
        raise StubError(400, f"invalid number of CPUs {cpus!r} for {kind}: one of "
                             f"{', '.join(map(str, CPU_COUNTS[kind]))}")
    low, high = MEMORY_PER_CPU[kind]
    memory = guest.get("memory_mb", low * cpus)
    step = MEMORY_STEP[kind]
    if not isinstance(memory, int) or memory % step:
        raise StubError(400, f"invalid memory size {memory!r}: {kind} CPUs take memory in multiples of {step} MB")
    if not low * cpus <= memory <= high * cpus:
        raise StubError(400, f"invalid memory size {memory} MB for {cpus} {kind} CPUs: between "
                             f"{low * cpus} and {high * cpus} MB")
    return {**guest, "cpu_kind": kind, "cpus": cpus, "memory_mb": memory}


def parse_duration(value: Any, default: float) -> float:
    """Go duration strings (``"30s"``, ``"1m30s"``, ``"500ms"``) or bare seconds."""
    if value in (None, ""):
        return default
    if not isinstance(value, str):
        raise StubError(400, f"invalid duration {value!r}: use a string such as \"30s\"")
    text = value.strip()
    if text.isdigit():
        return float(text)
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise StubError(400, f"invalid duration {value!r}: use a string such as \"30s\"")
    return total
