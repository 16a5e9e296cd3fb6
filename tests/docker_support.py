"""Fixtures for tests that need a real Docker engine and the real agent image.

A plugin (tests/conftest.py loads it): a test module asks for the fixtures by name. Where no
engine answers, those tests skip on a laptop but fail in CI (``CI=true``) or when
``AGCLUSTER_REQUIRE_DOCKER=1``: where the Docker path is supposed to work it must be
proven, never silently skipped.

The image comes from ``scripts/build-images.sh agent``, once per test session; the script
skips the build when an image with the same inputs hash exists, so only the first run after
a change pays for it. ``AGCLUSTER_TEST_AGENT_IMAGE=<tag>`` uses a given image and builds
nothing.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / "scripts" / "build-images.sh"
AGENT_IMAGE = "agcluster/agent:latest"
# A cold build (debootstrap base + agent image) takes a few minutes on a 2-core machine.
BUILD_TIMEOUT = 1500


def docker_required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("AGCLUSTER_REQUIRE_DOCKER") == "1"


def no_docker(reason: str) -> None:
    """Skip locally, fail where Docker is part of the contract."""
    if docker_required():
        pytest.fail(f"a Docker engine is required here (CI or AGCLUSTER_REQUIRE_DOCKER=1): {reason}")
    pytest.skip(f"no Docker engine: {reason}")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure here means "no usable engine"
        no_docker(f"{type(exc).__name__}: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def agent_image(docker_client: Any) -> str:
    tag = os.environ.get("AGCLUSTER_TEST_AGENT_IMAGE")
    if tag:
        return tag
    try:
        proc = subprocess.run(["bash", str(BUILD_SCRIPT), "agent"], check=False, cwd=ROOT, capture_output=True,
                              text=True, timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"scripts/build-images.sh did not finish in {BUILD_TIMEOUT}s")
    if proc.returncode != 0:
        pytest.fail(f"scripts/build-images.sh agent failed:\n{proc.stderr[-4000:]}")
    return AGENT_IMAGE


@pytest.fixture(scope="module")
def docker_instance(docker_client: Any) -> Iterator[str]:
    """A label value of its own, so cleanup (and any reconcile) touches only this module's machines."""
    instance = f"test-{uuid.uuid4().hex[:10]}"
    yield instance
    cleanup_instance(docker_client, instance)


def cleanup_instance(client: Any, instance: str) -> None:
    selector = {"label": [f"agcluster.instance={instance}"]}
    for container in client.containers.list(all=True, filters=selector):
        container.remove(force=True)
    for volume in client.volumes.list(filters=selector):
        with contextlib.suppress(Exception):  # best effort at teardown
            volume.remove(force=True)


def container_exec(client: Any, machine_id: str, *argv: str, user: str = "1000:1000") -> tuple[int, str]:
    result = client.containers.get(machine_id).exec_run(list(argv), user=user)
    return result.exit_code, result.output.decode("utf-8", "replace")
