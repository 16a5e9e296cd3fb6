"""Shared fixtures: the stand-in model and a running control plane (real processes), the
Docker engine and agent image, the Fly stand-in. Each lives in its own plugin module so a
test module asks for them by parameter name and never imports them."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.shared_fixtures", "tests.docker_support", "tests.fly_support"]


def pytest_configure(config: pytest.Config) -> None:
    Path(__file__).parent.joinpath("artifacts").mkdir(exist_ok=True)
