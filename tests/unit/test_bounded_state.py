"""Process state that could only grow does not: 1,000 sessions launched, used and deleted
leave nothing behind in memory (keys, redactor secrets, turn channels, HTTP connections,
locks, MCP credentials, rate-limit windows)."""

from __future__ import annotations

from pathlib import Path

from control.quotas import WINDOW
from control.secrets import REDACTOR
from control.sessions import Caller
from tests.unit.fakes import FakeMachineAgent, FakeProvider, build_service

SESSIONS = 1000


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_thousand_sessions_launched_and_deleted_leave_nothing_behind(tmp_path: Path) -> None:
    agent = FakeMachineAgent()
    provider = FakeProvider(agent.url)
    service = build_service(tmp_path, provider)
    clock = Clock()
    service.turns.quotas._clock = clock  # the rate-limit windows pass in the blink of an eye
    service.launches.quotas._clock = clock
    redactor_before = REDACTOR.known()
    try:
        for n in range(SESSIONS):
            caller = Caller(key=f"sk-ant-bounded-{n:06d}-key", rate_key=f"10.0.{n // 256}.{n % 256}")
            row = service.launches.launch(caller, config_id="code-assistant")
            grant = service.open(caller, row.id)
            if n % 10 == 0:  # a turn on every tenth: a channel, a pooled connection
                events = [e for e in service.turns.follow(grant, service.turns.chat(grant, f"turn {n}")) if e]
                assert events[-1]["type"] == "done" and events[1]["text"] == f"echo: turn {n}"
            if n % 7 == 0:
                service.lifecycle.stop(grant)
            service.lifecycle.delete(grant)

        assert service.store.list_sessions() == [] and provider.machines == {}
        assert provider.started == SESSIONS and agent.chats == SESSIONS // 10
        assert len(service.vault) == 0
        assert REDACTOR.known() == redactor_before
        assert service.turns.hub.tracked() == 0
        assert service.machines.held_state() == {"locks": 0, "http": 0, "mcp_env": 0}
        assert service.turns.quotas.tracked() == SESSIONS  # every caller still within its window
        clock.now += WINDOW
        service.turns.quotas.prune()
        assert service.turns.quotas.tracked() == 0
    finally:
        agent.close()


def test_a_key_shared_by_sessions_stays_redacted_until_the_last_one_goes(tmp_path: Path) -> None:
    agent = FakeMachineAgent()
    service = build_service(tmp_path, FakeProvider(agent.url), RATE_LIMIT_PER_MINUTE="0")
    key = "shared-secret-not-key-shaped-0123456789"  # so only the known-secret list can hide it
    before = REDACTOR.known()
    try:
        caller = Caller(key=key)
        first, second = (service.launches.launch(caller, config_id="code-assistant") for _ in range(2))
        service.open(caller, first.id)  # a refresh of the same key adds nothing
        assert REDACTOR.known() == before + 1
        service.lifecycle.delete(service.open(caller, first.id))
        assert REDACTOR.redact(f"leaked {key}") == "leaked [REDACTED]"
        service.lifecycle.delete(service.open(caller, second.id))
        assert REDACTOR.known() == before
        assert REDACTOR.redact(f"leaked {key}") == f"leaked {key}"
    finally:
        agent.close()
