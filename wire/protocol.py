"""Names both ends of the machine protocol agree on (docs/MACHINE_PROTOCOL.md)."""

from __future__ import annotations

MACHINE_TOKEN_ENV = "AGCLUSTER_MACHINE_TOKEN"
"""The environment variable that hands a machine agent its token; the agent reads it once
and removes it before the CLI starts, so the agent's tools never see it."""

DECISIONS = ("allow", "allow_session", "deny")
"""Answers to a ``permission_request``: once, for the rest of the session, or not at all."""
