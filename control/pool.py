"""Machines started ahead of demand: warm (started, unconfigured) and hot (configured for a preset).

* **Warm** machines are interchangeable within their class (image, resources, network
  policy): nothing about a session reaches a machine before configure, so a launch that
  claims one skips the machine's start and pays only for configure. One counts as ready
  once its agent has imported the SDK (``/prepare``), so configure pays only the CLI's start.
* **Hot** machines go one step further: they are configured for one preset ahead of time,
  CLI running, with the relay token of their own machine key. That token is useless until a
  launch claims the machine: the relay maps a machine key to the session that claimed it
  (``Store.session_for_machine``) and refuses a key no session names, before the claim and
  again after the session is deleted. A claim attaches the session id, the relay mapping and
  the owner in one row update; the CLI is not restarted and the user's key never enters the
  machine. A hot machine is handed only to a launch of exactly its preset (same id, same
  content) without ``mcp_env``; anything else takes the warm or cold path.

Refills run in the background and never hold a launch up: a claim that finds nothing ready
returns at once. A claimed machine that turns out dead is discarded and the next one tried.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from control.machine_client import MachineClient
from control.providers.base import Machine, MachineSpec, Provider, ProviderError, ResourceLimits
from control.secrets import TokenMinter
from control.settings import SettingsError
from wire.errors import ApiError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PooledMachine:
    machine: Machine
    machine_key: str
    spec: MachineSpec
    preset: str | None = None
    """The preset a hot machine is configured for; None for a warm one."""


@dataclass(frozen=True)
class _HotClass:
    preset: str
    config: str
    """The preset's content (canonical JSON): a changed preset is another class."""


@dataclass(frozen=True)
class _Want:
    """A class of pooled machine: how to start one, and for hot ones what to configure."""

    template: MachineSpec
    size: int
    preset: str | None = None
    config: Mapping[str, Any] | None = None


def hot_eligible(config: Mapping[str, Any]) -> str | None:
    """Why a preset cannot be kept hot (None when it can)."""
    from control.config_schema import declared_mcp_keys

    if config.get("image"):
        return "it runs an image of its own"
    if any(declared_mcp_keys(server) for server in (config.get("mcp_servers") or {}).values()):
        return "its MCP servers take per-user secrets (mcp_env)"
    return None


def hot_presets(sizes: tuple[tuple[str, int], ...], presets: Mapping[str, dict[str, Any]]) -> dict[str, int]:
    """``WARM_POOL``'s presets checked against the catalog (a bad one stops start-up)."""
    for preset, _n in sizes:
        config = presets.get(preset)
        if config is None:
            raise SettingsError(f"WARM_POOL names {preset!r}, which is not a preset ({', '.join(sorted(presets))})")
        why = hot_eligible(config)
        if why:
            raise SettingsError(f"WARM_POOL: {preset!r} cannot be kept configured ahead because {why}; "
                                "its launches take the warm path (WARM_POOL's *)")
    return dict(sizes)


def config_key(config: Mapping[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


class WarmPool:
    def __init__(self, provider: Provider, minter: TokenMinter, size: int,
                 hot: Mapping[str, int] | None = None) -> None:
        self.provider = provider
        self.minter = minter
        self.size = size
        self.hot = dict(hot or {})
        self._ready: dict[Hashable, list[PooledMachine]] = {}
        self._wanted: dict[Hashable, _Want] = {}
        self._filling: set[Hashable] = set()
        self._fills: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._closed = False

    @staticmethod
    def class_of(spec: MachineSpec) -> Hashable:
        return (spec.image, spec.resources, spec.network)

    @staticmethod
    def hot_class_of(preset: str, config: Mapping[str, Any]) -> Hashable:
        return _HotClass(preset, config_key(config))

    def spec_for(self, image: str | None, resources: ResourceLimits, network: str = "relay") -> MachineSpec:
        key = f"pool-{uuid.uuid4().hex[:20]}"
        return MachineSpec(session_id=key, agent_id=key, machine_token=self.minter.machine_token(key),
                           image=image, resources=resources, network=network)

    # warm -----------------------------------------------------------------------------
    def warm(self, image: str | None, resources: ResourceLimits, network: str = "relay") -> None:
        """Keep ``size`` unconfigured machines of this class ready from now on."""
        if self.size <= 0:
            return
        template = self.spec_for(image, resources, network)
        cls = self.class_of(template)
        with self._lock:
            self._wanted.setdefault(cls, _Want(template, self.size))
        self._refill(cls)

    def claim(self, image: str | None, resources: ResourceLimits, network: str = "relay") -> PooledMachine | None:
        """A ready, unconfigured machine of exactly this class (a machine's network policy is
        fixed when it starts, so a relay-only machine is never handed to a config that needs
        the internet)."""
        if self.size <= 0:
            return None
        wanted = self.spec_for(image, resources, network)
        cls = self.class_of(wanted)
        with self._lock:
            self._wanted.setdefault(cls, _Want(wanted, self.size))
        return self._take(cls, refill=False)

    def replenish(self, pooled: PooledMachine) -> None:
        """Start replacing a claimed warm machine; its claimer calls this once the launch is
        done. Started at the claim, the replacement's start and SDK import ran beside the
        launch's own CLI start and slowed it on a small host."""
        self._refill(self.class_of(pooled.spec))

    # hot ------------------------------------------------------------------------------
    def keep_hot(self, preset: str, config: Mapping[str, Any], resources: ResourceLimits) -> None:
        """Keep this preset's ``WARM_POOL`` count of machines configured for it from now on."""
        size = self.hot.get(preset, 0)
        if size <= 0:
            return
        network = "internet" if config.get("network") == "internet" else "relay"
        cls = self.hot_class_of(preset, config)
        with self._lock:
            self._wanted.setdefault(cls, _Want(self.spec_for(None, resources, network), size, preset, config))
        self._refill(cls)

    def claim_hot(self, preset: str, config: Mapping[str, Any]) -> PooledMachine | None:
        """A machine already configured for exactly this preset's config, or None at once."""
        if self.hot.get(preset, 0) <= 0:
            return None
        cls = self.hot_class_of(preset, config)
        with self._lock:
            if cls not in self._wanted:
                return None  # a config that merely borrows a preset's id: never a hot machine
        return self._take(cls)

    # both -----------------------------------------------------------------------------
    def _take(self, cls: Hashable, *, refill: bool = True) -> PooledMachine | None:
        """The first live ready machine of ``cls``. Without ``refill`` the pool is refilled
        only when nothing was found; otherwise the claimer asks for it (:meth:`replenish`)."""
        pooled = None
        try:
            while True:
                with self._lock:
                    ready = self._ready.get(cls) or []
                    pooled = ready.pop(0) if ready else None
                if pooled is None or self._alive(pooled):
                    return pooled
                self._discard(pooled)
        finally:
            if refill or pooled is None:
                self._refill(cls)

    def ready_count(self) -> int:
        """Warm machines ready (hot ones are counted by :meth:`hot_counts`)."""
        with self._lock:
            return sum(len(v) for cls, v in self._ready.items() if not isinstance(cls, _HotClass))

    def hot_counts(self) -> dict[str, dict[str, int]]:
        with self._lock:
            ready = {want.preset: len(self._ready.get(cls, [])) for cls, want in self._wanted.items() if want.preset}
        return {preset: {"size": size, "ready": ready.get(preset, 0)} for preset, size in self.hot.items()}

    def close(self, wait: float = 20.0) -> None:
        """Remove every ready machine, after letting fills in progress finish (each removes
        what it started once it sees the pool closed): a machine mid-creation when the
        process exits would otherwise outlive it, unknown to anyone."""
        with self._lock:
            self._closed = True
            machines = [m for ready in self._ready.values() for m in ready]
            self._ready.clear()
            fills = list(self._fills)
        for pooled in machines:
            self._discard(pooled)
        deadline = time.monotonic() + wait
        for fill in fills:
            fill.join(max(0.0, deadline - time.monotonic()))

    def _refill(self, cls: Hashable) -> None:
        with self._lock:
            want = self._wanted.get(cls)
            if (self._closed or want is None or cls in self._filling
                    or len(self._ready.get(cls, [])) >= want.size):
                return
            self._filling.add(cls)
            fill = threading.Thread(target=self._fill, args=(cls,), name="warm-pool", daemon=True)
            self._fills.add(fill)
            fill.start()  # under the lock: close() never sees a fill it cannot join

    def _fill(self, cls: Hashable) -> None:
        try:
            while True:
                with self._lock:
                    want = self._wanted[cls]
                    if self._closed or len(self._ready.get(cls, [])) >= want.size:
                        return
                template = want.template
                spec = self.spec_for(template.image, template.resources, template.network)
                try:
                    pooled = self._prepare(spec, want)
                except (ProviderError, ApiError) as exc:
                    log.warning("the pool could not prepare a machine: %s", getattr(exc, "message", exc))
                    return
                with self._lock:
                    closed = self._closed
                    if not closed:
                        self._ready.setdefault(cls, []).append(pooled)
                if closed:
                    self._discard(pooled)
                    return
        finally:
            with self._lock:
                self._filling.discard(cls)
                self._fills.discard(threading.current_thread())

    def _prepare(self, spec: MachineSpec, want: _Want) -> PooledMachine:
        """Start a machine; a hot one is also configured, and counts as ready only once its
        CLI is up (the agent answers /health long before that)."""
        machine = self.provider.start(spec)
        pooled = PooledMachine(machine, spec.session_id, spec, want.preset)
        with MachineClient(machine.url, spec.machine_token) as client:
            if want.config is None:
                try:
                    client.request("POST", "/prepare", timeout=120)  # the SDK imported: configure pays only the CLI
                except ApiError as exc:
                    if exc.status != 404:  # an older agent without /prepare is ready as it is
                        self._discard(pooled)
                        raise
                return pooled
            try:
                client.configure({
                    "session_id": spec.session_id, "config": dict(want.config), "relay_url": self.provider.relay_url(),
                    "relay_token": self.minter.relay_token(spec.session_id), "mcp_env": {}, "resume": None,
                })
            except ApiError:
                self._discard(pooled)
                raise
        return pooled

    def _alive(self, pooled: PooledMachine) -> bool:
        """Still the machine it was when it joined the pool: up, and configured (idle) only if hot."""
        try:
            with MachineClient(pooled.machine.url, pooled.spec.machine_token) as client:
                health = client.health()
        except ApiError:
            return False
        if pooled.preset is None:
            return not health.get("configured")
        return bool(health.get("configured")) and not health.get("busy") \
            and health.get("session_id") == pooled.machine_key


    def _discard(self, pooled: PooledMachine) -> None:
        try:
            self.provider.destroy(pooled.machine.machine_id)
        except ProviderError:
            log.warning("could not remove pool machine %s", pooled.machine.machine_id)
