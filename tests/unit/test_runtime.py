"""Building an app starts nothing; ``start()`` begins the background work (reconcile, warm
pool, janitor) and ``stop()`` ends it, so apps built in-process leak no threads."""

from __future__ import annotations

import threading
from pathlib import Path

from control.app import create_app
from control.sessions import Caller
from control.settings import from_env
from tests.support import wait_for
from tests.unit.fakes import FakeMachineAgent, FakeProvider


def janitors() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "session-janitor" and t.is_alive()]


def test_building_starts_nothing_and_stop_ends_what_start_began(tmp_path: Path) -> None:
    agent = FakeMachineAgent()
    try:
        baseline = set(threading.enumerate())
        apps = []
        for n in range(5):
            settings = from_env({"DATABASE_PATH": str(tmp_path / f"{n}" / "agcluster.db"),
                                 "SESSION_CLEANUP_INTERVAL": "1", "SESSION_IDLE_TIMEOUT": "1",
                                 "RATE_LIMIT_PER_MINUTE": "0"})
            apps.append(create_app(settings, provider=FakeProvider(agent.url)))
        assert set(threading.enumerate()) == baseline  # five apps built, not one thread started
        assert janitors() == []

        ext = apps[0].extensions["agcluster"]
        caller = Caller(key="sk-ant-runtime-test-key")
        session_id = ext.sessions.launches.launch(caller, config_id="code-assistant").id
        ext.start()
        ext.start()  # idempotent
        assert len(janitors()) == 1
        # The janitor really runs: the idle machine is stopped without anyone asking.
        wait_for(lambda: ext.store.get_session(session_id).status == "stopped")
        ext.stop()
        ext.stop()  # idempotent
        assert janitors() == []

        for app in apps[1:]:
            app.extensions["agcluster"].start()
        assert len(janitors()) == 4
        for app in apps[1:]:
            app.extensions["agcluster"].stop()
        assert janitors() == []
    finally:
        agent.close()


def test_start_reconciles_what_building_left_alone(tmp_path: Path) -> None:
    agent = FakeMachineAgent()
    try:
        settings = from_env({"DATABASE_PATH": str(tmp_path / "agcluster.db"), "RATE_LIMIT_PER_MINUTE": "0"})
        provider = FakeProvider(agent.url)
        app = create_app(settings, provider=provider)
        ext = app.extensions["agcluster"]
        session_id = ext.sessions.launches.launch(Caller(key="sk-ant-runtime-test-key"), config_id="code-assistant").id
        provider.machines.clear()  # the machine vanished while "the control plane was down"
        again = create_app(settings, provider=provider).extensions["agcluster"]
        assert again.store.get_session(session_id).status == "running"  # building did not touch it
        again.start()
        try:
            row = again.store.get_session(session_id)
            assert row.status == "stopped" and "restart" in row.status_detail
        finally:
            again.stop()
            ext.stop()
    finally:
        agent.close()
