"""Edge cases of the pieces under the real-path tests: the schema's tolerance, stream
bookkeeping, error mapping, and the SSE decoder on awkward chunk boundaries."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from agcluster_client import BadRequest, ConnectionFailed, NotFound, RateLimited, ServerError
from agcluster_client._base import Cursor, Settings
from agcluster_client._errors import error_from_response
from agcluster_client._wire import events as vendored
from agcluster_client._wire import sse
from agcluster_client.events import EVENT_CLASSES, Event, ResultEvent, ToolUseEvent, parse_event
from wire import events as server_events


def test_the_client_reads_the_servers_schema() -> None:
    # The vendored package is the server's file, not a copy that could drift.
    assert vendored.__file__ and server_events.__file__
    assert Path(vendored.__file__).read_text() == Path(server_events.__file__).read_text()
    assert set(EVENT_CLASSES) == server_events.EVENT_TYPES


def test_make_event_refuses_what_the_schema_does_not_declare() -> None:
    assert server_events.make_event("tool_use", "s", id="t1", name="Bash", input={})["name"] == "Bash"
    with pytest.raises(ValueError, match="no field"):
        server_events.make_event("tool_use", "s", command="ls")
    with pytest.raises(ValueError, match="unknown event type"):
        server_events.make_event("nope", "s")


def test_parse_event_is_tolerant() -> None:
    call = parse_event({"type": "tool_use", "seq": 3, "name": "Bash", "input": {"command": "ls"}, "new_field": 1})
    assert isinstance(call, ToolUseEvent) and call.seq == 3 and call.input == {"command": "ls"} and call.id == ""
    assert call.data["new_field"] == 1
    future = parse_event({"type": "from_the_future", "seq": 9, "x": 1})
    assert type(future) is Event and future.type == "from_the_future" and future.data["x"] == 1
    garbage = parse_event({"seq": 1})
    assert type(garbage) is Event and garbage.type == ""
    result = parse_event({"type": "result", "total_cost_usd": 0.5, "is_error": True})
    assert isinstance(result, ResultEvent) and result.total_cost_usd == 0.5 and result.usage == {}


def test_cursor_drops_replays_and_stops_at_done() -> None:
    cursor = Cursor("hi", None)
    path, first = cursor.request("s/1")
    assert path == "/api/agents/s%2F1/chat" and first["json"] == {"message": "hi"}
    assert [e.seq for e in cursor.accept([{"type": "user", "seq": 5}, {"type": "text", "seq": 6}])] == [5, 6]
    _, again = cursor.request("s")
    assert again["headers"]["Last-Event-ID"] == "6" and "json" not in again  # never resend the message
    replayed = cursor.accept([{"type": "text", "seq": 5}, {"type": "text", "seq": 6}, {"type": "done", "seq": 7},
                              {"type": "user", "seq": 8}])
    assert [e.seq for e in replayed] == [7] and cursor.done


def test_cursor_retry_policy() -> None:
    fresh = Cursor("hi", None)
    assert not fresh.should_retry(ConnectionFailed("x"))  # nothing seen: the turn's start is unknown
    following = Cursor(None, 10)
    assert not following.should_retry(NotFound("gone", status=404))
    assert all(following.should_retry(ServerError("down", status=503)) for _ in range(6))
    assert not following.should_retry(ConnectionFailed("x"))  # gives up eventually
    with pytest.raises(ValueError):
        Cursor(None, None)


def response(status: int, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=body, headers=headers or {})


def test_error_mapping() -> None:
    body = b'{"error":{"code":"validation_error","message":"m","details":{"f":["x"]}}}'
    bad = error_from_response(response(400, body), body)
    assert isinstance(bad, BadRequest) and bad.code == "validation_error" and bad.details == {"f": ["x"]}
    body = b'{"error":{"code":"rate_limited","message":"slow down","details":{}}}'
    limited = error_from_response(response(429, body, {"Retry-After": "7"}), body)
    assert isinstance(limited, RateLimited) and limited.retry_after == 7.0
    proxy = error_from_response(response(502, b"<html>Bad Gateway</html>"), b"<html>Bad Gateway</html>")
    assert isinstance(proxy, ServerError) and proxy.code == "http_502" and "Bad Gateway" in proxy.message


def test_settings_choose_the_header_for_the_auth_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AGCLUSTER_URL", "ANTHROPIC_API_KEY", "AGCLUSTER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    plain = Settings.resolve(None, "sk-ant-key", None)
    assert plain.base_url == "http://127.0.0.1:8000" and plain.headers()["Authorization"] == "Bearer sk-ant-key"
    team = Settings.resolve("http://h:1/", "sk-ant-key", "agc_tok")
    assert team.base_url == "http://h:1" and team.headers()["Authorization"] == "Bearer agc_tok"
    assert team.headers()["X-Anthropic-Api-Key"] == "sk-ant-key"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-from-env")
    assert Settings.resolve(None, None, None).api_key == "sk-from-env"
    assert "Authorization" not in Settings.resolve(None, "", None).headers()


def test_sse_decoder_on_any_chunk_boundary() -> None:
    frames = b"".join(sse.frame({"type": "text", "seq": i, "text": "é\n" * i}) for i in range(1, 4))
    frames = sse.KEEPALIVE + frames
    for size in (1, 2, 7, len(frames)):
        decoder = sse.Decoder()
        got = [e for i in range(0, len(frames), size) for e in decoder.feed(frames[i:i + size])]
        assert [e["seq"] for e in got] == [1, 2, 3] and got[2]["text"] == "é\n" * 3
