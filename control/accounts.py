"""Users and API tokens for ``AUTH_MODE=token``.

Tokens are random 256-bit strings shown once at creation; only their SHA-256 is stored
(a slow KDF buys nothing for keys this long), plus a short prefix to name them in lists.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass

from control.store import Store
from wire.errors import Conflict, NotFound, ValidationFailed

ROLES = ("admin", "member")
TOKEN_PREFIX = "agc_"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


@dataclass(frozen=True)
class Principal:
    user_id: str
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


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
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = f"tok_{uuid.uuid4().hex[:12]}"
        self.store.add_token(token_id, user["id"], token_hash(token), token[:12])
        return token_id, token

    def revoke(self, token_id_or_prefix: str) -> int:
        return self.store.revoke_token(token_id_or_prefix)

    def authenticate(self, token: str | None) -> Principal | None:
        if not token or not token.startswith(TOKEN_PREFIX):
            return None
        user = self.store.user_for_token_hash(token_hash(token))
        return Principal(user["id"], user["name"], user["role"]) if user else None
