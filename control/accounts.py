"""Users and API tokens for ``AUTH_MODE=token``.

Tokens are random 256-bit strings shown once at creation; only their SHA-256 is stored
(a slow KDF buys nothing for keys this long), plus a short prefix to name them in lists.

Who may see or change which token is decided here, once, for the REST routes
(``control/blueprints/team.py``): everyone manages their own tokens; admins manage
anyone's. A token that is not the caller's to see is reported exactly like one that does
not exist, so a member cannot probe for other people's token ids.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from control.store import Store
from wire.errors import Conflict, NotFound, ValidationFailed

ROLES = ("admin", "member")
TOKEN_PREFIX = "agc_"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MAX_ACTIVE_TOKENS = 50
"""Per user: enough for every laptop and CI job, and a member cannot grow the table without bound."""


@dataclass(frozen=True)
class Principal:
    user_id: str
    name: str
    role: str
    token_id: str | None = None
    """The token this request was authenticated with (so a token list can mark it)."""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class IssuedToken:
    """A new token: ``token`` is its only appearance anywhere."""

    id: str
    token: str
    prefix: str
    user_id: str
    user: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add_user(self, name: str, admin: bool = False) -> Principal:
        if not NAME.match(name):
            raise ValidationFailed("user names are 1-64 letters, digits and _.@-", details={"name": name[:64]})
        if self.store.get_user(name=name):
            raise Conflict(f"user {name!r} exists")
        user = Principal(f"u_{uuid.uuid4().hex[:16]}", name, "admin" if admin else "member")
        self.store.add_user(user.user_id, user.name, user.role)
        return user

    def create_token(self, name: str) -> tuple[str, str]:
        """Returns (token id, token); the token itself is never retrievable again."""
        user = self.store.get_user(name=name)
        if user is None:
            raise NotFound(f"no user {name!r}")
        issued = self._issue(user)
        return issued.id, issued.token

    def issue(self, user_id: str) -> IssuedToken:
        """A token for an existing user (404 if there is none), within the per-user cap."""
        user = self.store.get_user(user_id=user_id)
        if user is None:
            raise NotFound("no such user", details={"user_id": user_id[:64]})
        active = sum(1 for t in self.store.list_tokens(user_id) if not t["revoked_at"])
        if active >= MAX_ACTIVE_TOKENS:
            raise Conflict(f"{user['name']} has {active} active tokens; revoke one first", code="too_many_tokens",
                           details={"max_active_tokens": MAX_ACTIVE_TOKENS})
        return self._issue(user)

    def _issue(self, user: dict[str, Any]) -> IssuedToken:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = f"tok_{uuid.uuid4().hex[:12]}"
        self.store.add_token(token_id, user["id"], token_hash(token), token[:12])
        return IssuedToken(token_id, token, token[:12], user["id"], user["name"])

    def revoke(self, token_id_or_prefix: str) -> int:
        return self.store.revoke_token(token_id_or_prefix)

    def authenticate(self, token: str | None) -> Principal | None:
        if not token or not token.startswith(TOKEN_PREFIX):
            return None
        user = self.store.user_for_token_hash(token_hash(token))
        return Principal(user["id"], user["name"], user["role"], user["token_id"]) if user else None

    # what a caller may see and change ---------------------------------------------------
    def users(self) -> list[dict[str, Any]]:
        """Every user with its count of active tokens (for admins)."""
        active: dict[str, int] = {}
        for token in self.store.list_tokens():
            if not token["revoked_at"]:
                active[token["user_id"]] = active.get(token["user_id"], 0) + 1
        return [{**user, "active_tokens": active.get(user["id"], 0)} for user in self.store.list_users()]

    def tokens(self, viewer: Principal, user_id: str | None = None) -> list[dict[str, Any]]:
        """One user's tokens (the viewer's own by default; the route lets only admins name
        another user)."""
        return self._described(self.store.list_tokens(user_id or viewer.user_id), viewer)

    def all_tokens(self, viewer: Principal) -> list[dict[str, Any]]:
        return self._described(self.store.list_tokens(), viewer)

    def visible_token(self, viewer: Principal, token_id: str) -> dict[str, Any]:
        """The token if the viewer owns it or is an admin; else the same 404 as a token
        that does not exist."""
        token = self.store.get_token(token_id)
        if token is None or not (viewer.is_admin or token["user_id"] == viewer.user_id):
            raise NotFound("no such token", details={"token_id": token_id[:64]})
        return self._described([token], viewer)[0]

    def revoke_visible(self, viewer: Principal, token_id: str) -> dict[str, Any]:
        """Revoke a token the viewer may see; revoking a revoked token changes nothing."""
        token = self.visible_token(viewer, token_id)
        if token["revoked_at"] is None:
            self.store.revoke_token(token["id"])
            token = self.visible_token(viewer, token_id)
        return token

    def _described(self, tokens: list[dict[str, Any]], viewer: Principal) -> list[dict[str, Any]]:
        names = {u["id"]: u["name"] for u in self.store.list_users()}
        return [{"id": t["id"], "prefix": t["prefix"], "user_id": t["user_id"], "user": names.get(t["user_id"], ""),
                 "created_at": t["created_at"], "revoked_at": t["revoked_at"], "last_used_at": t["last_used_at"],
                 "active": t["revoked_at"] is None,
                 "current": t["id"] == viewer.token_id}
                for t in sorted(tokens, key=lambda t: t["created_at"], reverse=True)]
