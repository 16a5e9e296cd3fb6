"""Workspace file routes of the machine agent (mounted by the app under ``/files``).

Path safety lives in :mod:`machine_agent.workspace`; this module only adds HTTP: query
parsing, streaming request and response bodies, and how a file is presented to a
browser. The presentation rule is that nothing from the workspace can run
as the dashboard origin's script: every file response carries ``nosniff`` and a
``sandbox`` CSP, markup and code are sent as ``text/plain`` unless downloaded, and SVG is
only ever an attachment.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO
from urllib.parse import quote

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import (
    NEED_DATA,
    Data,
    Epilogue,
    Event,
    Field,
    File,
    MultipartDecoder,
    Preamble,
)

from machine_agent.workspace import (
    CHUNK_SIZE,
    DEFAULT_PREVIEW_BYTES,
    DEFAULT_TREE_DEPTH,
    DEFAULT_TREE_ENTRIES,
    MAX_TREE_DEPTH,
    OpenedFile,
    StagedUpload,
    Workspace,
    check_filename,
    content_type_for,
    split_path,
)
from wire.errors import Conflict, TooLarge, ValidationFailed

files_bp = Blueprint("files", __name__)

DEFAULT_MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_PARTS = 200
MAX_PART_HEADER_BYTES = 64 * 1024
UPLOAD_FIELD = "files"

# Raster images, audio and video cannot carry script for this origin: served as themselves.
_INLINE_AS_IS = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/avif",
                 "image/x-icon", "image/vnd.microsoft.icon", "application/pdf"}
# What the preview route sends as bytes without ``raw=1`` (the dashboard shows them in <img>).
_PREVIEW_IMAGES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
_TEXTUAL_APPLICATION = {"application/json", "application/javascript", "application/x-sh",
                        "application/xml", "application/xhtml+xml", "application/yaml",
                        "application/toml", "application/x-python", "application/sql",
                        "application/ld+json", "application/x-httpd-php", "application/ecmascript"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


# --------------------------------------------------------------------------- request helpers

def _workspace() -> Workspace:
    return Workspace(Path(current_app.config["WORKSPACE"]))


def _flag(name: str) -> bool:
    """Booleans in the query; anything unrecognised is a 400 rather than a silent false."""
    value = request.args.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValidationFailed(f"{name} must be true or false", details={name: value[:50]})


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(f"{name} must be an integer", details={name: raw[:50]}) from None
    if not low <= value <= high:
        raise ValidationFailed(f"{name} must be between {low} and {high}", details={name: value})
    return value


def _json_fields(*names: str) -> list[str]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationFailed("expected a JSON object", details={"fields": list(names)})
    values = []
    for name in names:
        value = body.get(name)
        if not isinstance(value, str):
            raise ValidationFailed(f"{name!r} must be a string", details={"field": name})
        values.append(value)
    return values


# --------------------------------------------------------------------------- presentation

def _is_textual(content_type: str) -> bool:
    return (content_type.startswith("text/") or content_type in _TEXTUAL_APPLICATION
            or content_type.endswith(("+xml", "+json")))


def presentation(content_type: str, *, download: bool) -> tuple[str, str]:
    """The (Content-Type, disposition) a file is served with; the one security decision.

    Downloads keep their real type (an attachment is never rendered). Inline, only types
    that cannot script the origin keep theirs: SVG becomes an attachment, everything
    textual (HTML, XML, JS, source) becomes text/plain, the rest opaque bytes.
    """
    if download:
        return content_type, "attachment"
    if content_type == "image/svg+xml":
        return content_type, "attachment"
    if content_type in _INLINE_AS_IS or content_type.startswith(("audio/", "video/")):
        return content_type, "inline"
    if _is_textual(content_type):
        return "text/plain; charset=utf-8", "inline"
    return "application/octet-stream", "inline"


def content_disposition(disposition: str, filename: str) -> str:
    """RFC 6266 with an ASCII fallback and the exact name in RFC 5987 ``filename*``."""
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\%;' else "_" for c in filename)
    encoded = quote(filename, safe="!#$&+-.^_`|~")
    return f"{disposition}; filename=\"{fallback or 'download'}\"; filename*=UTF-8''{encoded}"


def _protective_headers(content_type: str) -> dict[str, str]:
    images_only = content_type.startswith("image/") and content_type != "image/svg+xml"
    return {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox" if images_only else "sandbox; default-src 'none'",
        "Cache-Control": "private, no-store",
    }


def _stream(handle: BinaryIO, size: int) -> Iterator[bytes]:
    """At most the size announced in Content-Length, even if the file grows meanwhile."""
    remaining = size
    try:
        while remaining > 0:
            chunk = handle.read(min(CHUNK_SIZE, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


def _file_response(opened: OpenedFile, *, download: bool) -> Response:
    served_type, disposition = presentation(opened.content_type, download=download)
    response = Response(_stream(opened.file, opened.size), status=200, content_type=served_type)
    response.headers["Content-Length"] = str(opened.size)
    response.headers["Content-Disposition"] = content_disposition(disposition, opened.name)
    response.headers.update(_protective_headers(served_type))
    response.call_on_close(opened.file.close)
    return response


# --------------------------------------------------------------------------- multipart

class _MultipartReader:
    """Pulls the request body through werkzeug's sans-IO decoder, one chunk at a time.

    Nothing is buffered beyond one chunk plus a part's headers, unlike ``request.files``
    which spools every file before the view runs.
    """

    def __init__(self, stream: IO[bytes], boundary: bytes, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._read = 0
        self._decoder = MultipartDecoder(boundary, max_form_memory_size=MAX_PART_HEADER_BYTES + CHUNK_SIZE,
                                         max_parts=MAX_PARTS)

    def events(self) -> Iterator[Event]:
        while True:
            try:
                event = self._decoder.next_event()
                if event is NEED_DATA:
                    self._decoder.receive_data(self._next_chunk())
                    continue
            except RequestEntityTooLarge:
                raise TooLarge("too many parts or oversized part headers",
                               details={"max_parts": MAX_PARTS}) from None
            except ValueError as exc:
                raise ValidationFailed("malformed multipart body", details={"reason": str(exc)[:200]}) from None
            if isinstance(event, Epilogue):
                return
            yield event

    def _next_chunk(self) -> bytes | None:
        chunk = self._stream.read(CHUNK_SIZE)
        self._read += len(chunk)
        if self._read > self._limit:
            raise TooLarge("the upload request is larger than allowed", details={"limit": self._limit})
        return chunk or None

    def files(self, field: str) -> Iterator[tuple[str, Iterator[bytes]]]:
        """(filename, body chunks) for each file part of ``field``; other parts are drained."""
        events = self.events()
        for event in events:
            if isinstance(event, Preamble):
                continue
            body = _part_body(events)
            if isinstance(event, File) and event.name == field:
                yield event.filename, body
            elif not isinstance(event, (File, Field)):
                raise ValidationFailed("malformed multipart body", details={})
            for _ in body:
                pass


def _part_body(events: Iterator[Event]) -> Iterator[bytes]:
    for event in events:
        if not isinstance(event, Data):
            raise ValidationFailed("malformed multipart body", details={})
        if event.data:
            yield event.data
        if not event.more_data:
            return


def _boundary() -> bytes:
    mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
    boundary = options.get("boundary", "")
    if mimetype != "multipart/form-data" or not boundary or len(boundary) > 200:
        raise ValidationFailed("expected multipart/form-data with a boundary",
                               details={"content_type": mimetype})
    try:
        return boundary.encode("latin-1")
    except UnicodeEncodeError:
        raise ValidationFailed("invalid multipart boundary", details={}) from None


def _stage_all(workspace: Workspace, reader: _MultipartReader, target: str, overwrite: bool,
               per_file: int, staged: list[StagedUpload]) -> None:
    seen: set[str] = set()
    for filename, body in reader.files(UPLOAD_FIELD):
        if filename == "":
            continue  # what browsers send for an empty file input
        name = check_filename(filename)
        if name in seen:
            raise Conflict("the same file name appears twice in the request", details={"filename": name})
        seen.add(name)
        staged.append(workspace.stage_upload(target, name, body, overwrite=overwrite, max_bytes=per_file))


# --------------------------------------------------------------------------- routes

@files_bp.get("/tree")
def tree() -> Response:
    path = request.args.get("path", "")
    depth = _int_arg("depth", DEFAULT_TREE_DEPTH, 1, MAX_TREE_DEPTH)
    listing = _workspace().tree(path, depth=depth, max_entries=DEFAULT_TREE_ENTRIES)
    root = current_app.config.get("WORKSPACE_DISPLAY_ROOT", "/workspace")
    return jsonify({"root": root, **listing})


@files_bp.get("/content/<path:path>")
def content(path: str) -> Response:
    raw, download = _flag("raw"), _flag("download")
    workspace = _workspace()
    name = split_path(path, allow_root=False)[-1]
    if raw or download or content_type_for(name) in _PREVIEW_IMAGES:
        return _file_response(workspace.open_for_read(path), download=download)
    limit = int(current_app.config.get("PREVIEW_MAX_BYTES", DEFAULT_PREVIEW_BYTES))
    response = jsonify(workspace.preview(path, max_bytes=limit))
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@files_bp.delete("/content/<path:path>")
def delete(path: str) -> Response:
    return jsonify({"deleted": _workspace().delete(path)})


@files_bp.get("/zip")
def zip_workspace() -> Response:
    workspace = _workspace()
    workspace.resolve("")  # a missing workspace is a 404 before the first byte is sent
    response = Response(workspace.iter_zip(), status=200, content_type="application/zip")
    response.headers["Content-Disposition"] = 'attachment; filename="workspace.zip"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@files_bp.post("/upload")
def upload() -> tuple[Response, int]:
    per_file = int(current_app.config.get("MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES))
    per_request = int(current_app.config.get("MAX_UPLOAD_REQUEST_BYTES", 4 * per_file))
    target = request.args.get("target_path", "")
    split_path(target)  # a bad target is a 400 before any byte is read
    overwrite = _flag("overwrite")
    if request.content_length is not None and request.content_length > per_request:
        raise TooLarge("the upload request is larger than allowed", details={"limit": per_request})
    reader = _MultipartReader(request.stream, _boundary(), per_request)
    workspace = _workspace()
    staged: list[StagedUpload] = []
    uploaded: list[dict[str, Any]] = []
    try:
        _stage_all(workspace, reader, target, overwrite, per_file, staged)
        if not staged:
            raise ValidationFailed(f"no files in the multipart field {UPLOAD_FIELD!r}", details={})
        while staged:
            uploaded.append(workspace.commit_upload(staged.pop(0)))
    finally:
        for leftover in staged:
            workspace.discard_upload(leftover)
    return jsonify({"uploaded": uploaded}), 200


@files_bp.post("/mkdir")
def mkdir() -> Response:
    (path,) = _json_fields("path")
    return jsonify({"created": _workspace().mkdir(path)})


@files_bp.post("/rename")
def rename() -> Response:
    source, target = _json_fields("from", "to")
    renamed_from, renamed_to = _workspace().rename(source, target)
    return jsonify({"renamed": {"from": renamed_from, "to": renamed_to}})
