"""``stream`` survives the network dropping it mid-turn: it reconnects with Last-Event-ID
from the last seq it saw, and the caller gets every event exactly once.

The drop is real: a TCP proxy between client and control plane resets the connection after
a number of response bytes (mid-frame), twice in one turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from cutting_proxy import CuttingProxy

from agcluster_client import AgCluster, AsyncAgCluster, ConnectionFailed
from agcluster_client.events import DoneEvent, Event, TextDeltaEvent, ToolResultEvent, UserEvent
from stubs.anthropic import StubAnthropic
from tests.support import ControlPlane

DELTAS = 200
# Past the response headers and the first frames, then again further on: both mid-turn.
CUTS = (2_500, 6_000)


@pytest.fixture()
def proxy(control_plane: ControlPlane) -> Iterator[CuttingProxy]:
    cutter = CuttingProxy(control_plane.port)
    yield cutter
    cutter.close()


@pytest.fixture()
def paced_model(fresh_model: StubAnthropic) -> Iterator[StubAnthropic]:
    fresh_model.set_latency(tokens_per_second=150)  # a turn of a few seconds, so cuts land mid-turn
    yield fresh_model
    fresh_model.reset()


def no_pooling() -> httpx.Limits:
    # One TCP connection per request, so the proxy's per-connection byte count is the stream's.
    return httpx.Limits(max_keepalive_connections=0)


def check_exactly_once(events: list[Event], control_plane: ControlPlane, session_id: str, key: str) -> None:
    assert isinstance(events[0], UserEvent) and isinstance(events[-1], DoneEvent)
    seqs = [e.seq for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    assert sum(isinstance(e, TextDeltaEvent) for e in events) == DELTAS
    stored = control_plane.get(f"/api/agents/sessions/{session_id}/events", key,
                               params={"after": seqs[0] - 1}).json()["events"]
    assert [(e["seq"], e["type"]) for e in stored] == [(e.seq, e.type) for e in events]
    assert [e.get("text") for e in stored] == [e.data.get("text") for e in events]


def test_sync_stream_resumes_with_no_gap_and_no_duplicate(control_plane: ControlPlane, key: str,
                                                           proxy: CuttingProxy, paced_model: StubAnthropic) -> None:
    with AgCluster(proxy.url, api_key=key, http_client=httpx.Client(limits=no_pooling())) as ac:
        session = ac.launch("code-assistant")
        proxy.arm(*CUTS)
        before = proxy.connections
        events = list(session.stream(f"stream {DELTAS}"))
        assert proxy.cut == len(CUTS) and proxy.connections - before == len(CUTS) + 1
        check_exactly_once(events, control_plane, session.id, key)
        session.delete()


def test_async_stream_resumes_with_no_gap_and_no_duplicate(control_plane: ControlPlane, key: str,
                                                            proxy: CuttingProxy, paced_model: StubAnthropic) -> None:
    async def scenario() -> tuple[str, list[Event], int]:
        async with AsyncAgCluster(proxy.url, api_key=key,
                                  http_client=httpx.AsyncClient(limits=no_pooling())) as ac:
            session = await ac.launch("code-assistant")
            proxy.arm(*CUTS)
            before = proxy.connections
            events = [event async for event in session.stream(f"stream {DELTAS}")]
            check_exactly_once(events, control_plane, session.id, key)
            used = proxy.connections - before
            await session.delete()
            return session.id, events, used

    _, _, connections = asyncio.run(scenario())
    assert proxy.cut == len(CUTS) and connections == len(CUTS) + 1


def test_a_drop_before_the_first_event_is_an_error(control_plane: ControlPlane, key: str,
                                                    proxy: CuttingProxy) -> None:
    """Where the turn began is unknown then: say so rather than guess; after= recovers it."""
    with AgCluster(proxy.url, api_key=key, http_client=httpx.Client(limits=no_pooling())) as ac:
        session = ac.launch("code-assistant")
        proxy.arm(40)  # inside the response headers
        with pytest.raises(ConnectionFailed):
            list(session.stream("run: echo started-anyway"))
        # The server had started the turn; this session's first turn is followed from seq 0.
        events = list(session.stream(after=0))
        assert isinstance(events[0], UserEvent) and events[0].text == "run: echo started-anyway"
        assert isinstance(events[-1], DoneEvent)
        assert any(isinstance(e, ToolResultEvent) and "started-anyway" in e.output for e in events)
        session.delete()
