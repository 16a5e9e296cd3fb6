"""The Fly stand-in on its docker backend and a control plane that drives it: a plugin
(tests/conftest.py loads it), so the Fly flow and the Fly attacks share one ``fly``
fixture and one way to start a control plane against it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stubs.anthropic import StubAnthropic
from stubs.fly import StubFly
from tests.docker_support import AGENT_IMAGE
from tests.support import ControlPlane, free_port

APP = "agcluster-test"
FLY_TOKEN = "fm2_" + secrets.token_hex(16)  # a macaroon: sent with the FlyV1 scheme


def key() -> str:
    return "sk-ant-api03-" + secrets.token_hex(24)


def config(memory: str = "4g") -> dict[str, Any]:
    """A plain agent; ``memory`` decides whether Fly can suspend it (at most 2 GB)."""
    return {"id": "plain", "name": "Plain", "allowed_tools": ["Bash", "Read", "Write"],
            "resource_limits": {"memory_limit": memory, "cpu_quota": 100000, "storage_limit": "1g"}}


def fly_control_plane(data_dir: Path, stub: StubFly, model: StubAnthropic, image: str = AGENT_IMAGE,
                      **extra: str) -> ControlPlane:
    """A control plane whose machines reach its relay on the stand-in network's gateway."""
    relay_port = free_port()
    host = f"[{stub.gateway}]" if ":" in stub.gateway else stub.gateway
    return ControlPlane(data_dir, {
        "CONTAINER_PROVIDER": "fly_machines", "FLY_API_TOKEN": FLY_TOKEN, "FLY_APP_NAME": APP,
        "MACHINES_API_URL": stub.url, "AGENT_IMAGE": image, "ANTHROPIC_BASE_URL": model.url,
        "RELAY_PORT": str(relay_port), "RELAY_URL": f"http://{host}:{relay_port}/relay", **extra,
    }).start(timeout=120)


@pytest.fixture(scope="module")
def fly(agent_image: str) -> Iterator[StubFly]:
    stub = StubFly(backend="docker", token=FLY_TOKEN, apps=[APP]).start()
    yield stub
    stub.stop()
