"""The stub's HTTP surface: Messages API routes through Flask's test client, control routes,
and the in-process / out-of-process runners over real sockets."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask.testing import FlaskClient

from stubs.anthropic import Matcher, Reply, StubAnthropic, StubAnthropicClient, StubControl, Text, ToolUse, create_app

ROOT = Path(__file__).resolve().parents[2]
TOOLS = [{"name": "Bash", "description": "run", "input_schema": {"type": "object"}}]


@pytest.fixture()
def control() -> StubControl:
    return StubControl()


@pytest.fixture()
def client(control: StubControl) -> FlaskClient:
    return create_app(control).test_client()


def request_body(
    text: str = "hello", tools: list[dict[str, Any]] | None = TOOLS, stream: bool = True
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-test",
        "max_tokens": 100,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }
    if tools is not None:
        body["tools"] = tools
    return body


def sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for frame in raw.decode().split("\n\n"):
        if not frame.strip():
            continue
        lines = dict(line.split(": ", 1) for line in frame.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def post(client: FlaskClient, body: dict[str, Any], key: str = "test-key") -> Any:
    return client.post("/v1/messages?beta=true", json=body, headers={"x-api-key": key})


# --- Messages API ---------------------------------------------------------------------------


def test_root_and_api_paths_answer_200(client: FlaskClient) -> None:
    assert client.head("/").status_code == 200
    assert client.get("/").status_code == 200
    assert client.head("/api/hello").status_code == 200
    assert client.post("/api/whatever/deep", json={}).get_json() == {}
    missing = client.get("/v2/nothing")
    assert missing.status_code == 404
    assert missing.get_json()["type"] == "error" and missing.get_json()["error"]["type"] == "not_found_error"


def test_streamed_reply_and_log_agree_on_usage(client: FlaskClient, control: StubControl) -> None:
    response = post(client, request_body("run: echo hi"))
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    events = sse(response.get_data())
    names = [n for n, _ in events]
    assert names[:2] == ["message_start", "ping"] and names[-1] == "message_stop"
    tool_start = next(d for n, d in events if n == "content_block_start")
    assert tool_start["content_block"]["name"] == "Bash"

    delta_usage = next(d for n, d in events if n == "message_delta")["usage"]
    start_usage = events[0][1]["message"]["usage"]
    logged = control.requests(path="/v1/messages")[-1]
    assert logged["usage"] == delta_usage
    assert logged["usage"]["input_tokens"] == start_usage["input_tokens"]
    assert logged["kind"] == "main" and logged["query"] == "beta=true" and logged["completed"]
    assert logged["body"]["messages"][0]["content"] == "run: echo hi"
    assert logged["reply"][0]["name"] == "Bash"


def test_non_streaming_json_reply(client: FlaskClient, control: StubControl) -> None:
    response = post(client, request_body("think: hmm", stream=False))
    message = response.get_json()
    assert [b["type"] for b in message["content"]] == ["thinking", "text"]
    assert message["stop_reason"] == "end_turn"
    assert control.requests()[-1]["usage"] == message["usage"]


def test_count_tokens(client: FlaskClient) -> None:
    response = client.post("/v1/messages/count_tokens?beta=true", json=request_body(stream=False))
    assert response.status_code == 200 and response.get_json()["input_tokens"] > 0


def test_bad_requests_get_anthropic_shaped_400s(client: FlaskClient) -> None:
    broken = client.post("/v1/messages", data=b"{not json", content_type="application/json")
    assert broken.status_code == 400 and broken.get_json()["error"]["type"] == "invalid_request_error"
    no_max = request_body()
    del no_max["max_tokens"]
    assert post(client, no_max).status_code == 400


@pytest.mark.parametrize(
    ("status", "error_type"), [(401, "authentication_error"), (429, "rate_limit_error"), (529, "overloaded_error")]
)
def test_injected_http_errors(client: FlaskClient, control: StubControl, status: int, error_type: str) -> None:
    control.fail_next(status, count=2)
    for _ in range(2):
        response = post(client, request_body())
        assert response.status_code == status
        assert response.get_json() == {
            "type": "error",
            "error": {"type": error_type, "message": f"stub injected {error_type}"},
        }
    assert post(client, request_body()).status_code == 200
    statuses = [r["status"] for r in control.requests()]
    assert statuses == [status, status, 200]


def test_rate_limit_carries_retry_after(client: FlaskClient, control: StubControl) -> None:
    control.fail_next(429)
    assert post(client, request_body()).headers["retry-after"] == "0"
    control.fail_next(429, retry_after=2.5)
    assert post(client, request_body()).headers["retry-after"] == "2.5"


def test_faults_and_scripts_target_the_agent_loop_unless_matched_otherwise(
    client: FlaskClient, control: StubControl
) -> None:
    control.fail_next(529)
    control.enqueue(Reply.text("SCRIPTED-REPLY"))
    side = post(client, request_body(tools=None))
    assert side.status_code == 200 and b"SCRIPTED-REPLY" not in side.get_data()
    assert post(client, request_body()).status_code == 529
    assert b"SCRIPTED-REPLY" in post(client, request_body()).get_data()

    control.fail_next(401, matcher=Matcher("any"))
    assert post(client, request_body(tools=None)).status_code == 401


def test_script_matcher_by_text(client: FlaskClient, control: StubControl) -> None:
    control.enqueue(Reply.text("for beta"), Matcher(text_contains="beta"))
    control.enqueue(Reply.text("for anyone"))
    assert b"for anyone" in post(client, request_body("alpha")).get_data()
    assert b"for beta" in post(client, request_body("beta")).get_data()


def test_midstream_error_event(client: FlaskClient, control: StubControl) -> None:
    response = client.post(
        "/_stub/faults/midstream", json={"after_events": 2, "error_type": "api_error", "message": "cut"}
    )
    assert response.status_code == 200
    events = sse(post(client, request_body("stream 50")).get_data())
    assert [n for n, _ in events] == ["message_start", "ping", "content_block_start", "error"]
    assert events[-1][1] == {"type": "error", "error": {"type": "api_error", "message": "cut"}}
    logged = control.requests()[-1]
    assert logged["error"]["message"] == "cut" and logged["usage"]["output_tokens"] == 0


def test_stream_command_sends_exactly_n_text_deltas(client: FlaskClient) -> None:
    events = sse(post(client, request_body("stream 20000")).get_data())
    assert sum(1 for n, d in events if n == "content_block_delta" and d["delta"]["type"] == "text_delta") == 20000


def test_log_redacts_credentials_but_identifies_them(client: FlaskClient, control: StubControl) -> None:
    post(client, request_body(), key="sk-ant-secret-9876")
    client.post("/v1/messages", json=request_body(), headers={"authorization": "Bearer relay-token-abcd"})
    by_key, by_bearer = control.requests()
    assert "sk-ant-secret" not in json.dumps(by_key) and "relay-token" not in json.dumps(by_bearer)
    assert by_key["credential"] == {
        "header": "x-api-key",
        "last4": "9876",
        "sha256": hashlib.sha256(b"sk-ant-secret-9876").hexdigest(),
    }
    assert by_key["headers"]["X-Api-Key"] == "REDACTED(...9876)"
    assert by_bearer["credential"]["header"] == "authorization" and by_bearer["credential"]["last4"] == "abcd"


def test_expected_api_key_is_enforced(client: FlaskClient) -> None:
    assert client.post("/_stub/auth", json={"api_key": "right-key"}).status_code == 200
    wrong = post(client, request_body(), key="wrong-key")
    assert wrong.status_code == 401 and wrong.get_json()["error"]["type"] == "authentication_error"
    assert post(client, request_body(), key="right-key").status_code == 200


# --- control routes -------------------------------------------------------------------------


def test_script_route_and_reset(client: FlaskClient, control: StubControl) -> None:
    script = {
        "replies": [
            {"content": [{"type": "tool_use", "name": "Bash", "input": {"command": "pwd"}}]},
            {"content": [{"type": "text", "text": "done"}], "stop_reason": "end_turn"},
        ]
    }
    assert client.post("/_stub/script", json=script).get_json() == {"queued": 2}
    assert client.get("/_stub/state").get_json()["scripted_pending"] == 2
    first = sse(post(client, request_body()).get_data())
    assert next(d for n, d in first if n == "message_delta")["delta"]["stop_reason"] == "tool_use"
    assert control.requests()[-1]["scripted"] is True

    client.post("/_stub/latency", json={"ttft": 1.5})
    assert client.post("/_stub/reset").status_code == 200
    state = client.get("/_stub/state").get_json()
    assert state["scripted_pending"] == 0 and state["requests"] == 0 and state["latency"]["ttft"] == 0.0


def test_control_routes_reject_bad_input(client: FlaskClient) -> None:
    assert client.post("/_stub/script", json={"reply": {"content": []}}).status_code == 400
    assert client.post("/_stub/faults", json={"status": "x"}).status_code == 400
    assert client.post("/_stub/faults", json={"status": 200}).status_code == 400
    assert client.post("/_stub/latency", json={"ttft": -1}).status_code == 400
    assert client.post("/_stub/faults/midstream", json={"after_events": -1}).status_code == 400
    assert client.get("/_stub/requests?limit=x").status_code == 400


def test_requests_route_filters(client: FlaskClient) -> None:
    for text in ("a", "b", "c"):
        post(client, request_body(text))
    client.head("/")
    everything = client.get("/_stub/requests").get_json()["requests"]
    assert [r["seq"] for r in everything] == [1, 2, 3, 4]
    newest = client.get("/_stub/requests?path=/v1/messages&limit=1").get_json()["requests"]
    assert [r["seq"] for r in newest] == [3]
    assert [r["seq"] for r in client.get("/_stub/requests?since=2").get_json()["requests"]] == [3, 4]
    client.delete("/_stub/requests")
    assert client.get("/_stub/requests").get_json()["requests"] == []


# --- runners over real sockets --------------------------------------------------------------


@pytest.fixture()
def stub() -> Iterator[StubAnthropic]:
    with StubAnthropic() as running:
        yield running


def test_stream_is_not_buffered(stub: StubAnthropic) -> None:
    """The first event arrives while the server is still waiting out a long time-to-first-token."""
    stub.set_latency(ttft=600)
    with httpx.stream("POST", f"{stub.url}/v1/messages", json=request_body(), timeout=30) as response:
        first = next(response.iter_lines())
    assert first == "event: message_start"


def test_out_of_process_client_drives_the_control_routes(stub: StubAnthropic) -> None:
    remote = StubAnthropicClient(stub.url)
    try:
        remote.enqueue(Reply((ToolUse("Bash", {"command": "ls"}), Text("and text"))))
        remote.fail_next(429, retry_after=0)
        remote.fail_midstream(after_events=1, matcher=Matcher(text_contains="never"))
        remote.set_latency(ttft=0.0, tokens_per_second=1e9)
        state = remote.state()
        assert (state["scripted_pending"], state["http_faults_pending"], state["stream_faults_pending"]) == (1, 1, 1)

        assert httpx.post(f"{stub.url}/v1/messages", json=request_body(stream=False)).status_code == 429
        message = httpx.post(f"{stub.url}/v1/messages", json=request_body(stream=False)).json()
        assert [b["type"] for b in message["content"]] == ["tool_use", "text"]
        assert [r["status"] for r in remote.requests(path="/v1/messages")] == [429, 200]

        remote.require_api_key("k")
        assert httpx.post(f"{stub.url}/v1/messages", json=request_body(stream=False)).status_code == 401
        remote.reset()
        assert remote.requests() == []
    finally:
        remote.close()


def test_module_entry_point_serves_on_the_printed_url() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "stubs.anthropic", "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        assert httpx.head(url + "/").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_log_is_bounded_but_sequence_numbers_keep_counting() -> None:
    control = StubControl(max_log=2)
    client = create_app(control).test_client()
    for _ in range(3):
        client.head("/")
    assert [r["seq"] for r in control.requests()] == [2, 3]
