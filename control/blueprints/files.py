"""Workspace files, served by the machine and streamed through in both directions.

The control plane never sees the machine's disk (on Fly it cannot), so every route is a
streaming pass-through to the machine agent's ``/files`` API; path safety is enforced by the
machine in one place (``machine_agent.workspace``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO
from urllib.parse import quote

import requests
from flask import Blueprint, Response, jsonify, request, stream_with_context

from control.auth import current_caller
from control.context import ctx
from control.machine_client import MachineClient
from control.openapi import FLAG, MACHINE_ERRORS, describe, query
from control.schemas import (
    FilePreviewSchema,
    FileTreeSchema,
    MkdirSchema,
    RenameSchema,
    UploadedSchema,
    UploadFormSchema,
)
from wire.errors import TooLarge

files_bp = Blueprint("files", __name__, url_prefix="/api/files")

PASSED_HEADERS = ("Content-Type", "Content-Length", "Content-Disposition", "Content-Security-Policy",
                  "X-Content-Type-Options", "Last-Modified", "Cache-Control")
FILES_PER_REQUEST = 20


def _machine(session_id: str) -> MachineClient:
    service = ctx().sessions
    return service.machines.reach(service.open(current_caller(), session_id))


def _relay(resp: requests.Response) -> Response:
    def body() -> Iterator[bytes]:
        try:
            yield from resp.iter_content(chunk_size=64 * 1024)
        finally:
            resp.close()

    headers = {k: v for k, v in resp.headers.items() if k in PASSED_HEADERS}
    return Response(stream_with_context(body()), status=resp.status_code, headers=headers, direct_passthrough=True)


@files_bp.get("/<session_id>")
@describe("The workspace tree", response=FileTreeSchema, auth="session", errors=MACHINE_ERRORS,
          query=(query("path", {"type": "string"}, "a sub-directory to list"),
                 query("depth", {"type": "integer", "minimum": 1, "maximum": 64}, "levels to descend")))
def tree(session_id: str) -> Response:
    client = _machine(session_id)
    return jsonify(client.request("GET", "/files/tree", params=request.args).json())


@files_bp.get("/<session_id>/<path:path>")
@describe("A text preview as JSON; images and ?raw=1 as bytes; ?download=1 as an attachment",
          response=FilePreviewSchema, media=("application/json", "*/*"), auth="session", errors=(*MACHINE_ERRORS, 413),
          query=(query("raw", FLAG, "send the bytes"), query("download", FLAG, "send as an attachment")),
          path_params={"path": "workspace-relative file path (may contain /)"})
def read(session_id: str, path: str) -> Response:
    client = _machine(session_id)
    return _relay(client.request("GET", f"/files/content/{quote(path, safe='/')}", params=request.args,
                                 stream=True, timeout=300))


@files_bp.delete("/<session_id>/<path:path>")
@describe("Delete a file or folder", response={"type": "object"}, auth="session", errors=MACHINE_ERRORS,
          path_params={"path": "workspace-relative path (may contain /)"})
def delete(session_id: str, path: str) -> Response:
    client = _machine(session_id)
    return jsonify(client.request("DELETE", f"/files/content/{quote(path, safe='/')}").json())


@files_bp.post("/<session_id>/download")
@describe("The whole workspace as a streamed ZIP", media=("application/zip",),
          response={"type": "string", "format": "binary"}, auth="session", errors=MACHINE_ERRORS)
def download_zip(session_id: str) -> Response:
    client = _machine(session_id)
    return _relay(client.request("GET", "/files/zip", stream=True, timeout=600))


@files_bp.post("/<session_id>/upload")
@describe("Upload files (multipart field 'files', several allowed); streamed to the machine", body=UploadFormSchema,
          body_media="multipart/form-data", response=UploadedSchema, auth="session", errors=(*MACHINE_ERRORS, 413),
          query=(query("target_path", {"type": "string"}, "workspace folder to upload into"),
                 query("overwrite", FLAG, "replace existing files")))
def upload(session_id: str) -> tuple[Response, int]:
    limit = ctx().settings.max_upload_mb * 1024 * 1024 * FILES_PER_REQUEST
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"uploads are limited to {ctx().settings.max_upload_mb} MB a file",
                       details={"max_upload_mb": ctx().settings.max_upload_mb})
    client = _machine(session_id)
    # Sent chunked: the body is streamed through, never held here.
    headers = {"Content-Type": request.headers.get("Content-Type", "")}
    request.max_content_length = limit
    resp = client.request("POST", "/files/upload", params=request.args, data=_chunks(request.stream),
                          headers=headers, timeout=600)
    return jsonify(resp.json()), resp.status_code


@files_bp.post("/<session_id>/mkdir")
@describe("Create a folder", body=MkdirSchema, response={"type": "object"}, auth="session",
          errors=(*MACHINE_ERRORS, 413))
def mkdir(session_id: str) -> Response:
    client = _machine(session_id)
    return jsonify(client.request("POST", "/files/mkdir", json=request.get_json(silent=True)).json())


@files_bp.post("/<session_id>/rename")
@describe("Rename or move a file or folder", body=RenameSchema, response={"type": "object"}, auth="session",
          errors=(*MACHINE_ERRORS, 413))
def rename(session_id: str) -> Response:
    client = _machine(session_id)
    return jsonify(client.request("POST", "/files/rename", json=request.get_json(silent=True)).json())


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while True:
        chunk = stream.read(256 * 1024)
        if not chunk:
            return
        yield chunk
