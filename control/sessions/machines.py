"""A session's machine: start it, configure it, wake it, reach it and remove it.

The per-session state kept here (pooled HTTP connections, wake locks, MCP credentials) is
freed by :meth:`Machines.forget` when the session is deleted, so it never outgrows the set
of live sessions.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from control import metrics, unixhttp
from control.machine_client import MachineClient
from control.pool import PooledMachine, WarmPool
from control.providers.base import MachineSpec, Provider, ProviderError, ResourceLimits
from control.secrets import REDACTOR, TokenMinter
from control.session_status import SessionStatus
from control.sessions.caller import Grant
from control.settings import Settings, parse_size_mb
from control.store import SessionRow, Store
from wire.errors import ApiError, NotFound, Unavailable

log = logging.getLogger(__name__)


def network_of(config: dict[str, Any]) -> str:
    return "internet" if config.get("network") == "internet" else "relay"


class Machines:
    def __init__(self, *, settings: Settings, store: Store, provider: Provider, minter: TokenMinter,
                 pool: WarmPool) -> None:
        self.settings = settings
        self.store = store
        self.provider = provider
        self.minter = minter
        self.pool = pool
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._http: dict[str, tuple[str, unixhttp.Session]] = {}
        # MCP credentials are secrets: memory only, like the user's key.
        self._mcp_env: dict[str, dict[str, dict[str, str]]] = {}

    # start and configure -------------------------------------------------------------
    def resource_limits(self, config: dict[str, Any]) -> ResourceLimits:
        limits = config.get("resource_limits") or {}
        cpu_quota = int(limits.get("cpu_quota") or self.settings.container_cpu_quota)
        memory, storage = limits.get("memory_limit"), limits.get("storage_limit")
        return ResourceLimits(
            cpus=cpu_quota / 100_000,
            memory_mb=parse_size_mb(memory) if memory else self.settings.container_memory_limit_mb,
            storage_mb=parse_size_mb(storage) if storage else self.settings.container_storage_limit_mb,
        )

    def enforcement(self, config: dict[str, Any]) -> tuple[dict[str, str | None], list[str]]:
        """How the provider enforces this config's limits and network policy, and a warning
        for each it cannot: a launch says so plainly instead of pretending (docs/SECURITY.md)."""
        network = network_of(config)
        enforced = self.provider.enforcement(network)
        limits = self.resource_limits(config)
        asked = {"memory": f"memory_limit {limits.memory_mb} MB", "cpu": f"cpu {limits.cpus:g}",
                 "pids": f"at most {limits.pids} processes",
                 "storage": f"storage_limit {limits.storage_mb} MB" if limits.storage_mb else None,
                 "network": "network: relay (no internet)" if network == "relay" else None}
        warnings = [f"{what} is not enforced by the {self.provider.name} provider here"
                    for name, what in asked.items() if what and not enforced.get(name)]
        return enforced, warnings

    def remember_mcp_env(self, session_id: str, mcp_env: dict[str, dict[str, str]]) -> None:
        self._mcp_env[session_id] = mcp_env

    def warm_up(self, presets: dict[str, dict[str, Any]]) -> None:
        """Fill the pool: machines configured ahead for each ``WARM_POOL`` preset, and warm
        (unconfigured) ones of the default preset's class."""
        for preset in self.pool.hot:
            config = presets[preset]
            self.pool.keep_hot(preset, config, self.resource_limits(config))
        default = presets.get("code-assistant")
        if default is not None:
            self.pool.warm(default.get("image") or None, self.resource_limits(default), network_of(default))

    def bring_up(self, row: SessionRow, limits: ResourceLimits) -> None:
        """A new session's first machine: a hot one configured for its preset, else a warm one
        from the pool if one fits, else a fresh one. A launch with MCP secrets never gets a
        hot machine (its CLI must start with them)."""
        if not self._mcp_env.get(row.id):
            hot = self.pool.claim_hot(row.config_id, row.config)
            if hot is not None:
                self._bind(row, hot)
                return
        pooled = self.pool.claim(row.config.get("image") or None, limits, network_of(row.config))
        if pooled is None:
            self.start(row, limits)
        else:
            self._adopt(row, pooled)

    def _bind(self, row: SessionRow, pooled: PooledMachine) -> None:
        """Claim a hot machine: one row update names it the session's machine, which is also
        what opens its relay token (the relay maps the machine key to this session and its
        owner's key). Nothing is sent to the machine; its CLI keeps running."""
        self.store.set_status(row.id, SessionStatus.RUNNING, machine_key=pooled.machine_key,
                              machine_id=pooled.machine.machine_id, machine_url=pooled.machine.url,
                              last_active_at=time.time())
        self._session_http(row.id, pooled.machine.url)

    def _adopt(self, row: SessionRow, pooled: PooledMachine) -> None:
        try:
            self.store.update_session(row.id, machine_key=pooled.machine_key, machine_id=pooled.machine.machine_id,
                                      machine_url=pooled.machine.url)
            http = self._session_http(row.id, pooled.machine.url)
            client = MachineClient(pooled.machine.url, pooled.spec.machine_token, http)
            self._configure(self._row(row.id), client)
        finally:
            self.pool.replenish(pooled)  # only now: a refill started at the claim competed with this configure

    def start(self, row: SessionRow, limits: ResourceLimits | None = None) -> MachineClient:
        """Start (or restart) the session's machine and configure it; resumes the conversation."""
        # Providers name a machine's storage after spec.session_id: the machine key keeps a
        # woken machine on the same workspace, including one first claimed from the pool.
        spec = MachineSpec(
            session_id=row.machine_key, agent_id=row.agent_id, machine_token=self.minter.machine_token(row.machine_key),
            image=row.config.get("image") or None, resources=limits or self.resource_limits(row.config),
            network=network_of(row.config),
        )
        machine = self.provider.start(spec)
        detail = row.status_detail if row.status is SessionStatus.STARTING else ""  # e.g. "waking the machine"
        self.store.set_status(row.id, SessionStatus.STARTING, detail, machine_id=machine.machine_id,
                              machine_url=machine.url)
        client = MachineClient(machine.url, spec.machine_token, self._session_http(row.id, machine.url))
        self._configure(row, client)
        return client

    def _configure(self, row: SessionRow, client: MachineClient) -> None:
        client.configure({
            "session_id": row.id,
            "config": row.config,
            "relay_url": self.provider.relay_url(),
            "relay_token": self.minter.relay_token(row.machine_key),
            "mcp_env": self._mcp_env.get(row.id, {}),
            "resume": row.claude_session_id,
        })
        self.store.set_status(row.id, SessionStatus.RUNNING, last_active_at=time.time())

    # reach and wake -----------------------------------------------------------------
    def client(self, row: SessionRow) -> MachineClient:
        if not row.machine_url:
            raise Unavailable("the session has no running machine", code="machine_not_running")
        return MachineClient(row.machine_url, self.minter.machine_token(row.machine_key),
                             self._session_http(row.id, row.machine_url))

    def ensure(self, session_id: str) -> MachineClient:
        """Wake a stopped or lost machine transparently; the CLI resumes the conversation."""
        with self.lock(session_id):
            row = self._row(session_id)
            machine = self.provider.inspect(row.machine_id) if row.machine_id else None
            if machine is not None and machine.state == "started" and row.machine_url:
                client = self.client(row)
                try:
                    if client.health().get("configured"):
                        return client
                except ApiError:
                    pass
            self.store.set_status(session_id, SessionStatus.STARTING, "waking the machine")
            try:
                if machine is not None and machine.state in ("stopped", "suspended") and row.provider != "local":
                    resumed = self.provider.resume(row.machine_id or "")
                    self.store.update_session(session_id, machine_url=resumed.url)
                    client = self.client(self._row(session_id))
                    if client.health().get("configured"):
                        self.store.set_status(session_id, SessionStatus.RUNNING)
                        return client
                return self.start(self._row(session_id))
            except ProviderError as exc:
                metrics.count_provider_error(self.provider.name, "wake")
                self.store.set_status(session_id, SessionStatus.FAILED, exc.message)
                raise Unavailable(f"could not wake the session's machine: {exc.message}",
                                  code="machine_start_failed") from None
            except ApiError as exc:
                # Started but not configurable (unreachable, refused): failed, not starting forever.
                self.store.set_status(session_id, SessionStatus.FAILED, f"{exc.code}: {exc.message}")
                raise

    def reach(self, grant: Grant) -> MachineClient:
        """The session's machine for a caller (the file routes), woken if it sleeps."""
        return self.ensure(grant.session_id)

    def suspend(self, row: SessionRow) -> None:
        """Stop the machine, keeping its storage (raises ProviderError)."""
        if row.machine_id:
            self.disconnect(row.id)
            self.provider.suspend(row.machine_id)

    def destroy(self, row: SessionRow) -> None:
        """Remove the session's machine (raises ProviderError)."""
        if row.machine_id:
            self.disconnect(row.id)
            self.provider.destroy(row.machine_id)

    def disconnect(self, session_id: str) -> None:
        """Close our pooled connections to the session's machine while it can still answer
        (why that matters: :class:`control.unixhttp.Session`)."""
        with self._guard:
            http = self._http.pop(session_id, None)
        if http is not None:
            http[1].close()

    # remove -------------------------------------------------------------------------
    def remove(self, row: SessionRow, attempts: int = 1) -> bool:
        """Destroy the session's machine, and any machine labelled with its key that a failed
        start created but never reported (a create whose answer was lost, say)."""
        targets = {row.machine_id} if row.machine_id else set()
        self.disconnect(row.id)
        try:
            targets |= {m.machine_id for m in self.provider.list_machines() if m.session_id == row.machine_key}
        except ProviderError:
            return False
        for machine_id in targets:
            for attempt in range(attempts):
                try:
                    self.provider.destroy(machine_id)
                    break
                except ProviderError:
                    if attempt == attempts - 1:
                        return False
                    time.sleep(0.5 * 2 ** attempt)
        return True

    def forget(self, session_id: str) -> None:
        """Free what this process kept for a session that no longer exists."""
        with self._guard:
            self._locks.pop(session_id, None)
            mcp_env = self._mcp_env.pop(session_id, None) or {}
        self.disconnect(session_id)
        for values in mcp_env.values():  # known to the log redactor since the launch admitted them
            for value in values.values():
                REDACTOR.discard(value)

    def lock(self, session_id: str) -> threading.Lock:
        """Held while a machine is started, woken or stopped, so those never interleave."""
        with self._guard:
            return self._locks.setdefault(session_id, threading.Lock())

    def held_state(self) -> dict[str, int]:
        """How much per-session state is held (for tests and debugging)."""
        with self._guard:
            return {"locks": len(self._locks), "http": len(self._http), "mcp_env": len(self._mcp_env)}

    # helpers ------------------------------------------------------------------------
    def _row(self, session_id: str) -> SessionRow:
        row = self.store.get_session(session_id)
        if row is None:
            raise NotFound(f"no session {session_id!r}", details={"session_id": session_id})
        return row

    def _session_http(self, session_id: str, url: str) -> unixhttp.Session:
        """One pooled HTTP session per session's machine: no new TCP connection per chat.
        A machine that moved (woken elsewhere) gets a fresh one; the old one is closed."""
        stale = None
        with self._guard:
            known = self._http.get(session_id)
            if known is not None and known[0] == url:
                return known[1]
            if known is not None:
                stale = known[1]
            http = unixhttp.Session()
            self._http[session_id] = (url, http)
        if stale is not None:
            stale.close()
        return http
