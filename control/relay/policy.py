"""What the model relay forwards: exactly the Messages API routes the pinned CLI uses.

The relay holds the user's real key, so it is a narrow door, not a proxy. A request is
matched against a fixed table on its decoded path, with no normalisation: a dot segment,
a doubled slash or an encoded separator simply matches nothing and is refused before any
upstream call. The upstream URL is then built from the table's own spelling of the route
and the few query parameters it allows, so what was checked is exactly what is sent.

The table comes from the stand-in model's request log of the pinned CLI doing real work:
it calls ``POST /v1/messages?beta=true`` for every turn and ``/v1/messages/count_tokens``
for context accounting. Everything else the Anthropic API offers (models, files, batches,
organisations, the admin API) is out of reach of an agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    path: str
    """The upstream path, always the table's spelling."""
    metered: bool
    """Spends tokens: checked against the owner's budget before it is forwarded."""


ROUTES: dict[tuple[str, str], Route] = {
    ("POST", "v1/messages"): Route("v1/messages", metered=True),
    ("POST", "v1/messages/count_tokens"): Route("v1/messages/count_tokens", metered=False),
}
ALLOWED_QUERY: dict[str, frozenset[str]] = {"beta": frozenset({"true"})}


class Refused(Exception):
    """A request the relay will not forward; ``status`` and ``message`` go back to the agent."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def match(method: str, path: str, query: Mapping[str, list[str]] | None = None) -> tuple[Route, dict[str, str]]:
    """The route and the query to forward, or :class:`Refused`."""
    route = ROUTES.get((method.upper(), path))
    if route is None:
        if any((m, path) in ROUTES for m in ("GET", "POST", "HEAD")):
            raise Refused(405, "invalid_request_error", f"{method} is not allowed on /{path[:100]}")
        raise Refused(404, "not_found_error", f"the relay does not forward /{path[:100]}: only the Messages API "
                                             "routes an agent needs are reachable")
    forwarded: dict[str, str] = {}
    for name, values in (query or {}).items():
        allowed = ALLOWED_QUERY.get(name)
        if allowed is None or len(values) != 1 or values[0] not in allowed:
            raise Refused(400, "invalid_request_error", f"query parameter {name[:40]!r} is not allowed by the relay")
        forwarded[name] = values[0]
    return route, forwarded
