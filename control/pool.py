"""The warm pool: machines started ahead of demand, unconfigured, claimed by launches.

Machines are interchangeable until configured (config, relay token and secrets arrive at
configure time, never at start), so a launch that finds a ready machine of its class
skips machine start-up entirely and pays only for configuration. Refills run in the
background; a claimed machine that turns out dead is discarded and the next one tried.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Hashable
from dataclasses import dataclass

from control.machine_client import MachineClient
from control.providers.base import Machine, MachineSpec, Provider, ProviderError, ResourceLimits
from control.secrets import TokenMinter
from wire.errors import ApiError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PooledMachine:
    machine: Machine
    machine_key: str
    spec: MachineSpec


class WarmPool:
    def __init__(self, provider: Provider, minter: TokenMinter, size: int) -> None:
        self.provider = provider
        self.minter = minter
        self.size = size
        self._ready: dict[Hashable, list[PooledMachine]] = {}
        self._wanted: dict[Hashable, MachineSpec] = {}
        self._filling: set[Hashable] = set()
        self._lock = threading.Lock()
        self._closed = False

    @staticmethod
    def class_of(spec: MachineSpec) -> Hashable:
        return (spec.image, spec.resources, spec.network)

    def spec_for(self, image: str | None, resources: ResourceLimits, network: str = "relay") -> MachineSpec:
        key = f"pool-{uuid.uuid4().hex[:20]}"
        return MachineSpec(session_id=key, agent_id=key, machine_token=self.minter.machine_token(key),
                           image=image, resources=resources, network=network)

    def warm(self, image: str | None, resources: ResourceLimits, network: str = "relay") -> None:
        """Keep ``size`` machines of this class ready from now on."""
        if self.size <= 0:
            return
        template = self.spec_for(image, resources, network)
        with self._lock:
            self._wanted.setdefault(self.class_of(template), template)
        self._refill(self.class_of(template))

    def claim(self, image: str | None, resources: ResourceLimits, network: str = "relay") -> PooledMachine | None:
        """A ready machine of exactly this class (a machine's network policy is fixed when it
        starts, so a relay-only machine is never handed to a config that needs the internet)."""
        if self.size <= 0:
            return None
        wanted = self.spec_for(image, resources, network)
        cls = self.class_of(wanted)
        with self._lock:
            self._wanted.setdefault(cls, wanted)
        try:
            while True:
                with self._lock:
                    ready = self._ready.get(cls) or []
                    pooled = ready.pop(0) if ready else None
                if pooled is None:
                    return None
                if self._alive(pooled):
                    return pooled
                self._discard(pooled)
        finally:
            self._refill(cls)

    def ready_count(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._ready.values())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            machines = [m for ready in self._ready.values() for m in ready]
            self._ready.clear()
        for pooled in machines:
            self._discard(pooled)

    def _refill(self, cls: Hashable) -> None:
        with self._lock:
            if self._closed or cls in self._filling or len(self._ready.get(cls, [])) >= self.size:
                return
            self._filling.add(cls)
        threading.Thread(target=self._fill, args=(cls,), name="warm-pool", daemon=True).start()

    def _fill(self, cls: Hashable) -> None:
        try:
            while True:
                with self._lock:
                    if self._closed or len(self._ready.get(cls, [])) >= self.size:
                        return
                    template = self._wanted[cls]
                spec = self.spec_for(template.image, template.resources, template.network)
                try:
                    machine = self.provider.start(spec)
                except ProviderError as exc:
                    log.warning("warm pool could not start a machine: %s", exc.message)
                    return
                with self._lock:
                    if self._closed:
                        closed = True
                    else:
                        closed = False
                        self._ready.setdefault(cls, []).append(PooledMachine(machine, spec.session_id, spec))
                if closed:
                    self._discard(PooledMachine(machine, spec.session_id, spec))
                    return
        finally:
            with self._lock:
                self._filling.discard(cls)

    def _alive(self, pooled: PooledMachine) -> bool:
        try:
            health = MachineClient(pooled.machine.url, pooled.spec.machine_token).health()
            return not health.get("configured")
        except ApiError:
            return False

    def _discard(self, pooled: PooledMachine) -> None:
        try:
            self.provider.destroy(pooled.machine.machine_id)
        except ProviderError:
            log.warning("could not remove pool machine %s", pooled.machine.machine_id)


