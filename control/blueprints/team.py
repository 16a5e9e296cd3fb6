"""Users and API tokens over REST (``AUTH_MODE=token``): what ``agcluster users|tokens`` does
on the server, for admins and members in the dashboard or any client.

Everyone creates, lists and revokes their own tokens; admins list and create users and
manage anyone's tokens (so a new member can be handed one to sign in with). A new token
appears in its create answer only. A member asking for another user's tokens gets a 403,
a token that is not theirs looks exactly like one that does not exist (404), and every
change and denial lands in the audit log. ``AUTH_MODE=none`` has no accounts: these routes
answer 404 ``accounts_disabled`` there.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from control.accounts import IssuedToken, Principal
from control.auth import current_principal, require_admin
from control.context import ctx
from control.openapi import FLAG, describe, query
from control.schemas import (
    TokenCreatedSchema,
    TokenListSchema,
    TokenSchema,
    UserCreateSchema,
    UserListSchema,
    UserSchema,
    load_body,
)
from wire.errors import NotFound, ValidationFailed

team_bp = Blueprint("team", __name__, url_prefix="/api")
TRUE, FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def _account() -> Principal:
    """The caller's account; 401 without a token, 404 when the server has no accounts."""
    principal = current_principal()
    if principal is None:
        raise NotFound("AUTH_MODE=none has no users or tokens; start the server with AUTH_MODE=token",
                       code="accounts_disabled")
    return principal


def _admin() -> Principal:
    _account()
    principal = require_admin()  # 403 for members, audited
    assert principal is not None  # token mode, checked above
    return principal


def _flag(name: str) -> bool:
    value = request.args.get(name, "").lower()
    if value not in TRUE + FALSE:
        raise ValidationFailed(f"{name} must be one of {', '.join(TRUE + FALSE[1:])}", details={name: value[:20]})
    return value in TRUE


def _created(issued: IssuedToken, actor: Principal) -> tuple[Response, int]:
    token = ctx().accounts.visible_token(actor, issued.id)
    ctx().store.audit(actor.user_id, "token.create", issued.id, "ok", {"user": issued.user, "user_id": issued.user_id})
    resp = jsonify({**token, "token": issued.token})
    resp.headers["Cache-Control"] = "no-store"  # the one answer that carries the token
    return resp, 201


@team_bp.get("/users")
@describe("Every user, with its count of active tokens (admins)", response=UserListSchema, auth="admin",
          errors=(401, 403, 404))
def list_users() -> Response:
    _admin()
    users = ctx().accounts.users()
    return jsonify(users=users, total=len(users))


@team_bp.post("/users")
@describe("Create a user (admins); give them a token with POST /api/users/{user_id}/tokens", body=UserCreateSchema,
          status=201, response=UserSchema, auth="admin", errors=(400, 401, 403, 404, 409))
def create_user() -> tuple[Response, int]:
    admin = _admin()
    body = load_body(UserCreateSchema())
    user = ctx().accounts.add_user(body["name"], admin=body["admin"])
    ctx().store.audit(admin.user_id, "user.add", user.user_id, "ok", {"name": user.name, "role": user.role})
    created = ctx().store.get_user(user_id=user.user_id) or {}
    return jsonify({**created, "active_tokens": 0}), 201


@team_bp.post("/users/<user_id>/tokens")
@describe("Create a token for a user (admins, or the user themself); the token is in this answer only",
          status=201, response=TokenCreatedSchema, auth="admin", errors=(401, 403, 404, 409),
          path_params={"user_id": "a user id (u_...)"})
def create_token_for(user_id: str) -> tuple[Response, int]:
    principal = _account()
    if user_id != principal.user_id:
        require_admin()
    return _created(ctx().accounts.issue(user_id), principal)


@team_bp.get("/tokens")
@describe("API tokens, never their values: your own; admins may ask for one user's or everyone's",
          response=TokenListSchema, errors=(400, 401, 403, 404),
          query=(query("user", {"type": "string"}, "a user id (admins, for anyone but themselves)"),
                 query("all", FLAG, "every user's tokens (admins)")))
def list_tokens() -> Response:
    principal = _account()
    everyone, user_id = _flag("all"), request.args.get("user") or principal.user_id
    if everyone or user_id != principal.user_id:
        require_admin()
    accounts = ctx().accounts
    tokens = accounts.all_tokens(principal) if everyone else accounts.tokens(principal, user_id)
    return jsonify(tokens=tokens, total=len(tokens))


@team_bp.post("/tokens")
@describe("Create a token for yourself; the token is in this answer only", status=201, response=TokenCreatedSchema,
          errors=(401, 404, 409))
def create_token() -> tuple[Response, int]:
    principal = _account()
    return _created(ctx().accounts.issue(principal.user_id), principal)


@team_bp.delete("/tokens/<token_id>")
@describe("Revoke a token: your own, or anyone's (admins). It stops working at once; revoking twice changes nothing",
          response=TokenSchema, errors=(401, 404), path_params={"token_id": "a token id (tok_...)"})
def revoke_token(token_id: str) -> Response:
    principal = _account()
    store, accounts = ctx().store, ctx().accounts
    try:
        was_active = accounts.visible_token(principal, token_id)["active"]
    except NotFound:
        store.audit(principal.user_id, "token.revoke", token_id[:64], "denied", {"reason": "not found or not yours"})
        raise
    token = accounts.revoke_visible(principal, token_id)
    store.audit(principal.user_id, "token.revoke", token["id"], "ok" if was_active else "unchanged",
                {"user": token["user"], "user_id": token["user_id"]})
    return jsonify(token)

