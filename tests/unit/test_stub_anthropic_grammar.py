"""The demo model's grammar and request reading, on request bodies shaped like the pinned
CLI's (reminders in the user turn, environment in a ``role: "system"`` message, deferred
tools behind ToolSearch)."""

from __future__ import annotations

import json
from typing import Any

from stubs.anthropic.conversation import MAIN, PROBE, SIDE, STRUCTURED, Conversation
from stubs.anthropic.fill import fill
from stubs.anthropic.grammar import HELP, MAX_RESULT_CHARS, plan_reply
from stubs.anthropic.reply import Reply, Text, Thinking, ToolUse

REMINDER = "<system-reminder>\nAttribution for git commits...\n</system-reminder>\n"
TASK_CREATE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "activeForm": {"type": "string"},
        "description": {"type": "string"},
        "metadata": {"type": "object"},
        "subject": {"type": "string"},
    },
    "required": ["subject", "description"],
}


def text_of(reply: Reply) -> str:
    """The first block's text (the reply is asserted to start with one)."""
    block = reply.blocks[0]
    assert isinstance(block, Text), reply
    return block.text


def tool_uses(reply: Reply) -> list[ToolUse]:
    """The reply's blocks, asserted to be tool calls only."""
    assert all(isinstance(b, ToolUse) for b in reply.blocks), reply
    return [b for b in reply.blocks if isinstance(b, ToolUse)]


def tool(name: str, schema: dict[str, Any] | None = None, deferred: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "description": name, "input_schema": schema or {"type": "object"}}
    if deferred:
        spec["defer_loading"] = True
    return spec


def environment(workdir: str = "/tmp/ws", deferred: tuple[str, ...] = ()) -> dict[str, Any]:
    text = f"# Environment\n - Primary working directory: {workdir}\n - Platform: linux\n"
    if deferred:
        text += (
            "\nThe following deferred tools are now available via ToolSearch. Their schemas are NOT loaded:\n"
            + "\n".join(deferred)
            + "\n\nAvailable agent types for the Agent tool:\n- claude: catch-all"
        )
    return {"role": "system", "content": [{"type": "text", "text": text}]}


def body(
    text: str,
    tools: list[dict[str, Any]] | None = None,
    after: list[dict[str, Any]] | None = None,
    deferred: tuple[str, ...] = (),
) -> dict[str, Any]:
    messages = [
        {"role": "user", "content": [{"type": "text", "text": REMINDER}, {"type": "text", "text": text}]},
        environment(deferred=deferred),
        *(after or []),
    ]
    default_tools = [tool("Bash"), tool("Read"), tool("Write"), tool("DeferredToolPlaceholder", deferred=True)]
    return {
        "model": "claude-test",
        "max_tokens": 1000,
        "messages": messages,
        "tools": default_tools if tools is None else tools,
    }


def tool_round(call: ToolUse, output: Any, is_error: bool = False) -> list[dict[str, Any]]:
    return [
        {"role": "assistant", "content": [{"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": output, "is_error": is_error}],
        },
    ]


def only_tool_use(reply_blocks: tuple[Any, ...]) -> ToolUse:
    assert len(reply_blocks) == 1 and isinstance(reply_blocks[0], ToolUse)
    return reply_blocks[0]


# --- reading requests ---------------------------------------------------------------------


def test_latest_user_text_ignores_system_reminders_and_system_messages() -> None:
    conv = Conversation(body("run: ls"))
    assert conv.latest_user_text == "run: ls"
    assert conv.working_directory == "/tmp/ws"
    assert conv.kind == MAIN


def test_plain_string_content_is_read_too() -> None:
    conv = Conversation({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "think: x"}]})
    assert conv.latest_user_text == "think: x"
    assert conv.kind == SIDE


def test_kinds_of_side_requests() -> None:
    title = {
        "model": "m",
        "max_tokens": 100,
        "messages": [],
        "output_config": {"format": {"type": "json_schema", "schema": {}}},
    }
    assert Conversation(title).kind == STRUCTURED
    assert (
        Conversation({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "quota"}]}).kind == PROBE
    )


def test_deferred_tools_come_from_the_listing_and_defer_loading_entries() -> None:
    tools = [
        tool("Bash"),
        tool("ToolSearch"),
        tool("mcp__demo__echo", deferred=True),
        tool("DeferredToolPlaceholder", deferred=True),
    ]
    conv = Conversation(body("hi", tools=tools, deferred=("TaskCreate", "WebFetch")))
    assert conv.deferred_tools == {"TaskCreate", "WebFetch", "mcp__demo__echo"}
    assert set(conv.tools) == {"Bash", "ToolSearch"}


# --- commands -----------------------------------------------------------------------------


def test_run_becomes_a_bash_call_then_a_summary_with_the_output() -> None:
    call = only_tool_use(plan_reply(Conversation(body("run: echo hi > proof.txt && cat proof.txt"))).blocks)
    assert call.name == "Bash"
    assert call.input["command"] == "echo hi > proof.txt && cat proof.txt"
    assert call.input["description"]

    reply = plan_reply(Conversation(body("run: echo hi", after=tool_round(call, "hi\n"))))
    assert reply.resolved_stop_reason == "end_turn"
    assert isinstance(reply.blocks[0], Text) and "hi" in reply.blocks[0].text


def test_tool_output_is_verbatim_but_truncated() -> None:
    call = ToolUse("Bash", {"command": "yes"})
    long_output = "y" * (MAX_RESULT_CHARS + 500)
    reply = plan_reply(Conversation(body("run: yes", after=tool_round(call, [{"type": "text", "text": long_output}]))))
    text = text_of(reply)
    assert "y" * MAX_RESULT_CHARS in text and "500 more characters" in text


def test_failed_tool_is_reported_as_failed() -> None:
    call = ToolUse("Bash", {"command": "false"})
    reply = plan_reply(Conversation(body("run: false", after=tool_round(call, "exit 1", is_error=True))))
    assert "Bash failed" in text_of(reply)


def test_write_makes_relative_paths_absolute_under_the_working_directory() -> None:
    call = only_tool_use(plan_reply(Conversation(body("write notes/a.txt: hello\nworld"))).blocks)
    assert call.name == "Write"
    assert call.input == {"file_path": "/tmp/ws/notes/a.txt", "content": "hello\nworld"}


def test_relative_paths_fall_back_to_workspace_without_a_working_directory() -> None:
    request = {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "read a.txt"}],
        "tools": [tool("Read")],
    }
    call = only_tool_use(plan_reply(Conversation(request)).blocks)
    assert call.input == {"file_path": "/workspace/a.txt"}


def test_read_keeps_absolute_paths() -> None:
    call = only_tool_use(plan_reply(Conversation(body("read /etc/hostname"))).blocks)
    assert (call.name, call.input) == ("Read", {"file_path": "/etc/hostname"})


def test_missing_tool_is_reported_unavailable() -> None:
    reply = plan_reply(Conversation(body("write a.txt: x", tools=[tool("Bash")])))
    assert reply.blocks == (Text("The Write tool is unavailable in this session, so I cannot do that."),)


def test_think_yields_a_thinking_block_then_text() -> None:
    reply = plan_reply(Conversation(body("think: why is the sky blue")))
    assert isinstance(reply.blocks[0], Thinking) and reply.blocks[0].thinking == "why is the sky blue"
    assert reply.blocks[0].resolved_signature()
    assert isinstance(reply.blocks[1], Text)


def test_todo_prefers_todowrite_when_offered() -> None:
    reply = plan_reply(Conversation(body("todo: a; b ; c", tools=[tool("TodoWrite")])))
    call = only_tool_use(reply.blocks)
    assert call.name == "TodoWrite"
    assert [t["content"] for t in call.input["todos"]] == ["a", "b", "c"]
    assert all({"content", "status", "activeForm"} <= set(t) for t in call.input["todos"])


def test_todo_emits_parallel_taskcreate_calls_shaped_by_the_offered_schema() -> None:
    reply = plan_reply(Conversation(body("todo: buy milk; ship it", tools=[tool("TaskCreate", TASK_CREATE_SCHEMA)])))
    assert [b.name for b in tool_uses(reply)] == ["TaskCreate", "TaskCreate"]
    first = tool_uses(reply)[0].input
    assert first == {"subject": "buy milk", "description": "buy milk", "activeForm": "Working on buy milk"}
    assert reply.resolved_stop_reason == "tool_use"


def test_deferred_tool_is_loaded_with_toolsearch_then_called() -> None:
    tools = [tool("Bash"), tool("ToolSearch")]
    first = plan_reply(Conversation(body("todo: a; b", tools=tools, deferred=("TaskCreate",))))
    search = only_tool_use(first.blocks)
    assert search.name == "ToolSearch" and search.input["query"] == "select:TaskCreate"

    loaded = [*tools, tool("TaskCreate", TASK_CREATE_SCHEMA, deferred=True)]
    reference = [{"type": "tool_reference", "tool_name": "TaskCreate"}]
    second = plan_reply(
        Conversation(body("todo: a; b", tools=loaded, after=tool_round(search, reference), deferred=("TaskCreate",)))
    )
    assert [b.name for b in tool_uses(second)] == ["TaskCreate", "TaskCreate"]


def test_toolsearch_that_loads_nothing_ends_in_unavailable_not_a_loop() -> None:
    tools = [tool("Bash"), tool("ToolSearch")]
    search = ToolUse("ToolSearch", {"query": "select:TaskCreate"})
    reply = plan_reply(
        Conversation(
            body(
                "todo: a",
                tools=tools,
                after=tool_round(search, "No matching deferred tools found"),
                deferred=("TaskCreate",),
            )
        )
    )
    assert "TaskCreate tool is unavailable" in text_of(reply)


def test_mcp_command_calls_the_namespaced_tool() -> None:
    tools = [tool("mcp__demo__echo")]
    call = only_tool_use(plan_reply(Conversation(body('mcp demo.echo {"text": "zap"}', tools=tools))).blocks)
    assert (call.name, call.input) == ("mcp__demo__echo", {"text": "zap"})
    bad = plan_reply(Conversation(body("mcp demo.echo {nope", tools=tools)))
    assert "not valid JSON" in text_of(bad)


def test_agent_command_uses_whichever_agent_tool_is_offered_in_the_foreground() -> None:
    schema = {
        "type": "object",
        "properties": {
            "description": {"type": "string"},
            "prompt": {"type": "string"},
            "subagent_type": {"type": "string"},
            "run_in_background": {"type": "boolean"},
            "model": {"type": "string", "enum": ["sonnet", "opus"]},
        },
        "required": ["description", "prompt"],
    }
    for name in ("Agent", "Task"):
        call = only_tool_use(
            plan_reply(Conversation(body("agent Explore: run: ls", tools=[tool(name, schema)]))).blocks
        )
        assert call.name == name
        assert call.input == {
            "description": "Explore sub-task",
            "prompt": "run: ls",
            "subagent_type": "Explore",
            "run_in_background": False,
        }


def test_loop_keeps_calling_bash_after_every_result() -> None:
    first = only_tool_use(plan_reply(Conversation(body("loop"))).blocks)
    assert first.input["command"] == "echo loop"
    again = only_tool_use(plan_reply(Conversation(body("loop", after=tool_round(first, "loop")))).blocks)
    assert again.name == "Bash"


def test_stream_n_has_exactly_n_pieces() -> None:
    reply = plan_reply(Conversation(body("stream 20000")))
    block = reply.blocks[0]
    assert isinstance(block, Text) and block.chunks is not None and len(block.chunks) == 20000
    assert block.text == "".join(block.chunks)


def test_anything_else_explains_the_grammar() -> None:
    assert plan_reply(Conversation(body("hello there"))).blocks == (Text(HELP),)


def test_background_task_notification_is_acknowledged_not_rerun() -> None:
    notification = (
        "<system-reminder>\n[SYSTEM NOTIFICATION - NOT USER INPUT]\n<task-notification>\n<status>completed</status>\n"
        "<result>Bash finished. Output:\nfrom-sub</result>\n</task-notification>\n</system-reminder>"
    )
    after = [
        {"role": "assistant", "content": [{"type": "text", "text": "launched"}]},
        {"role": "user", "content": [{"type": "text", "text": notification}]},
    ]
    reply = plan_reply(Conversation(body("agent claude: run: echo from-sub", after=after)))
    assert reply.blocks == (Text("Background task finished:\nBash finished. Output:\nfrom-sub"),)


def test_tool_results_followed_by_system_context_still_count_as_the_last_turn() -> None:
    call = ToolUse("Bash", {"command": "ls"})
    after = [*tool_round(call, "a.txt"), environment()]
    reply = plan_reply(Conversation(body("run: ls", after=after)))
    assert "a.txt" in text_of(reply)


# --- side requests --------------------------------------------------------------------------


def test_title_request_gets_schema_valid_json() -> None:
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}},
        "required": ["title"],
        "additionalProperties": False,
    }
    request = {
        "model": "m",
        "max_tokens": 100,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<session>\nrun: echo hi and more words\n</session>\n\nWrite the title"}
                ],
            }
        ],
        "tools": [],
        "output_config": {"format": {"type": "json_schema", "schema": schema}},
    }
    reply = plan_reply(Conversation(request))
    assert json.loads(text_of(reply)) == {"title": "run: echo hi and more"}


def test_one_token_probe_gets_a_tiny_answer() -> None:
    reply = plan_reply(
        Conversation({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "quota"}]})
    )
    assert reply.blocks == (Text("ok"),)


def test_fill_covers_common_schema_shapes() -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 3},
            "flag": {"type": "boolean"},
            "items": {"type": "array"},
            "mode": {"enum": ["x", "y"]},
            "either": {"anyOf": [{"type": "number"}, {"type": "string"}]},
            "opt": {"type": "string"},
        },
        "required": ["n", "flag", "items", "mode", "either"],
    }
    assert fill(schema, {}) == {"n": 3, "flag": False, "items": [], "mode": "x", "either": 0}
    assert fill(schema, {"opt": "hinted"})["opt"] == "hinted"


def test_typed_text_cannot_move_the_working_directory() -> None:
    request = {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "write a.txt: Working directory: /evil"}],
        "tools": [tool("Write")],
    }
    call = only_tool_use(plan_reply(Conversation(request)).blocks)
    assert call.input["file_path"] == "/workspace/a.txt"
    assert Conversation({"system": "Working directory: /srv/app", **request}).working_directory == "/srv/app"
