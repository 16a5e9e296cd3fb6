"""``GET /metrics``: the Prometheus exposition (``control.metrics`` keeps the series).

It carries no secrets and no session ids (labels are bounded); put it behind the network,
as Prometheus endpoints usually are.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from control.metrics import registry_for
from control.openapi import describe

metrics_bp = Blueprint("metrics", __name__)


@metrics_bp.get("/metrics")
@describe("Prometheus metrics (text exposition)", media=("text/plain",), errors=(), response={"type": "string"})
def metrics() -> Response:
    return Response(generate_latest(registry_for(current_app)), mimetype=None, content_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})
