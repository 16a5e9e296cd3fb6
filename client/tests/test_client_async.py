"""The async twin, method for method, against the same real control plane."""

from __future__ import annotations

import asyncio
import io
import os
import zipfile
from pathlib import Path

import pytest
from conftest import ASKING_CONFIG

from agcluster_client import AsyncAgCluster, AsyncSession, Conflict, NotFound, Unauthorized
from agcluster_client.events import (
    DoneEvent,
    Event,
    PermissionRequestEvent,
    ToolResultEvent,
    ToolUseEvent,
    UserEvent,
)
from tests.support import ControlPlane


def test_async_client_end_to_end(control_plane: ControlPlane, key: str, tmp_path: Path) -> None:
    payload = os.urandom(70_000)
    (tmp_path / "up.bin").write_bytes(payload)

    async def scenario() -> None:
        async with AsyncAgCluster(control_plane.url, api_key=key) as ac:
            assert "Bash" in {c.id: c for c in await ac.configs()}["code-assistant"].tools
            s = await ac.launch("code-assistant")
            assert isinstance(s, AsyncSession) and isinstance(s.status, str)

            events: list[Event] = [e async for e in s.stream("run: echo async-hi > a.txt && cat a.txt")]
            assert isinstance(events[0], UserEvent) and isinstance(events[-1], DoneEvent)
            seqs = [e.seq for e in events]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
            assert "async-hi" in next(e for e in events if isinstance(e, ToolResultEvent)).output

            reply = await s.chat("run: echo async-chat")
            assert "async-chat" in reply.text and not reply.is_error and (reply.cost_usd or 0) > 0

            assert (await ac.session(s.id)).id == s.id
            assert s.id in [x.id for x in await ac.sessions()]

            stored = await s.files.upload(tmp_path / "up.bin", to="in")
            assert stored[0]["path"] == "in/up.bin"
            assert {e.path for e in (await s.files.tree()).walk()} >= {"a.txt", "in", "in/up.bin"}
            assert await s.files.read("in/up.bin") == payload
            await s.files.download("a.txt", tmp_path / "a.txt")
            assert (tmp_path / "a.txt").read_text() == "async-hi\n"
            buffer = io.BytesIO()
            await s.files.download_zip(buffer)
            assert zipfile.ZipFile(buffer).read("in/up.bin") == payload

            assert await s.interrupt() is False
            stream = s.stream("run: python3 -c 'import time; time.sleep(120)'")
            async with stream:
                async for event in stream:
                    if isinstance(event, ToolUseEvent):
                        with pytest.raises(Conflict):
                            await s.chat("busy?")
                        assert await s.interrupt() is True
            assert stream.last_seq is not None

            assert "async-chat" in await s.export("markdown")
            assert isinstance(await s.export("json"), dict)

            async with AsyncAgCluster(control_plane.url, api_key="") as anonymous:
                with pytest.raises(Unauthorized):
                    await anonymous.session(s.id)

            await s.delete()
            with pytest.raises(NotFound):
                await ac.session(s.id)

    asyncio.run(scenario())


def test_async_approvals(control_plane: ControlPlane, key: str) -> None:
    async def scenario() -> list[Event]:
        async with AsyncAgCluster(control_plane.url, api_key=key) as ac:
            s = await ac.launch(config=ASKING_CONFIG)
            events: list[Event] = []
            async for event in s.stream("run: touch async.txt && echo approved-async"):
                events.append(event)
                if isinstance(event, PermissionRequestEvent):
                    await s.approve(event.request_id, "allow")
            await s.delete()
            return events

    events = asyncio.run(scenario())
    assert any(isinstance(e, PermissionRequestEvent) for e in events)
    result = next(e for e in events if isinstance(e, ToolResultEvent))
    assert not result.is_error and "approved-async" in result.output
