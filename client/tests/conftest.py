"""The client's tests run against the same real processes as the server's e2e suite: the
control plane as `agcluster serve` (real SDK, real CLI, real bubblewrap machines) in front
of the stand-in model, so every method is proven against the real API, not a mock."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from agcluster_client import AgCluster
from tests.support import ControlPlane

# The shared real-process fixtures (model, fresh_model, control_plane); pyproject.toml's
# pytest `pythonpath` makes `tests` importable however pytest is started.
pytest_plugins = ["tests.shared_fixtures"]

ASKING_CONFIG = {"id": "client-asks-first", "name": "Asks first", "allowed_tools": ["Bash", "Read"],
                 "permission_mode": "default"}

# "loop" makes the demo model call a tool forever; max_turns ends the turn as an error.
LIMITED_CONFIG = {"id": "client-limited", "name": "Two turns at most", "allowed_tools": ["Bash"], "max_turns": 2}


def new_key() -> str:
    return "sk-ant-api03-" + secrets.token_hex(20)


@pytest.fixture(scope="module")
def key() -> str:
    return new_key()


@pytest.fixture(scope="module")
def ac(control_plane: ControlPlane, key: str) -> Iterator[AgCluster]:
    with AgCluster(control_plane.url, api_key=key) as client:
        yield client
