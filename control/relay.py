"""The model relay (DESIGN.md §7): machines call the model through here, never directly.

A machine authenticates with its per-session relay token; the relay swaps in the user's key
(held in memory, refreshed by each chat's Bearer header), forwards to the upstream
``ANTHROPIC_BASE_URL`` and streams the answer back chunk by chunk while metering tokens
from the stream. The user's key never leaves this process except towards the upstream.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import requests
from flask import Blueprint, Response, current_app, request, stream_with_context

from control import metrics
from control.pricing import cost_usd

log = logging.getLogger(__name__)

relay_bp = Blueprint("relay", __name__)

FORWARDED_REQUEST_HEADERS = ("anthropic-version", "anthropic-beta", "content-type", "accept", "user-agent",
                             "x-stainless-retry-count", "anthropic-dangerous-direct-browser-access")
FORWARDED_RESPONSE_HEADERS = ("content-type", "request-id", "anthropic-ratelimit-requests-remaining",
                              "anthropic-ratelimit-tokens-remaining", "retry-after", "x-should-retry",
                              "anthropic-organization-id")
MAX_RELAY_BODY = 32 * 1024 * 1024


def _anthropic_error(status: int, kind: str, message: str) -> Response:
    body = json.dumps({"type": "error", "error": {"type": kind, "message": message}})
    return Response(body, status=status, mimetype="application/json")


@relay_bp.route("/relay/<path:path>", methods=["GET", "POST", "HEAD"])
def relay(path: str) -> Response:
    ext = current_app.extensions["agcluster"]
    token = request.headers.get("x-api-key") or request.headers.get("Authorization", "").removeprefix("Bearer ")
    session_id = ext.minter.session_for_relay_token(token or "")
    if session_id is None:
        return _anthropic_error(401, "authentication_error", "invalid relay token")
    api_key = ext.vault.get(session_id)
    if api_key is None:
        return _anthropic_error(401, "authentication_error",
                                "the session's Anthropic key is not in memory (the control plane restarted); "
                                "send the next chat with the key as Bearer")
    if request.content_length and request.content_length > MAX_RELAY_BODY:
        return _anthropic_error(413, "request_too_large", "request too large for the relay")
    row = ext.store.get_session(session_id)
    if row is None:
        return _anthropic_error(401, "authentication_error", "the session no longer exists")
    if path.startswith("v1/messages") and not path.startswith("v1/messages/count_tokens"):
        refusal = ext.quotas.budget_left(row.owner)
        if refusal is not None:
            # A 4xx the CLI does not retry: the agent reports it and the turn ends cleanly.
            return _anthropic_error(400, "invalid_request_error", refusal)
    payload = request.get_data() if request.method == "POST" else None
    metrics.count_relay_bytes(len(payload or b""), "upstream")
    model = _model_of(payload)
    headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED_REQUEST_HEADERS}
    headers["x-api-key"] = api_key
    url = f"{ext.settings.anthropic_base_url}/{path}"
    try:
        upstream = ext.relay_http.request(request.method, url, params=request.args, headers=headers,
                                          data=payload,
                                          stream=True, timeout=(10, 600))
    except requests.RequestException as exc:
        metrics.count_provider_error("anthropic", "unreachable")
        return _anthropic_error(502, "api_error", f"the model API is not reachable ({type(exc).__name__})")
    metrics.observe_model_status(upstream.status_code)
    meter = UsageMeter()
    store = ext.store

    def body() -> Iterator[bytes]:
        try:
            for chunk in upstream.iter_content(chunk_size=None):
                meter.feed(chunk)
                metrics.count_relay_bytes(len(chunk))
                yield chunk
        except requests.RequestException:
            log.warning("upstream stream broke for session %s", session_id)
            metrics.count_provider_error("anthropic", "stream_broken")
        finally:
            upstream.close()
            meter.finish()
            if meter.any:
                try:
                    totals = meter.totals()
                    metrics.count_tokens(**totals, cost_usd=cost_usd(model, **totals))
                    store.add_usage(session_id, **totals, cost_usd=cost_usd(model, **totals), owner=row.owner,
                                    model=model)
                except Exception:  # noqa: BLE001 - metering must not break the stream
                    log.exception("could not record usage")

    response_headers = {k: v for k, v in upstream.headers.items() if k.lower() in FORWARDED_RESPONSE_HEADERS}
    response_headers["X-Accel-Buffering"] = "no"
    return Response(stream_with_context(body()), status=upstream.status_code, headers=response_headers,
                    direct_passthrough=True)


_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]{1,200})"')


def _model_of(payload: bytes | None) -> str:
    """The request's model, for pricing, without parsing a whole conversation (a profile
    hotspot). Quotes inside message text are escaped in JSON, so they cannot match."""
    match = _MODEL.search(payload or b"")
    return match.group(1).decode(errors="replace") if match else ""


class UsageMeter:
    """Reads token usage from a Messages API answer as it streams past (SSE or JSON)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._sse = False
        self._body: list[bytes] = []
        self.input_tokens = self.output_tokens = self.cache_read_tokens = self.cache_write_tokens = 0
        self.any = False

    def feed(self, chunk: bytes) -> None:
        if not self._sse and not self._body and chunk.lstrip().startswith((b"event:", b"data:", b":")):
            self._sse = True
        if not self._sse:
            if sum(len(b) for b in self._body) < 4 * 1024 * 1024:
                self._body.append(chunk)
            return
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line.startswith(b"data:") and b"usage" in line:
                self._read(line[5:])

    def finish(self) -> None:
        if self._sse:
            if self._buffer.startswith(b"data:"):
                self._read(self._buffer[5:])
        elif self._body:
            self._read(b"".join(self._body))

    def _read(self, raw: bytes) -> None:
        try:
            data = json.loads(raw)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        usage = data.get("usage") or (data.get("message") or {}).get("usage")
        if not isinstance(usage, dict):
            return
        self.any = True
        kind = data.get("type")
        # message_start carries input (and an initial output count); message_delta carries
        # the cumulative output count, so it replaces rather than adds.
        if kind in ("message_start", "message") or kind is None:
            self.input_tokens = int(usage.get("input_tokens") or 0)
            self.cache_read_tokens = int(usage.get("cache_read_input_tokens") or 0)
            self.cache_write_tokens = int(usage.get("cache_creation_input_tokens") or 0)
            self.output_tokens = int(usage.get("output_tokens") or 0)
        elif kind == "message_delta":
            self.output_tokens = int(usage.get("output_tokens") or self.output_tokens)
            if usage.get("input_tokens"):
                self.input_tokens = int(usage["input_tokens"])

    def totals(self) -> dict[str, Any]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cache_read_tokens": self.cache_read_tokens, "cache_write_tokens": self.cache_write_tokens}
