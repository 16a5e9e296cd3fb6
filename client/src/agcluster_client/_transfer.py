"""File transfers with progress, shared by the sync and async clients.

Uploads stream from disk (httpx reads the file in chunks while sending, knowing its size so
the request has a Content-Length); downloads stream to disk. Neither holds a file in memory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO

from ._base import Progress


class ProgressReader:
    """A binary file that reports how far it has been read."""

    def __init__(self, file: BinaryIO, progress: Progress | None) -> None:
        self._file = file
        self._progress = progress
        self.total = os.fstat(file.fileno()).st_size

    def fileno(self) -> int:
        return self._file.fileno()

    def tell(self) -> int:
        return self._file.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        if self._progress is not None and chunk:
            self._progress(self._file.tell(), self.total)
        return chunk

    @staticmethod
    @contextlib.contextmanager
    def sink(to: str | Path | IO[bytes]) -> Iterator[IO[bytes]]:
        """Where a download goes: a file object as given, or a path written atomically
        (a broken transfer leaves no half file under the final name)."""
        if not isinstance(to, (str, Path)):
            yield to
            return
        target = Path(to)
        partial = target.with_name(f".{target.name}.part")
        try:
            with open(partial, "wb") as handle:
                yield handle
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)


@contextlib.contextmanager
def open_upload(file: str | Path, progress: Progress | None) -> Iterator[tuple[str, ProgressReader]]:
    path = Path(file)
    with open(path, "rb") as handle:
        yield path.name, ProgressReader(handle, progress)
