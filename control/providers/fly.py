"""Fly Machines: one machine per session, reached over Fly's private network (6PN).

Lifecycle policy lives here; the HTTP surface lives in :mod:`control.providers.fly_api`.

Choices made on purpose:

- **Guest size** comes from the session's ``resource_limits`` and is rounded *up* to a size
  Fly sells (shared CPUs 1/2/4/6/8 with 256–2048 MB each, performance CPUs 1/2/4/8/16 with
  2048–8192 MB each, memory in 256 MB steps). A request no size can satisfy is rejected at
  launch (:meth:`FlyProvider.validate_resources`, a 400) instead of failing inside Fly later.
- **No services.** The machine has no public ports; the control plane reaches the agent at
  ``http://[private_ip]:8080`` over 6PN, and the agent checks its per-session token.
- **restart: no.** The control plane owns the lifecycle: a crashed agent must show up as
  ``stopped`` so the session is marked failed and the next chat re-configures it; a silent
  restart by flyd would leave an unconfigured agent behind a session that looks ready.
- **auto_destroy: false.** Idle machines are suspended and woken again; a machine that
  destroyed itself whenever its process exited would lose the session's workspace.
- **Env** carries the machine token and non-secret settings only. The user's key never
  leaves the control plane (DESIGN.md §7); names that would carry one are refused.
- **Idle = suspend** (memory and disk kept, resumes in a moment); if Fly refuses to suspend,
  stop instead (the root filesystem is then reset on the next start, as on Fly).
- **Every change is lease-guarded**, so two control planes (or a human with flyctl) never
  interleave stop/destroy on one machine; a lease held elsewhere is waited for, briefly.
- **Nothing leaks.** A machine that does not come up is destroyed before the error is
  raised; an ambiguous create (5xx, broken connection) is resolved by looking the session's
  machine up by metadata before trying again; start-up reconciliation lists by metadata.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from control.providers.base import (
    AGENT_PORT,
    MACHINE_TOKEN_ENV,
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
    FlyWaitTimeout,
    LeaseHeld,
)
from control.settings import Settings
from wire.errors import ValidationFailed

log = logging.getLogger(__name__)

ROLE_KEY = "agcluster_role"
ROLE = "session-machine"
SESSION_KEY = "agcluster_session"
AGENT_KEY = "agcluster_agent"

MEMORY_STEP_MB = 256
CPU_COUNTS = {"shared": (1, 2, 4, 6, 8), "performance": (1, 2, 4, 8, 16)}
MEMORY_PER_CPU_MB = {"shared": (256, 2048), "performance": (2048, 8192)}
GONE = ("destroying", "destroyed")
SECRET_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "FLY_API_TOKEN")


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
    when the memory needs them, and memory is raised to Fly's per-CPU minimum.
    """
    want_cpus = max(1, math.ceil(round(limits.cpus, 6)))
    want_memory = max(MEMORY_STEP_MB, math.ceil(limits.memory_mb / MEMORY_STEP_MB) * MEMORY_STEP_MB)
    for kind in ([cpu_kind] if cpu_kind else ["shared", "performance"]):
        low, high = MEMORY_PER_CPU_MB[kind]
        for cpus in CPU_COUNTS[kind]:
            if cpus >= want_cpus and want_memory <= high * cpus:
                return Guest(kind, cpus, max(want_memory, low * cpus))
    raise ValidationFailed(
        f"no Fly Machine size gives {limits.cpus:g} CPUs with {limits.memory_mb} MB: shared CPUs come in "
        "1, 2, 4, 6 or 8 with 256-2048 MB each, performance CPUs in 1, 2, 4, 8 or 16 with 2048-8192 MB each",
        details={"resource_limits": {"cpus": limits.cpus, "memory_mb": limits.memory_mb,
                                     "max_cpus": 16, "max_memory_mb": 16 * 8192}},
    )


def machine_address(private_ip: str, port: int = AGENT_PORT) -> str:
    """``http://[fdaa::3]:8080`` for 6PN (IPv6); plain for IPv4 (the stand-in's loopback)."""
    if not private_ip:
        raise ProviderError("Fly reported no private IP for the machine")
    host = f"[{private_ip}]" if ":" in private_ip else private_ip
    return f"http://{host}:{port}"


# --------------------------------------------------------------------------- the provider
class FlyProvider(Provider):
    name = "fly_machines"

    def __init__(self, api: FlyMachinesClient, *, image: str, relay_url: str, region: str = "",
                 max_upload_mb: int = 50, start_timeout: float = 180.0, stop_timeout: float = 30.0,
                 lease_ttl: int = 60, lease_wait: float = 30.0, create_attempts: int = 3,
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
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings) -> "FlyProvider":
        if not settings.relay_url:
            raise ProviderError(
                "RELAY_URL is required with CONTAINER_PROVIDER=fly_machines: machines reach the control plane's "
                "model relay over Fly's private network, e.g. RELAY_URL=http://<control-plane-app>.internal:8000/relay")
        # Fly sets FLY_APP_NAME in every machine to that machine's own app. If it still names
        # the control plane's app, agents would be created next to it and receive its secrets
        # (FLY_API_TOKEN included): Fly injects app secrets into every machine of an app.
        if os.environ.get("FLY_MACHINE_ID") and settings.fly_app_name == os.environ.get("FLY_APP_NAME"):
            raise ProviderError(
                f"session machines would run in the control plane's own Fly app ({settings.fly_app_name}) and "
                "receive its secrets; create a separate agents app and set AGCLUSTER_AGENTS_APP to its name")
        api = FlyMachinesClient(settings.fly_app_name, settings.fly_api_token, settings.machines_api_url)
        return cls(api, image=settings.agent_image, relay_url=settings.relay_url, region=settings.fly_region,
                   max_upload_mb=settings.max_upload_mb)

    # Provider API ---------------------------------------------------------------------
    def validate_resources(self, limits: ResourceLimits) -> None:
        guest_for(limits)

    def machine_config(self, spec: MachineSpec) -> dict[str, Any]:
        """The whole machine config; the one place that decides what a session machine is."""
        leaked = sorted(set(spec.env) & set(SECRET_ENV))
        if leaked:
            raise ProviderError(f"refusing to put {', '.join(leaked)} into a machine's environment")
        return {
            "image": spec.image or self.image,
            "guest": guest_for(spec.resources).as_config(),
            "env": {**spec.env, MACHINE_TOKEN_ENV: spec.machine_token, "MAX_UPLOAD_MB": str(self.max_upload_mb)},
            "metadata": {ROLE_KEY: ROLE, SESSION_KEY: spec.session_id, AGENT_KEY: spec.agent_id},
            "services": [],
            "restart": {"policy": "no"},
            "auto_destroy": False,
        }

    def start(self, spec: MachineSpec) -> Machine:
        """Create (or re-use this session's) machine and return once its agent is healthy."""
        config = self.machine_config(spec)
        deadline = time.monotonic() + self.start_timeout
        last_error = "no attempt made"
        for _attempt in range(self.create_attempts):
            machine = self._reusable_machine(spec.session_id, config["image"])
            if machine is None:
                try:
                    machine = self.api.create_machine(config, name=f"agcluster-{spec.session_id}",
                                                      region=self.region or None)
                except (FlyServerError, FlyConnectionError) as exc:
                    # Fly may have created it anyway: the next round finds it by metadata.
                    last_error = exc.message
                    continue
                except FlyCapacityError as exc:
                    size = Guest(**config["guest"]).size_name
                    where = f" in {self.region}" if self.region else ""
                    raise ProviderError(f"Fly has no capacity for a {size} machine{where} right now; try again, "
                                        f"another FLY_REGION or smaller resource_limits ({exc.message})",
                                        retryable=True) from None
                except FlyApiError as exc:
                    raise _provider_error("create the machine", exc) from None
            return self._bring_up(machine, spec.machine_token, deadline)
        raise ProviderError(f"could not create a Fly machine: {last_error}", retryable=True)

    def resume(self, machine_id: str) -> Machine:
        """Start a suspended or stopped machine again and wait for its agent."""
        deadline = time.monotonic() + self.start_timeout
        try:
            machine = self.api.get_machine(machine_id)
        except FlyApiError as exc:
            raise _provider_error("find the machine", exc) from None
        if machine.state in GONE:
            raise ProviderError(f"machine {machine_id} no longer exists")
        return self._bring_up(machine, machine.env.get(MACHINE_TOKEN_ENV, ""), deadline, discard_on_failure=False)

    def suspend(self, machine_id: str) -> None:
        """Suspend for idleness (memory and disk kept); stop if Fly cannot suspend it."""
        try:
            with self._lease(machine_id, "suspend") as nonce:
                machine = self.api.get_machine(machine_id)
                if machine.state in ("suspended", "stopped", *GONE):
                    return
                try:
                    self.api.suspend_machine(machine_id, nonce=nonce)
                    self.api.wait_machine(machine_id, "suspended", instance_id=machine.instance_id,
                                          timeout=self.stop_timeout)
                    return
                except FlyNotFound:
                    raise
                except FlyApiError as exc:
                    log.info("could not suspend machine %s (%s); stopping it instead", machine_id, exc.message)
                self.api.stop_machine(machine_id, signal="SIGTERM", timeout=10, nonce=nonce)
                self.api.wait_machine(machine_id, "stopped", instance_id=machine.instance_id,
                                      timeout=self.stop_timeout)
        except FlyNotFound:
            return
        except FlyApiError as exc:
            raise _provider_error("suspend the machine", exc) from None

    def destroy(self, machine_id: str) -> None:
        """Stop, then destroy (forced if the clean way fails). Idempotent: gone is done."""
        try:
            with self._lease(machine_id, "destroy") as nonce:
                machine = self.api.get_machine(machine_id)
                if machine.state in GONE:
                    return
                if machine.state not in ("stopped", "created", "failed"):
                    try:
                        self.api.stop_machine(machine_id, signal="SIGTERM", timeout=10, nonce=nonce)
                        self.api.wait_machine(machine_id, "stopped", instance_id=machine.instance_id,
                                              timeout=self.stop_timeout)
                    except FlyNotFound:
                        raise
                    except FlyApiError as exc:
                        log.info("machine %s did not stop cleanly (%s); destroying with force", machine_id,
                                 exc.message)
                try:
                    self.api.destroy_machine(machine_id, nonce=nonce)
                except FlyNotFound:
                    raise
                except FlyApiError:
                    self.api.destroy_machine(machine_id, force=True, nonce=nonce)
            self._await_destroyed(machine_id)
        except FlyNotFound:
            return
        except FlyApiError as exc:
            raise _provider_error("destroy the machine", exc) from None

    def inspect(self, machine_id: str) -> Machine | None:
        try:
            machine = self.api.get_machine(machine_id)
        except FlyNotFound:
            return None
        except FlyApiError as exc:
            raise _provider_error("inspect the machine", exc) from None
        return None if machine.state in GONE else self._as_machine(machine)

    def list_machines(self) -> list[Machine]:
        try:
            machines = self.api.list_machines(metadata={ROLE_KEY: ROLE})
        except FlyApiError as exc:
            raise _provider_error("list machines", exc) from None
        return [self._as_machine(m) for m in machines if m.state not in GONE]

    def relay_url(self) -> str:
        return self._relay_url

    def close(self) -> None:
        self.api.close()

    # internals ------------------------------------------------------------------------
    def _reusable_machine(self, session_id: str, image: str) -> FlyMachine | None:
        """This session's machine if it can serve again; any other leftovers are destroyed.

        Makes ``start`` idempotent per session: a wake after a stop, or a retry after an
        ambiguous create, reuses the machine instead of creating a second one.
        """
        try:
            found = [m for m in self.api.list_machines(metadata={SESSION_KEY: session_id}) if m.state not in GONE]
        except FlyApiError as exc:
            raise _provider_error("list the session's machines", exc) from None
        keep = None
        for machine in found:
            if keep is None and machine.image == image and machine.state != "failed":
                keep = machine
            else:
                self.destroy(machine.id)
        return keep

    def _bring_up(self, machine: FlyMachine, token: str, deadline: float, *,
                  discard_on_failure: bool = True) -> Machine:
        try:
            with self._lease(machine.id, "start") as nonce:
                current = self._settle(machine.id)
                if current.state in ("stopped", "suspended", "failed"):
                    self.api.start_machine(machine.id, nonce=nonce, ready_timeout=_left(deadline))
                self.api.wait_machine(machine.id, "started", instance_id=current.instance_id or None,
                                      timeout=_left(deadline))
            current = self.api.get_machine(machine.id)
            url = machine_address(current.private_ip)
            wait_healthy(url, token, _left(deadline), alive=self._alive(machine.id))
            return Machine(current.id, url, "started", current.metadata.get(SESSION_KEY))
        except (FlyApiError, ProviderError) as exc:
            state = self._state_of(machine.id) if isinstance(exc, FlyWaitTimeout) else ""
            if discard_on_failure:
                self._discard(machine.id)
            if isinstance(exc, FlyWaitTimeout):
                raise ProviderError(f"the Fly machine did not start in {self.start_timeout:.0f}s "
                                    f"(it stayed {state})", retryable=True) from None
            if isinstance(exc, FlyApiError):
                raise _provider_error("start the machine", exc) from None
            raise

    def _settle(self, machine_id: str) -> FlyMachine:
        """The machine, once a stop or suspend in flight has finished (a start would be refused)."""
        machine = self.api.get_machine(machine_id)
        target = {"stopping": "stopped", "suspending": "suspended"}.get(machine.state)
        if target:
            self.api.wait_machine(machine_id, target, instance_id=machine.instance_id, timeout=self.stop_timeout)
            machine = self.api.get_machine(machine_id)
        return machine

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

    def _discard(self, machine_id: str) -> None:
        try:
            self.destroy(machine_id)
        except ProviderError as exc:
            log.warning("could not remove machine %s after a failed start (%s); start-up reconciliation "
                        "will remove it", machine_id, exc.message)

    def _await_destroyed(self, machine_id: str) -> None:
        try:
            self.api.wait_machine(machine_id, "destroyed", timeout=self.stop_timeout)
        except FlyNotFound:
            pass
        except FlyWaitTimeout:
            log.warning("machine %s is still being destroyed", machine_id)

    def _state_of(self, machine_id: str) -> str:
        try:
            return self.api.get_machine(machine_id).state or "unknown"
        except FlyApiError:
            return "unknown"

    @contextmanager
    def _lease(self, machine_id: str, purpose: str) -> Iterator[str]:
        """Hold the machine's lease for one change; wait a little if someone else holds it."""
        deadline = time.monotonic() + self.lease_wait
        attempt = 0
        while True:
            try:
                lease = self.api.acquire_lease(machine_id, ttl=self.lease_ttl, description=f"agcluster {purpose}")
                break
            except LeaseHeld as exc:
                if time.monotonic() >= deadline:
                    raise ProviderError(f"machine {machine_id} is leased by another process, so AgCluster cannot "
                                        f"{purpose} it now; try again when the lease expires ({exc.message})",
                                        retryable=True) from None
                self._sleep(min(2.0, random.uniform(0.05, 0.2 * 2 ** min(attempt, 4))))
                attempt += 1
        try:
            yield lease.nonce
        finally:
            try:
                self.api.release_lease(machine_id, lease.nonce)
            except FlyNotFound:
                pass  # the machine went away, and its lease with it
            except FlyApiError as exc:
                log.warning("could not release the lease on %s (%s); it expires in %ss", machine_id,
                            exc.message, self.lease_ttl)

    def _as_machine(self, machine: FlyMachine) -> Machine:
        url = machine_address(machine.private_ip) if machine.private_ip else ""
        return Machine(machine.id, url, machine.state, machine.metadata.get(SESSION_KEY))


def _left(deadline: float) -> float:
    return max(1.0, deadline - time.monotonic())


def _provider_error(doing: str, exc: FlyApiError) -> ProviderError:
    retryable = isinstance(exc, (FlyRateLimited, FlyServerError, FlyConnectionError, FlyWaitTimeout,
                                 FlyCapacityError, LeaseHeld))
    return ProviderError(f"could not {doing} on Fly: {exc.message}", retryable=retryable)
