"""Workspace files through the control plane: the agent and the user share one workspace."""

from __future__ import annotations

import io
import secrets
import zipfile

import pytest
import requests

from tests.support import ControlPlane, dump

ATTACKS = ["../../etc/passwd", "..%2f..%2fetc%2fpasswd", "%2e%2e/%2e%2e/etc/passwd", "..\\..\\etc\\passwd",
           "/etc/passwd", "a/../../etc/passwd", "%252e%252e%252fetc%252fpasswd", "x%00.txt", "escape/passwd"]


@pytest.fixture(scope="module")
def session(control_plane: ControlPlane) -> tuple[str, str]:
    key = "sk-ant-api03-" + secrets.token_hex(20)
    return control_plane.launch(key)["session_id"], key


def test_upload_agent_reads_and_writes_then_tree_preview_download_zip(control_plane: ControlPlane, session) -> None:
    sid, key = session
    cp = control_plane
    upload = cp.post(f"/api/files/{sid}/upload?target_path=inbox", key,
                     files=[("files", ("data.csv", b"a,b\n1,2\n")), ("files", ("notes.md", b"# notes\n"))])
    assert upload.status_code == 200, upload.text
    assert [u["path"] for u in upload.json()["uploaded"]] == ["inbox/data.csv", "inbox/notes.md"]
    events = cp.chat_events(sid, key, "run: wc -l inbox/data.csv && cut -d, -f2 inbox/data.csv > result.txt")
    assert "2 inbox/data.csv" in next(e for e in events if e["type"] == "tool_result")["output"], dump(events)

    tree = cp.get(f"/api/files/{sid}", key).json()
    assert tree["root"] == "/workspace"
    names = {n["path"] for n in tree["tree"]} | {c["path"] for n in tree["tree"] for c in n.get("children", [])}
    assert {"inbox", "inbox/data.csv", "result.txt"} <= names
    preview = cp.get(f"/api/files/{sid}/result.txt", key).json()
    assert preview["content"] == "b\n2\n" and preview["size"] == 4
    raw = cp.get(f"/api/files/{sid}/inbox/data.csv?download=1", key)
    assert raw.content == b"a,b\n1,2\n" and "attachment" in raw.headers["Content-Disposition"]
    archive = cp.post(f"/api/files/{sid}/download", key)
    assert archive.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        assert zf.read("inbox/data.csv") == b"a,b\n1,2\n" and zf.read("result.txt") == b"b\n2\n"

    conflict = cp.post(f"/api/files/{sid}/upload?target_path=inbox&overwrite=false", key,
                       files=[("files", ("data.csv", b"new"))])
    assert conflict.status_code == 409
    replaced = cp.post(f"/api/files/{sid}/upload?target_path=inbox&overwrite=true", key,
                       files=[("files", ("data.csv", b"new"))])
    assert replaced.status_code == 200
    assert cp.post(f"/api/files/{sid}/mkdir", key, json={"path": "out/deep"}).status_code == 200
    renamed = cp.post(f"/api/files/{sid}/rename", key, json={"from": "result.txt", "to": "out/result.txt"})
    assert renamed.status_code == 200
    assert cp.delete(f"/api/files/{sid}/out", key).status_code == 200
    assert cp.get(f"/api/files/{sid}/out/result.txt", key).status_code == 404


def test_html_preview_never_runs_as_this_origin(control_plane: ControlPlane, session) -> None:
    sid, key = session
    control_plane.post(f"/api/files/{sid}/upload", key, files=[("files", ("x.html", b"<script>alert(1)</script>")),
                                                               ("files", ("x.svg", b"<svg onload='alert(1)'/>"))])
    html = control_plane.get(f"/api/files/{sid}/x.html?raw=1", key)
    assert html.headers["Content-Type"].startswith("text/plain")
    assert "sandbox" in html.headers["Content-Security-Policy"]
    svg = control_plane.get(f"/api/files/{sid}/x.svg?raw=1", key)
    assert "attachment" in svg.headers.get("Content-Disposition", "")
    assert html.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ATTACKS)
def test_traversal_through_the_control_plane(control_plane: ControlPlane, session, path: str) -> None:
    sid, key = session
    control_plane.chat_events(sid, key, "run: ln -sf /etc escape")
    for url in (f"{control_plane.url}/api/files/{sid}/{path}", f"{control_plane.url}/api/files/{sid}/{path}?raw=1"):
        resp = requests.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert resp.status_code in (400, 403, 404), (path, resp.status_code)
        assert "root:x:0:0" not in resp.text
        assert resp.headers["Content-Type"].startswith("application/json")


def test_upload_limits_answer_413_and_leave_nothing(tmp_path, model) -> None:
    cp = ControlPlane(tmp_path / "cp", {"ANTHROPIC_BASE_URL": model.url, "MAX_UPLOAD_MB": "1"}).start()
    try:
        key = "sk-ant-api03-" + secrets.token_hex(20)
        sid = cp.launch(key)["session_id"]
        too_big = cp.post(f"/api/files/{sid}/upload", key, files=[("files", ("big.bin", b"x" * (2 * 1024 * 1024)))])
        assert too_big.status_code == 413 and too_big.json()["error"]["code"] in ("too_large", "file_too_large")
        assert [n["name"] for n in cp.get(f"/api/files/{sid}", key).json()["tree"]] == []
    finally:
        cp.stop()
