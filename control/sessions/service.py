"""The session service: who may touch a session, and the parts that act on it.

Routes (REST and WebSocket alike) build a :class:`Caller`, ask :meth:`SessionService.open`
for a :class:`Grant` (the one access check: owner or admin in token mode, the launch key
in none mode, and the key refreshed in memory either way) and hand the grant to a part:

* ``launches``: rate limit, launch quota, config, machine, audit;
* ``turns``: chat (rate-limited), follow, interrupt, permission answers;
* ``lifecycle``: stop, delete, and the janitor's and start-up's work;
* ``machines``: the session's machine, woken on demand (file routes use it).
"""

from __future__ import annotations

from typing import Any

from control.configs import ConfigCatalog
from control.pool import WarmPool
from control.providers.base import Provider, ProviderError
from control.quotas import Quotas
from control.secrets import KeyVault, TokenMinter, key_matches
from control.session_status import SessionStatus
from control.sessions.caller import Caller, Grant
from control.sessions.launch import Launches
from control.sessions.lifecycle import Lifecycle
from control.sessions.machines import Machines
from control.sessions.turns import Turns
from control.sessions.views import session_view
from control.settings import Settings
from control.store import SessionRow, Store
from wire.errors import ApiError, Forbidden, NotFound, Unauthorized


class SessionService:
    def __init__(self, *, settings: Settings, store: Store, provider: Provider, catalog: ConfigCatalog,
                 vault: KeyVault, minter: TokenMinter, quotas: Quotas, pool: WarmPool | None = None) -> None:
        self.store = store
        self.provider = provider
        self.vault = vault
        self.pool = pool or WarmPool(provider, minter, 0)
        self.machines = Machines(settings=settings, store=store, provider=provider, minter=minter, pool=self.pool)
        self.turns = Turns(store=store, machines=self.machines, quotas=quotas, vault=vault)
        self.launches = Launches(store=store, provider=provider, catalog=catalog, vault=vault, machines=self.machines,
                                 quotas=quotas)
        self.lifecycle = Lifecycle(settings=settings, store=store, provider=provider, vault=vault,
                                   machines=self.machines, turns=self.turns)

    # access ---------------------------------------------------------------------------
    def open(self, caller: Caller, session_id: str) -> Grant:
        """May this caller act on this session? Token mode: its owner and admins (anyone
        else gets the same 404 as for a session that does not exist); none mode: whoever
        holds the key it was launched with. A key presented refreshes the one in memory."""
        row = self.store.get_session(session_id)
        if caller.user_id is not None:
            if row is None or (row.owner != caller.user_id and not caller.is_admin):
                self.store.audit(caller.user_id, "auth.denied", f"session {session_id[:64]}", "denied",
                                 {"origin": caller.origin[:200]})
                raise NotFound(f"no session {session_id!r}")
            if caller.key is not None:
                self._check_key(row, caller.key)
        else:
            if row is None:
                raise NotFound(f"no session {session_id!r}", details={"session_id": session_id})
            if not caller.key:
                raise Unauthorized("send the session's API key as 'Authorization: Bearer <key>'")
            self._check_key(row, caller.key)
        return Grant(caller, row.id)

    def _check_key(self, row: SessionRow, key: str) -> None:
        if not key_matches(key, row.key_salt, row.key_hash):
            raise Forbidden("that key does not open this session: it is not the one the session was launched with")
        self.vault.put(row.id, key)

    # views ----------------------------------------------------------------------------
    def list(self, caller: Caller) -> list[dict[str, Any]]:
        """Members see their own sessions, admins and none mode everyone's (no secrets)."""
        owner = caller.user_id if caller.user_id is not None and not caller.is_admin else None
        rows = self.store.list_sessions(owner=owner)
        names = {u["id"]: u["name"] for u in self.store.list_users()} if any(r.owner for r in rows) else {}
        return [session_view(row, self.turns.busy(row.id), owner_name=names.get(row.owner or ""))
                for row in rows]

    def row(self, grant: Grant) -> SessionRow:
        row = self.store.get_session(grant.session_id)
        if row is None:
            raise NotFound(f"no session {grant.session_id!r}")
        return row

    def details(self, grant: Grant) -> dict[str, Any]:
        """The view plus config, machine resources and the config as the machine got it."""
        row = self.row(grant)
        up = row.status is SessionStatus.RUNNING and row.machine_id is not None
        try:
            resources = self.provider.usage(row.machine_id) if up and row.machine_id else None
        except ProviderError:
            resources = None  # e.g. the machine is being stopped for idleness right now
        owner = self.store.get_user(user_id=row.owner) if row.owner else None
        view = session_view(row, self.turns.busy(row.id), resources, owner_name=owner["name"] if owner else None)
        view["config"] = row.config
        view["effective_config"] = self._effective_config(row) if up else None
        view["enforced"], view["warnings"] = self.machines.enforcement(row.config)
        return view

    def _effective_config(self, row: SessionRow) -> dict[str, Any] | None:
        """The config as the machine's SDK and CLI really got it (no secrets)."""
        try:
            effective = self.machines.client(row).health().get("effective_config")
        except ApiError:
            return None
        return effective if isinstance(effective, dict) else None

    # background -----------------------------------------------------------------------
    def close(self) -> None:
        self.pool.close()
