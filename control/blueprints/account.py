"""Who am I, what have I used, and (for admins) what happened."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from control.auth import current_principal, require_admin
from control.context import ctx
from control.openapi import describe, query
from wire.errors import ValidationFailed

account_bp = Blueprint("account", __name__, url_prefix="/api")
GROUPS = ("user", "session", "day")


@account_bp.get("/me")
@describe("Who am I (token mode) or auth_mode none", response={"type": "object"}, errors=())
def me() -> Response:
    principal = current_principal()
    if principal is None:
        return jsonify(auth_mode="none", user=None)
    return jsonify(auth_mode="token", user={"id": principal.user_id, "name": principal.name, "role": principal.role})


@account_bp.get("/usage")
@describe("Token and cost usage, grouped", response={"type": "object"},
          query=(query("group_by", {"type": "string", "enum": list(GROUPS)}, "default session"),))
def usage() -> Response:
    group_by = request.args.get("group_by", "session")
    if group_by not in GROUPS:
        raise ValidationFailed(f"group_by must be one of {', '.join(GROUPS)}", details={"group_by": group_by[:40]})
    principal = current_principal()
    if principal is None:
        require_admin()  # everyone's usage, with no accounts: the operator's view only
    everyone = principal is None or principal.is_admin
    rows = ctx().store.usage_report(group_by, owner=principal.user_id if principal else None, all_owners=everyone)
    if group_by == "user":
        names = {u["id"]: u["name"] for u in ctx().store.list_users()}
        for row in rows:
            row["user"] = names.get(row["key"], "anonymous" if row["key"] is None else row["key"])
    for row in rows:
        row["cost_usd"] = round(row["cost_usd"] or 0.0, 6)
    return jsonify(group_by=group_by, usage=rows)


@account_bp.get("/audit")
@describe("The audit log (admins)", response={"type": "object"}, auth="admin",
          query=(query("limit", {"type": "integer", "minimum": 1, "maximum": 5000}, "default 200"),
                 query("actor", {"type": "string"}, "a user id"),
                 query("action", {"type": "string"}, "e.g. session.launch")))
def audit() -> Response:
    require_admin()
    limit = request.args.get("limit", "200")
    if not limit.isdigit() or not 1 <= int(limit) <= 5000:
        raise ValidationFailed("limit must be between 1 and 5000", details={"limit": limit[:20]})
    entries = ctx().store.audit_entries(int(limit), actor=request.args.get("actor"), action=request.args.get("action"))
    return jsonify(entries=entries, total=len(entries))
