"""The /files routes through Flask's test client, on real temporary directories.

The attack corpus at the end asserts effects, not implementation: no response ever
contains the secret kept outside the root (or /etc/passwd), nothing outside changes,
and no request is answered with a 500.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from machine_agent.files import content_disposition, files_bp, presentation
from machine_agent.http import install_error_handlers
from machine_agent.workspace import TEMP_PREFIX

SECRET = b"AGC-SECRET-7f3a9c-outside-the-root"
PASSWD_HEAD = Path("/etc/passwd").read_bytes()[:24]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
HTML = b"<html><script>alert(document.cookie)</script></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


@pytest.fixture
def root(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.txt").write_bytes(SECRET)
    (outside / "dir" / "inner.txt").write_bytes(SECRET)
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / "sub" / "keep.txt").write_text("keep")
    (ws / "secret_link").symlink_to("../outside/secret.txt")
    (ws / "abs_secret").symlink_to(outside / "secret.txt")
    (ws / "outdir").symlink_to("../outside")
    (ws / "passwd").symlink_to("/etc/passwd")
    (ws / "proc_env").symlink_to("/proc/self/environ")
    (ws / "up").symlink_to("..")
    (ws / "loop").symlink_to("loop")
    (ws / "hop").symlink_to("secret_link")
    (ws / "sub" / "updir").symlink_to("../../outside/secret.txt")
    return ws


@pytest.fixture
def app(root: Path) -> Flask:
    app = Flask(__name__)
    app.config.update(WORKSPACE=str(root), MAX_UPLOAD_BYTES=1024 * 1024)
    install_error_handlers(app)
    app.register_blueprint(files_bp, url_prefix="/files")
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def body(response: TestResponse) -> Any:
    """The JSON answer; a test fails here, on what was sent instead, rather than on a None."""
    assert response.is_json, response.data[:200]
    return response.json


def _upload(client: FlaskClient, files: list[tuple[bytes, str]], query: str = "") -> TestResponse:
    data = {"files": [(io.BytesIO(body), name) for body, name in files]}
    return client.post(f"/files/upload{query}", data=data, content_type="multipart/form-data")


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(directory.rglob("*"))}


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


# --------------------------------------------------------------------------- happy paths

def test_upload_tree_preview_raw_download_zip(client: FlaskClient, root: Path) -> None:
    answer = _upload(client, [(b"hello\n", "hello.txt"), (PNG, "pic.png"), (HTML, "page.html"),
                              (SVG, "logo.svg"), (b"def f():\n    pass\n", "code.py"),
                              ("caf\u00e9".encode(), "\u00fcber na\u00efve.txt")],
                     "?target_path=docs/new")
    assert answer.status_code == 200, answer.json
    uploaded = body(answer)["uploaded"]
    assert {"filename": "hello.txt", "path": "docs/new/hello.txt", "size": 6} in uploaded
    assert len(uploaded) == 6

    tree = body(client.get("/files/tree"))
    assert tree["root"] == "/workspace" and tree["truncated"] is False
    docs = next(n for n in tree["tree"] if n["name"] == "docs")
    assert docs["type"] == "directory"
    new = docs["children"][0]
    names = [c["name"] for c in new["children"]]
    assert names == sorted(names, key=str.casefold)
    hello = next(c for c in new["children"] if c["name"] == "hello.txt")
    assert set(hello) == {"name", "path", "type", "size", "modified"} and hello["size"] == 6
    sub_tree = body(client.get("/files/tree?path=docs/new&depth=1"))
    assert next(n["path"] for n in sub_tree["tree"]).startswith("docs/new/")

    preview = client.get("/files/content/docs/new/code.py")
    assert preview.json == {"path": "docs/new/code.py", "content": "def f():\n    pass\n", "language": "python",
                            "size": 18, "binary": False, "truncated": False}

    image = client.get("/files/content/docs/new/pic.png")  # images as bytes without raw=1
    assert image.data == PNG and image.headers["Content-Type"] == "image/png"
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    assert image.headers["Content-Length"] == str(len(PNG))
    assert "sandbox" in image.headers["Content-Security-Policy"]

    raw = client.get("/files/content/docs/new/hello.txt?raw=1")
    assert raw.data == b"hello\n" and raw.headers["Content-Type"].startswith("text/plain")
    assert raw.headers["Content-Disposition"].startswith("inline;")

    download = client.get("/files/content/docs/new/%C3%BCber%20na%C3%AFve.txt?download=1")
    assert download.data == "caf\u00e9".encode()
    assert download.headers["Content-Disposition"] == (
        "attachment; filename=\"_ber na_ve.txt\"; filename*=UTF-8''%C3%BCber%20na%C3%AFve.txt")

    archive = client.get("/files/zip")
    assert archive.status_code == 200
    assert archive.headers["Content-Type"] == "application/zip"
    assert archive.headers["Content-Disposition"] == 'attachment; filename="workspace.zip"'
    entries = zipfile.ZipFile(io.BytesIO(archive.data))
    assert entries.read("docs/new/pic.png") == PNG
    assert entries.read("docs/new/hello.txt") == b"hello\n"
    assert entries.read("docs/new/\u00fcber na\u00efve.txt") == "caf\u00e9".encode()
    assert entries.read("sub/keep.txt") == b"keep"


def test_html_and_svg_never_render_as_this_origin(client: FlaskClient, root: Path) -> None:
    (root / "page.html").write_bytes(HTML)
    (root / "logo.svg").write_bytes(SVG)
    (root / "data.xml").write_bytes(b"<x/>")
    (root / "app.js").write_bytes(b"alert(1)")
    html = client.get("/files/content/page.html?raw=1")
    assert html.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert html.headers["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert html.headers["X-Content-Type-Options"] == "nosniff"
    html_download = client.get("/files/content/page.html?download=1")
    assert html_download.headers["Content-Disposition"].startswith("attachment;")
    assert html_download.headers["Content-Security-Policy"].startswith("sandbox")
    svg = client.get("/files/content/logo.svg?raw=1")
    assert svg.headers["Content-Disposition"].startswith("attachment;")
    assert svg.headers["Content-Security-Policy"].startswith("sandbox")
    assert client.get("/files/content/data.xml?raw=1").headers["Content-Type"].startswith("text/plain")
    assert client.get("/files/content/app.js?raw=1").headers["Content-Type"].startswith("text/plain")
    preview = client.get("/files/content/page.html")
    assert body(preview)["language"] == "html"


@pytest.mark.parametrize("content_type, download, expected", [
    ("text/html", False, ("text/plain; charset=utf-8", "inline")),
    ("application/xhtml+xml", False, ("text/plain; charset=utf-8", "inline")),
    ("image/svg+xml", False, ("image/svg+xml", "attachment")),
    ("image/png", False, ("image/png", "inline")),
    ("video/mp4", False, ("video/mp4", "inline")),
    ("application/wasm", False, ("application/octet-stream", "inline")),
    ("text/html", True, ("text/html", "attachment")),
])
def test_presentation_rule(content_type: str, download: bool, expected: tuple[str, str]) -> None:
    assert presentation(content_type, download=download) == expected


def test_content_disposition_escapes_quotes() -> None:
    header = content_disposition("attachment", 'a"b\\c;d.txt')
    assert header == "attachment; filename=\"a_b_c_d.txt\"; filename*=UTF-8''a%22b%5Cc%3Bd.txt"


def test_preview_binary_and_cap(app: Flask, client: FlaskClient, root: Path) -> None:
    (root / "blob.dat").write_bytes(b"\x00\x01\x02")
    (root / "big.txt").write_text("a" * 100)
    assert body(client.get("/files/content/blob.dat"))["binary"] is True
    app.config["PREVIEW_MAX_BYTES"] = 10
    capped = body(client.get("/files/content/big.txt"))
    assert capped["content"] == "a" * 10 and capped["truncated"] is True and capped["size"] == 100


def test_overwrite_false_is_409_and_keeps_the_original(client: FlaskClient, root: Path) -> None:
    assert _upload(client, [(b"one", "a.txt")]).status_code == 200
    conflict = _upload(client, [(b"two", "a.txt")], "?overwrite=false")
    assert conflict.status_code == 409 and body(conflict)["error"]["code"] == "conflict"
    assert (root / "a.txt").read_bytes() == b"one"
    assert _upload(client, [(b"two", "a.txt")], "?overwrite=true").status_code == 200
    assert (root / "a.txt").read_bytes() == b"two"
    assert _temp_files(root) == []


def test_too_big_is_413_and_leaves_nothing(app: Flask, client: FlaskClient, root: Path) -> None:
    app.config["MAX_UPLOAD_BYTES"] = 1000
    answer = _upload(client, [(b"ok", "small.txt"), (b"x" * 1001, "big.bin")], "?target_path=in")
    assert answer.status_code == 413 and body(answer)["error"]["code"] == "too_large"
    assert not (root / "in" / "big.bin").exists()
    assert not (root / "in" / "small.txt").exists()  # a request is all or nothing
    assert _temp_files(root) == []
    app.config["MAX_UPLOAD_REQUEST_BYTES"] = 1500
    whole = _upload(client, [(b"x" * 900, "one.bin"), (b"x" * 900, "two.bin")])
    assert whole.status_code == 413
    assert not (root / "one.bin").exists() and _temp_files(root) == []


def test_upload_request_errors(client: FlaskClient) -> None:
    assert client.post("/files/upload", data=b"plain", content_type="text/plain").status_code == 400
    assert _upload(client, []).status_code == 400
    assert _upload(client, [(b"x", "a.txt")], "?overwrite=maybe").status_code == 400
    broken = client.post("/files/upload", data=b"--b\r\nContent-Disposition: form-data; name=\"files\"",
                         content_type="multipart/form-data; boundary=b")
    assert broken.status_code == 400
    duplicate = _upload(client, [(b"1", "same.txt"), (b"2", "same.txt")])
    assert duplicate.status_code == 409


def test_mkdir_rename_delete_routes(client: FlaskClient, root: Path) -> None:
    assert client.post("/files/mkdir", json={"path": "a/b"}).json == {"created": "a/b"}
    assert client.post("/files/mkdir", json={"path": "a/b"}).status_code == 409
    (root / "a" / "b" / "f.txt").write_text("f")
    renamed = client.post("/files/rename", json={"from": "a/b", "to": "c"})
    assert renamed.json == {"renamed": {"from": "a/b", "to": "c"}}
    assert (root / "c" / "f.txt").read_text() == "f"
    assert client.post("/files/rename", json={"from": "c", "to": "sub"}).status_code == 409
    assert client.delete("/files/content/c/f.txt").json == {"deleted": "c/f.txt"}
    assert client.delete("/files/content/c").json == {"deleted": "c"}
    assert client.delete("/files/content/c").status_code == 404
    assert client.post("/files/mkdir", json={"nope": 1}).status_code == 400
    assert client.post("/files/mkdir", data="not json").status_code == 400
    assert client.post("/files/rename", json={"from": "sub"}).status_code == 400


def test_tree_parameters(client: FlaskClient) -> None:
    assert client.get("/files/tree?depth=0").status_code == 400
    assert client.get("/files/tree?depth=x").status_code == 400
    assert client.get("/files/tree?path=missing").status_code == 404
    assert client.get("/files/tree?path=sub/keep.txt").status_code == 400
    shallow = body(client.get("/files/tree?depth=1"))
    assert all("children" not in n for n in shallow["tree"])


def test_zip_streams_lazily_and_ignores_a_link_made_mid_way(client: FlaskClient, root: Path) -> None:
    (root / "a_big.bin").write_bytes(os.urandom(512 * 1024))
    (root / "b.txt").write_text("plain b")
    response = client.get("/files/zip", buffered=False)
    chunks = response.iter_encoded()
    received = [next(chunks)]
    (root / "b.txt").unlink()
    (root / "b.txt").symlink_to(root.parent / "outside" / "secret.txt")
    (root / "sub" / "late").symlink_to("/etc/passwd")
    received.extend(chunks)
    response.close()
    data = b"".join(received)
    archive = zipfile.ZipFile(io.BytesIO(data))
    bodies = [archive.read(info) for info in archive.infolist()]
    assert "b.txt" not in archive.namelist() and "sub/late" not in archive.namelist()
    assert SECRET not in data and not any(SECRET in b or PASSWD_HEAD in b for b in bodies)


# --------------------------------------------------------------------------- attack corpus

TRAVERSALS = [
    "../outside/secret.txt",
    "..%2foutside%2fsecret.txt",
    "..%2Foutside%2Fsecret.txt",
    "%2e%2e/outside/secret.txt",
    "%2e%2e%2foutside%2fsecret.txt",
    "%252e%252e%252foutside%252fsecret.txt",
    "%252e%252e/outside/secret.txt",
    "..%252foutside%252fsecret.txt",
    "%25252e%25252e%25252f",
    "..%5coutside%5csecret.txt",
    "..\\outside\\secret.txt",
    "%5c..%5coutside",
    "....//outside/secret.txt",
    "..../outside/secret.txt",
    ".../outside/secret.txt",
    "..;/outside/secret.txt",
    "sub/../../outside/secret.txt",
    "./../outside/secret.txt",
    "sub/./../..//outside/secret.txt",
    "%c0%ae%c0%ae/outside/secret.txt",
    "..%c0%af..%c0%afoutside%c0%afsecret.txt",
    "%ef%bc%8e%ef%bc%8e/outside/secret.txt",
    "%ef%bc%8e%ef%bc%8e%ef%bc%8foutside%ef%bc%8fsecret.txt",
    "..%ef%bc%8foutside%ef%bc%8fsecret.txt",
    "%e2%80%a5/outside/secret.txt",
    "%e2%80%a4%e2%80%a4/outside/secret.txt",
    "%u002e%u002e/outside/secret.txt",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "%2Fetc/passwd",
    "%5cetc%5cpasswd",
    "~/../outside/secret.txt",
    "a%00/../../outside/secret.txt",
    "secret.txt%00.png",
    "x%0a/../outside/secret.txt",
    "a\tb/../../outside",
    "x" * 300,
    "/".join(["a"] * 2100),
    "secret_link",
    "abs_secret",
    "hop",
    "passwd",
    "proc_env",
    "outdir/secret.txt",
    "outdir/dir/inner.txt",
    "up/outside/secret.txt",
    "sub/updir",
    "loop",
    "up/ws/secret_link",
]


def _assert_safe(response: TestResponse) -> None:
    assert response.status_code < 500, (response.status_code, response.data[:300])
    assert response.status_code in (308, 400, 403, 404, 405, 409, 413), response.status_code
    assert SECRET not in response.data
    assert PASSWD_HEAD not in response.data
    if response.status_code != 308:
        assert "error" in body(response)


@pytest.fixture
def outside_unchanged(root: Path) -> Iterator[None]:
    outside = root.parent / "outside"
    before = _snapshot(outside)
    passwd = Path("/etc/passwd").read_bytes()
    yield
    assert _snapshot(outside) == before
    assert Path("/etc/passwd").read_bytes() == passwd


@pytest.mark.usefixtures("outside_unchanged")
@pytest.mark.parametrize("suffix", ["", "?raw=1", "?download=1"])
@pytest.mark.parametrize("attack", TRAVERSALS)
def test_content_attacks(client: FlaskClient, attack: str, suffix: str) -> None:
    _assert_safe(client.get(f"/files/content/{attack}{suffix}"))


@pytest.mark.usefixtures("outside_unchanged")
@pytest.mark.parametrize("attack", [a for a in TRAVERSALS if a not in ("secret_link", "abs_secret", "hop",
                                                                           "passwd", "proc_env", "loop",
                                                                           "sub/updir")])
def test_delete_attacks(client: FlaskClient, attack: str, root: Path) -> None:
    _assert_safe(client.delete(f"/files/content/{attack}"))
    assert (root / "sub" / "keep.txt").exists()


@pytest.mark.usefixtures("outside_unchanged")
@pytest.mark.parametrize("link", ["secret_link", "abs_secret", "passwd", "outdir", "up", "loop"])
def test_delete_of_a_link_removes_only_the_link(client: FlaskClient, root: Path, link: str) -> None:
    answer = client.delete(f"/files/content/{link}")
    assert answer.status_code == 200 and answer.json == {"deleted": link}
    assert not os.path.lexists(root / link)
    assert (root / "sub" / "keep.txt").exists()


@pytest.mark.usefixtures("outside_unchanged")
@pytest.mark.parametrize("query", [
    "../outside", "/etc", "outdir", "outdir/dir", "up", "sub/updir", "%2e%2e", "%252e%252e%252f",
    "..\\outside", "\uff0e\uff0e", "a\x00b", "loop",
])
def test_tree_attacks(client: FlaskClient, query: str) -> None:
    _assert_safe(client.get("/files/tree", query_string={"path": query}))


@pytest.mark.usefixtures("outside_unchanged")
@pytest.mark.parametrize("target", ["outdir", "outdir/dir", "up", "up/outside", "../outside", "/tmp",
                                    "sub/updir", "secret_link", "%2e%2e", "..\\outside"])
def test_upload_into_escaping_targets(client: FlaskClient, root: Path, target: str) -> None:
    response = client.post("/files/upload", query_string={"target_path": target},
                           data={"files": [(io.BytesIO(b"planted"), "planted.txt")]},
                           content_type="multipart/form-data")
    _assert_safe(response)
    assert not list(root.parent.rglob("planted.txt"))


def _raw_upload(client: FlaskClient, disposition: str) -> TestResponse:
    """A hand-made body, so the file name reaches the server exactly as an attacker wrote it."""
    body = (b"--B\r\nContent-Disposition: " + disposition.encode("utf-8", "surrogateescape")
            + b"\r\nContent-Type: text/plain\r\n\r\nplanted\r\n--B--\r\n")
    return client.post("/files/upload", data=body, content_type="multipart/form-data; boundary=B")


@pytest.mark.usefixtures("outside_unchanged")
@pytest.mark.parametrize("filename", [
    "../../planted.txt", "..\\..\\planted.txt", "/etc/planted.txt", "/tmp/planted.txt", ".", "..",
    "sub/planted.txt", "..%2fplanted.txt", "\uff0e\uff0e\uff0fplanted.txt", "C:\\planted.txt",
    "planted.txt\x00.png", "x" * 300,
])
def test_zip_slip_upload_names(client: FlaskClient, root: Path, filename: str) -> None:
    """Whatever the multipart parser makes of a name, the file lands in the target or nowhere."""
    response = _upload(client, [(b"planted", filename)])
    _assert_safe_or_inside(response, root)


@pytest.mark.usefixtures("outside_unchanged")
@pytest.mark.parametrize("disposition", [
    'form-data; name="files"; filename="../../planted.txt"',
    'form-data; name="files"; filename="/etc/planted.txt"',
    'form-data; name="files"; filename="sub/../../planted.txt"',
    "form-data; name=\"files\"; filename*=UTF-8''..%5C..%5Cplanted.txt",
    "form-data; name=\"files\"; filename*=UTF-8''..%2F..%2Fplanted.txt",
    "form-data; name=\"files\"; filename*=UTF-8''%2Fetc%2Fplanted.txt",
    "form-data; name=\"files\"; filename*=UTF-8''planted%00.txt",
    "form-data; name=\"files\"; filename*=UTF-8''..",
    'form-data; name="files"; filename=".."',
    'form-data; name="files"; filename="\uff0e\uff0e\uff0fplanted.txt"',
])
def test_zip_slip_raw_multipart_names(client: FlaskClient, root: Path, disposition: str) -> None:
    response = _raw_upload(client, disposition)
    _assert_safe(response)
    assert response.status_code == 400
    assert not [p for p in root.parent.rglob("*") if "planted" in p.name]


def _assert_safe_or_inside(response: TestResponse, root: Path) -> None:
    if response.status_code == 200:
        for item in body(response)["uploaded"]:
            assert "/" not in item["filename"] and "\\" not in item["filename"]
            assert (root / item["path"]).parent == root
    else:
        _assert_safe(response)
    for planted in (p for p in root.parent.rglob("*") if "planted" in p.name):
        assert planted.parent == root


@pytest.mark.usefixtures("outside_unchanged")
def test_upload_over_a_link_replaces_the_link(client: FlaskClient, root: Path) -> None:
    response = _upload(client, [(b"mine", "secret_link")], "?overwrite=1")
    assert response.status_code == 200
    assert not (root / "secret_link").is_symlink()


@pytest.mark.usefixtures("outside_unchanged")
@pytest.mark.parametrize("body", [
    {"path": "../outside/new"}, {"path": "outdir/new"}, {"path": "/tmp/new"}, {"path": "up/new"},
    {"path": "sub/updir/new"}, {"path": ""}, {"path": "a/../../new"}, {"path": ["x"]},
])
def test_mkdir_attacks(client: FlaskClient, body: dict[str, Any]) -> None:
    _assert_safe(client.post("/files/mkdir", json=body))


@pytest.mark.usefixtures("outside_unchanged")
@pytest.mark.parametrize("source, target", [
    ("sub/keep.txt", "outdir/keep.txt"), ("sub/keep.txt", "../keep.txt"), ("sub/keep.txt", "/tmp/keep.txt"),
    ("outdir/secret.txt", "stolen.txt"), ("../outside/secret.txt", "stolen.txt"), ("up/outside", "stolen"),
    ("sub", "sub/inner"), ("", "x"), ("sub/keep.txt", "up/keep.txt"),
])
def test_rename_attacks(client: FlaskClient, root: Path, source: str, target: str) -> None:
    _assert_safe(client.post("/files/rename", json={"from": source, "to": target}))
    assert (root / "sub" / "keep.txt").exists()
    assert not (root / "stolen.txt").exists() and not (root / "stolen").exists()


@pytest.mark.usefixtures("outside_unchanged")
def test_followed_links_read_back_to_renamed_names_stay_forbidden(client: FlaskClient, root: Path) -> None:
    assert client.post("/files/rename", json={"from": "secret_link", "to": "innocent.png"}).status_code == 200
    for suffix in ("", "?raw=1", "?download=1"):
        _assert_safe(client.get(f"/files/content/innocent.png{suffix}"))


@pytest.mark.usefixtures("outside_unchanged")
def test_zip_never_contains_outside_content(client: FlaskClient) -> None:
    data = client.get("/files/zip").data
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert SECRET not in data
    for info in archive.infolist():
        body = archive.read(info)
        assert SECRET not in body and PASSWD_HEAD not in body
    assert archive.namelist() == ["sub/", "sub/keep.txt"]
