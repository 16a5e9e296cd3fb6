"""Launching a session: the caller's rate limit and quota, the config, a machine, the audit.

The launch quota counts the ``session.launch`` audit rows written here, so it counts what
this service really launched, however the launch was asked for.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from control import metrics
from control.configs import ConfigCatalog, Owner, admit_mcp_env
from control.providers.base import Provider, ProviderError
from control.quotas import Quotas
from control.secrets import KeyVault, hash_key
from control.session_status import SessionStatus
from control.sessions.caller import Caller
from control.sessions.machines import Machines
from control.store import SessionRow, Store
from wire.errors import ApiError, Unavailable, ValidationFailed

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class Launches:
    store: Store
    provider: Provider
    catalog: ConfigCatalog
    vault: KeyVault
    machines: Machines
    quotas: Quotas

    @metrics.timed_launch
    def launch(self, caller: Caller, *, api_key: str | None = None, config_id: str | None = None,
               config: dict[str, Any] | None = None, mcp_env: dict[str, dict[str, str]] | None = None) -> SessionRow:
        """Exactly one of ``config_id`` and ``config``; the key from the body or the caller."""
        self.quotas.check_rate(caller.rate_key)
        key = api_key or caller.key
        if not key:
            raise ValidationFailed("an Anthropic key is required",
                                   details={"api_key": ["Missing data for required field."]})
        self.quotas.check_launch(caller.user_id)
        try:
            row = self._launch(key, config_id, config, mcp_env or {}, caller)
        except ApiError as exc:
            self.store.audit(caller.user_id, "session.launch", config_id, "failed", {"code": exc.code})
            raise
        self.store.audit(caller.user_id, "session.launch", row.id, "ok", {"config_id": row.config_id})
        return row

    def _launch(self, api_key: str, config_id: str | None, inline: dict[str, Any] | None,
                mcp_env: dict[str, dict[str, str]], caller: Caller) -> SessionRow:
        owner = caller.user_id
        # In AUTH_MODE=token another user's unshared config is a 404 here too.
        viewer = Owner(user_id=owner, is_admin=caller.is_admin) if owner is not None else None
        config = self.catalog.get(config_id, viewer) if config_id else self.catalog.validate_inline(inline)
        admit_mcp_env(config, mcp_env)
        limits = self.machines.resource_limits(config)
        self.provider.validate_resources(limits)
        now = time.time()
        session_id = str(uuid.uuid4())
        salt, key_hash = hash_key(api_key)
        row = SessionRow(
            id=session_id, agent_id=f"agent-{uuid.uuid4().hex[:12]}", config_id=config["id"],
            config_json=json.dumps(config, separators=(",", ":")), provider=self.provider.name, machine_id=None,
            machine_url=None, status=SessionStatus.STARTING, status_detail="", key_salt=salt, key_hash=key_hash,
            claude_session_id=None, created_at=now, last_active_at=now, machine_key=session_id, owner=owner,
        )
        self.store.insert_session(row)
        self.vault.put(session_id, api_key)
        self.machines.remember_mcp_env(session_id, mcp_env)
        try:
            # Under the session's machine lock, so a stop arriving now waits for the machine.
            with self.machines.lock(session_id):
                self.machines.bring_up(row, limits)
        except ApiError:
            self._fail(row)
            raise
        except ProviderError as exc:
            metrics.count_provider_error(self.provider.name, "start")
            self._fail(row)
            raise Unavailable(f"could not start a machine: {exc.message}", code="machine_start_failed") from None
        current = self.store.get_session(session_id)
        assert current is not None
        return current

    def _fail(self, row: SessionRow) -> None:
        self.vault.forget(row.id)
        current = self.store.get_session(row.id) or row
        if self.machines.remove(current, attempts=3):
            self.store.delete_session(row.id)
            self.machines.forget(row.id)
        else:
            # Never forget a machine we could not remove: the janitor retries until it is gone.
            log.warning("could not remove the machine of failed launch %s; will retry", row.id)
            self.store.set_status(row.id, SessionStatus.DELETING, "removing its machine")
