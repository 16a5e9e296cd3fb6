"""Reply → Messages API events, usage arithmetic, and pacing with a fake clock (no sleeps)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stubs.anthropic.control import Latency, Matcher, StreamFault
from stubs.anthropic.delivery import deliver
from stubs.anthropic.reply import Reply, Text, Thinking, ToolUse, reply_from_api
from stubs.anthropic.stream import message_json, split_text, sse_events
from stubs.anthropic.usage import Usage, input_tokens_for, output_tokens_for

REPLY = Reply(
    (
        Thinking("let me think about this"),
        Text("one two three four five"),
        ToolUse("Bash", {"command": "echo " + "x" * 100}, "toolu_1"),
    )
)


def rebuild(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Accumulate events the way a client does, to prove they describe the whole reply."""
    message: dict[str, Any] = {}
    partial: dict[int, str] = {}
    for name, data in events:
        if name == "message_start":
            message = dict(data["message"], content=[])
        elif name == "content_block_start":
            message["content"].append(dict(data["content_block"]))
        elif name == "content_block_delta":
            block, delta = message["content"][data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            else:
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
        elif name == "content_block_stop" and data["index"] in partial:
            message["content"][data["index"]]["input"] = json.loads(partial[data["index"]])
        elif name == "message_delta":
            message.update(data["delta"])
            message["usage"] = data["usage"]
    return message


def test_streamed_events_rebuild_the_same_message_as_the_json_response() -> None:
    usage = Usage(100, output_tokens_for(REPLY))
    events = list(sse_events(REPLY, "claude-test", "msg_1", usage))
    names = [n for n, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == names.count("content_block_stop") == 3
    assert rebuild(events) == message_json(REPLY, "claude-test", "msg_1", usage)


def test_tool_input_arrives_in_several_json_deltas_and_thinking_is_signed() -> None:
    events = list(sse_events(REPLY, "m", "msg_1", Usage(1, 1)))
    json_deltas = [d for n, d in events if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"]
    assert len(json_deltas) > 1
    signatures = [d for n, d in events if n == "content_block_delta" and d["delta"]["type"] == "signature_delta"]
    assert signatures and signatures[0]["delta"]["signature"]


def test_usage_is_consistent_between_message_start_and_message_delta() -> None:
    usage = Usage(input_tokens_for(b"x" * 401), output_tokens_for(REPLY))
    events = dict(sse_events(REPLY, "m", "msg_1", usage))
    start_usage = events["message_start"]["message"]["usage"]
    assert start_usage["input_tokens"] == 101 and start_usage["output_tokens"] == 0
    assert events["message_delta"]["usage"]["input_tokens"] == 101
    assert events["message_delta"]["usage"]["output_tokens"] == usage.output_tokens


def test_token_estimates_are_deterministic() -> None:
    assert input_tokens_for(b"") == 1
    assert input_tokens_for(b"abcd") == 1 and input_tokens_for(b"abcde") == 2
    assert output_tokens_for(Reply.text("a" * 40)) == 10


def test_explicit_chunks_are_streamed_exactly() -> None:
    reply = Reply((Text("ab", ("a", "b")),))
    deltas = [d["delta"]["text"] for n, d in sse_events(reply, "m", "msg", Usage(1, 1)) if n == "content_block_delta"]
    assert deltas == ["a", "b"]


def test_split_text_keeps_every_character() -> None:
    text = "  leading and   trailing spaces \n new line "
    assert "".join(split_text(text)) == text


def test_reply_from_api_accepts_wire_shaped_blocks() -> None:
    reply = reply_from_api(
        {
            "content": [
                {"type": "thinking", "thinking": "t"},
                {"type": "tool_use", "name": "Bash", "input": {"command": "ls"}},
            ],
            "stop_reason": "tool_use",
        }
    )
    assert isinstance(reply.blocks[0], Thinking)
    assert isinstance(reply.blocks[1], ToolUse) and reply.blocks[1].id.startswith("toolu_")
    with pytest.raises(ValueError):
        reply_from_api({"content": [{"type": "image"}]})
    with pytest.raises(ValueError):
        reply_from_api({"content": []})


class FakeClock:
    """Time advances only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def run(
    reply: Reply, latency: Latency, fault: StreamFault | None = None, ping_interval: float = 5.0
) -> tuple[list[str], FakeClock, list[str]]:
    fake = FakeClock()
    seen: list[str] = []
    chunks = list(
        deliver(
            sse_events(reply, "m", "msg", Usage(1, 1)),
            latency,
            fault,
            lambda name, _data: seen.append(name),
            ping_interval=ping_interval,
            sleep=fake.sleep,
            clock=fake.clock,
        )
    )
    names = [c.split("\n", 1)[0].removeprefix("event: ") for c in chunks]
    return names, fake, seen


def test_ping_follows_message_start_and_nothing_waits_without_latency() -> None:
    names, fake, seen = run(Reply.text("hi"), Latency())
    assert names[:2] == ["message_start", "ping"]
    assert fake.slept == []
    assert seen == [n for n in names if n != "ping"]


def test_time_to_first_token_waits_once_and_pings_while_waiting() -> None:
    names, fake, _ = run(Reply.text("hi"), Latency(ttft=12.0), ping_interval=5.0)
    assert sum(fake.slept) == pytest.approx(12.0)
    first_block = names.index("content_block_start")
    assert names[:first_block].count("ping") == 3  # after message_start, then at 5 s and 10 s


def test_tokens_per_second_paces_every_delta() -> None:
    reply = Reply((Text("abcdefgh", ("abcd", "efgh")),))  # one token per delta
    _, fake, _ = run(reply, Latency(tokens_per_second=2.0))
    assert fake.slept == [0.5, 0.5]


def test_midstream_fault_cuts_the_stream_with_an_error_event() -> None:
    fault = StreamFault(2, "overloaded_error", "boom", Matcher())
    names, _, seen = run(Reply.text("one two three four five six seven"), Latency(), fault)
    assert names == ["message_start", "ping", "content_block_start", "error"]
    assert seen[-1] == "error" and "message_stop" not in seen
