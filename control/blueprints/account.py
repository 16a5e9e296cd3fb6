"""Who am I, what have I used and how much of my quotas, and (for admins) what happened."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from flask import Blueprint, Response, jsonify, request

from control.auth import current_caller, current_principal, require_admin
from control.context import ctx
from control.openapi import describe, query
from control.schemas import AuditListSchema, MeSchema, QuotaReportSchema, UsageReportSchema
from wire.errors import Forbidden, NotFound, ValidationFailed

account_bp = Blueprint("account", __name__, url_prefix="/api")
GROUPS = ("user", "session", "day")
MAX_DAYS = 3660


@account_bp.get("/me")
@describe("Who am I: the account in token mode, and whether the admin routes answer me", response=MeSchema,
          errors=())
def me() -> Response:
    principal = current_principal()
    if principal is None:
        return jsonify(auth_mode="none", user=None, admin=_local_admin(), token_id=None)
    return jsonify(auth_mode="token", user={"id": principal.user_id, "name": principal.name, "role": principal.role},
                   admin=principal.is_admin, token_id=principal.token_id)


def _local_admin() -> bool:
    """AUTH_MODE=none: the admin routes are open only to loopback with AGCLUSTER_LOCAL_ADMIN=1."""
    try:
        require_admin()
    except Forbidden:
        return False
    return True


@account_bp.get("/usage")
@describe("Token and cost usage, grouped by user, session or UTC day: your own, or everyone's for admins",
          response=UsageReportSchema,
          query=(query("group_by", {"type": "string", "enum": list(GROUPS)}, "default session"),
                 query("days", {"type": "integer", "minimum": 1, "maximum": MAX_DAYS},
                       "only the last N UTC days (today included); default all")))
def usage() -> Response:
    group_by = request.args.get("group_by", "session")
    if group_by not in GROUPS:
        raise ValidationFailed(f"group_by must be one of {', '.join(GROUPS)}", details={"group_by": group_by[:40]})
    since = _since_day(request.args.get("days"))
    principal = current_principal()
    if principal is None:
        require_admin()  # everyone's usage, with no accounts: the operator's view only
    everyone = principal is None or principal.is_admin
    store = ctx().store
    rows = store.usage_report(group_by, owner=principal.user_id if principal else None, all_owners=everyone,
                              since_day=since)
    names = {u["id"]: u["name"] for u in store.list_users()} if group_by in ("user", "session") else {}
    for row in rows:
        if group_by == "user":
            row["user"] = _name(names, row["key"])
        elif group_by == "session":
            row["user"] = _name(names, row.pop("owner"))
        row["cost_usd"] = round(row["cost_usd"] or 0.0, 6)
    return jsonify(group_by=group_by, scope="everyone" if everyone else "own", since=since, usage=rows)


def _name(names: dict[str, str], user_id: str | None) -> str:
    return names.get(user_id, user_id) if user_id is not None else "anonymous"


def _since_day(days: str | None) -> str | None:
    if days is None:
        return None
    if not days.isdigit() or not 1 <= int(days) <= MAX_DAYS:
        raise ValidationFailed(f"days must be between 1 and {MAX_DAYS}", details={"days": days[:20]})
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() - (int(days) - 1) * 86_400))


@account_bp.get("/quotas")
@describe("Each quota and rate limit with how much of it is used: yours, or a user's (admins)",
          response=QuotaReportSchema, errors=(400, 401, 403, 404),
          query=(query("user", {"type": "string"}, "a user id (admins, for anyone but themselves)"),))
def quotas() -> Response:
    principal = current_principal()
    if principal is None:
        require_admin()  # with no accounts the quotas count everyone's sessions and spend
        return jsonify(user=None, quotas=[asdict(q) for q in ctx().quotas.report(None, current_caller().rate_key)])
    user_id = request.args.get("user") or principal.user_id
    if user_id != principal.user_id:
        require_admin()
    user = ctx().store.get_user(user_id=user_id)
    if user is None:
        raise NotFound("no such user", details={"user_id": user_id[:64]})
    report = ctx().quotas.report(user_id, user_id)  # in token mode the rate limit is keyed by user id
    return jsonify(user={"id": user["id"], "name": user["name"]}, quotas=[asdict(q) for q in report])


@account_bp.get("/audit")
@describe("The audit log, newest first (admins)", response=AuditListSchema, auth="admin",
          query=(query("limit", {"type": "integer", "minimum": 1, "maximum": 5000}, "default 200"),
                 query("actor", {"type": "string"}, "a user id"),
                 query("action", {"type": "string"}, "e.g. session.launch")))
def audit() -> Response:
    require_admin()
    limit = request.args.get("limit", "200")
    if not limit.isdigit() or not 1 <= int(limit) <= 5000:
        raise ValidationFailed("limit must be between 1 and 5000", details={"limit": limit[:20]})
    store = ctx().store
    entries: list[dict[str, Any]] = store.audit_entries(int(limit), actor=request.args.get("actor"),
                                                        action=request.args.get("action"))
    names = {u["id"]: u["name"] for u in store.list_users()}
    for entry in entries:
        entry["actor_name"] = names.get(entry["actor"]) if entry["actor"] else None
    return jsonify(entries=entries, total=len(entries))
