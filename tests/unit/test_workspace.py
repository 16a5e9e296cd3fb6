"""Workspace path safety and file operations, on real files in temporary directories.

Every escape attempt is judged by its effect: the bytes of a secret file outside the
root must never come back, and nothing outside the root may change.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from machine_agent.workspace import (
    MAX_PATH_BYTES,
    TEMP_PREFIX,
    Workspace,
    check_filename,
    content_type_for,
    language_for,
    split_path,
)
from wire.errors import ApiError, Conflict, Forbidden, NotFound, TooLarge, ValidationFailed

SECRET = b"AGC-SECRET-7f3a9c-outside-the-root"


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Workspace, Path, Path]:
    """A workspace next to an ``outside`` directory holding the secret, plus traps."""
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.txt").write_bytes(SECRET)
    (outside / "dir" / "inner.txt").write_bytes(SECRET)
    root = tmp_path / "ws"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "main.py").write_text("print('hi')\n")
    (root / "src" / "pkg" / "mod.py").write_text("x = 1\n")
    (root / ".hidden").write_text("dot\n")
    (root / "notes.md").write_text("# notes\n")
    (root / "secret_link").symlink_to("../outside/secret.txt")
    (root / "abs_secret").symlink_to(outside / "secret.txt")
    (root / "outdir").symlink_to("../outside")
    (root / "passwd").symlink_to("/etc/passwd")
    (root / "proc_env").symlink_to("/proc/self/environ")
    (root / "up").symlink_to("..")
    (root / "loop").symlink_to("loop")
    (root / "hop").symlink_to("secret_link")
    (root / "src" / "updir").symlink_to("../../outside/secret.txt")
    (root / "good_file").symlink_to("src/main.py")
    (root / "good_dir").symlink_to("src/pkg")
    (root / "abs_good").symlink_to(root / "src" / "main.py")
    (root / "src" / "back").symlink_to("../notes.md")
    return Workspace(root), root, outside


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(directory.rglob("*"))}


def _leaks(value: object) -> bool:
    return SECRET in repr(value).encode() or SECRET.decode() in repr(value)


# --------------------------------------------------------------------------- lexical

@pytest.mark.parametrize("rel, reason", [
    ("..", "relative segment"),
    ("../x", "relative segment"),
    ("a/../../x", "relative segment"),
    ("./a", "relative segment"),
    ("a/./b", "relative segment"),
    ("/etc/passwd", "absolute path"),
    ("//etc/passwd", "absolute path"),
    ("..\\x", "backslash"),
    ("a\\..\\b", "backslash"),
    ("..%2fx", "percent-encoded separator"),
    ("..%2Fx", "percent-encoded separator"),
    ("%2e%2e/x", "percent-encoded separator"),
    ("%252e%252e%252fx", "percent-encoded separator"),
    ("a%5cb", "percent-encoded separator"),
    ("a%00b", "percent-encoded separator"),
    ("a\x00b", "NUL byte"),
    ("a\nb", "control character"),
    ("a\x1bb", "control character"),
    ("a\x7fb", "control character"),
    ("a\x85b", "control character"),
    ("\uff0e\uff0e/x", "lookalike of a path separator or dot segment"),
    ("a\uff0fb", "lookalike of a path separator or dot segment"),
    ("a\uff3cb", "lookalike of a path separator or dot segment"),
    ("\u2025/x", "lookalike of a path separator or dot segment"),
    ("\u2024\u2024/x", "lookalike of a path separator or dot segment"),
    ("a//b", "empty path segment"),
    ("x" * 256, "name too long"),
    ("\u00e9" * 128, "name too long"),
    ("/".join(["abcdefgh"] * 500), "path too long"),
    ("/".join(["a"] * 200), "too many path segments"),
    ("\udcff", "invalid character"),
])
def test_split_path_refuses(rel: str, reason: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        split_path(rel)
    assert caught.value.status == 400
    assert caught.value.details["reason"] == reason
    assert "path" in caught.value.details


@pytest.mark.parametrize("rel, parts", [
    ("", ()),
    ("a", ("a",)),
    ("a/b.txt", ("a", "b.txt")),
    ("dir/", ("dir",)),
    (".hidden", (".hidden",)),
    ("...", ("...",)),
    ("a..b", ("a..b",)),
    ("50%off", ("50%off",)),
    ("file%20name.pdf", ("file%20name.pdf",)),
    ("\u00fcber/\u6587\u4ef6.txt", ("\u00fcber", "\u6587\u4ef6.txt")),
    ("a\u2215b", ("a\u2215b",)),  # division slash never normalises to "/"
    ("x" * 255, ("x" * 255,)),
])
def test_split_path_accepts(rel: str, parts: tuple[str, ...]) -> None:
    assert split_path(rel) == parts


def test_root_refused_where_a_file_is_needed() -> None:
    with pytest.raises(ValidationFailed):
        split_path("", allow_root=False)
    with pytest.raises(ValidationFailed):
        split_path(None)
    assert len("/".join(["abcdefg"] * 512).encode()) == MAX_PATH_BYTES - 1
    assert len(split_path("/".join(["abcdefg"] * 120))) == 120


@pytest.mark.parametrize("name", [
    "../../x", "..\\x", "..\\..\\windows\\x", "/etc/x", "a/b", "", ".", "..", "x\x00.txt",
    "\uff0e\uff0e", "%2e%2e%2fx", "a\rb", "x" * 300,
])
def test_zip_slip_file_names_refused(name: str) -> None:
    with pytest.raises(ValidationFailed):
        check_filename(name)


def test_languages_and_types() -> None:
    assert language_for("main.py") == "python"
    assert language_for("App.TSX") == "typescript"
    assert language_for("Dockerfile") == "dockerfile"
    assert language_for("Dockerfile.agent") == "dockerfile"
    assert language_for("Makefile") == "makefile"
    assert language_for("CMakeLists.txt") == "cmake"
    assert language_for(".gitignore") == "ignore"
    assert language_for("weird.zzz") == "plaintext"
    assert len({language_for("x" + ext) for ext in [
        ".py", ".js", ".ts", ".json", ".yaml", ".toml", ".ini", ".xml", ".html", ".css", ".scss",
        ".less", ".md", ".rst", ".sh", ".ps1", ".bat", ".c", ".cpp", ".cs", ".java", ".kt",
        ".scala", ".go", ".rs", ".rb", ".php", ".pl", ".lua", ".r", ".swift", ".m", ".dart",
        ".ex", ".erl", ".hs", ".ml", ".fs", ".clj", ".jl", ".zig", ".groovy", ".sql", ".graphql",
        ".proto", ".tf", ".vue", ".svelte", ".tex", ".diff", ".csv"]}) >= 40
    assert content_type_for("a.png") == "image/png"
    assert content_type_for("a.webp") == "image/webp"
    assert content_type_for("a.ts") == "text/plain"
    assert content_type_for("README") == "text/plain"
    assert content_type_for("blob.bin") == "application/octet-stream"


# --------------------------------------------------------------------------- symlinks inside

def test_inside_symlinks_work(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, _ = layout
    assert ws.preview("good_file")["content"] == "print('hi')\n"
    assert ws.preview("good_dir/mod.py")["content"] == "x = 1\n"
    assert ws.preview("abs_good")["content"] == "print('hi')\n"
    assert ws.preview("src/back")["content"] == "# notes\n"
    (root / "src" / "pkg" / "upup").symlink_to("../../notes.md")
    assert ws.preview("good_dir/upup")["content"] == "# notes\n"
    with pytest.raises(Forbidden):
        ws.preview("up/notes.md")  # ".." of the root is outside, even if it leads back in
    assert ws.resolve("good_dir") == root.resolve() / "src" / "pkg"
    assert ws.resolve("good_file", for_write=True) == root.resolve() / "good_file"
    listing = ws.tree("good_dir")
    assert [n["path"] for n in listing["tree"]] == ["good_dir/mod.py", "good_dir/upup"]


# --------------------------------------------------------------------------- attack corpus

ESCAPES = [
    "secret_link", "abs_secret", "hop", "outdir/secret.txt", "outdir/dir/inner.txt",
    "src/updir", "up/secret_link", "good_dir/../../outside/secret.txt", "up/../outside/secret.txt",
]


@pytest.mark.parametrize("rel", [*ESCAPES, "passwd", "proc_env", "loop", "outdir", "../outside/secret.txt"])
def test_reads_never_escape(layout: tuple[Workspace, Path, Path], rel: str) -> None:
    ws, _, outside = layout
    before = _snapshot(outside)
    for operation in (ws.preview, ws.open_for_read, ws.tree):
        with pytest.raises(ApiError) as caught:
            result = operation(rel)
            pytest.fail(f"{operation.__name__}({rel!r}) answered {result!r}")
        assert caught.value.status in (400, 403, 404)
        assert not _leaks(caught.value.body())
    assert _snapshot(outside) == before


@pytest.mark.parametrize("rel", ["passwd", "proc_env", "secret_link", "abs_secret"])
def test_escaping_links_are_forbidden(layout: tuple[Workspace, Path, Path], rel: str) -> None:
    ws, _, _ = layout
    with pytest.raises(Forbidden):
        ws.open_for_read(rel)


def test_symlink_loop_is_a_validation_error(layout: tuple[Workspace, Path, Path]) -> None:
    ws, _, _ = layout
    with pytest.raises(ValidationFailed):
        ws.preview("loop")


@pytest.mark.parametrize("target_dir", ["outdir", "outdir/dir", "up/outdir", "abs_secret", "secret_link"])
def test_upload_into_link_out_is_refused(layout: tuple[Workspace, Path, Path], target_dir: str) -> None:
    ws, _, outside = layout
    before = _snapshot(outside)
    with pytest.raises((Forbidden, NotFound)):
        ws.save_upload(target_dir, "planted.txt", io.BytesIO(b"x"), max_bytes=10)
    assert _snapshot(outside) == before


def test_upload_into_link_inside_lands_in_real_dir(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, _ = layout
    answer = ws.save_upload("good_dir", "new.txt", io.BytesIO(b"data"), max_bytes=10)
    assert answer == {"filename": "new.txt", "path": "good_dir/new.txt", "size": 4}
    assert (root / "src" / "pkg" / "new.txt").read_bytes() == b"data"


def test_overwriting_a_link_replaces_the_link_not_its_target(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, outside = layout
    ws.save_upload("", "secret_link", io.BytesIO(b"mine"), overwrite=True, max_bytes=10)
    assert (outside / "secret.txt").read_bytes() == SECRET
    assert not (root / "secret_link").is_symlink()
    assert (root / "secret_link").read_bytes() == b"mine"


@pytest.mark.parametrize("rel", ["secret_link", "abs_secret", "outdir", "passwd_copy_link"])
def test_delete_removes_links_never_targets(layout: tuple[Workspace, Path, Path], rel: str) -> None:
    ws, root, outside = layout
    (root / "passwd_copy_link").symlink_to(outside / "dir")
    before = _snapshot(outside)
    assert ws.delete(rel) == rel
    assert not os.path.lexists(root / rel)
    assert _snapshot(outside) == before


@pytest.mark.parametrize("rel", ["outdir/secret.txt", "outdir/dir", "src/updir/x", "up/outdir/dir"])
def test_delete_through_link_out_is_forbidden(layout: tuple[Workspace, Path, Path], rel: str) -> None:
    ws, _, outside = layout
    before = _snapshot(outside)
    with pytest.raises(ApiError) as caught:
        ws.delete(rel)
    assert caught.value.status in (403, 404)
    assert _snapshot(outside) == before


def test_root_cannot_be_deleted_or_moved(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, _ = layout
    for rel in ("", ".", "/"):
        with pytest.raises(ValidationFailed):
            ws.delete(rel)
    (root / "src" / "rootlink").symlink_to("../")
    assert ws.delete("src/rootlink") == "src/rootlink"  # the link goes, the root stays
    assert (root / "notes.md").exists()


@pytest.mark.parametrize("source, target", [
    ("notes.md", "outdir/notes.md"),
    ("outdir/secret.txt", "stolen.txt"),
    ("notes.md", "../notes.md"),
    ("src", "src/pkg/src"),
])
def test_rename_stays_inside(layout: tuple[Workspace, Path, Path], source: str, target: str) -> None:
    ws, root, outside = layout
    before = _snapshot(outside)
    with pytest.raises(ApiError) as caught:
        ws.rename(source, target)
    assert caught.value.status in (400, 403)
    assert _snapshot(outside) == before
    assert not (root / "stolen.txt").exists()


def test_mkdir_through_link_out_is_forbidden(layout: tuple[Workspace, Path, Path]) -> None:
    ws, _, outside = layout
    with pytest.raises(Forbidden):
        ws.mkdir("outdir/new")
    assert not (outside / "new").exists()


def test_fifo_neither_hangs_nor_breaks(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, _ = layout
    os.mkfifo(root / "pipe")
    with pytest.raises(ValidationFailed):
        ws.preview("pipe")
    names = zipfile.ZipFile(io.BytesIO(b"".join(ws.iter_zip()))).namelist()
    assert "pipe" not in names and "src/main.py" in names


# --------------------------------------------------------------------------- tree

def test_tree_shape_and_order(layout: tuple[Workspace, Path, Path]) -> None:
    ws, _, _ = layout
    listing = ws.tree()
    names = [n["name"] for n in listing["tree"]]
    assert names[0] == "src"  # directories first
    assert ".hidden" in names
    by_name = {n["name"]: n for n in listing["tree"]}
    assert by_name["outdir"]["type"] == "symlink" and "children" not in by_name["outdir"]
    assert by_name["notes.md"] == {"name": "notes.md", "path": "notes.md", "type": "file", "size": 8,
                                   "modified": by_name["notes.md"]["modified"]}
    src = by_name["src"]
    assert [c["path"] for c in src["children"]][:1] == ["src/pkg"]
    assert listing["truncated"] is False


def test_tree_depth_and_cap(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, _ = layout
    shallow = ws.tree(depth=1)
    assert all("children" not in n for n in shallow["tree"])
    for i in range(30):
        (root / f"many{i:02}").write_text("x")
    capped = ws.tree(max_entries=10)
    assert capped["truncated"] is True
    assert len(capped["tree"]) == 10


def test_tree_hides_unaddressable_names(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, _ = layout
    (root / "bad\\name").write_text("x")
    (root / "\uff0e\uff0e").write_text("x")
    (root / f"{TEMP_PREFIX}0123456789abcdef.part").write_text("x")
    names = {n["name"] for n in ws.tree()["tree"]}
    assert not names & {"bad\\name", "\uff0e\uff0e", f"{TEMP_PREFIX}0123456789abcdef.part"}


# --------------------------------------------------------------------------- preview

def test_preview_text_binary_and_cap(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, _ = layout
    (root / "blob.bin").write_bytes(b"\x89PNG\x00\x01")
    (root / "latin.txt").write_bytes(b"caf\xe9")
    (root / "long.txt").write_text("\u00e9" * 100)
    assert ws.preview("src/main.py")["language"] == "python"
    assert ws.preview("blob.bin") | {"size": 0} == {"path": "blob.bin", "content": None, "language": "plaintext",
                                                   "size": 0, "binary": True, "truncated": False}
    assert ws.preview("latin.txt")["binary"] is True
    cut = ws.preview("long.txt", max_bytes=11)  # cuts inside a two-byte character
    assert cut["binary"] is False and cut["truncated"] is True and cut["content"] == "\u00e9" * 5
    with pytest.raises(ValidationFailed):
        ws.preview("src")
    with pytest.raises(NotFound):
        ws.preview("missing.txt")


# --------------------------------------------------------------------------- uploads

def _failing_stream() -> Iterator[bytes]:
    yield b"a" * 1000
    raise ConnectionError("client went away")


def test_upload_limits_and_conflicts_leave_nothing(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, _ = layout
    with pytest.raises(TooLarge):
        ws.save_upload("up_dir", "big.bin", io.BytesIO(b"x" * 101), max_bytes=100)
    with pytest.raises(ConnectionError):
        ws.save_upload("up_dir", "cut.bin", _failing_stream(), max_bytes=10_000)
    assert os.listdir(root / "up_dir") == []
    ws.save_upload("up_dir", "a.txt", io.BytesIO(b"one"), max_bytes=100)
    with pytest.raises(Conflict):
        ws.save_upload("up_dir", "a.txt", io.BytesIO(b"two"), max_bytes=100)
    assert (root / "up_dir" / "a.txt").read_bytes() == b"one"
    ws.save_upload("up_dir", "a.txt", io.BytesIO(b"two"), overwrite=True, max_bytes=100)
    assert (root / "up_dir" / "a.txt").read_bytes() == b"two"
    with pytest.raises(Conflict):
        ws.save_upload("", "src", io.BytesIO(b"x"), overwrite=True, max_bytes=100)
    assert os.listdir(root / "up_dir") == ["a.txt"]


def test_staged_upload_loses_a_race_cleanly(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, _ = layout
    staged = ws.stage_upload("", "race.txt", [b"mine"], overwrite=False, max_bytes=100)
    (root / "race.txt").write_bytes(b"theirs")
    with pytest.raises(Conflict):
        ws.commit_upload(staged)
    assert (root / "race.txt").read_bytes() == b"theirs"
    assert not [n for n in os.listdir(root) if n.startswith(TEMP_PREFIX)]


def test_commit_goes_to_the_checked_directory_even_if_swapped(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, outside = layout
    (root / "drop").mkdir()
    staged = ws.stage_upload("drop", "f.txt", [b"data"], overwrite=False, max_bytes=100)
    (root / "drop").rename(root / "drop_real")
    (root / "drop").symlink_to(outside)
    ws.commit_upload(staged)
    assert (root / "drop_real" / "f.txt").read_bytes() == b"data"
    assert not (outside / "f.txt").exists()


# --------------------------------------------------------------------------- mkdir / rename / delete

def test_mkdir_rename_delete(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, _ = layout
    assert ws.mkdir("a/b/c") == "a/b/c"
    with pytest.raises(Conflict):
        ws.mkdir("a/b/c")
    (root / "a" / "b" / "c" / "f.txt").write_text("f")
    assert ws.rename("a/b", "moved/b2") == ("a/b", "moved/b2")
    assert (root / "moved" / "b2" / "c" / "f.txt").read_text() == "f"
    with pytest.raises(Conflict):
        ws.rename("notes.md", "src/main.py")
    with pytest.raises(NotFound):
        ws.rename("nope", "x")
    assert ws.delete("moved") == "moved"
    assert not (root / "moved").exists()
    with pytest.raises(NotFound):
        ws.delete("moved")


def test_deep_mkdir_and_upload_create_every_parent(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, _ = layout
    deep = "/".join(f"d{i}" for i in range(100))
    assert ws.mkdir(deep) == deep
    ws.save_upload(deep + "/more/and/more", "f.txt", io.BytesIO(b"deep"), max_bytes=10)
    assert (root.joinpath(*deep.split("/")) / "more" / "and" / "more" / "f.txt").read_bytes() == b"deep"
    assert ws.delete("d0") == "d0" and not (root / "d0").exists()


def test_delete_tree_with_links_inside_keeps_targets(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, outside = layout
    (root / "trap" / "deep").mkdir(parents=True)
    (root / "trap" / "deep" / "out").symlink_to(outside)
    (root / "trap" / "secret").symlink_to(outside / "secret.txt")
    before = _snapshot(outside)
    ws.delete("trap")
    assert not (root / "trap").exists()
    assert _snapshot(outside) == before


# --------------------------------------------------------------------------- ZIP

def _unzip(data: bytes) -> dict[str, bytes]:
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    return {info.filename: archive.read(info) for info in archive.infolist()}


def test_zip_contents_and_links_skipped(layout: tuple[Workspace, Path, Path]) -> None:
    ws, _, _ = layout
    data = b"".join(ws.iter_zip())
    entries = _unzip(data)
    assert entries["src/main.py"] == b"print('hi')\n"
    assert entries["src/pkg/mod.py"] == b"x = 1\n"
    assert entries[".hidden"] == b"dot\n"
    assert "src/pkg/" in entries
    for link in ("secret_link", "abs_secret", "outdir", "passwd", "good_file", "good_dir", "up", "loop"):
        assert link not in entries and link + "/" not in entries
    assert SECRET not in data and not any(SECRET in body for body in entries.values())


def test_zip_mid_stream_swaps_never_follow_links(layout: tuple[Workspace, Path, Path]) -> None:
    """Swap listed entries for links to the secret after streaming began."""
    ws, root, outside = layout
    (root / "a_big.bin").write_bytes(os.urandom(512 * 1024))
    (root / "b.txt").write_text("plain b")
    (root / "c_dir").mkdir()
    (root / "c_dir" / "c.txt").write_text("plain c")
    (root / "d_dir").mkdir()
    stream = ws.iter_zip()
    received = [next(stream)]  # the generator is now inside a_big.bin; b.txt and c_dir are listed
    (root / "b.txt").unlink()
    (root / "b.txt").symlink_to(outside / "secret.txt")
    (root / "c_dir").rename(root / "c_moved")
    (root / "c_dir").symlink_to(outside)
    (root / "d_dir" / "late").symlink_to("/etc/passwd")
    (root / "d_dir" / "late_secret").symlink_to(outside / "secret.txt")
    received.extend(stream)
    data = b"".join(received)
    entries = _unzip(data)
    assert len(entries["a_big.bin"]) == 512 * 1024
    assert "b.txt" not in entries and "c_dir/" not in entries and "c_dir/secret.txt" not in entries
    assert "d_dir/late" not in entries and "d_dir/late_secret" not in entries
    assert SECRET not in data and not any(SECRET in body for body in entries.values())
    passwd_head = Path("/etc/passwd").read_bytes()[:40]
    assert not any(passwd_head in body for body in entries.values())


def test_zip_survives_vanishing_and_growing_files(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, _ = layout
    (root / "a_big.bin").write_bytes(os.urandom(512 * 1024))
    (root / "b_gone.txt").write_text("soon gone")
    (root / "c_dir").mkdir()
    stream = ws.iter_zip()
    received = [next(stream)]
    (root / "b_gone.txt").unlink()
    (root / "c_dir").rmdir()
    received.extend(stream)
    entries = _unzip(b"".join(received))
    assert "b_gone.txt" not in entries and "c_dir/" not in entries
    assert entries["src/main.py"] == b"print('hi')\n"


def test_zip_is_produced_in_chunks(layout: tuple[Workspace, Path, Path]) -> None:
    ws, root, _ = layout
    (root / "big.bin").write_bytes(os.urandom(1024 * 1024))
    chunks = list(ws.iter_zip())
    assert len(chunks) > 8
    assert max(len(c) for c in chunks) < 256 * 1024
