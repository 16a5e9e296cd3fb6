"""Time to first event: the same chat through the control plane and straight to the machine.

Both paths drive the same machine and CLI (the machine's model calls go through the relay
either way); rounds alternate which path goes first so drift cancels. The stand-in model
waits a fixed time-to-first-token, so its share is known. A third layer compares one model
request sent through the relay with the same request sent straight to the model.
"""

from __future__ import annotations

import json
import time
from typing import Any

import requests

from bench import stack
from bench.common import MODEL_TTFT, Context, launch_many, result, target
from bench.profiler import Recorder, analyse
from bench.sseclient import TurnTrace, post_turn
from bench.stack import ROOT
from bench.stats import Table, is_na, ms, na, percentile, ratio, summarize, verdict
from control import unixhttp

MESSAGE = "stream 5"


def model_request(http: requests.Session, url: str, token: str) -> tuple[float | None, float | None]:
    """(first byte, first content_block_delta) seconds for one streamed Messages API call."""
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
            "messages": [{"role": "user", "content": "stream 3"}]}
    headers = {"x-api-key": token, "anthropic-version": "2023-06-01", "content-type": "application/json"}
    started = time.perf_counter()
    first_byte = first_delta = None
    with http.post(url, data=json.dumps(body), headers=headers, stream=True, timeout=(10, 60)) as resp:
        resp.raise_for_status()
        for chunk in resp.iter_content(chunk_size=None):
            now = time.perf_counter()
            if first_byte is None and chunk:
                first_byte = now - started
            if first_delta is None and b"content_block_delta" in chunk:
                first_delta = now - started
    return first_byte, first_delta


def _ms_list(traces: list[TurnTrace], attr: str) -> list[float]:
    elapsed = (t.since_sent(getattr(t, attr)) for t in traces)
    return [ms(seconds) for seconds in elapsed if seconds is not None]


def _tails(traces: list[TurnTrace]) -> list[float]:
    """Last content event → ``done`` per turn (ms): what a turn's end waits for."""
    return [ms(t.done - t.last_content) for t in traces
            if t.ok and t.done is not None and t.last_content is not None]


def json_chat(http: requests.Session, url: str, headers: dict[str, str]) -> float | None:
    """Seconds from sending a chat without ``Accept: text/event-stream`` to its one JSON answer."""
    started = time.perf_counter()
    resp = http.post(url, json={"message": MESSAGE}, headers=headers, timeout=120)
    return time.perf_counter() - started if resp.status_code == 200 else None


def docker_tail(ctx: Context) -> dict[str, Any]:
    """The turn tail on the Docker provider (via the platform and straight to the container)."""
    missing = stack.docker_provider_missing()
    if missing:
        return na(missing)
    cp = ctx.control_plane("ttfe-docker", CONTAINER_PROVIDER="docker")
    try:
        session = launch_many(cp, 1)[0]
        machine_url, machine_token = cp.direct_machine(session.session_id)
        ctx.model.set_latency(MODEL_TTFT)
        paths = [(cp.chat_url(session.session_id), {"Authorization": f"Bearer {session.key}"}),
                 (f"{machine_url}/chat", {"Authorization": f"Bearer {machine_token}"})]
        via: list[TurnTrace] = []
        direct: list[TurnTrace] = []
        with unixhttp.Session() as http:
            for url, headers in paths:
                post_turn(http, url, headers, MESSAGE)  # warm-up
            for i in range(ctx.sizes.ttfe_rounds):
                pairs = [(via, *paths[0]), (direct, *paths[1])]
                for bucket, url, headers in (pairs if i % 2 == 0 else pairs[::-1]):
                    bucket.append(post_turn(http, url, headers, MESSAGE))
        cp.delete_session(session.session_id, session.key)
        return {"platform": summarize(_tails(via)), "direct": summarize(_tails(direct)),
                "failed_turns": sum(1 for t in via + direct if not t.ok)}
    finally:
        ctx.model.set_latency(0.0)
        cp.stop()


def run(ctx: Context) -> dict[str, Any]:
    cp = ctx.control_plane("ttfe", CONTAINER_PROVIDER="local")
    try:
        outcome = _run(ctx, cp)
    finally:
        cp.stop()
    if "docker" in ctx.providers:
        try:
            docker = docker_tail(ctx)
        except Exception as exc:  # noqa: BLE001 - one provider failing must not hide the rest
            docker = na(f"{type(exc).__name__}: {str(exc)[:160]}")
        outcome["data"]["turn tail (docker)"] = docker
        table = Table("Turn tail on Docker: last content event → done (ms)", ["platform p50", "direct p50",
                                                                                "platform p95", "direct p95"])
        if is_na(docker):
            table.add("last content event → done", [docker] * 4)
        else:
            table.add("last content event → done", [docker["platform"]["p50"], docker["direct"]["p50"],
                                                    docker["platform"]["p95"], docker["direct"]["p95"]],
                      f"{docker['failed_turns']} failed turns")
            p50 = docker["platform"]["p50"]
            outcome["targets"].append(target("last content event → done p50 (docker, platform)", "<= 30 ms", p50,
                                             verdict(p50, 30), "ms"))
        outcome["tables"].append(table.as_dict())
    return outcome


def _run(ctx: Context, cp: Any) -> dict[str, Any]:
    session = launch_many(cp, 1)[0]
    machine_url, machine_token = cp.direct_machine(session.session_id)
    ctx.model.set_latency(MODEL_TTFT)
    http = unixhttp.Session()
    via_headers = {"Authorization": f"Bearer {session.key}"}
    direct_headers = {"Authorization": f"Bearer {machine_token}"}
    cp_url, direct_url = cp.chat_url(session.session_id), f"{machine_url}/chat"
    # Warm-up: one turn each way (first-turn costs are the launch's business, not this one's).
    for url, headers in ((cp_url, via_headers), (direct_url, direct_headers)):
        post_turn(http, url, headers, MESSAGE)
    recorder = Recorder(cp.worker_pid(), ctx.profile_path("ttfe")) if ctx.profile else None
    if recorder:
        recorder.start()
    via: list[TurnTrace] = []
    direct: list[TurnTrace] = []
    try:
        for i in range(ctx.sizes.ttfe_rounds):
            order = [(via, cp_url, via_headers), (direct, direct_url, direct_headers)]
            for bucket, url, headers in (order if i % 2 == 0 else order[::-1]):
                bucket.append(post_turn(http, url, headers, MESSAGE))
    finally:
        if recorder:
            recorder.stop()
    failed = sum(1 for t in via + direct if not t.ok)

    # The relay alone: one model request through /relay vs straight to the model.
    relay_base, relay_token = cp.machine_relay(session.session_id)
    relay_url, model_url = f"{relay_base}/v1/messages", f"{ctx.model.url}/v1/messages"
    relayed: list[tuple[float | None, float | None]] = []
    straight: list[tuple[float | None, float | None]] = []
    for i in range(ctx.sizes.ttfe_rounds):
        pair = [(relayed, relay_url, relay_token), (straight, model_url, "sk-ant-bench")]
        for samples, url, token in (pair if i % 2 == 0 else pair[::-1]):
            samples.append(model_request(http, url, token))
    # Building blocks of the chat path, timed alone (what a chat pays before the machine speaks).
    components: dict[str, list[float]] = {"CP floor: GET /health": [], "CP authorised read: GET events (JSON)": [],
                                          "machine GET /health (done by every chat)": []}
    last = cp.events(session.session_id, session.key)[-1]["seq"]
    for _ in range(ctx.sizes.ttfe_rounds * 2):
        for label, url, headers in (
                ("CP floor: GET /health", f"{cp.url}/health", {}),
                ("CP authorised read: GET events (JSON)",
                 f"{cp.url}/api/agents/sessions/{session.session_id}/events?after={last}", via_headers),
                ("machine GET /health (done by every chat)", f"{machine_url}/health", direct_headers)):
            started = time.perf_counter()
            http.get(url, headers=headers, timeout=30).raise_for_status()
            components[label].append(ms(time.perf_counter() - started))
    json_answers = [json_chat(http, cp_url, via_headers) for _ in range(ctx.sizes.ttfe_rounds)]
    http.close()
    ctx.model.set_latency(0.0)

    fe_via, fe_direct = _ms_list(via, "first_event"), _ms_list(direct, "first_event")
    fd_via, fd_direct = _ms_list(via, "first_delta"), _ms_list(direct, "first_delta")
    done_via, done_direct = _ms_list(via, "done"), _ms_list(direct, "done")
    fb_relay, fb_model = [ms(a) for a, _ in relayed if a], [ms(a) for a, _ in straight if a]
    md_relay, md_model = [ms(b) for _, b in relayed if b], [ms(b) for _, b in straight if b]
    def pairs(attr: str) -> list[float]:
        diffs = []
        for a, b in zip(via, direct, strict=False):
            x, y = a.since_sent(getattr(a, attr)), b.since_sent(getattr(b, attr))
            if x is not None and y is not None:
                diffs.append(ms(x - y))
        return diffs

    def model_pairs(index: int) -> list[float]:
        diffs = []
        for a, b in zip(relayed, straight, strict=False):
            x, y = a[index], b[index]
            if x is not None and y is not None:
                diffs.append(ms(x - y))
        return diffs

    series = {
        "first SSE event": (fe_via, fe_direct, pairs("first_event")),
        "first text_delta": (fd_via, fd_direct, pairs("first_delta")),
        "turn done": (done_via, done_direct, pairs("done")),
        "last content event → done": (_tails(via), _tails(direct), []),
        "relay: model first byte": (fb_relay, fb_model, model_pairs(0)),
        "relay: model first delta": (md_relay, md_model, model_pairs(1)),
    }
    data: dict[str, Any] = {"rounds": ctx.sizes.ttfe_rounds, "model_ttft_ms": MODEL_TTFT * 1000, "failed_turns": failed,
                            "message": MESSAGE}
    table = Table(f"Time to first event (ms; model TTFT fixed at {MODEL_TTFT * 1000:.0f} ms, "
                  f"{ctx.sizes.ttfe_rounds} interleaved rounds)",
                  ["platform p50", "direct p50", "added p50", "ratio p50", "platform p95", "direct p95",
                   "paired diff p50"])
    for label, (a, b, diffs) in series.items():
        sa, sb = summarize(a), summarize(b)
        data[label] = {"platform": sa, "direct": sb, "paired_diff": summarize(diffs)}
        added = None if sa["p50"] is None or sb["p50"] is None else sa["p50"] - sb["p50"]
        r = ratio(sa["p50"], sb["p50"])
        table.add(label, [sa["p50"], sb["p50"], added, f"{r:.2f}x" if r else None, sa["p95"], sb["p95"],
                          percentile(diffs, 50)],
                  "platform=/relay, direct=model" if label.startswith("relay") else "")
    components["JSON chat (no SSE): send → answer"] = [ms(v) for v in json_answers if v is not None]
    components["SSE chat: send → done (same message)"] = done_via
    parts = Table("Chat-path building blocks, each timed alone (ms)", ["p50", "p95"])
    for label, values in components.items():
        summary = summarize(values)
        data[label] = summary
        parts.add(label, [summary["p50"], summary["p95"]])
    profile = None
    if recorder is not None:
        profile = {"error": recorder.error} if recorder.error else analyse(recorder.out, str(ROOT))
    data["profile"] = profile
    added_first = data["first SSE event"]["paired_diff"]["p50"]
    tail = data["last content event → done"]["platform"]["p50"]
    return result("ttfe", [table, parts], data, [
        target("platform-added time to first event p50", "<= 10 ms", added_first, verdict(added_first, 10), "ms"),
        target("last content event → done p50 (local, platform)", "<= 30 ms", tail, verdict(tail, 30), "ms"),
    ], profile=profile)
