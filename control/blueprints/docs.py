"""``GET /docs``: a human-readable page for the API.

The page is static HTML plus an ES module (``static_ui/docs/``) that renders
``/openapi.json`` in the browser, so it runs under the dashboard's strict CSP (no inline
script or style) and always shows exactly the document the server serves.
"""

from __future__ import annotations

from flask import Blueprint, Response, send_from_directory

from control.openapi import describe
from control.web import STATIC_DIR

docs_bp = Blueprint("docs", __name__)
DOCS_DIR = STATIC_DIR / "docs"


@docs_bp.get("/docs")
@describe("Human-readable API docs rendered from this document", media=("text/html",),
          response={"type": "string"}, auth="public", errors=())
def docs() -> Response:
    resp = send_from_directory(DOCS_DIR, "index.html")
    resp.headers["Cache-Control"] = "no-cache"
    return resp
