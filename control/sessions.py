"""The session service: launch, authorise, chat, interrupt, delete, wake and reconcile.

Routes stay thin; every rule about a session's life lives here, so the REST routes, the
relay and start-up reconciliation all go through one place.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import requests

from control import metrics
from control.configs import ConfigCatalog, admit_mcp_env
from control.machine_client import MachineClient, MachineUnreachable
from control.pool import WarmPool
from control.providers.base import MachineSpec, Provider, ProviderError, ResourceLimits
from control.secrets import KeyVault, TokenMinter, hash_key, key_matches
from control.session_status import LIVE, IllegalTransition, SessionStatus
from control.settings import Settings, parse_size_mb
from control.store import SessionRow, Store
from control.turns import TurnHub
from wire.errors import ApiError, Conflict, Forbidden, NotFound, Unauthorized, Unavailable
from wire.events import make_event

log = logging.getLogger(__name__)


class SessionService:
    def __init__(self, settings: Settings, store: Store, provider: Provider, catalog: ConfigCatalog,
                 vault: KeyVault, minter: TokenMinter, pool: WarmPool | None = None) -> None:
        self.settings = settings
        self.pool = pool or WarmPool(provider, minter, 0)
        self.store = store
        self.provider = provider
        self.catalog = catalog
        self.vault = vault
        self.minter = minter
        self.hub = TurnHub(store, observer=self._observe)
        self._wake_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._http_sessions: dict[str, requests.Session] = {}
        # MCP credentials are secrets: memory only, like the user's key.
        self._mcp_env: dict[str, dict[str, dict[str, str]]] = {}

    # launch ---------------------------------------------------------------------------
    @metrics.timed_launch
    def launch(self, api_key: str, config_id: str | None, inline: dict[str, Any] | None,
               mcp_env: dict[str, dict[str, str]], owner: str | None = None) -> SessionRow:
        config = self.catalog.get(config_id) if config_id else self.catalog.validate_inline(inline)
        admit_mcp_env(config, mcp_env)
        limits = self.resource_limits(config)
        self.provider.validate_resources(limits)
        now = time.time()
        session_id = str(uuid.uuid4())
        salt, key_hash = hash_key(api_key)
        row = SessionRow(
            id=session_id, agent_id=f"agent-{uuid.uuid4().hex[:12]}", config_id=config["id"],
            config_json=_json(config), provider=self.provider.name, machine_id=None, machine_url=None,
            status=SessionStatus.STARTING, status_detail="", key_salt=salt, key_hash=key_hash, claude_session_id=None,
            created_at=now, last_active_at=now, machine_key=session_id, owner=owner,
        )
        self.store.insert_session(row)
        self.vault.put(session_id, api_key)
        self._mcp_env[session_id] = mcp_env
        try:
            pooled = self.pool.claim(config.get("image") or None, limits)
            if pooled is not None:
                self.store.update_session(session_id, machine_key=pooled.machine_key,
                                          machine_id=pooled.machine.machine_id, machine_url=pooled.machine.url)
                self._configure(self.get(session_id), MachineClient(pooled.machine.url, pooled.spec.machine_token))
            else:
                self._start_machine(row, limits)
        except ApiError:
            self._fail_launch(row)
            raise
        except ProviderError as exc:
            metrics.count_provider_error(self.provider.name, "start")
            self._fail_launch(row)
            raise Unavailable(f"could not start a machine: {exc.message}", code="machine_start_failed") from None
        return self.get(session_id)

    def resource_limits(self, config: dict[str, Any]) -> ResourceLimits:
        limits = config.get("resource_limits") or {}
        cpu_quota = int(limits.get("cpu_quota") or self.settings.container_cpu_quota)
        memory = parse_size_mb(limits["memory_limit"]) if limits.get("memory_limit") else self.settings.container_memory_limit_mb
        storage = parse_size_mb(limits["storage_limit"]) if limits.get("storage_limit") else self.settings.container_storage_limit_mb
        return ResourceLimits(cpus=cpu_quota / 100_000, memory_mb=memory, storage_mb=storage)

    def _start_machine(self, row: SessionRow, limits: ResourceLimits | None = None) -> MachineClient:
        """Start (or restart) the session's machine and configure it; resumes the conversation."""
        # Providers name a machine's storage after spec.session_id: the machine key keeps a
        # woken machine on the same workspace, including one first claimed from the pool.
        spec = MachineSpec(
            session_id=row.machine_key, agent_id=row.agent_id, machine_token=self.minter.machine_token(row.machine_key),
            image=row.config.get("image") or None, resources=limits or self.resource_limits(row.config),
        )
        machine = self.provider.start(spec)
        self.store.set_status(row.id, SessionStatus.STARTING, machine_id=machine.machine_id, machine_url=machine.url)
        client = MachineClient(machine.url, spec.machine_token, self._http(machine.url))
        self._configure(row, client)
        return client

    def _configure(self, row: SessionRow, client: MachineClient) -> None:
        client.configure({
            "session_id": row.id,
            "config": row.config,
            "relay_url": self.provider.relay_url(),
            "relay_token": self.minter.relay_token(row.id),
            "mcp_env": self._mcp_env.get(row.id, {}),
            "resume": row.claude_session_id,
        })
        self.store.set_status(row.id, SessionStatus.RUNNING, last_active_at=time.time())

    def _fail_launch(self, row: SessionRow) -> None:
        self.vault.forget(row.id)
        self._mcp_env.pop(row.id, None)
        current = self.store.get_session(row.id) or row
        if self._remove_machines(current, attempts=3):
            self.store.delete_session(row.id)
        else:
            # Never forget a machine we could not remove: the janitor retries until it is gone.
            log.warning("could not remove the machine of failed launch %s; will retry", row.id)
            self.store.set_status(row.id, SessionStatus.DELETING, "removing its machine")

    def _remove_machines(self, row: SessionRow, attempts: int = 1) -> bool:
        """Destroy the session's machine, and any machine labelled with its key that a failed
        start created but never reported (a create whose answer was lost, say)."""
        targets = {row.machine_id} if row.machine_id else set()
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

    def retry_deletions(self) -> int:
        """Finish removing machines whose removal failed earlier (e.g. a provider outage)."""
        removed = 0
        for row in self.store.list_sessions():
            if row.status is SessionStatus.DELETING and self._remove_machines(row):
                self.store.delete_session(row.id)
                removed += 1
        return removed

    # access ---------------------------------------------------------------------------
    def get(self, session_id: str) -> SessionRow:
        row = self.store.get_session(session_id)
        if row is None:
            raise NotFound(f"no session {session_id!r}", details={"session_id": session_id})
        return row

    def authorize(self, session_id: str, api_key: str | None) -> SessionRow:
        """The launch key, as Bearer, opens every route of its session and refreshes the relay."""
        row = self.get(session_id)
        if not api_key:
            raise Unauthorized("send the session's API key as 'Authorization: Bearer <key>'")
        if not key_matches(api_key, row.key_salt, row.key_hash):
            raise Forbidden("that key does not open this session")
        self.vault.put(session_id, api_key)
        return row

    def client(self, row: SessionRow) -> MachineClient:
        if not row.machine_url:
            raise Unavailable("the session has no running machine", code="machine_not_running")
        return MachineClient(row.machine_url, self.minter.machine_token(row.machine_key), self._http(row.machine_url))

    def _http(self, url: str) -> requests.Session:
        """One pooled HTTP session per machine: no new TCP connection per chat."""
        with self._locks_guard:
            session = self._http_sessions.get(url)
            if session is None:
                session = self._http_sessions[url] = requests.Session()
            return session

    # turns ----------------------------------------------------------------------------
    def chat(self, row: SessionRow, message: str) -> int:
        if self.hub.is_running(row.id):
            raise Conflict("a turn is already running for this session; interrupt it or wait", code="busy")
        self.store.update_session(row.id, last_active_at=time.time())

        def source() -> Iterator[list[dict[str, Any]]]:
            # Fast path: a machine believed ready is asked directly; only if it cannot take
            # the turn (gone, restarted, unconfigured) is it woken and the turn retried.
            current = self.get(row.id)
            events: Iterator[list[dict[str, Any]]] | None = None
            first: list[dict[str, Any]] | None = None
            if current.status is SessionStatus.RUNNING and current.machine_url:
                try:
                    events = self.client(current).chat(message)
                    first = next(events)
                except (MachineUnreachable, StopIteration):
                    events = None
                except ApiError as exc:
                    if exc.code != "not_configured":
                        raise
                    events = None
            if events is None:
                events = self.ensure_machine(row.id).chat(message)
                first = next(events)
            yield first  # type: ignore[misc]
            yield from events

        return self.hub.start_turn(row.id, message, source)

    def ensure_machine(self, session_id: str) -> MachineClient:
        """Wake a stopped or lost machine transparently; the CLI resumes the conversation."""
        with self._wake_lock(session_id):
            row = self.get(session_id)
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
                    row = self.get(session_id)
                    client = self.client(row)
                    if client.health().get("configured"):
                        self.store.set_status(session_id, SessionStatus.RUNNING)
                        return client
                return self._start_machine(row)
            except ProviderError as exc:
                metrics.count_provider_error(self.provider.name, "wake")
                self.store.set_status(session_id, SessionStatus.FAILED, exc.message)
                raise Unavailable(f"could not wake the session's machine: {exc.message}", code="machine_start_failed") from None

    def interrupt(self, row: SessionRow) -> bool:
        if not self.hub.is_running(row.id):
            return False
        return self.client(row).interrupt()

    def _observe(self, session_id: str, event: dict[str, Any]) -> None:
        """Keep the session row in step with its events."""
        kind = event["type"]
        if kind == "result":
            changes: dict[str, Any] = {"last_active_at": time.time()}
            row = self.store.get_session(session_id)
            if row is None:
                return
            changes["turns"] = row.turns + 1
            if event.get("claude_session_id"):
                changes["claude_session_id"] = event["claude_session_id"]
            self.store.update_session(session_id, **changes)
        elif kind == "error" and event.get("code") in ("machine_unreachable", "agent_failed"):
            try:
                self.store.set_status(session_id, SessionStatus.FAILED,
                                      f"{event.get('code')}: {event.get('message', '')}"[:500])
            except IllegalTransition:
                pass  # e.g. the user stopped the machine under the turn: stopped, not failed

    # lifecycle ------------------------------------------------------------------------
    def delete(self, row: SessionRow) -> None:
        if row.machine_id:
            try:
                self.provider.destroy(row.machine_id)
            except ProviderError as exc:
                metrics.count_provider_error(self.provider.name, "destroy")
                raise Unavailable(f"could not remove the machine: {exc.message}") from None
        self.hub.forget(row.id)
        self.vault.forget(row.id)
        self._mcp_env.pop(row.id, None)
        self.store.delete_session(row.id)

    def reconcile(self) -> dict[str, int]:
        """Make SQLite and the provider agree after a start or a crash: no ghosts, no orphans."""
        known = {row.id: row for row in self.store.list_sessions()}
        machines = {m.machine_id: m for m in self.provider.list_machines()}
        owned = {row.machine_key for row in known.values()} | {row.machine_id for row in known.values() if row.machine_id}
        orphans = 0
        for machine in machines.values():
            if machine.machine_id not in owned and (machine.session_id or "") not in owned:
                self.provider.destroy(machine.machine_id)
                orphans += 1
        marked = 0
        for row in known.values():
            self._close_dangling_turn(row.id)
            machine = machines.get(row.machine_id or "")
            if machine is None and row.machine_id:
                machine = self.provider.inspect(row.machine_id)
            if row.status in LIVE and (machine is None or machine.state != "started"):
                self.store.set_status(row.id, SessionStatus.STOPPED,
                                      "machine not running after control-plane restart; the next chat wakes it")
                marked += 1
        return {"orphans_removed": orphans, "sessions_marked_stopped": marked}

    def _close_dangling_turn(self, session_id: str) -> None:
        """A turn cut off by a crash gets its error and ``done``, so followers never hang."""
        last = self.store.events_after(session_id, max(0, self.store.last_seq(session_id) - 1))
        if last and last[-1]["type"] != "done":
            self.hub.publish(session_id, make_event("error", session_id, code="turn_interrupted",
                                                    message="the control plane restarted during this turn"))
            self.hub.publish(session_id, make_event("done", session_id))

    def stop_idle(self) -> int:
        """Stop machines idle past SESSION_IDLE_TIMEOUT; the next chat wakes them."""
        cutoff = time.time() - self.settings.session_idle_timeout
        stopped = 0
        for row in self.store.list_sessions():
            if row.status is SessionStatus.RUNNING and row.last_active_at < cutoff and not self.hub.is_running(row.id) and row.machine_id:
                # Under the wake lock, so a chat arriving now either waits for the suspend and
                # wakes the machine, or has already started its turn and is skipped here.
                with self._wake_lock(row.id):
                    current = self.store.get_session(row.id)
                    if (current is None or current.status is not SessionStatus.RUNNING
                            or current.last_active_at >= cutoff
                            or self.hub.is_running(row.id) or not current.machine_id):
                        continue
                    try:
                        self.provider.suspend(current.machine_id)
                    except ProviderError:
                        continue
                    self.store.set_status(row.id, SessionStatus.STOPPED, "stopped after being idle")
                stopped += 1
        return stopped

    def stop(self, row: SessionRow) -> None:
        """Stop the machine but keep workspace, transcript and conversation; a chat wakes it."""
        if self.hub.is_running(row.id):
            self.interrupt(row)
        with self._wake_lock(row.id):
            if row.machine_id:
                try:
                    self.provider.suspend(row.machine_id)
                except ProviderError as exc:
                    raise Unavailable(f"could not stop the machine: {exc.message}") from None
            self.store.set_status(row.id, SessionStatus.STOPPED, "stopped by the user")

    def expire(self) -> int:
        """Destroy sessions unused for SESSION_TTL, keeping their export under data/exports."""
        ttl = self.settings.session_ttl
        if ttl <= 0:
            return 0
        from control.export import export_json

        cutoff = time.time() - ttl
        exports = self.settings.data_dir / "exports"
        expired = 0
        for row in self.store.list_sessions():
            if (row.last_active_at >= cutoff or row.status in (SessionStatus.STARTING, SessionStatus.DELETING)
                    or self.hub.is_running(row.id)):
                continue
            exports.mkdir(parents=True, exist_ok=True)
            document = export_json(row, self.store.events_after(row.id, 0, limit=10_000_000))
            (exports / f"{row.id}.json").write_text(json.dumps(document, indent=1))
            try:
                self.delete(row)
            except ApiError:
                continue
            self.store.audit(None, "session.expire", row.id, "ok", {"export": f"exports/{row.id}.json"})
            expired += 1
        return expired

    def publish_control_event(self, session_id: str, type_: str, **fields: Any) -> None:
        self.hub.publish(session_id, make_event(type_, session_id, **fields))

    def close(self) -> None:
        self.pool.close()

    def _wake_lock(self, session_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._wake_locks.setdefault(session_id, threading.Lock())


def _json(config: dict[str, Any]) -> str:
    return json.dumps(config, separators=(",", ":"))


def session_view(row: SessionRow, busy: bool, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """The public shape of a session: never the key hash or salt. ``status`` is where the
    machine is; ``busy`` whether a turn is in progress."""
    return {
        "session_id": row.id,
        "agent_id": row.agent_id,
        "config_id": row.config_id,
        "config_name": row.config.get("name"),
        "provider": row.provider,
        "machine_id": row.machine_id,
        "status": str(row.status),
        "busy": busy,
        "status_detail": row.status_detail,
        "created_at": row.created_at,
        "last_active_at": row.last_active_at,
        "turns": row.turns,
        "usage": {
            "input_tokens": row.input_tokens, "output_tokens": row.output_tokens,
            "cache_read_tokens": row.cache_read_tokens, "cache_write_tokens": row.cache_write_tokens,
            "cost_usd": round(row.cost_usd, 6),
        },
        "resources": usage,
    }
