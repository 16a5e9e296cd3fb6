"""Who may call a machine agent on Fly: the check itself, and the name both sides use.

The real path (a machine agent in a container refusing another machine) is in
tests/e2e/test_fly_flow.py; these pin the rules: literal addresses, names resolved with a
short cache, a refresh on a miss that cannot be turned into a resolver flood, and a failed
lookup that never locks the control plane out.
"""

from __future__ import annotations

import pytest
from flask import Flask

from control.providers.fly import CONTROL_PLANE_ENV
from machine_agent import peers
from machine_agent.http import install_error_handlers
from machine_agent.peers import EXTENSION, PEERS_ENV, ControlPlanePeers, require_control_plane


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Resolver:
    """Answers from a table that the test changes (the control plane migrating)."""

    def __init__(self, table: dict[str, set[str]]) -> None:
        self.table = table
        self.asked: list[str] = []
        self.failing = False

    def __call__(self, name: str) -> set[str]:
        self.asked.append(name)
        if self.failing:
            raise OSError("temporary failure in name resolution")
        return set(self.table.get(name, set()))


def test_the_provider_and_the_agent_agree_on_the_variable() -> None:
    assert CONTROL_PLANE_ENV == PEERS_ENV


def test_unset_means_no_check() -> None:
    assert ControlPlanePeers("").allows("203.0.113.9")
    assert ControlPlanePeers(" , ").allows("")


def test_literal_addresses_in_any_spelling() -> None:
    check = ControlPlanePeers("fdaa:0:1:a7b:0:0:0:2, 127.0.0.1")
    assert check.allows("fdaa:0:1:a7b::2") and check.allows("::ffff:127.0.0.1") and check.allows("127.0.0.1")
    assert not check.allows("fdaa:0:1:a7b::3") and not check.allows("") and not check.allows("garbage")


def test_names_are_resolved_cached_and_refreshed_on_a_miss_at_most_once_a_second() -> None:
    clock = Clock()
    resolver = Resolver({"agcluster.internal": {"fdaa::2"}})
    check = ControlPlanePeers("agcluster.internal", resolver=resolver, clock=clock)
    assert check.allows("fdaa::2") and resolver.asked == ["agcluster.internal"]
    assert check.allows("fdaa::2") and len(resolver.asked) == 1          # cached
    assert not check.allows("fdaa::9") and len(resolver.asked) == 1      # a miss inside a second: no lookup
    resolver.table["agcluster.internal"] = {"fdaa::9"}                   # the control plane moved
    clock.now += 1.5
    assert check.allows("fdaa::9") and len(resolver.asked) == 2          # a miss after a second: looked up
    assert not check.allows("fdaa::2")                                   # the old address is gone
    for _ in range(50):
        assert not check.allows("fdaa::66")                              # a stranger hammering
    assert len(resolver.asked) == 2
    clock.now += 11
    assert check.allows("fdaa::9") and len(resolver.asked) == 3          # the cache expires on its own


def test_a_failed_lookup_keeps_the_last_good_answer() -> None:
    clock = Clock()
    resolver = Resolver({"agcluster.internal": {"fdaa::2"}})
    check = ControlPlanePeers("agcluster.internal", resolver=resolver, clock=clock)
    assert check.allows("fdaa::2")
    resolver.failing = True
    clock.now += 30
    assert check.allows("fdaa::2") and len(resolver.asked) == 2
    fresh = ControlPlanePeers("agcluster.internal", resolver=resolver, clock=clock)
    assert not fresh.allows("fdaa::2")  # never resolved: fail closed


@pytest.mark.parametrize(("peer", "status"), [("10.9.9.9", 403), ("127.0.0.1", 200)])
def test_the_hook_answers_403_with_the_standard_body(monkeypatch: pytest.MonkeyPatch, peer: str, status: int) -> None:
    monkeypatch.setenv(PEERS_ENV, "127.0.0.1")
    app = Flask(__name__)
    app.before_request(require_control_plane)
    install_error_handlers(app)
    app.add_url_rule("/health", "health", lambda: {"status": "ok"})
    resp = app.test_client().get("/health", environ_base={"REMOTE_ADDR": peer})
    assert resp.status_code == status
    if status == 403:
        assert resp.get_json() == {"error": {"code": "forbidden", "details": {"peer": peer},
                                             "message": "only the control plane may call this machine agent"}}
    assert isinstance(app.extensions[EXTENSION], peers.ControlPlanePeers)
