"""Who is asking, and may they touch this session?

``AUTH_MODE=none``: no accounts; a session is opened by the Anthropic key it was launched
with (``Authorization: Bearer <key>``). ``AUTH_MODE=token``: every API request carries an
AgCluster token as Bearer, the Anthropic key moves to ``X-Anthropic-Api-Key``, and a
session is visible only to its owner and to admins. Anything not visible is a 404, so a
denial never confirms that a session exists.
"""

from __future__ import annotations

from flask import g, request

from control.accounts import Principal
from control.context import bearer, ctx
from control.secrets import key_matches
from control.store import SessionRow
from wire.errors import Forbidden, NotFound, Unauthorized

PUBLIC_PREFIXES = ("/health", "/openapi.json", "/ui/", "/relay/", "/docs")
ANTHROPIC_KEY_HEADER = "X-Anthropic-Api-Key"


def token_mode() -> bool:
    return ctx().settings.auth_mode == "token"


def current_principal() -> Principal | None:
    """The caller in token mode (401 without a valid token); None in ``none`` mode."""
    if not token_mode():
        return None
    if "principal" not in g:
        principal = ctx().accounts.authenticate(bearer())
        if principal is None:
            _audit_denial(None, "missing or invalid token")
            raise Unauthorized("send an AgCluster API token as 'Authorization: Bearer agc_...'")
        g.principal = principal
    return g.principal


def require_token_for_api() -> None:
    """before_request: in token mode, every API route needs a token; pages and the relay do not."""
    # WebSockets authenticate in their first message: browsers cannot send headers there.
    if token_mode() and request.path != "/" and not request.path.startswith(PUBLIC_PREFIXES) \
            and request.method != "OPTIONS" and not request.path.endswith("/ws"):
        current_principal()


def owner_id() -> str | None:
    principal = current_principal()
    return principal.user_id if principal else None


def anthropic_key() -> str | None:
    return request.headers.get(ANTHROPIC_KEY_HEADER) or None if token_mode() else bearer()


def authorized_session(session_id: str) -> SessionRow:
    app = ctx()
    if not token_mode():
        return app.sessions.authorize(session_id, bearer())
    principal = current_principal()
    assert principal is not None
    row = app.store.get_session(session_id)
    if row is None or (row.owner != principal.user_id and not principal.is_admin):
        _audit_denial(principal.user_id, f"session {session_id[:64]}")
        raise NotFound(f"no session {session_id!r}")
    key = anthropic_key()
    if key is not None:
        if not key_matches(key, row.key_salt, row.key_hash):
            raise Forbidden(f"{ANTHROPIC_KEY_HEADER} does not match the key this session was launched with")
        app.vault.put(row.id, key)
    return row


def require_admin() -> Principal | None:
    principal = current_principal()
    if principal is not None and not principal.is_admin:
        _audit_denial(principal.user_id, request.path)
        raise Forbidden("admins only")
    return principal


def rate_key() -> str:
    principal = current_principal()
    return principal.user_id if principal else (request.remote_addr or "local")


def _audit_denial(actor: str | None, target: str) -> None:
    ctx().store.audit(actor, "auth.denied", target, "denied", {"method": request.method, "path": request.path[:200]})
