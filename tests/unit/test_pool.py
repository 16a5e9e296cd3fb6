"""The pool's bookkeeping with an in-process stand-in for machines (the real paths are in
tests/e2e/test_hot_pool.py and tests/e2e/test_warm_pool.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from flask import Response, jsonify

from control.harness import wait_until
from control.pool import WarmPool
from control.providers.base import Machine, MachineSpec, ResourceLimits
from control.secrets import TokenMinter
from tests.unit.fakes import FakeMachineAgent, FakeProvider


@pytest.fixture()
def agent() -> Iterator[FakeMachineAgent]:
    fake = FakeMachineAgent()
    yield fake
    fake.close()


class SlowProvider(FakeProvider):
    """Starts block until released, like a container still being created."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.release = threading.Event()
        self.starting = threading.Event()

    def start(self, spec: MachineSpec) -> Machine:
        self.starting.set()
        assert self.release.wait(30)
        return super().start(spec)


def test_closing_waits_for_a_fill_in_progress_and_removes_what_it_started(agent: FakeMachineAgent) -> None:
    provider = SlowProvider(agent.url)
    pool = WarmPool(provider, TokenMinter(b"s" * 32), 1)
    pool.warm(None, ResourceLimits())
    assert provider.starting.wait(10)
    closer = threading.Thread(target=pool.close)
    closer.start()
    provider.release.set()
    closer.join(30)
    assert not closer.is_alive()
    assert provider.started == 1 and provider.machines == {}, "nothing outlives the pool"


def test_a_hot_claim_needs_the_very_preset_it_was_kept_for(agent: FakeMachineAgent) -> None:
    pool = WarmPool(FakeProvider(agent.url), TokenMinter(b"s" * 32), 0, hot={"code-assistant": 1})
    config = {"id": "code-assistant", "allowed_tools": ["Bash"]}
    assert pool.claim_hot("code-assistant", config) is None  # nothing kept yet: None at once
    assert pool.claim_hot("data-analysis", config) is None
    pool.close()


class UnconfiguredAgent(FakeMachineAgent):
    """Answers like a warm machine: up, not configured."""

    def _health(self) -> Response:
        return jsonify(status="ok", configured=False)


def test_a_warm_claim_is_replaced_only_once_its_claimer_is_done() -> None:
    """The replacement's start would otherwise run beside the claiming launch's configure."""
    agent = UnconfiguredAgent()
    provider = FakeProvider(agent.url)
    pool = WarmPool(provider, TokenMinter(b"s" * 32), 1)
    try:
        pool.warm(None, ResourceLimits())
        wait_until(lambda: pool.ready_count() == 1, 30, "the first fill")
        pooled = pool.claim(None, ResourceLimits())
        assert pooled is not None
        assert not pool._filling  # a refill is registered before its thread starts: none was
        assert pool.claim(None, ResourceLimits()) is None  # finds nothing: that refill starts at once
        assert pool._filling
        wait_until(lambda: pool.ready_count() == 1, 30, "the refill")
        taken = pool.claim(None, ResourceLimits())
        assert taken is not None and not pool._filling
        pool.replenish(taken)
        wait_until(lambda: pool.ready_count() == 1, 30, "the replacement")
        assert provider.started == 3
    finally:
        pool.close()
        agent.close()
