"""Stopping, deleting, expiring and reconciling sessions, on request or from the janitor.

Every removal ends in :meth:`Lifecycle.forget`, which frees the per-session state this
process keeps in memory (turn channel, key, HTTP connections, locks), so 1,000 sessions
launched and deleted leave nothing behind.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass

from control import metrics
from control.export import export_json
from control.providers.base import Provider, ProviderError
from control.secrets import KeyVault
from control.session_status import LIVE, SessionStatus
from control.sessions.caller import Grant
from control.sessions.machines import Machines
from control.sessions.turns import Turns
from control.settings import Settings
from control.store import SessionRow, Store
from wire.errors import ApiError, NotFound, Unavailable

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class Lifecycle:
    settings: Settings
    store: Store
    provider: Provider
    vault: KeyVault
    machines: Machines
    turns: Turns

    # on request ---------------------------------------------------------------------
    def stop(self, grant: Grant) -> None:
        """Stop the machine but keep workspace, transcript and conversation; a chat wakes it."""
        if self.turns.busy(grant.session_id):
            self.turns.interrupt(grant)
        with self.machines.lock(grant.session_id):
            row = self._row(grant.session_id)
            try:
                self.machines.suspend(row)
            except ProviderError as exc:
                raise Unavailable(f"could not stop the machine: {exc.message}") from None
            self.store.set_status(row.id, SessionStatus.STOPPED, "stopped by the user")
        self.store.audit(grant.caller.user_id, "session.stop", row.id, "ok", {})

    def delete(self, grant: Grant) -> None:
        """Remove the machine, then the session; a machine that cannot be removed is a 503
        and the session stays as it was."""
        row = self._row(grant.session_id)
        self._destroy(row)
        self.store.audit(grant.caller.user_id, "session.delete", row.id, "ok", {"owner": row.owner})

    def _destroy(self, row: SessionRow) -> None:
        if row.machine_id:
            try:
                self.machines.destroy(row)
            except ProviderError as exc:
                metrics.count_provider_error(self.provider.name, "destroy")
                raise Unavailable(f"could not remove the machine: {exc.message}") from None
        self.store.delete_session(row.id)
        self.forget(row.id)

    def forget(self, session_id: str) -> None:
        """Free everything this process kept for a session that no longer exists."""
        self.turns.forget(session_id)
        self.vault.forget(session_id)
        self.machines.forget(session_id)

    # background (the janitor and start-up) ------------------------------------------
    def retry_deletions(self) -> int:
        """Finish removing machines whose removal failed earlier (e.g. a provider outage)."""
        removed = 0
        for row in self.store.list_sessions():
            if row.status is SessionStatus.DELETING and self.machines.remove(row):
                self.store.delete_session(row.id)
                self.forget(row.id)
                removed += 1
        return removed

    def reconcile(self) -> dict[str, int]:
        """Make SQLite and the provider agree after a start or a crash: no ghosts, no orphans."""
        known = {row.id: row for row in self.store.list_sessions()}
        machines = {m.machine_id: m for m in self.provider.list_machines()}
        owned = {row.machine_key for row in known.values()}
        owned |= {row.machine_id for row in known.values() if row.machine_id}
        orphans = 0
        for listed in machines.values():
            if listed.machine_id not in owned and (listed.session_id or "") not in owned:
                self.provider.destroy(listed.machine_id)
                orphans += 1
        marked = 0
        for row in known.values():
            self.turns.close_dangling(row.id)
            machine = machines.get(row.machine_id or "")
            if machine is None and row.machine_id:
                machine = self.provider.inspect(row.machine_id)
            if row.status in LIVE and (machine is None or machine.state != "started"):
                self.store.set_status(row.id, SessionStatus.STOPPED,
                                      "machine not running after control-plane restart; the next chat wakes it")
                marked += 1
        return {"orphans_removed": orphans, "sessions_marked_stopped": marked}

    def stop_idle(self) -> int:
        """Stop machines idle past SESSION_IDLE_TIMEOUT; the next chat wakes them."""
        cutoff = time.time() - self.settings.session_idle_timeout
        stopped = 0
        for row in self.store.list_sessions():
            if not self._idle(row, cutoff):
                continue
            # Under the machine lock, so a chat arriving now either waits for the suspend and
            # wakes the machine, or has already started its turn and is skipped here.
            with self.machines.lock(row.id):
                current = self.store.get_session(row.id)
                if current is None or not self._idle(current, cutoff):
                    continue
                try:
                    self.machines.suspend(current)
                except ProviderError:
                    continue
                self.store.set_status(row.id, SessionStatus.STOPPED, "stopped after being idle")
            stopped += 1
        return stopped

    def _idle(self, row: SessionRow, cutoff: float) -> bool:
        return (row.status is SessionStatus.RUNNING and row.last_active_at < cutoff and bool(row.machine_id)
                and not self.turns.busy(row.id))

    def expire(self) -> int:
        """Destroy sessions unused for SESSION_TTL, keeping their export under data/exports."""
        ttl = self.settings.session_ttl
        if ttl <= 0:
            return 0
        cutoff = time.time() - ttl
        exports = self.settings.data_dir / "exports"
        expired = 0
        for row in self.store.list_sessions():
            if (row.last_active_at >= cutoff or row.status in (SessionStatus.STARTING, SessionStatus.DELETING)
                    or self.turns.busy(row.id)):
                continue
            exports.mkdir(parents=True, exist_ok=True, mode=0o700)
            document = export_json(row, self.store.events_after(row.id, 0, limit=10_000_000))
            target = exports / f"{row.id}.json"
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(document, indent=1))
            try:
                self._destroy(row)
            except ApiError:
                continue
            self.store.audit(None, "session.expire", row.id, "ok", {"export": f"exports/{row.id}.json"})
            expired += 1
        return expired

    def _row(self, session_id: str) -> SessionRow:
        row = self.store.get_session(session_id)
        if row is None:
            raise NotFound(f"no session {session_id!r}")
        return row


class Janitor:
    """Stops idle machines, expires old sessions and retries failed removals, every
    ``interval`` seconds on a background thread (a greenlet under gevent) until stopped."""

    def __init__(self, lifecycle: Lifecycle, interval: float) -> None:
        self.lifecycle = lifecycle
        self.interval = interval
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopped.clear()
        self._thread = threading.Thread(target=self._loop, name="session-janitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def sweep(self) -> None:
        for task in (self.lifecycle.stop_idle, self.lifecycle.expire, self.lifecycle.retry_deletions):
            try:
                task()
            except Exception:  # the janitor must keep running
                log.exception("janitor: %s failed", task.__name__)

    def _loop(self) -> None:
        while not self._stopped.wait(self.interval):
            self.sweep()
