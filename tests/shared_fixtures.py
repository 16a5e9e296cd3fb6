"""The real-process fixtures every suite shares: the stand-in model and a running control
plane. A plugin (``pytest_plugins``) rather than conftest code, so the client's suite
(client/tests) loads the same fixtures without importing them by name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stubs.anthropic import StubAnthropic
from tests.support import ControlPlane


@pytest.fixture(scope="session")
def model() -> Iterator[StubAnthropic]:
    stub = StubAnthropic().start()
    yield stub
    stub.stop()


@pytest.fixture()
def fresh_model(model: StubAnthropic) -> StubAnthropic:
    model.reset()
    return model


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory, model: StubAnthropic) -> Iterator[ControlPlane]:
    cp = ControlPlane(tmp_path_factory.mktemp("cp"), {"ANTHROPIC_BASE_URL": model.url}).start()
    yield cp
    cp.stop()
