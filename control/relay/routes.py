"""The relay's routes: the model (``/relay/v1/...``) and the CLI's session-store mirror
(``/relay/_store/...``), both reached by machines only, never by the public API.

Who is calling is settled before anything else, and twice: the relay token names a machine
(it is an HMAC of the machine's key, see ``control.secrets``), and the listener the request
arrived on names the machine it came from (a Unix socket per local machine, or the peer
address on the agents' network, see :mod:`control.relay.listener`). Both must agree, so a
token copied out of a machine is useless anywhere else. The machine then leads to the
session that claimed it, whose owner's key is injected.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import requests
from flask import Blueprint, Response, jsonify, request, stream_with_context

from control import metrics
from control.context import ctx
from control.pricing import cost_usd
from control.relay.meter import UsageMeter, model_of
from control.relay.policy import Refused, match
from control.store import SessionRow
from wire.errors import TooLarge, Unauthorized, ValidationFailed

log = logging.getLogger(__name__)

relay_bp = Blueprint("relay", __name__, url_prefix="/relay")

PEER_ENVIRON = "agcluster.machine_key"
"""Set by the listener: the key of the machine this connection comes from (or None)."""
FORWARDED_REQUEST_HEADERS = ("anthropic-version", "anthropic-beta", "content-type", "accept", "user-agent",
                             "x-stainless-retry-count")
FORWARDED_RESPONSE_HEADERS = ("content-type", "request-id", "anthropic-ratelimit-requests-remaining",
                              "anthropic-ratelimit-tokens-remaining", "retry-after", "x-should-retry",
                              "anthropic-organization-id")
MAX_RELAY_BODY = 32 * 1024 * 1024
MAX_MIRROR_BODY = 8 * 1024 * 1024
MAX_MIRROR_PER_SESSION = 256 * 1024 * 1024


def calling_session(token: str) -> SessionRow:
    """The session whose machine sent this request, or :class:`Refused` (401)."""
    ext = ctx()
    machine_key = ext.minter.machine_for_relay_token(token or "")
    if machine_key is None:
        raise Refused(401, "authentication_error", "invalid relay token")
    if request.environ.get(PEER_ENVIRON) != machine_key:
        raise Refused(401, "authentication_error", "this relay token is only valid from its own machine")
    row = ext.store.session_for_machine(machine_key)
    if row is None:
        raise Refused(401, "authentication_error", "no session is using this machine")
    return row


def _anthropic_error(status: int, kind: str, message: str) -> Response:
    body = json.dumps({"type": "error", "error": {"type": kind, "message": message}})
    return Response(body, status=status, mimetype="application/json")


@relay_bp.route("/<path:path>", methods=["GET", "POST", "HEAD", "PUT", "PATCH", "DELETE"])
def model(path: str) -> Response:
    try:
        return _forward(path)
    except Refused as refusal:
        return _anthropic_error(refusal.status, refusal.kind, refusal.message)


def _forward(path: str) -> Response:
    ext = ctx()
    token = request.headers.get("x-api-key") or request.headers.get("Authorization", "").removeprefix("Bearer ")
    row = calling_session(token)
    # Only now, with the caller known, is the path looked at: nothing about the relay's
    # routes is revealed to a stranger.
    route, query = match(request.method, path, request.args.to_dict(flat=False))
    api_key = ext.vault.get(row.id)
    if api_key is None:
        raise Refused(401, "authentication_error",
                      "the session's Anthropic key is not in memory (the control plane restarted); "
                      "send the next chat with the key")
    if request.content_length and request.content_length > MAX_RELAY_BODY:
        raise Refused(413, "request_too_large", "request too large for the relay")
    if route.metered:
        refusal = ext.quotas.budget_left(row.owner)
        if refusal is not None:
            # A 4xx the CLI does not retry: the agent reports it and the turn ends cleanly.
            raise Refused(400, "invalid_request_error", refusal)
    payload = request.get_data()
    if len(payload) > MAX_RELAY_BODY:
        raise Refused(413, "request_too_large", "request too large for the relay")
    metrics.count_relay_bytes(len(payload), "upstream")
    model_name = model_of(payload)
    headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED_REQUEST_HEADERS}
    headers["x-api-key"] = api_key
    try:
        upstream = ext.relay_http.request(request.method, f"{ext.settings.anthropic_base_url}/{route.path}",
                                          params=query, headers=headers, data=payload, stream=True,
                                          timeout=(10, 600))
    except requests.RequestException as exc:
        metrics.count_provider_error("anthropic", "unreachable")
        raise Refused(502, "api_error", f"the model API is not reachable ({type(exc).__name__})") from None
    metrics.observe_model_status(upstream.status_code)
    meter = UsageMeter()
    store, session_id, owner = ext.store, row.id, row.owner

    def body() -> Iterator[bytes]:
        sent = 0
        try:
            for chunk in upstream.iter_content(chunk_size=None):
                meter.feed(chunk)
                sent += len(chunk)
                yield chunk
        except requests.RequestException:
            log.warning("upstream stream broke for session %s", session_id)
            metrics.count_provider_error("anthropic", "stream_broken")
        finally:
            upstream.close()
            metrics.count_relay_bytes(sent)  # once per stream: a counter update per chunk cost more than the chunk
            meter.finish()
            if meter.any:
                try:
                    totals = meter.totals()
                    cost = cost_usd(model_name, **totals)
                    metrics.count_tokens(**totals, cost_usd=cost)
                    store.add_usage(session_id, **totals, cost_usd=cost, owner=owner, model=model_name)
                except Exception:  # metering must not break the stream
                    log.exception("could not record usage")

    response_headers = {k: v for k, v in upstream.headers.items() if k.lower() in FORWARDED_RESPONSE_HEADERS}
    response_headers["X-Accel-Buffering"] = "no"
    return Response(stream_with_context(body()), status=upstream.status_code, headers=response_headers,
                    direct_passthrough=True)


# The CLI's session-store mirror (machine_agent.session_store) ---------------------------
def _mirror_request() -> tuple[SessionRow, dict[str, Any], dict[str, Any]]:
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    try:
        row = calling_session(token)
    except Refused as refusal:
        raise Unauthorized(refusal.message) from None
    if request.content_length and request.content_length > MAX_MIRROR_BODY:
        raise TooLarge(f"a mirror batch may be at most {MAX_MIRROR_BODY // 2**20} MiB")
    body = request.get_json(silent=True)
    key = body.get("key") if isinstance(body, dict) else None
    if not (isinstance(key, dict) and isinstance(key.get("project_key"), str)
            and isinstance(key.get("session_id"), str)):
        raise ValidationFailed("key must carry project_key and session_id")
    if key.get("subpath") is not None and not isinstance(key["subpath"], str):
        raise ValidationFailed("subpath must be a string")
    assert isinstance(body, dict)
    return row, key, body


@relay_bp.post("/_store/append")
def mirror_append() -> Response:
    row, key, body = _mirror_request()
    entries = body.get("entries")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValidationFailed("entries must be a list of objects")
    store = ctx().store
    if store.cli_bytes(row.id) + (request.content_length or 0) > MAX_MIRROR_PER_SESSION:
        raise TooLarge(f"the session's transcript mirror is full ({MAX_MIRROR_PER_SESSION // 2**20} MiB)",
                       code="mirror_full")
    store.append_cli_entries(row.id, key, entries)
    return jsonify(appended=len(entries))


@relay_bp.post("/_store/load")
def mirror_load() -> Response:
    row, key, _ = _mirror_request()
    return jsonify(entries=ctx().store.load_cli_entries(row.id, key))


@relay_bp.post("/_store/subkeys")
def mirror_subkeys() -> Response:
    row, key, _ = _mirror_request()
    return jsonify(subkeys=ctx().store.cli_subkeys(row.id, key))
