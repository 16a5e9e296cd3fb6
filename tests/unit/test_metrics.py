"""Prometheus metrics: the exposition, the feeding functions, and the real call sites
(launch, turns, the model relay) moving the right series by the right amounts.

Counters are process-wide, so every assertion is about a delta, never an absolute value.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from control import metrics
from control.app import create_app
from control.relay.routes import PEER_ENVIRON
from control.secrets import hash_key
from control.session_status import SessionStatus
from control.settings import from_env
from control.store import SessionRow, Store
from control.turns import TurnHub
from stubs.anthropic import StubAnthropic
from wire import sse
from wire.errors import NotFound
from wire.events import make_event


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def build_app(tmp_path: Path, **env: str) -> Flask:
    app = create_app(from_env({"DATABASE_PATH": str(tmp_path / "agcluster.db"), **env}))
    metrics.install(app)  # idempotent once the app factory wires it
    return app


def scrape(app: Flask) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    resp = app.test_client().get("/metrics")
    assert resp.status_code == 200
    assert resp.mimetype == "text/plain" and "version=" in resp.headers["Content-Type"]
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def insert_session(store: Store, status: SessionStatus, provider: str = "local",
                   key: str = "sk-ant-test-key-123") -> str:
    session_id = str(uuid.uuid4())
    salt, digest = hash_key(key)
    now = time.time()
    store.insert_session(SessionRow(
        id=session_id, agent_id="agent-x", config_id="code-assistant", config_json="{}", provider=provider,
        machine_id=None, machine_url=None, status=SessionStatus.STARTING, status_detail="", key_salt=salt,
        key_hash=digest, claude_session_id=None, created_at=now, last_active_at=now))
    store.set_status(session_id, status)
    return session_id


def test_exposition_has_state_read_at_scrape_time(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    store = app.extensions["agcluster"].store
    before = scrape(app)
    for state in SessionStatus:  # every state, "deleting" included, from the first scrape
        assert before["agcluster_sessions"][(("provider", "local"), ("state", str(state)))] == 0
    assert "agcluster_warm_pool_ready" in before and "agcluster_warm_pool_target" in before
    insert_session(store, SessionStatus.RUNNING)
    insert_session(store, SessionStatus.RUNNING)
    insert_session(store, SessionStatus.DELETING)
    insert_session(store, SessionStatus.STOPPED, provider="fly_machines")
    after = scrape(app)["agcluster_sessions"]
    assert after[(("provider", "local"), ("state", "running"))] == 2
    assert after[(("provider", "local"), ("state", "deleting"))] == 1
    assert after[(("provider", "fly_machines"), ("state", "stopped"))] == 1


def test_two_apps_in_one_process_each_expose_metrics(tmp_path: Path) -> None:
    first, second = build_app(tmp_path / "a"), build_app(tmp_path / "b")
    insert_session(first.extensions["agcluster"].store, SessionStatus.RUNNING)
    assert scrape(first)["agcluster_sessions"][(("provider", "local"), ("state", "running"))] == 1
    assert scrape(second)["agcluster_sessions"][(("provider", "local"), ("state", "running"))] == 0
    metrics.install(first)  # a second install is a no-op, not a duplicate route
    assert scrape(first)["agcluster_tokens_total"]  # the shared counters appear in both


def test_feeding_functions_move_their_series() -> None:
    launches = value("agcluster_launches_total", provider="unit", outcome="ok")
    latency = value("agcluster_launch_duration_seconds_count", provider="unit")
    metrics.observe_launch("unit", 2.5, "ok")
    metrics.observe_launch("unit", 0.01, "rejected")
    assert value("agcluster_launches_total", provider="unit", outcome="ok") == launches + 1
    assert value("agcluster_launch_duration_seconds_count", provider="unit") == latency + 1  # rejections excluded

    other = value("agcluster_events_relayed_total", type="other")
    metrics.count_event("not-a-real-type")  # unknown types cannot create new series
    assert value("agcluster_events_relayed_total", type="other") == other + 1

    down = value("agcluster_relay_bytes_total", direction="downstream")
    up = value("agcluster_relay_bytes_total", direction="upstream")
    metrics.count_relay_bytes(100)
    metrics.count_relay_bytes(7, "upstream")
    assert value("agcluster_relay_bytes_total", direction="downstream") == down + 100
    assert value("agcluster_relay_bytes_total", direction="upstream") == up + 7

    tokens = {k: value("agcluster_tokens_total", kind=k) for k in metrics.TOKEN_KINDS}
    cost = value("agcluster_cost_usd_total")
    metrics.count_tokens(input_tokens=10, output_tokens=20, cache_read_tokens=3, cache_write_tokens=4, cost_usd=0.5)
    assert {k: value("agcluster_tokens_total", kind=k) - tokens[k] for k in metrics.TOKEN_KINDS} == \
        {"input": 10, "output": 20, "cache_read": 3, "cache_write": 4}
    assert value("agcluster_cost_usd_total") == pytest.approx(cost + 0.5)

    errors = value("agcluster_provider_errors_total", provider="anthropic", kind="529")
    metrics.observe_model_status(200)
    metrics.observe_model_status(529)
    assert value("agcluster_provider_errors_total", provider="anthropic", kind="529") == errors + 1


class _Service:
    class provider:  # lower case: shaped like SessionService.provider
        name = "timed"

    @metrics.timed_launch
    def launch(self, outcome: str) -> str:
        if outcome == "missing":
            raise NotFound("no such config")
        if outcome == "broken":
            raise RuntimeError("the provider fell over")
        return "row"


def test_timed_launch_classifies_outcomes() -> None:
    counts = {o: value("agcluster_launches_total", provider="timed", outcome=o) for o in metrics.LAUNCH_OUTCOMES}
    service = _Service()
    assert service.launch("ok") == "row"
    with pytest.raises(NotFound):
        service.launch("missing")
    with pytest.raises(RuntimeError):
        service.launch("broken")
    assert {o: value("agcluster_launches_total", provider="timed", outcome=o) - counts[o]
            for o in metrics.LAUNCH_OUTCOMES} == {"ok": 1, "rejected": 1, "failed": 1}


def test_turns_count_events_and_time_to_the_agents_first_event(tmp_path: Path) -> None:
    hub = TurnHub(Store(tmp_path / "db.sqlite"))
    first_events = value("agcluster_chat_first_event_seconds_count")
    deltas = value("agcluster_events_relayed_total", type="text_delta")
    dones = value("agcluster_events_relayed_total", type="done")

    def source() -> Iterator[list[sse.Piece]]:
        yield [sse.piece(make_event("user", "s", text="hi"))]
        yield [sse.piece(make_event("text_delta", "s", text="a")), sse.piece(make_event("text_delta", "s", text="b"))]
        yield [sse.piece(make_event("done", "s"))]

    start = hub.start_turn("s", "hi", source)
    assert [e["type"] for e in hub.follow("s", start) if e][-1] == "done"
    assert value("agcluster_events_relayed_total", type="text_delta") == deltas + 2
    assert value("agcluster_events_relayed_total", type="done") == dones + 1
    assert value("agcluster_chat_first_event_seconds_count") == first_events + 1  # once per turn


def test_a_turn_with_only_the_echo_observes_no_first_event(tmp_path: Path) -> None:
    hub = TurnHub(Store(tmp_path / "db.sqlite"))
    first_events = value("agcluster_chat_first_event_seconds_count")
    gate = threading.Event()

    def source() -> Iterator[list[sse.Piece]]:
        yield [sse.piece(make_event("user", "s", text="hi"))]
        gate.set()
        raise RuntimeError("machine gone")

    start = hub.start_turn("s", "hi", source)
    assert [e["type"] for e in hub.follow("s", start) if e][-2:] == ["error", "done"]
    assert gate.is_set()
    assert value("agcluster_chat_first_event_seconds_count") == first_events


@pytest.fixture(scope="module")
def model() -> Iterator[StubAnthropic]:
    stub = StubAnthropic().start()
    yield stub
    stub.stop()


def test_relay_meters_bytes_and_tokens_from_the_models_answer(tmp_path: Path, model: StubAnthropic) -> None:
    app = build_app(tmp_path, ANTHROPIC_BASE_URL=model.url)
    ext = app.extensions["agcluster"]
    session_id = insert_session(ext.store, SessionStatus.RUNNING)
    ext.vault.put(session_id, "sk-ant-test-key-123")
    token = ext.minter.relay_token(session_id)
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64,
                       "messages": [{"role": "user", "content": "hello there"}]}).encode()
    tokens = {k: value("agcluster_tokens_total", kind=k) for k in metrics.TOKEN_KINDS}
    down = value("agcluster_relay_bytes_total", direction="downstream")
    up = value("agcluster_relay_bytes_total", direction="upstream")

    # The relay is an app of its own; its listener tells it which machine is calling.
    relay = ext.relay_app.test_client()
    relay.environ_base[PEER_ENVIRON] = session_id
    resp = relay.post("/relay/v1/messages", data=body, headers={
        "x-api-key": token, "content-type": "application/json", "anthropic-version": "2023-06-01"})
    answer = resp.get_data()
    resp.close()
    assert resp.status_code == 200, answer[:300]
    usage = json.loads(answer)["usage"]
    assert value("agcluster_tokens_total", kind="input") - tokens["input"] == usage["input_tokens"] > 0
    assert value("agcluster_tokens_total", kind="output") - tokens["output"] == usage["output_tokens"] > 0
    assert value("agcluster_relay_bytes_total", direction="downstream") - down == len(answer)
    assert value("agcluster_relay_bytes_total", direction="upstream") - up == len(body)


def test_http_route_labels_are_bounded(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    client = app.test_client()
    unmatched = value("agcluster_http_requests_total", route="unmatched", method="GET", status="404")
    client.get(f"/no/such/{uuid.uuid4()}")
    assert value("agcluster_http_requests_total", route="unmatched", method="GET", status="404") == unmatched + 1
    rule = "/api/agents/sessions/<session_id>"
    by_rule = value("agcluster_http_requests_total", route=rule, method="GET", status="404")
    client.get(f"/api/agents/sessions/{uuid.uuid4()}", headers={"Authorization": "Bearer sk-ant-whatever-123"})
    assert value("agcluster_http_requests_total", route=rule, method="GET", status="404") == by_rule + 1
    exposition = client.get("/metrics").get_data(as_text=True)
    assert "sk-ant-" not in exposition
