"""Workspace file operations with path safety decided in one place.

The agent inside the machine owns the workspace and may put anything there, including
symlinks to ``/etc/passwd`` or to the directory holding the machine token, and it may
swap files for symlinks while we are reading. So no operation here ever hands a
caller-supplied path to the kernel in one piece. Every path is first checked lexically
(:func:`split_path`), then walked one component at a time from a directory descriptor of
the root, opening each directory with ``O_NOFOLLOW`` relative to its verified parent
(``openat``-style). A symlink met on the way is resolved here, in user space: its target
is read and walked in turn, and a target that would leave the root (absolute outside it,
or ``..`` above it) is refused with 403. Symlinks that stay inside the workspace work.
Because each step is relative to an already verified descriptor, a symlink swapped in
after a check is met by ``O_NOFOLLOW`` at open time instead of being followed.

Decisions worth knowing:

* The ZIP download skips symlinks entirely (it does not store them as links): a stored
  link is itself a zip-slip vector on the user's computer, and whatever an inside link
  points to is archived under its real name anyway.
* Names that the API could never address (control characters, backslashes, leftover
  percent-escapes of separators, lookalikes that normalise to ``..``) are left out of
  the tree and the ZIP rather than shown with a path that would then be refused.
* Hard links are ordinary files to the kernel and cannot be told apart; the workspace
  should be its own volume so that none can point at the machine's system files.

No Flask in here: errors are :mod:`wire.errors` exceptions and the blueprint in
:mod:`machine_agent.files` turns them into responses.
"""

from __future__ import annotations

import codecs
import errno
import mimetypes
import os
import re
import secrets
import stat
import unicodedata
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any, BinaryIO, ParamSpec, TypeVar

from wire.errors import ApiError, Conflict, Forbidden, NotFound, TooLarge, ValidationFailed

MAX_SEGMENT_BYTES = 255
MAX_PATH_BYTES = 4096
MAX_DEPTH = 128
MAX_SYMLINK_HOPS = 40
CHUNK_SIZE = 64 * 1024
DEFAULT_TREE_DEPTH = 16
MAX_TREE_DEPTH = 64
DEFAULT_TREE_ENTRIES = 5000
MAX_DIR_SCAN = 100_000
DEFAULT_PREVIEW_BYTES = 1024 * 1024
TEMP_PREFIX = ".agcluster-upload-"

_TEMP_NAME = re.compile(r"^\.agcluster-upload-[0-9a-f]{16}\.part$")
# Separators, dots, NUL and ``%`` itself, still escaped after the URL was decoded once:
# someone double-encoded the path hoping a later layer decodes it again.
_ENCODED_DANGER = re.compile(r"%(2f|5c|2e|25|00)", re.IGNORECASE)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK so that a FIFO planted by the agent cannot hang the request in open().
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_RETRY_ERRNOS = {errno.ELOOP, errno.ENOTDIR, errno.ENOENT, errno.EINVAL}

P = ParamSpec("P")
R = TypeVar("R")


# --------------------------------------------------------------------------- languages

_LANGUAGE_BY_EXTENSION: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".pyw": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "typescript",
    ".json": "json", ".jsonc": "json", ".jsonl": "json", ".ipynb": "json",
    ".yaml": "yaml", ".yml": "yaml",
    ".toml": "toml",
    ".ini": "ini", ".cfg": "ini", ".conf": "ini", ".env": "ini", ".properties": "ini",
    ".xml": "xml", ".xsd": "xml", ".xsl": "xml", ".plist": "xml", ".svg": "xml",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".css": "css", ".scss": "scss", ".sass": "scss", ".less": "less",
    ".md": "markdown", ".markdown": "markdown", ".mdx": "markdown",
    ".rst": "restructuredtext",
    ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".ksh": "shell", ".fish": "shell",
    ".ps1": "powershell", ".psm1": "powershell",
    ".bat": "bat", ".cmd": "bat",
    ".c": "c", ".h": "c",
    ".cpp": "cpp", ".cc": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp",
    ".cs": "csharp",
    ".java": "java",
    ".kt": "kotlin", ".kts": "kotlin",
    ".scala": "scala", ".sc": "scala",
    ".go": "go",
    ".rs": "rust",
    ".rb": "ruby", ".rake": "ruby", ".gemspec": "ruby",
    ".php": "php",
    ".pl": "perl", ".pm": "perl",
    ".lua": "lua",
    ".r": "r",
    ".swift": "swift",
    ".m": "objective-c", ".mm": "objective-c",
    ".dart": "dart",
    ".ex": "elixir", ".exs": "elixir",
    ".erl": "erlang", ".hrl": "erlang",
    ".hs": "haskell",
    ".ml": "ocaml", ".mli": "ocaml",
    ".fs": "fsharp", ".fsx": "fsharp",
    ".clj": "clojure", ".cljs": "clojure", ".edn": "clojure",
    ".jl": "julia",
    ".zig": "zig",
    ".groovy": "groovy", ".gradle": "groovy",
    ".sql": "sql",
    ".graphql": "graphql", ".gql": "graphql",
    ".proto": "protobuf",
    ".tf": "hcl", ".tfvars": "hcl", ".hcl": "hcl",
    ".vue": "vue", ".svelte": "svelte",
    ".tex": "latex", ".sty": "latex",
    ".diff": "diff", ".patch": "diff",
    ".csv": "csv", ".tsv": "csv",
    ".vim": "vim",
    ".txt": "plaintext", ".log": "plaintext",
}

_LANGUAGE_BY_FILENAME: dict[str, str] = {
    "dockerfile": "dockerfile", "containerfile": "dockerfile",
    "makefile": "makefile", "gnumakefile": "makefile",
    "cmakelists.txt": "cmake",
    "gemfile": "ruby", "rakefile": "ruby", "vagrantfile": "ruby", "podfile": "ruby",
    "jenkinsfile": "groovy",
    "pipfile": "toml", "cargo.lock": "toml", "poetry.lock": "toml",
    ".bashrc": "shell", ".zshrc": "shell", ".profile": "shell", ".bash_profile": "shell",
    ".gitignore": "ignore", ".dockerignore": "ignore", ".npmignore": "ignore",
    ".editorconfig": "ini", ".gitconfig": "ini", ".env": "ini",
    "go.mod": "go", "go.sum": "plaintext",
}

_MIME = mimetypes.MimeTypes(filenames=())
for _type, _ext in (("image/webp", ".webp"), ("text/markdown", ".md"), ("application/yaml", ".yaml"),
                    ("application/yaml", ".yml"), ("application/toml", ".toml"),
                    ("application/xhtml+xml", ".xhtml")):
    _MIME.add_type(_type, _ext)


def language_for(name: str) -> str:
    """The highlighter's language name, so the dashboard needs no table of its own."""
    lowered = name.lower()
    if lowered in _LANGUAGE_BY_FILENAME:
        return _LANGUAGE_BY_FILENAME[lowered]
    if lowered.startswith(("dockerfile.", "containerfile.")):
        return "dockerfile"
    return _LANGUAGE_BY_EXTENSION.get(os.path.splitext(lowered)[1], "plaintext")


def content_type_for(name: str) -> str:
    """A MIME type from the name only; serving policy is the route's job, not ours.

    A fixed table (not the host's /etc/mime.types) so ``.ts`` is never ``video/mp2t`` on
    one machine and unknown on another.
    """
    guessed, _ = _MIME.guess_type(name, strict=False)
    if guessed:
        return guessed
    if language_for(name) != "plaintext" or "." not in name.lstrip("."):
        return "text/plain"
    return "application/octet-stream"


# --------------------------------------------------------------------------- lexical checks

def _shown(rel: str) -> str:
    """Error details echo the path, but never megabytes of it."""
    return rel if len(rel) <= 300 else rel[:300] + "..."


def _invalid(rel: str, reason: str) -> ValidationFailed:
    return ValidationFailed(f"invalid path: {reason}", details={"path": _shown(rel), "reason": reason})


def segment_problem(segment: str) -> str | None:
    """Why one path segment (or file name) is refused, or None when it is acceptable."""
    if segment == "":
        return "empty path segment"
    if segment in (".", ".."):
        return "relative segment"
    if "/" in segment or "\\" in segment:
        return "path separator in a name"
    for char in segment:
        category = unicodedata.category(char)
        if category == "Cc":
            return "control character"
        if category == "Cs":
            return "invalid character"
    if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
        return "name too long"
    if _ENCODED_DANGER.search(segment):
        return "percent-encoded separator"
    # Fullwidth dots and slashes are harmless to Linux, but anything that normalises
    # (a browser, a Mac, the user's unzip) would turn them into a traversal.
    folded = unicodedata.normalize("NFKC", segment)
    if folded in (".", "..") or "/" in folded or "\\" in folded:
        return "lookalike of a path separator or dot segment"
    return None


def split_path(rel: object, *, allow_root: bool = True) -> tuple[str, ...]:
    """Check a workspace-relative path lexically and return its segments.

    Refusing rather than normalising: a client sending ``a/../b`` is either buggy or
    probing, and silently fixing it would hide both.
    """
    if not isinstance(rel, str):
        raise ValidationFailed("invalid path: not a string", details={"path": repr(rel)[:300]})
    if "\x00" in rel:
        raise _invalid(rel, "NUL byte")
    try:
        encoded_length = len(rel.encode("utf-8"))
    except UnicodeEncodeError:
        raise _invalid(rel, "invalid character") from None
    if encoded_length > MAX_PATH_BYTES:
        raise _invalid(rel, "path too long")
    if rel.startswith("/"):
        raise _invalid(rel, "absolute path")
    if "\\" in rel:
        raise _invalid(rel, "backslash")
    stripped = rel[:-1] if rel.endswith("/") else rel
    if stripped == "":
        if allow_root:
            return ()
        raise _invalid(rel, "the workspace root is not allowed here")
    segments = tuple(stripped.split("/"))
    if len(segments) > MAX_DEPTH:
        raise _invalid(rel, "too many path segments")
    for segment in segments:
        problem = segment_problem(segment)
        if problem:
            raise _invalid(rel, problem)
    return segments


def check_filename(name: object) -> str:
    """An upload's file name: a single safe name, never a path (zip-slip)."""
    if not isinstance(name, str) or name == "":
        raise ValidationFailed("invalid file name: empty", details={"filename": ""})
    problem = segment_problem(name)
    if problem:
        raise ValidationFailed(f"invalid file name: {problem}",
                               details={"filename": _shown(name), "reason": problem})
    return name


def addressable(name: str) -> bool:
    """Whether a name found on disk could be asked for through the API."""
    return segment_problem(name) is None and not _TEMP_NAME.match(name)


# --------------------------------------------------------------------------- OS errors

def _map_os_error(exc: OSError, rel: str) -> ApiError | None:
    """One table from errno to API error so every operation answers alike."""
    details = {"path": _shown(rel)}
    code = exc.errno
    if code in (errno.ENOENT, errno.ENOTDIR):
        return NotFound("no such file or directory", details=details)
    if code in (errno.EEXIST, errno.ENOTEMPTY):
        return Conflict("already exists or not empty", details=details)
    if code == errno.EISDIR:
        return ValidationFailed("is a directory", details=details)
    if code in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ELOOP):
        return Forbidden("not permitted", details=details)
    if code in (errno.ENAMETOOLONG, errno.EINVAL):
        return ValidationFailed("invalid path", details=details)
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return TooLarge("the workspace is full", code="insufficient_storage", details=details)
    return None


def _os_errors_as_api(func: Callable[P, R]) -> Callable[P, R]:
    """Translate stray OSErrors of an operation; the first positional arg names the path."""
    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except OSError as exc:
            rel = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            mapped = _map_os_error(exc, rel)
            if mapped is None:
                raise
            raise mapped from exc
    return wrapper


# --------------------------------------------------------------------------- results

@dataclass
class OpenedFile:
    """An open regular file plus what a response needs; the caller must close ``file``."""

    file: BinaryIO
    size: int
    content_type: str
    name: str
    modified: float


@dataclass
class StagedUpload:
    """An upload written to a temp file, not yet visible under its name.

    Holds its directory's descriptor so the commit lands in the directory that was
    checked, even if the path to it is swapped for a symlink meanwhile.
    """

    dir_fd: int
    dir_parts: tuple[str, ...]
    filename: str
    temp_name: str
    size: int
    overwrite: bool
    done: bool = field(default=False)

    @property
    def path(self) -> str:
        return "/".join((*self.dir_parts, self.filename))


@dataclass
class _Located:
    """Where a path ends: its directory (a verified fd) and the final name in it.

    ``name`` is ``"."`` when the path resolved to a directory as a whole (the root, or a
    symlink to a directory). ``st`` is the leaf's lstat, None when it does not exist.
    """

    dir_fd: int
    name: str
    parents: tuple[str, ...]
    st: os.stat_result | None


# --------------------------------------------------------------------------- the workspace

class Workspace:
    """Safe file operations below one root directory."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(os.path.realpath(root))
        # Absolute symlink targets may be written against either spelling of the root.
        self._prefixes = {str(self.root), os.path.abspath(root)}

    # ----------------------------------------------------------------- resolution core

    def _open_root(self) -> int:
        try:
            return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound("the workspace does not exist", details={"path": ""}) from None

    def _inside(self, target: str) -> list[str] | None:
        """Segments below the root for an absolute link target, None when outside."""
        for prefix in self._prefixes:
            if target == prefix:
                return []
            if target.startswith(prefix.rstrip("/") + "/"):
                return target[len(prefix.rstrip("/")) + 1:].split("/")
        return None

    @contextmanager
    def _locate(self, parts: Iterable[str], rel: str, *, follow_leaf: bool = True,
                create_dirs: bool = False) -> Iterator[_Located]:
        """Walk ``parts`` from the root; every descriptor is closed on exit."""
        stack = [self._open_root()]
        try:
            yield self._walk(stack, list(reversed(list(parts))), rel, follow_leaf, create_dirs)
        finally:
            for fd in stack:
                os.close(fd)

    def _walk(self, stack: list[int], pending: list[str], rel: str, follow_leaf: bool,
              create_dirs: bool) -> _Located:
        """Resolve like the kernel would, but refuse to leave the root.

        ``stack`` holds one descriptor per real (symlink-free) directory below the root,
        so ``..`` from a link target is just a pop, and a pop past the root is an escape.
        """
        names: list[str] = []
        hops = retries = 0
        while pending:
            name = pending.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if not names:
                    raise Forbidden("path escapes the workspace", details={"path": _shown(rel)})
                os.close(stack.pop())
                names.pop()
                continue
            is_leaf = not pending
            try:
                st = os.stat(name, dir_fd=stack[-1], follow_symlinks=False)
            except FileNotFoundError:
                if is_leaf:
                    return _Located(stack[-1], name, tuple(names), None)
                if not create_dirs:
                    raise NotFound("no such file or directory", details={"path": _shown(rel)}) from None
                retries = self._count_retry(retries, rel)
                self._mkdir_quietly(stack[-1], name)
                pending.append(name)
                continue
            if stat.S_ISLNK(st.st_mode) and (follow_leaf or not is_leaf):
                hops = self._count_hop(hops, rel)
                pending.extend(reversed(self._link_target(stack, names, name, rel)))
                continue
            if is_leaf:
                return _Located(stack[-1], name, tuple(names), st)
            if not stat.S_ISDIR(st.st_mode):
                raise NotFound("a parent is not a directory", details={"path": _shown(rel)})
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=stack[-1])
            except OSError as exc:
                if exc.errno not in _RETRY_ERRNOS:
                    raise
                # Changed between stat and open (e.g. now a symlink): look at it again.
                retries = self._count_retry(retries, rel)
                pending.append(name)
                continue
            stack.append(fd)
            names.append(name)
            if len(names) > MAX_DEPTH:
                raise _invalid(rel, "too deep")
        return _Located(stack[-1], ".", tuple(names), os.fstat(stack[-1]))

    @staticmethod
    def _count_hop(hops: int, rel: str) -> int:
        """Bounds symlink loops, as the kernel's ELOOP does."""
        if hops >= MAX_SYMLINK_HOPS:
            raise _invalid(rel, "too many levels of symbolic links")
        return hops + 1

    @staticmethod
    def _count_retry(retries: int, rel: str) -> int:
        """Directories created on the way, or entries that changed under us, are bounded
        too, so an agent racing us in a loop cannot keep a request spinning."""
        if retries >= MAX_DEPTH + MAX_SYMLINK_HOPS:
            raise Conflict("the path kept changing while it was being resolved", details={"path": _shown(rel)})
        return retries + 1

    @staticmethod
    def _mkdir_quietly(dir_fd: int, name: str) -> None:
        with suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=dir_fd)

    def _link_target(self, stack: list[int], names: list[str], name: str, rel: str) -> list[str]:
        """The segments to walk instead of a symlink; resets to the root for absolute ones."""
        try:
            target = os.readlink(name, dir_fd=stack[-1])
        except OSError as exc:
            if exc.errno in _RETRY_ERRNOS:
                return [name]  # no longer a link: walk the name again
            raise
        if not target.startswith("/"):
            return target.split("/")
        inside = self._inside(target)
        if inside is None:
            raise Forbidden("path escapes the workspace", details={"path": _shown(rel)})
        while len(stack) > 1:
            os.close(stack.pop())
        names.clear()
        return inside

    @contextmanager
    def _directory(self, parts: tuple[str, ...], rel: str, *, create: bool = False) -> Iterator[int]:
        """A descriptor of the directory at ``parts`` (following inside links)."""
        with self._locate((*parts, ""), rel, create_dirs=create) as located:
            yield located.dir_fd

    # ----------------------------------------------------------------- public: resolve

    @_os_errors_as_api
    def resolve(self, rel: str, *, must_exist: bool = True, for_write: bool = False) -> Path:
        """The real location of ``rel`` inside the root, for callers that need a Path.

        With ``for_write`` a final symlink is not followed (writing or deleting acts on
        the link itself). The answer is a snapshot; the operations below never reopen by
        path and should be preferred.
        """
        parts = split_path(rel)
        with self._locate(parts, rel, follow_leaf=not for_write) as located:
            if must_exist and located.st is None:
                raise NotFound("no such file or directory", details={"path": _shown(rel)})
            real = self.root.joinpath(*located.parents)
            return real if located.name == "." else real / located.name

    # ----------------------------------------------------------------- public: tree

    @_os_errors_as_api
    def tree(self, path: str = "", depth: int = DEFAULT_TREE_DEPTH,
             max_entries: int = DEFAULT_TREE_ENTRIES) -> dict[str, Any]:
        """The listing, breadth first so a cap cuts the deepest entries, not siblings.

        A directory without a ``children`` key was not listed (below ``depth`` or past
        the cap; ask again with ``path``); ``truncated`` says the cap or a huge
        directory cut the answer.
        """
        parts = split_path(path)
        depth = min(depth, MAX_TREE_DEPTH)
        with self._locate(parts, path) as located:
            if located.st is None:
                raise NotFound("no such file or directory", details={"path": _shown(path)})
            if not stat.S_ISDIR(located.st.st_mode):
                raise ValidationFailed("not a directory", details={"path": _shown(path)})
        top: list[dict[str, Any]] = []
        queue: deque[tuple[tuple[str, ...], dict[str, Any] | None, int]] = deque([(parts, None, 1)])
        budget = max(0, max_entries)
        truncated = False
        while queue:
            dir_parts, owner, level = queue.popleft()
            into: list[dict[str, Any]] = top if owner is None else owner.setdefault("children", [])
            entries, cut = self._list(dir_parts, path, strict=owner is None)
            truncated = truncated or cut
            for name, st in entries:
                if budget == 0:
                    return {"path": "/".join(parts), "tree": top, "truncated": True}
                budget -= 1
                node = _node((*dir_parts, name), st)
                into.append(node)
                if node["type"] == "directory" and level < depth:
                    queue.append(((*dir_parts, name), node, level + 1))
        return {"path": "/".join(parts), "tree": top, "truncated": truncated}

    def _list(self, parts: tuple[str, ...], rel: str, *,
              strict: bool) -> tuple[list[tuple[str, os.stat_result]], bool]:
        """Sorted (dirs first) addressable entries of one directory.

        Only the requested directory may fail the request; a subdirectory that vanished
        or became a link meanwhile is listed as empty.
        """
        entries: list[tuple[str, os.stat_result]] = []
        cut = False
        try:
            with self._directory(parts, rel) as fd, os.scandir(fd) as scan:
                for entry in scan:
                    if len(entries) >= MAX_DIR_SCAN:
                        cut = True
                        break
                    if not addressable(entry.name):
                        continue
                    try:
                        entries.append((entry.name, entry.stat(follow_symlinks=False)))
                    except OSError:
                        continue
        except (ApiError, OSError):
            if strict:
                raise
            return [], False  # a subdirectory that vanished or turned into a link
        entries.sort(key=lambda item: (not stat.S_ISDIR(item[1].st_mode), item[0].casefold(), item[0]))
        return entries, cut

    # ----------------------------------------------------------------- public: reading

    @_os_errors_as_api
    def open_for_read(self, path: str) -> OpenedFile:
        """Open a regular file (inside links followed) for streaming by the caller."""
        parts = split_path(path, allow_root=False)
        for _ in range(MAX_SYMLINK_HOPS):
            with self._locate(parts, path) as located:
                fd = self._open_leaf_for_read(located, path)
            if fd is None:
                continue  # swapped under us between stat and open: resolve afresh
            st = os.fstat(fd)
            return OpenedFile(os.fdopen(fd, "rb"), st.st_size, content_type_for(parts[-1]),
                              parts[-1], st.st_mtime)
        raise Conflict("the file kept changing while it was being opened", details={"path": _shown(path)})

    @staticmethod
    def _open_leaf_for_read(located: _Located, rel: str) -> int | None:
        details = {"path": _shown(rel)}
        if located.st is None:
            raise NotFound("no such file", details=details)
        if stat.S_ISDIR(located.st.st_mode):
            raise ValidationFailed("is a directory", details=details)
        if not stat.S_ISREG(located.st.st_mode):
            raise ValidationFailed("not a regular file", details=details)
        try:
            fd = os.open(located.name, _READ_FLAGS, dir_fd=located.dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOENT):
                return None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return fd

    def preview(self, path: str, max_bytes: int = DEFAULT_PREVIEW_BYTES) -> dict[str, Any]:
        """Text for the viewer, capped; ``binary`` instead of mojibake for non-text."""
        opened = self.open_for_read(path)
        with opened.file as handle:
            data = handle.read(max_bytes)
            truncated = bool(handle.read(1))
        text = _decode_text(data, final=not truncated)
        return {
            "path": "/".join(split_path(path)),
            "content": text,
            "language": language_for(opened.name),
            "size": opened.size,
            "binary": text is None,
            "truncated": truncated,
        }

    # ----------------------------------------------------------------- public: ZIP

    def iter_zip(self) -> Iterator[bytes]:
        """The whole workspace as a ZIP, produced lazily in chunks of about 64 KiB.

        Memory stays at one chunk plus the central directory (a few hundred bytes per
        entry). Each entry is opened with ``O_NOFOLLOW`` relative to its directory's
        descriptor and classified by ``fstat`` of what was actually opened, so a file
        swapped for a symlink mid-walk is skipped, not followed. Files that vanish are
        skipped; files that grow are cut at the size seen at open. Symlinks, FIFOs and
        sockets are skipped. Errors after the first byte cannot become a status code, so
        anything that fails on one entry skips that entry.
        """
        root_fd = self._open_root()
        try:
            sink = _ChunkSink()
            archive = zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_DEFLATED,
                                      allowZip64=True, compresslevel=6)
            yield from _zip_directory(archive, sink, root_fd, "", 0)
            archive.close()
            tail = sink.drain()
            if tail:
                yield tail
        finally:
            os.close(root_fd)

    # ----------------------------------------------------------------- public: uploads

    @_os_errors_as_api
    def stage_upload(self, target_dir: str, filename: str, stream: BinaryIO | Iterable[bytes], *,
                     overwrite: bool, max_bytes: int) -> StagedUpload:
        """Write an upload to a temp file next to its destination, not yet visible.

        Conflicts are checked first so a 409 costs no upload; the caller commits or
        discards, which lets a multi-file request be all or nothing.
        """
        name = check_filename(filename)
        dir_parts = split_path(target_dir)
        with self._directory(dir_parts, target_dir, create=True) as located_fd:
            dir_fd = os.dup(located_fd)
        try:
            self._check_destination(dir_fd, name, dir_parts, overwrite)
            temp_name = f"{TEMP_PREFIX}{secrets.token_hex(8)}.part"
            size = _write_temp(dir_fd, temp_name, _chunks(stream), max_bytes, name)
        except BaseException:
            os.close(dir_fd)
            raise
        return StagedUpload(dir_fd, dir_parts, name, temp_name, size, overwrite)

    @staticmethod
    def _check_destination(dir_fd: int, name: str, dir_parts: tuple[str, ...], overwrite: bool) -> None:
        path = "/".join((*dir_parts, name))
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise Conflict("a directory of that name exists", details={"path": path})
        if not overwrite:
            raise Conflict("the file exists and overwrite is false", details={"path": path})

    @_os_errors_as_api
    def commit_upload(self, staged: StagedUpload) -> dict[str, Any]:
        """Make a staged upload visible atomically: whole file or nothing under the name.

        Without overwrite a hard link (which fails if the name exists) closes the race
        against a file created meanwhile; a replaced symlink is replaced, never written
        through.
        """
        try:
            if staged.overwrite:
                os.replace(staged.temp_name, staged.filename, src_dir_fd=staged.dir_fd,
                           dst_dir_fd=staged.dir_fd)
            else:
                _publish_without_replacing(staged)
        except FileExistsError:
            raise Conflict("the file exists and overwrite is false", details={"path": staged.path}) from None
        except IsADirectoryError:
            raise Conflict("a directory of that name exists", details={"path": staged.path}) from None
        finally:
            self.discard_upload(staged)
        return {"filename": staged.filename, "path": staged.path, "size": staged.size}

    @staticmethod
    def discard_upload(staged: StagedUpload) -> None:
        """Remove the temp file (if still there) and release the directory; idempotent."""
        if staged.done:
            return
        staged.done = True
        try:
            os.unlink(staged.temp_name, dir_fd=staged.dir_fd)
        except FileNotFoundError:
            pass
        finally:
            os.close(staged.dir_fd)

    def save_upload(self, target_dir: str, filename: str, stream: BinaryIO | Iterable[bytes], *,
                    overwrite: bool = False, max_bytes: int) -> dict[str, Any]:
        """Stage and commit one upload: ``{filename, path, size}``."""
        staged = self.stage_upload(target_dir, filename, stream, overwrite=overwrite, max_bytes=max_bytes)
        return self.commit_upload(staged)

    # ----------------------------------------------------------------- public: changes

    @_os_errors_as_api
    def mkdir(self, path: str) -> str:
        """Create a directory and any missing parents; 409 if the name is taken."""
        parts = split_path(path, allow_root=False)
        with self._locate(parts, path, follow_leaf=False, create_dirs=True) as located:
            if located.st is not None:
                raise Conflict("already exists", details={"path": _shown(path)})
            os.mkdir(located.name, 0o755, dir_fd=located.dir_fd)
        return "/".join(parts)

    @_os_errors_as_api
    def delete(self, path: str) -> str:
        """Delete a file, a symlink (the link, not its target) or a directory tree."""
        parts = split_path(path, allow_root=False)
        with self._locate(parts, path, follow_leaf=False) as located:
            if located.st is None:
                raise NotFound("no such file or directory", details={"path": _shown(path)})
            if located.name == ".":
                raise Forbidden("the workspace root cannot be deleted", details={"path": _shown(path)})
            if stat.S_ISDIR(located.st.st_mode):
                _remove_tree(located.dir_fd, located.name, 0)
            else:
                os.unlink(located.name, dir_fd=located.dir_fd)
        return "/".join(parts)

    @_os_errors_as_api
    def rename(self, source: str, target: str) -> tuple[str, str]:
        """Move within the workspace; never over an existing name, never into itself."""
        src = split_path(source, allow_root=False)
        dst = split_path(target, allow_root=False)
        if dst[:len(src)] == src:
            raise ValidationFailed("cannot move a path into itself", details={"path": _shown(target)})
        with self._locate(src, source, follow_leaf=False) as origin:
            if origin.st is None:
                raise NotFound("no such file or directory", details={"path": _shown(source)})
            if origin.name == ".":
                raise Forbidden("the workspace root cannot be moved", details={"path": _shown(source)})
            with self._locate(dst, target, follow_leaf=False, create_dirs=True) as destination:
                if destination.st is not None:
                    raise Conflict("the target exists", details={"path": _shown(target)})
                os.rename(origin.name, destination.name, src_dir_fd=origin.dir_fd,
                          dst_dir_fd=destination.dir_fd)
        return "/".join(src), "/".join(dst)


# --------------------------------------------------------------------------- helpers

def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _node(parts: tuple[str, ...], st: os.stat_result) -> dict[str, Any]:
    """One tree entry; symlinks are reported, never followed (no loops, no peeking out)."""
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        kind = "directory"
    elif stat.S_ISLNK(mode):
        kind = "symlink"
    elif stat.S_ISREG(mode):
        kind = "file"
    else:
        kind = "other"
    return {"name": parts[-1], "path": "/".join(parts), "type": kind,
            "size": st.st_size if kind == "file" else 0, "modified": _iso(st.st_mtime)}


def _decode_text(data: bytes, *, final: bool) -> str | None:
    """UTF-8 text, or None for binary; a cut in mid-character is not binary."""
    if b"\x00" in data:
        return None
    try:
        return codecs.getincrementaldecoder("utf-8-sig")().decode(data, final=final)
    except UnicodeDecodeError:
        return None


def _chunks(stream: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    if hasattr(stream, "read"):
        reader: Any = stream
        while chunk := reader.read(CHUNK_SIZE):
            yield chunk
    else:
        yield from stream


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_temp(dir_fd: int, temp_name: str, chunks: Iterable[bytes], max_bytes: int, name: str) -> int:
    """Copy chunk by chunk; on any failure (too large, client gone) leave nothing behind."""
    fd = os.open(temp_name, _TEMP_FLAGS, 0o644, dir_fd=dir_fd)
    size = 0
    try:
        for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge("the file is larger than the upload limit",
                               details={"filename": name, "limit": max_bytes})
            _write_all(fd, chunk)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with suppress(FileNotFoundError):
            os.unlink(temp_name, dir_fd=dir_fd)
        raise
    os.close(fd)
    return size


def _publish_without_replacing(staged: StagedUpload) -> None:
    """Link the temp under its name (atomic no-clobber); fall back where links are missing."""
    try:
        os.link(staged.temp_name, staged.filename, src_dir_fd=staged.dir_fd,
                dst_dir_fd=staged.dir_fd, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        try:
            os.stat(staged.filename, dir_fd=staged.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            os.replace(staged.temp_name, staged.filename, src_dir_fd=staged.dir_fd,
                       dst_dir_fd=staged.dir_fd)
            return
        raise FileExistsError(errno.EEXIST, "exists") from None


def _remove_tree(parent_fd: int, name: str, depth: int) -> None:
    """rmtree by descriptors with O_NOFOLLOW: a directory swapped for a link loses the link only."""
    if depth > MAX_DEPTH:
        raise ValidationFailed("directory tree too deep to delete", details={"path": name})
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            os.unlink(name, dir_fd=parent_fd)
            return
        if exc.errno == errno.ENOENT:
            return
        raise
    try:
        with os.scandir(fd) as scan:
            children = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in scan]
        for child, is_dir in children:
            if is_dir:
                _remove_tree(fd, child, depth + 1)
            else:
                try:
                    os.unlink(child, dir_fd=fd)
                except FileNotFoundError:
                    pass
                except IsADirectoryError:
                    _remove_tree(fd, child, depth + 1)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)


class _ChunkSink:
    """A write-only, non-seekable file for ZipFile; we hand out what it collected.

    Having ``tell`` but no ``seek`` makes ZipFile use data descriptors, i.e. it never
    goes back to patch a header, which is what makes true streaming possible.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._position = 0

    def write(self, data: bytes) -> int:
        self._buffer += data
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        return None

    def close(self) -> None:
        """ZipFile closes its file; what was collected stays for ``drain``."""
        return None

    def pending(self) -> int:
        return len(self._buffer)

    def drain(self) -> bytes:
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


def _zip_time(timestamp: float) -> tuple[int, int, int, int, int, int]:
    """ZIP timestamps only cover 1980..2107; clamp instead of failing mid-stream."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    if moment.year < 1980:
        return (1980, 1, 1, 0, 0, 0)
    if moment.year > 2107:
        return (2107, 12, 31, 23, 59, 58)
    return (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)


def _sorted_names(dir_fd: int) -> list[str]:
    try:
        with os.scandir(dir_fd) as scan:
            return sorted(entry.name for entry in scan if addressable(entry.name))
    except OSError:
        return []


def _zip_directory(archive: zipfile.ZipFile, sink: _ChunkSink, dir_fd: int, prefix: str,
                   depth: int) -> Iterator[bytes]:
    """Archive one directory's entries, recursing into real subdirectories only."""
    for name in _sorted_names(dir_fd):
        arcname = prefix + name
        if len(arcname.encode("utf-8")) > MAX_PATH_BYTES:
            continue
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        except OSError:
            continue  # a symlink (ELOOP), vanished, socket (ENXIO) or unreadable: skip
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode) and depth < MAX_DEPTH:
                archive.mkdir(_dir_info(arcname, st))
                yield from _zip_directory(archive, sink, fd, arcname + "/", depth + 1)
            elif stat.S_ISREG(st.st_mode):
                yield from _zip_file(archive, sink, fd, arcname, st)
        finally:
            os.close(fd)
        if sink.pending() >= CHUNK_SIZE:
            yield sink.drain()


def _dir_info(arcname: str, st: os.stat_result) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(arcname + "/", _zip_time(st.st_mtime))
    info.CRC = 0
    info.external_attr = ((stat.S_IFDIR | (st.st_mode & 0o777)) << 16) | 0x10
    return info


def _zip_file(archive: zipfile.ZipFile, sink: _ChunkSink, fd: int, arcname: str,
              st: os.stat_result) -> Iterator[bytes]:
    """Stream one file into the archive, at most the size it had when opened."""
    info = zipfile.ZipInfo(arcname, _zip_time(st.st_mtime))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (stat.S_IFREG | (st.st_mode & 0o777)) << 16
    info.file_size = st.st_size  # lets zipfile pick ZIP64 up front for big files
    remaining = st.st_size
    with archive.open(info, mode="w") as entry:
        while remaining > 0:
            try:
                chunk = os.read(fd, min(CHUNK_SIZE, remaining))
            except OSError:
                break  # unreadable mid-way: the entry keeps what was read
            if not chunk:
                break
            remaining -= len(chunk)
            entry.write(chunk)
            if sink.pending() >= CHUNK_SIZE:
                yield sink.drain()
