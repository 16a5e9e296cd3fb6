"""The Fly stand-in's Docker backend when Docker itself races (edge cases a real engine
produces only under load, so driven here through a fake client)."""
from __future__ import annotations

from typing import Any, cast

import docker
import docker.errors
import pytest

from stubs.fly.backends import DockerBackend


class _Container:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def remove(self, force: bool) -> None:
        if self.error is not None:
            raise self.error


class _Api:
    def __init__(self) -> None:
        self.waits: list[tuple[str, str]] = []

    def wait(self, name: str, timeout: int, condition: str) -> dict[str, Any]:
        self.waits.append((name, condition))
        return {"StatusCode": 0}


class _Containers:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def get(self, name: str) -> _Container:
        return _Container(self.error)


class _Client:
    def __init__(self, error: Exception | None) -> None:
        self.containers = _Containers(error)
        self.api = _Api()


def _backend(error: Exception | None) -> tuple[DockerBackend, _Client]:
    client = _Client(error)
    backend = DockerBackend.__new__(DockerBackend)
    backend.client = cast("docker.DockerClient", client)
    backend.label = "t"
    backend._errors = docker.errors
    return backend, client


def _api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = type("R", (), {"status_code": status, "reason": "x", "url": "u"})()
    return docker.errors.APIError("docker", response=response, explanation=explanation)


def test_removal_already_in_progress_waits_for_the_removal() -> None:
    backend, client = _backend(_api_error(409, "removal of container x is already in progress"))
    backend.destroy("m1", None)
    assert client.api.waits == [("stubs-fly-t-m1", "removed")]


def test_other_docker_errors_still_fail_the_destroy() -> None:
    backend, client = _backend(_api_error(500, "driver failed"))
    with pytest.raises(docker.errors.APIError):
        backend.destroy("m1", None)
    assert client.api.waits == []
