"""Receives the CLI transcript mirror from machines (see ``machine_agent.session_store``).

Routes live under ``/relay/_store`` because they share the relay's credential: a machine's
relay token reaches only its own session's transcript.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from control.context import ctx
from wire.errors import Unauthorized, ValidationFailed

store_bp = Blueprint("session_store", __name__, url_prefix="/relay/_store")
MAX_MIRROR_BODY = 32 * 1024 * 1024


def _session_and_key() -> tuple[str, dict[str, Any], dict[str, Any]]:
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    session_id = ctx().minter.session_for_relay_token(token)
    if session_id is None:
        raise Unauthorized("invalid relay token")
    if request.content_length and request.content_length > MAX_MIRROR_BODY:
        raise ValidationFailed("mirror batch too large")
    body = request.get_json(silent=True)
    key = body.get("key") if isinstance(body, dict) else None
    if not isinstance(key, dict) or not isinstance(key.get("project_key"), str) or not isinstance(key.get("session_id"), str):
        raise ValidationFailed("key must carry project_key and session_id")
    if key.get("subpath") is not None and not isinstance(key["subpath"], str):
        raise ValidationFailed("subpath must be a string")
    return session_id, key, body


@store_bp.post("/append")
def append():  # type: ignore[no-untyped-def]
    session_id, key, body = _session_and_key()
    entries = body.get("entries")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValidationFailed("entries must be a list of objects")
    ctx().store.append_cli_entries(session_id, key, entries)
    return jsonify(appended=len(entries))


@store_bp.post("/load")
def load():  # type: ignore[no-untyped-def]
    session_id, key, _ = _session_and_key()
    return jsonify(entries=ctx().store.load_cli_entries(session_id, key))


@store_bp.post("/subkeys")
def subkeys():  # type: ignore[no-untyped-def]
    session_id, key, _ = _session_and_key()
    return jsonify(subkeys=ctx().store.cli_subkeys(session_id, key))
