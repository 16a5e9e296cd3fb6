"""AgCluster from Python: launch agents, stream their turns, move files.

    from agcluster_client import AgCluster
    ac = AgCluster("http://127.0.0.1:8000", api_key="sk-ant-...")
    s = ac.launch("code-assistant")
    for ev in s.stream("run: ls"):
        print(ev.type, ev.seq)

``AsyncAgCluster`` is the same with ``await`` / ``async for``. HTTP errors raise
:class:`AgClusterError` subclasses; a turn that fails is an ``error`` event, not an exception.
"""

from ._async import AsyncAgCluster, AsyncEventStream, AsyncFiles, AsyncSession
from ._errors import (
    AgClusterError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    RateLimited,
    ServerError,
    TooLarge,
    Unauthorized,
)
from ._models import Config, FileEntry, FileTree, Reply
from ._sync import AgCluster, EventStream, Files, Session
from .events import Event

__version__ = "0.1.0"

__all__ = [
    "AgCluster",
    "AgClusterError",
    "AsyncAgCluster",
    "AsyncEventStream",
    "AsyncFiles",
    "AsyncSession",
    "BadRequest",
    "Config",
    "Conflict",
    "ConnectionFailed",
    "Event",
    "EventStream",
    "FileEntry",
    "FileTree",
    "Files",
    "Forbidden",
    "NotFound",
    "RateLimited",
    "Reply",
    "ServerError",
    "Session",
    "TooLarge",
    "Unauthorized",
]
