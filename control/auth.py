"""Who is asking: the request (or WebSocket greeting) turned into a :class:`Caller`.

``AUTH_MODE=none``: no accounts; a session is opened by the Anthropic key it was launched
with (``Authorization: Bearer <key>``). ``AUTH_MODE=token``: every API request carries an
AgCluster token as Bearer, the Anthropic key moves to ``X-Anthropic-Api-Key``, and a
session is visible only to its owner and to admins. What a caller may do with a session
is decided in one place, ``SessionService.open``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from flask import g, request

from control.accounts import Principal
from control.context import bearer, ctx
from control.sessions import Caller
from wire.errors import Forbidden, Unauthorized

PUBLIC_PREFIXES = ("/health", "/openapi.json", "/ui/", "/docs")
"""Open in ``AUTH_MODE=token`` too (the relay has its own token); the OpenAPI document says so."""
ANTHROPIC_KEY_HEADER = "X-Anthropic-Api-Key"


def token_mode() -> bool:
    return ctx().settings.auth_mode == "token"


def current_principal() -> Principal | None:
    """The caller's account in token mode (401 without a valid token); None in ``none`` mode."""
    if not token_mode():
        return None
    if "principal" not in g:
        principal = ctx().accounts.authenticate(bearer())
        if principal is None:
            _audit_denial(None, "missing or invalid token")
            raise Unauthorized("send an AgCluster API token as 'Authorization: Bearer agc_...'")
        g.principal = principal
    known: Principal = g.principal
    return known


def current_caller() -> Caller:
    """The caller of this request, as the session service wants it."""
    origin = f"{request.method} {request.path}"[:200]
    principal = current_principal()
    if principal is None:
        return Caller(key=bearer(), rate_key=request.remote_addr or "local", origin=origin)
    return Caller(user_id=principal.user_id, is_admin=principal.is_admin,
                  key=request.headers.get(ANTHROPIC_KEY_HEADER) or None, rate_key=principal.user_id, origin=origin)


def socket_caller(hello: dict[str, Any]) -> Caller:
    """The caller of a WebSocket, from its first message (browsers cannot set headers
    there): ``{"api_key"}`` in none mode, ``{"token", "api_key"?}`` in token mode."""
    key = hello.get("api_key")
    key = str(key) if key else None
    if not token_mode():
        return Caller(key=key, rate_key=request.remote_addr or "local", origin="websocket")
    principal = ctx().accounts.authenticate(str(hello.get("token") or ""))
    if principal is None:
        _audit_denial(None, "missing or invalid token (websocket)")
        raise Unauthorized("send an AgCluster token as 'token' in the first message")
    return Caller(user_id=principal.user_id, is_admin=principal.is_admin, key=key, rate_key=principal.user_id,
                  origin="websocket")


def require_token_for_api() -> None:
    """before_request: in token mode, every API route needs a token; pages and the relay do not."""
    # WebSockets authenticate in their first message: browsers cannot send headers there.
    if token_mode() and request.path != "/" and not request.path.startswith(PUBLIC_PREFIXES) \
            and request.method != "OPTIONS" and not request.path.endswith("/ws"):
        current_principal()


def require_admin() -> Principal | None:
    """An admin in token mode. With AUTH_MODE=none anyone who can reach the server would be
    an admin, so admin routes stay closed there unless the operator opens them for loopback
    clients (AGCLUSTER_LOCAL_ADMIN=1)."""
    principal = current_principal()
    if principal is not None and not principal.is_admin:
        _audit_denial(principal.user_id, request.path)
        raise Forbidden("admins only")
    if principal is None and not (ctx().settings.local_admin and _from_loopback()):
        raise Forbidden("admin routes need AUTH_MODE=token (or AGCLUSTER_LOCAL_ADMIN=1, from loopback only)",
                        code="admin_only")
    return principal


def _from_loopback() -> bool:
    try:
        return ipaddress.ip_address((request.remote_addr or "").split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _audit_denial(actor: str | None, target: str) -> None:
    ctx().store.audit(actor, "auth.denied", target, "denied", {"method": request.method, "path": request.path[:200]})
