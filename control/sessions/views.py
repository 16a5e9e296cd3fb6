"""The public shape of a session."""

from __future__ import annotations

from typing import Any

from control.store import SessionRow


def session_view(row: SessionRow, busy: bool, resources: dict[str, Any] | None = None,
                 owner_name: str | None = None) -> dict[str, Any]:
    """Never the key hash or salt. ``status`` is where the machine is (see
    ``control.session_status``); ``busy`` whether a turn is in progress on it; ``owner`` the
    user who launched it (``AUTH_MODE=token``; null otherwise), so an admin, who sees
    everyone's sessions, can tell whose each is."""
    return {
        "session_id": row.id,
        "owner": {"id": row.owner, "name": owner_name} if row.owner else None,
        "agent_id": row.agent_id,
        "config_id": row.config_id,
        "config_name": row.config.get("name"),
        "provider": row.provider,
        "machine_id": row.machine_id,
        "status": str(row.status),
        "busy": busy,
        "status_detail": row.status_detail,
        "created_at": row.created_at,
        "last_active_at": row.last_active_at,
        "turns": row.turns,
        "usage": {
            "input_tokens": row.input_tokens, "output_tokens": row.output_tokens,
            "cache_read_tokens": row.cache_read_tokens, "cache_write_tokens": row.cache_write_tokens,
            "cost_usd": round(row.cost_usd, 6),
        },
        "resources": resources,
    }
