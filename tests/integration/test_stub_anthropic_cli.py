"""The real bundled Claude Code CLI, driven through claude_agent_sdk, against the stub.

Nothing is mocked: the CLI runs real tools in a temporary workspace, so these tests prove
both that the stub speaks the Messages API well enough for the pinned CLI and that the
demo grammar does what the README's "The demo model" promises.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ResultError,
    ResultMessage,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
    query,
)

from stubs.anthropic import Reply, StubAnthropic, Text, ToolUse

API_KEY = "test-key"


@pytest.fixture()
def stub() -> Iterator[StubAnthropic]:
    with StubAnthropic() as running:
        yield running


@pytest.fixture()
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


def options(
    stub: StubAnthropic, workspace: Path, extra_env: dict[str, str] | None = None, **kwargs: Any
) -> ClaudeAgentOptions:
    home = workspace.parent / "home"
    home.mkdir(exist_ok=True)
    env = {
        "ANTHROPIC_BASE_URL": stub.url,
        "ANTHROPIC_API_KEY": API_KEY,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "HOME": str(home),
    }
    if os.geteuid() == 0:
        # The pinned CLI refuses --dangerously-skip-permissions (bypassPermissions) as root
        # unless it is told it runs in a sandbox.
        env["IS_SANDBOX"] = "1"
    env.update(extra_env or {})
    kwargs.setdefault("tools", ["Bash", "Read", "Write"])
    return ClaudeAgentOptions(env=env, cwd=str(workspace), permission_mode="bypassPermissions", **kwargs)


def run(prompt: str, opts: ClaudeAgentOptions, into: list[Any] | None = None) -> list[Any]:
    messages: list[Any] = [] if into is None else into

    async def collect() -> None:
        async for message in query(prompt=prompt, options=opts):
            messages.append(message)

    anyio.run(collect)
    return messages


def result_of(messages: list[Any]) -> ResultMessage:
    results = [m for m in messages if isinstance(m, ResultMessage)]
    assert results, messages
    return results[-1]


def blocks(messages: list[Any], kind: type) -> list[Any]:
    return [
        b
        for m in messages
        if isinstance(m, (AssistantMessage, UserMessage)) and isinstance(m.content, list)
        for b in m.content
        if isinstance(b, kind)
    ]


def final_text(messages: list[Any]) -> str:
    last: TextBlock = blocks(messages, TextBlock)[-1]
    return last.text


def main_requests(stub: StubAnthropic) -> list[dict[str, Any]]:
    return stub.requests(kind="main", path="/v1/messages")


def test_run_creates_the_file_and_the_answer_contains_its_output(stub: StubAnthropic, workspace: Path) -> None:
    messages = run("run: echo hi > proof.txt && cat proof.txt", options(stub, workspace))

    assert (workspace / "proof.txt").read_text() == "hi\n"
    calls = blocks(messages, ToolUseBlock)
    assert [(c.name, c.input["command"]) for c in calls] == [("Bash", "echo hi > proof.txt && cat proof.txt")]
    assert "hi" in final_text(messages)
    result = result_of(messages)
    assert result.subtype == "success" and result.num_turns == 2

    # What the CLI metered from the stream equals what the stub logged.
    logged = main_requests(stub)
    assert result.usage is not None
    assert result.usage["input_tokens"] == sum(r["usage"]["input_tokens"] for r in logged)
    assert result.usage["output_tokens"] == sum(r["usage"]["output_tokens"] for r in logged)


def test_request_log_shows_which_credential_arrived(stub: StubAnthropic, workspace: Path) -> None:
    run("hello", options(stub, workspace))
    logged = stub.requests(path="/v1/messages")
    assert logged
    for entry in logged:
        assert entry["credential"] == {
            "header": "x-api-key",
            "last4": API_KEY[-4:],
            "sha256": hashlib.sha256(API_KEY.encode()).hexdigest(),
        }
        assert API_KEY not in str(entry["headers"])
    assert "AgCluster demo model" in final_text(run("what can you do?", options(stub, workspace)))


def test_write_then_read_in_one_session(stub: StubAnthropic, workspace: Path) -> None:
    async def conversation() -> list[list[Any]]:
        turns: list[list[Any]] = []
        async with ClaudeSDKClient(options(stub, workspace)) as client:
            for prompt in ("write notes/a.txt: hello from the stub", "read notes/a.txt"):
                await client.query(prompt)
                turns.append([m async for m in client.receive_response()])
        return turns

    write_turn, read_turn = anyio.run(conversation)
    assert (workspace / "notes" / "a.txt").read_text() == "hello from the stub"
    write_call = blocks(write_turn, ToolUseBlock)[0]
    assert write_call.name == "Write" and write_call.input["file_path"] == str(workspace / "notes" / "a.txt")
    read_result = blocks(read_turn, ToolResultBlock)[0]
    assert "hello from the stub" in str(read_result.content)
    assert "hello from the stub" in final_text(read_turn)


def test_think_yields_a_thinking_block(stub: StubAnthropic, workspace: Path) -> None:
    messages = run("think: is the stub convincing", options(stub, workspace))
    thinking = blocks(messages, ThinkingBlock)
    assert [t.thinking for t in thinking] == ["is the stub convincing"]
    assert thinking[0].signature
    assert "is the stub convincing" in final_text(messages)


def todo_calls(messages: list[Any]) -> tuple[list[str], set[str]]:
    """Subjects created (TaskCreate, or TodoWrite's todos) and the messages that held them."""
    subjects: list[str] = []
    message_ids: set[str] = set()
    for message in messages:
        if not isinstance(message, AssistantMessage):
            continue
        for block in message.content:
            if isinstance(block, ToolUseBlock) and block.name == "TaskCreate":
                subjects.append(block.input["subject"])
                message_ids.add(str(message.message_id))
            elif isinstance(block, ToolUseBlock) and block.name == "TodoWrite":
                subjects.extend(t["content"] for t in block.input["todos"])
                message_ids.add(str(message.message_id))
    return subjects, message_ids


def test_todo_creates_tasks_in_one_parallel_message(stub: StubAnthropic, workspace: Path) -> None:
    opts = options(
        stub,
        workspace,
        extra_env={"CLAUDE_CODE_ENABLE_TODO_TOOLS": "1"},
        tools=["Bash", "Read", "Write", "TodoWrite", "TaskCreate"],
    )
    messages = run("todo: plan it; build it; ship it", opts)
    subjects, message_ids = todo_calls(messages)
    assert subjects == ["plan it", "build it", "ship it"]
    assert len(message_ids) == 1
    assert result_of(messages).subtype == "success"
    assert all(not r.is_error for r in blocks(messages, ToolResultBlock))


def test_deferred_task_tools_are_loaded_through_toolsearch(stub: StubAnthropic, workspace: Path) -> None:
    """With the CLI's default tool set, TaskCreate is deferred: the stub must ToolSearch first."""
    opts = options(stub, workspace, extra_env={"CLAUDE_CODE_ENABLE_TODO_TOOLS": "1"}, tools=None)
    messages = run("todo: one; two", opts)
    names = [c.name for c in blocks(messages, ToolUseBlock)]
    assert names == ["ToolSearch", "TaskCreate", "TaskCreate"]
    assert todo_calls(messages)[0] == ["one", "two"]


def test_a_tool_left_out_of_the_config_is_unavailable(stub: StubAnthropic, workspace: Path) -> None:
    messages = run("write forbidden.txt: nope", options(stub, workspace, tools=["Bash"]))
    assert "Write tool is unavailable" in final_text(messages)
    assert not (workspace / "forbidden.txt").exists()
    offered = {t["name"] for t in main_requests(stub)[0]["body"]["tools"]}
    assert "Bash" in offered and "Write" not in offered


def test_scripted_replies_are_played_exactly(stub: StubAnthropic, workspace: Path) -> None:
    stub.enqueue(
        Reply((Text("Let me do that."), ToolUse("Bash", {"command": "echo scripted > s.txt", "description": "script"})))
    )
    stub.enqueue(Reply.text("all done, as scripted"))
    messages = run("anything at all", options(stub, workspace))
    assert (workspace / "s.txt").read_text() == "scripted\n"
    assert final_text(messages) == "all done, as scripted"
    assert [r["scripted"] for r in main_requests(stub)] == [True, True]


def test_rate_limit_then_success(stub: StubAnthropic, workspace: Path) -> None:
    stub.fail_next(429)
    messages = run("run: echo after-429", options(stub, workspace))
    assert result_of(messages).subtype == "success"
    assert "after-429" in final_text(messages)
    assert [r["status"] for r in main_requests(stub)] == [429, 200, 200]


def test_midstream_error_is_retried(stub: StubAnthropic, workspace: Path) -> None:
    stub.fail_midstream(after_events=3)
    messages = run("think: second time lucky", options(stub, workspace))
    assert result_of(messages).subtype == "success"
    first, second = main_requests(stub)
    assert first["error"]["type"] == "overloaded_error" and second["error"] is None
    assert "second time lucky" in final_text(messages)


def test_loop_runs_until_max_turns(stub: StubAnthropic, workspace: Path) -> None:
    messages: list[Any] = []
    with pytest.raises(ResultError):
        run("loop", options(stub, workspace, max_turns=2), into=messages)
    assert result_of(messages).subtype == "error_max_turns"
    assert all(c.input["command"] == "echo loop" for c in blocks(messages, ToolUseBlock))
    assert len(main_requests(stub)) == 2
