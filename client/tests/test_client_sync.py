"""Every method of the blocking client against a real control plane and real machines."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ASKING_CONFIG, LIMITED_CONFIG, new_key

from agcluster_client import AgCluster, BadRequest, Conflict, Forbidden, NotFound, Reply, Session, Unauthorized
from agcluster_client.events import (
    DoneEvent,
    Event,
    PermissionRequestEvent,
    ResultEvent,
    ToolResultEvent,
    ToolUseEvent,
    UserEvent,
)
from tests.support import ControlPlane


@pytest.fixture(scope="module")
def session(ac: AgCluster) -> Iterator[Session]:
    s = ac.launch("code-assistant")
    yield s
    with contextlib.suppress(NotFound):
        s.delete()


def test_configs_are_typed(ac: AgCluster) -> None:
    configs = {c.id: c for c in ac.configs()}
    assert "code-assistant" in configs
    code = configs["code-assistant"]
    assert code.name and "Bash" in code.tools and code.preset and code.data["id"] == "code-assistant"


def test_stream_yields_typed_events_in_order(session: Session) -> None:
    marker = "streamed-" + secrets.token_hex(4)
    with session.stream(f"run: echo {marker} > proof.txt && cat proof.txt") as stream:
        events = list(stream)
    assert isinstance(events[0], UserEvent) and isinstance(events[-1], DoneEvent)
    seqs = [e.seq for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs  # contiguous: no gap, no duplicate
    assert stream.last_seq == seqs[-1]
    call = next(e for e in events if isinstance(e, ToolUseEvent))
    assert call.type == "tool_use" and call.name == "Bash" and marker in call.input["command"]
    result = next(e for e in events if isinstance(e, ToolResultEvent))
    assert result.tool_use_id == call.id and marker in result.output and not result.is_error
    assert all(e.session_id == session.id and e.data["seq"] == e.seq for e in events)
    assert isinstance(next(e for e in events if e.type == "result"), ResultEvent)


def test_chat_waits_for_the_turn(session: Session) -> None:
    marker = "chat-" + secrets.token_hex(4)
    reply = session.chat(f"run: echo {marker}")
    assert isinstance(reply, Reply) and not reply.is_error and reply.errors == []
    assert marker in reply.text and reply.cost_usd is not None and reply.cost_usd > 0
    assert isinstance(reply.events[-1], DoneEvent) and reply.result is not None and reply.result.num_turns >= 1


def test_session_lookup_and_listing(ac: AgCluster, session: Session) -> None:
    again = ac.session(session.id)
    assert again.id == session.id and again.config_id == "code-assistant"
    assert isinstance(again.status, str) and again.status
    assert again.data["turns"] >= 1
    assert session.id in [s.id for s in ac.sessions()]


def test_inline_config_launch(ac: AgCluster) -> None:
    s = ac.launch(config={"id": "client-inline", "name": "Inline", "allowed_tools": ["Bash"]})
    try:
        assert s.config_id == "client-inline"
        assert "inline-ok" in s.chat("run: echo inline-ok").text
    finally:
        s.delete()
    with pytest.raises(NotFound):
        ac.session(s.id)


def test_file_round_trip(session: Session, tmp_path: Path) -> None:
    payload = os.urandom(300_000) + b"\x00end"
    local = tmp_path / "data.bin"
    local.write_bytes(payload)
    seen: list[tuple[int, int | None]] = []
    stored = session.files.upload(local, to="inbox/", progress=lambda done, total: seen.append((done, total)))
    assert stored[0]["path"] == "inbox/data.bin" and stored[0]["size"] == len(payload)
    assert seen[-1] == (len(payload), len(payload))

    tree = session.files.tree()
    entries = {e.path: e for e in tree.walk()}
    assert entries["inbox"].type == "directory" and entries["inbox/data.bin"].size == len(payload)
    assert session.files.read("inbox/data.bin") == payload

    got: list[tuple[int, int | None]] = []
    session.files.download("inbox/data.bin", tmp_path / "back.bin", progress=lambda d, t: got.append((d, t)))
    assert (tmp_path / "back.bin").read_bytes() == payload and got[-1] == (len(payload), len(payload))

    session.files.download_zip(tmp_path / "ws.zip")
    with zipfile.ZipFile(tmp_path / "ws.zip") as archive:
        assert archive.read("inbox/data.bin") == payload
    buffer = io.BytesIO()
    session.files.download_zip(buffer)
    assert zipfile.ZipFile(buffer).namelist() == zipfile.ZipFile(tmp_path / "ws.zip").namelist()

    # The agent sees the upload, and a second upload of the same name is refused.
    assert "300004" in session.chat("run: wc -c < inbox/data.bin").text
    with pytest.raises(Conflict):
        session.files.upload(local, to="inbox")
    assert session.files.upload(local, to="inbox", overwrite=True)[0]["size"] == len(payload)


def test_interrupt_stops_a_running_turn(session: Session) -> None:
    assert session.interrupt() is False  # nothing running
    events: list[Event] = []
    with session.stream("run: python3 -c 'import time; time.sleep(120)'") as stream:
        for event in stream:
            events.append(event)
            if isinstance(event, ToolUseEvent):
                with pytest.raises(Conflict) as busy:
                    session.chat("hello")
                assert busy.value.code == "busy" and busy.value.status == 409
                assert session.interrupt() is True
    assert isinstance(events[-1], DoneEvent)
    assert "after-interrupt" in session.chat("run: echo after-interrupt").text


def test_export(session: Session) -> None:
    markdown = session.export("markdown")
    assert isinstance(markdown, str) and markdown.startswith("# Session") and "proof.txt" in markdown
    document = session.export("json")
    assert isinstance(document, dict) and "proof.txt" in str(document)


def test_approvals(ac: AgCluster, control_plane: ControlPlane) -> None:
    s = ac.launch(config=ASKING_CONFIG)
    workspace = control_plane.data_dir / "machines" / s.id / "workspace"
    try:
        events = []
        for event in s.stream("run: touch denied.txt && echo made-denied"):
            events.append(event)
            if isinstance(event, PermissionRequestEvent):
                assert event.tool_name == "Bash" and "denied.txt" in event.input["command"]
                s.approve(event.request_id, "deny", "not here")
        result = next(e for e in events if isinstance(e, ToolResultEvent))
        assert result.is_error and "not here" in result.output and not (workspace / "denied.txt").exists()

        asked = 0
        for message in ("run: touch allowed.txt && echo made-allowed", "run: touch again.txt && echo remembered"):
            reply_events = []
            for event in s.stream(message):
                reply_events.append(event)
                if isinstance(event, PermissionRequestEvent):
                    asked += 1
                    s.approve(event.request_id, "allow_session")
            assert not next(e for e in reply_events if isinstance(e, ToolResultEvent)).is_error
        assert asked == 1  # allow_session: Bash is not asked about again in this session
        assert (workspace / "allowed.txt").exists()
        with pytest.raises(NotFound):
            s.approve("perm_nope", "allow")
    finally:
        s.delete()


def test_a_failing_turn_raises_nothing(ac: AgCluster) -> None:
    s = ac.launch(config=LIMITED_CONFIG)
    try:
        reply = s.chat("loop")
        assert reply.is_error and isinstance(reply.events[-1], DoneEvent)
        assert reply.result is not None and reply.result.subtype == "error_max_turns"
        assert "still-alive" in s.chat("run: echo still-alive").text
    finally:
        s.delete()


def test_error_classes(control_plane: ControlPlane, session: Session, key: str) -> None:
    with AgCluster(control_plane.url, api_key="") as anonymous, pytest.raises(Unauthorized) as missing:
        anonymous.session(session.id)
    assert missing.value.status == 401 and missing.value.code == "unauthorized" and missing.value.message
    with AgCluster(control_plane.url, api_key=new_key()) as stranger, pytest.raises(Forbidden) as wrong:
        stranger.session(session.id)
    assert wrong.value.status == 403 and wrong.value.code == "forbidden"
    with AgCluster(control_plane.url, api_key=key) as ac:
        with pytest.raises(NotFound) as nope:
            ac.session("no-such-session")
        assert nope.value.code == "not_found" and nope.value.status == 404
        with pytest.raises(NotFound):
            ac.launch("no-such-config")
        with pytest.raises(ValueError):
            ac.launch()
        with pytest.raises(BadRequest) as bad:
            ac.launch(config={"id": "x", "allowed_tools": ["Nope"]})
        assert "allowed_tools" in bad.value.details
