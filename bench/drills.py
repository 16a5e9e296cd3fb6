"""Reliability drills: bounded in count and time, loopback only, every process reaped.

* ``cp_kill``: kill -9 the control plane while K turns stream, restart it, and compare
  every event the clients saw with the transcript; then chat again on every session.
* ``machine_kill``: kill -9 random machines mid-turn; every victim's stream must end with
  an error and ``done``; nothing of the dead machines may survive; next chat wakes them.
* ``fly_storm``: 20 % of Fly API calls answer 429, 5xx or slowly while sessions launch on
  the Fly stand-in; count launches that succeeded and machines that leaked.
* ``malformed``: 1,000 malformed requests across every route; count 5xx answers.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from bench import procs, stack
from bench.common import Context, Session, launch_many, launch_one, result, target
from bench.sseclient import TurnTrace, post_turn
from bench.stack import ControlPlane
from bench.stats import Table, is_na, na

TURN_TOKENS_PER_SECOND = 100.0  # "stream 300" then takes about 6 s of model time
LONG_TURN = "stream 300"
DRILLS = ("cp_kill", "machine_kill", "fly_storm", "malformed")


# --------------------------------------------------------------------------- helpers
def _start_turns(cp: ControlPlane, sessions: list[Session], message: str, timeout: float,
                 on_event: Any = None) -> tuple[list[TurnTrace], list[threading.Thread]]:
    traces = [TurnTrace() for _ in sessions]

    def one(i: int, session: Session) -> None:
        with requests.Session() as http:
            traces[i] = post_turn(http, cp.chat_url(session.session_id), {"Authorization": f"Bearer {session.key}"},
                                  message, keep=True, timeout=timeout,
                                  on_event=(lambda kind, seq, tr: on_event(i, kind, tr)) if on_event else None)

    threads = [threading.Thread(target=one, args=(i, s), daemon=True) for i, s in enumerate(sessions)]
    for t in threads:
        t.start()
    return traces, threads


def _chat_ok(cp: ControlPlane, session: Session, marker: str) -> bool:
    with requests.Session() as http:
        trace = post_turn(http, cp.chat_url(session.session_id), {"Authorization": f"Bearer {session.key}"},
                          f"run: echo {marker}", keep=True, timeout=300)
    return trace.ok and any(e.get("type") == "tool_result" and marker in str(e.get("output")) for e in trace.kept)


def _machine_leftovers(cp: ControlPlane) -> dict[str, int]:
    """Processes still running from this control plane's machines, and machine directories left."""
    marker = str(cp.machines_dir.resolve()) + "/"
    running = procs.find_by_cmdline(marker)
    dirs = [d for d in cp.machines_dir.iterdir() if d.is_dir()] if cp.machines_dir.exists() else []
    return {"processes": len(running), "dirs": len(dirs)}


# --------------------------------------------------------------------------- kill -9 the control plane
def cp_kill(ctx: Context) -> dict[str, Any]:
    k = ctx.sizes.cp_kill_turns
    cp = ctx.control_plane("drill-cp-kill", CONTAINER_PROVIDER="local")
    try:
        ctx.model.set_latency(0.0, TURN_TOKENS_PER_SECOND)
        sessions = launch_many(cp, k, parallel=3)
        ready = threading.Event()
        seen_deltas = [0] * k
        lock = threading.Lock()

        def on_event(i: int, kind: str, _trace: TurnTrace) -> None:
            if kind == "text_delta":
                with lock:
                    seen_deltas[i] += 1
                    if all(n >= 5 for n in seen_deltas):
                        ready.set()

        traces, threads = _start_turns(cp, sessions, LONG_TURN, timeout=120, on_event=on_event)
        all_streaming = ready.wait(timeout=180)
        time.sleep(random.Random(ctx.seed).uniform(0.0, 0.3))  # land the kill at an arbitrary point
        in_flight = sum(1 for t in traces if t.done is None)
        cp.kill9()
        for t in threads:
            t.join(timeout=60)
        with contextlib.suppress(TimeoutError):
            stack.wait_until(lambda: _machine_leftovers(cp)["processes"] == 0, 20,
                             "machines to die with the control plane")
        survivors = _machine_leftovers(cp)["processes"]
        ctx.model.set_latency(0.0)
        cp.start()
        lost = gaps = seen = reused = 0
        detail = []
        for session, trace in zip(sessions, traces, strict=False):
            stored = cp.events(session.session_id, session.key)
            by_seq = {e["seq"]: e for e in stored}
            seqs = sorted(by_seq)
            # Exactly what the client was shown (every field), not just its seq and type.
            missing = [e for e in trace.kept if by_seq.get(e["seq"]) != e]
            # A lost event's seq handed out again after the restart: a client resuming with
            # Last-Event-ID would skip the new event carrying it.
            reused_here = sum(1 for e in missing if e["seq"] in by_seq)
            hole = (seqs[-1] - seqs[0] + 1 - len(seqs)) if seqs else 0
            seen += len(trace.kept)
            lost += len(missing)
            reused += reused_here
            gaps += hole
            detail.append({"seen": len(trace.kept), "stored": len(stored), "lost": len(missing), "gaps": hole,
                           "reused_seq": reused_here,
                           "closed_with": [e["type"] + (":" + e.get("code", "") if e["type"] == "error" else "")
                                           for e in stored[-2:]]})
        with ThreadPoolExecutor(max_workers=3) as pool:
            recovered = sum(pool.map(lambda s: _chat_ok(cp, s, "recovered-after-kill"), sessions))
        for s in sessions:
            cp.delete_session(s.session_id, s.key)
        left = _machine_leftovers(cp)
    finally:
        ctx.model.set_latency(0.0)
        cp.stop()
    return {"turns": k, "all_streaming_before_kill": all_streaming, "in_flight_at_kill": in_flight,
            "events_seen_by_clients": seen, "events_lost": lost, "seq_reused": reused, "seq_gaps": gaps,
            "sessions_recovered": recovered,
            "machine_processes_surviving_kill": survivors, "leftover_after_delete": left, "sessions": detail}


# --------------------------------------------------------------------------- kill machines mid-turn
def machine_kill(ctx: Context) -> dict[str, Any]:
    k = ctx.sizes.machine_kill_sessions
    rng = random.Random(ctx.seed)
    cp = ctx.control_plane("drill-machine-kill", CONTAINER_PROVIDER="local")
    try:
        ctx.model.set_latency(0.0, TURN_TOKENS_PER_SECOND)
        sessions = launch_many(cp, k, parallel=3)
        victims = set(rng.sample(range(k), max(1, k // 2)))
        roots = cp.machine_root_pids()
        keys = [cp.session_row(s.session_id)["machine_key"] for s in sessions]
        trees = {i: [(p, procs.cmdline(p)) for p in procs.descendants(roots[keys[i]])] for i in victims}
        delays = {i: rng.uniform(0.0, 1.5) for i in victims}
        triggered: dict[int, threading.Timer] = {}
        lock = threading.Lock()

        def kill(i: int) -> None:
            with contextlib.suppress(ProcessLookupError):  # the machine's root process only: the rest must follow
                os.kill(roots[keys[i]], signal.SIGKILL)

        def on_event(i: int, kind: str, _trace: TurnTrace) -> None:
            if i in victims and kind == "text_delta":
                with lock:
                    if i not in triggered:
                        triggered[i] = threading.Timer(delays[i], kill, args=(i,))
                        triggered[i].start()

        traces, threads = _start_turns(cp, sessions, LONG_TURN, timeout=120, on_event=on_event)
        for t in threads:
            t.join(timeout=300)
        for timer in triggered.values():
            timer.join(timeout=5)
        hung = sum(1 for t in threads if t.is_alive()) + sum(1 for t in traces if t.error and "ReadTimeout" in t.error)
        reported, survivors_ok, codes = 0, 0, []
        for i, trace in enumerate(traces):
            errors = [e for e in trace.kept if e.get("type") == "error"]
            if i in victims:
                codes += [e.get("code") for e in errors]
                if errors and trace.done is not None:
                    reported += 1
            elif trace.ok:
                survivors_ok += 1
        # Anything left of a killed machine's process tree is an orphan.
        with contextlib.suppress(TimeoutError):
            stack.wait_until(lambda: not any(procs.alive(p) and procs.cmdline(p) == c
                                             for tree in trees.values() for p, c in tree),
                             20, "killed machines to vanish")
        orphans = sum(1 for tree in trees.values() for p, c in tree if procs.alive(p) and procs.cmdline(p) == c)
        statuses = [cp.http.get(f"{cp.url}/api/agents/sessions/{sessions[i].session_id}",
                                headers={"Authorization": f"Bearer {sessions[i].key}"}, timeout=30).json().get("status")
                    for i in sorted(victims)]
        ctx.model.set_latency(0.0)
        recovered = sum(_chat_ok(cp, sessions[i], "woken-after-kill") for i in sorted(victims))
        for s in sessions:
            cp.delete_session(s.session_id, s.key)
        # A sandbox's inner processes die with its outer one (PR_SET_PDEATHSIG), a moment later.
        with contextlib.suppress(TimeoutError):
            stack.wait_until(lambda: not any(_machine_leftovers(cp).values()), 20, "deleted machines to vanish")
        left = _machine_leftovers(cp)
    finally:
        ctx.model.set_latency(0.0)
        cp.stop()
    return {"sessions": k, "killed": len(victims), "kills_fired": len(triggered), "reported_fault": reported,
            "error_codes": sorted({c for c in codes if c}), "victim_status_after": statuses,
            "untouched_turns_ok": survivors_ok, "untouched": k - len(victims), "hung_streams": hung,
            "orphan_processes": orphans, "recovered_next_chat": recovered, "leftover_after_delete": left}


# --------------------------------------------------------------------------- Fly fault storm
def fly_storm(ctx: Context) -> dict[str, Any]:
    missing = stack.fly_stub_missing()
    if missing:
        return na(missing)
    from stubs.fly import Fault, StubFly
    from stubs.fly.control import StubControl

    rng = random.Random(ctx.seed)

    class Storm(StubControl):
        """20 % of calls: 429 (with Retry-After), 5xx (half of them after acting), or 1–3 s slow."""

        def __init__(self) -> None:
            super().__init__()
            self.enabled = False
            self.rate = 0.2
            self.injected: dict[str, int] = {}

        def take_fault(self, action: str, machine_id: str | None, when: str) -> Any:
            planned = super().take_fault(action, machine_id, when)
            if planned is not None or not self.enabled or when != "before" or rng.random() >= self.rate:
                return planned
            kind = rng.choice(["429", "500", "502", "503", "slow", "after-5xx"])
            self.injected[kind] = self.injected.get(kind, 0) + 1
            if kind == "429":
                return Fault(429, retry_after=0.5)
            if kind == "slow":
                return Fault(None, delay=rng.uniform(1.0, 3.0))
            if kind == "after-5xx":
                # Queue it for the "after" phase of this very call: done, then reported as failed.
                self.add_fault(Fault(rng.choice([500, 502, 503]), action=action, machine_id=machine_id, when="after"))
                return None
            return Fault(int(kind))

    image_missing = stack.docker_image(os.environ.get("AGENT_IMAGE", "agcluster/agent:latest"))
    if image_missing:
        return na(image_missing)
    # The docker backend: each machine reaches the relay from an address of its own (the
    # process backend's machines all call from 127.0.0.1, which the relay cannot tell apart).
    fly = StubFly(backend="docker", token="bench-fly-token", apps=["agcluster-bench"],
                  data_dir=ctx.lab.dir("fly-storm"))
    storm = Storm()
    fly.control = storm
    fly.start()
    ctx.lab.on_close(fly.stop)
    relay_port = stack.free_port()
    host = f"[{fly.gateway}]" if ":" in fly.gateway else fly.gateway
    cp = stack.ControlPlane(ctx.lab, "drill-fly-storm", {
        "ANTHROPIC_BASE_URL": ctx.model.url, "CONTAINER_PROVIDER": "fly_machines", "FLY_API_TOKEN": "bench-fly-token",
        "FLY_APP_NAME": "agcluster-bench", "MACHINES_API_URL": fly.url, "RELAY_PORT": str(relay_port),
        "RELAY_URL": f"http://{host}:{relay_port}/relay"})
    cp.start()
    outcomes: list[str] = []
    failures: list[str] = []
    sessions: list[Session] = []
    times = []
    try:
        ctx.model.set_latency(0.0)
        storm.enabled = True
        for _ in range(ctx.sizes.fly_launches):
            session, elapsed, why = launch_one(cp)
            times.append(elapsed)
            if session is not None:
                sessions.append(session)
                outcomes.append("ok")
            else:
                outcomes.append(why.split(":", 1)[0])
                failures.append(why[:400])
        storm.enabled = False
        fly.clear_faults()
        owned = {cp.session_row(s.session_id).get("machine_id") for s in sessions}
        live = list(fly.machines(include_destroyed=False))
        stray = [m["id"] for m in live if m["id"] not in owned]
        # What happened to each stray machine, call by call (for whoever fixes the leak).
        stray_detail = [{"id": m["id"], "state": m.get("state"), "metadata": (m.get("config") or {}).get("metadata"),
                         "calls": [f"{c.get('action')}:{c.get('status')}{'(injected)' if c.get('fault') else ''}"
                                   for c in fly.calls(machine_id=m["id"])]}
                        for m in live if m["id"] in stray]
        create_calls = [f"{c.get('status')}{'(injected)' if c.get('fault') else ''}"
                        for c in fly.calls(action="create")]
        working = sum(_chat_ok(cp, s, "fly-storm-ok") for s in sessions)
        for s in sessions:
            cp.delete_session(s.session_id, s.key)
        with contextlib.suppress(TimeoutError):
            stack.wait_until(lambda: fly.count() == 0, 60, "Fly machines to be destroyed")
        leaked = fly.count()
    finally:
        cp.stop()
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o] = counts.get(o, 0) + 1
    return {"launches": len(outcomes), "succeeded": outcomes.count("ok"), "outcomes": counts, "failures": failures,
            "faults_injected": dict(storm.injected), "stray_machines_after_storm": len(stray),
            "stray_detail": stray_detail, "create_calls": create_calls,
            "sessions_that_chat": working, "machines_leaked_after_delete": leaked,
            "launch_seconds": {"p50": sorted(times)[len(times) // 2] if times else None,
                               "max": max(times, default=None)}}


# --------------------------------------------------------------------------- malformed requests
PARAM_VALUES = ["00000000-0000-0000-0000-000000000000", "' OR 1=1 --", "../../etc/passwd", "%2e%2e%2f%2e%2e%2fetc",
                "a" * 3000, "%00", "%ff%fe", "\u00fc\U0001f642", "..", "null", "-1", "1e999", "<script>x</script>",
                "%25", "~root", "CON", "a%0d%0aSet-Cookie:x=1"]
PATH_VALUES = ["../../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "a/" * 300 + "b", "x" * 5000, "%00.txt",
               "dir/../../../secret", "\U0001f642.txt", "/abs/path", "..%2f..%2fserver.secret", "a\\..\\..\\b",
               "con/aux", ".", "nonexistent/deep/file.bin"]
BODIES: list[tuple[str, bytes]] = [
    ("application/json", b"{"), ("application/json", b"[]"), ("application/json", b"null"),
    ("application/json", b'"a string"'), ("application/json", b"1e999999"), ("application/json", b'{"message": 123}'),
    ("application/json", b'{"message": null}'), ("application/json", b'{"message": ""}'),
    ("application/json", b"\xff\xfe{\x00"), ("application/json", b"[" * 50_000 + b"]" * 50_000),
    ("application/json", b'{"a":' * 5000 + b"1" + b"}" * 5000),
    ("application/json", b'{"message": "' + b"x" * (3 * 1024 * 1024) + b'"}'),
    ("application/json", b'{"api_key": ["x"], "config_id": {"a": 1}}'),
    ("application/json", b'{"api_key": "k", "config": {"id": "../../x", "allowed_tools": "Bash", '
                         b'"resource_limits": {"memory_limit": "-5g", "cpu_quota": "lots"}}}'),
    ("application/json", b'{"api_key": "k", "config_id": "no-such-preset", "mcp_env": "nope"}'),
    ("application/json", b'{"from": 1, "to": null, "path": ["x"], "decision": "maybe"}'),
    ("application/json", b'{"__proto__": {"admin": true}, "constructor": 1}'),
    ("application/x-www-form-urlencoded", b"message=hi&api_key=x"),
    ("text/plain", b"hello"), ("application/json; charset=utf-16", '{"message": "hi"}'.encode("utf-16")),
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data; name=\"files\"\r\n\r\nbroken"),
    ("multipart/form-data", b"no boundary at all"), ("application/octet-stream", os.urandom(2048)),
]
QUERIES = ["", "?after=-1", "?after=abc", "?after=" + "9" * 40, "?limit=0", "?limit=-5", "?follow=yes",
           "?format=pdf", "?depth=-1", "?depth=99999", "?path=../..", "?target_path=../../etc", "?overwrite=maybe",
           "?raw=2&download=x", "?after=1&after=2", "?%ff=%fe", "?" + "a=1&" * 2000]
RAW_REQUESTS = [b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET /health HTTP/1.1\r\nHost\r\n\r\n",
                b"POST /api/agents/launch HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
                b"POST /api/agents/launch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"zz\r\n{}\r\n0\r\n\r\n",
                b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n",
                b"POST /api/agents/launch HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + os.urandom(64)]


def _routes(cp: ControlPlane) -> list[tuple[str, str]]:
    routes: set[tuple[str, str]] = set()
    try:
        doc = cp.http.get(f"{cp.url}/openapi.json", timeout=30).json()
        for path, item in doc.get("paths", {}).items():
            for method in item:
                if method.upper() in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                    routes.add((method.upper(), path))
    except (requests.RequestException, ValueError):
        pass
    # Routes the document may leave out: the relay, the live channel, metrics and the UI.
    routes |= {("POST", "/relay/v1/messages"), ("POST", "/relay/v1/messages/count_tokens"), ("GET", "/relay/v1/models"),
               ("GET", "/api/agents/{session_id}/ws"), ("GET", "/metrics"), ("GET", "/ui/{path}"), ("GET", "/"),
               ("POST", "/api/agents/{session_id}/permissions/{request_id}"), ("GET", "/api/files/{session_id}/{path}"),
               ("DELETE", "/api/files/{session_id}/{path}"), ("POST", "/api/agents/launch"),
               ("POST", "/api/agents/{session_id}/chat"), ("GET", "/api/agents/sessions/{session_id}/events")}
    return sorted(routes)


def _raw(cp: ControlPlane, payload: bytes) -> int:
    try:
        with socket.create_connection(("127.0.0.1", cp.port), timeout=15) as sock:
            sock.sendall(payload)
            head = sock.recv(64)
    except OSError:
        return 0
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def malformed(ctx: Context) -> dict[str, Any]:
    rng = random.Random(ctx.seed)
    cp = ctx.control_plane("drill-malformed", CONTAINER_PROVIDER="local")
    try:
        session = launch_many(cp, 1)[0]
        relay_token = cp.minter().relay_token(session.session_id)
        routes = _routes(cp)
        plans: list[tuple[str, str, Any, dict[str, Any]]] = []
        for i in range(ctx.sizes.malformed):
            if i % 20 == 19:
                plans.append(("RAW", "", RAW_REQUESTS[(i // 20) % len(RAW_REQUESTS)], {}))
                continue
            method, template = routes[i % len(routes)]
            if template == "/api/agents/sessions/{session_id}" and method == "DELETE":
                sid_choice = rng.choice(PARAM_VALUES)  # never delete the one real session
            else:
                sid_choice = session.session_id if rng.random() < 0.5 else rng.choice(PARAM_VALUES)
            path = template
            for name in ("session_id", "id", "config_id", "request_id"):
                path = path.replace("{" + name + "}", sid_choice if name == "session_id" else rng.choice(PARAM_VALUES))
            path = path.replace("{path}", rng.choice(PATH_VALUES))
            while "{" in path:  # any other parameter
                start = path.index("{")
                path = path[:start] + rng.choice(PARAM_VALUES) + path[path.index("}", start) + 1:]
            if rng.random() < 0.08:
                method = rng.choice(["PUT", "PATCH", "OPTIONS", "TRACE"])
            auth = rng.choice([f"Bearer {session.key}", f"Bearer {session.key}", "", "Bearer", "Bearer " + "x" * 9000,
                               "Basic Zm9vOmJhcg==", f"Bearer {relay_token}", "Bearer \u00ff\u00fe"])
            headers = {"Authorization": auth} if auth else {}
            if template.startswith("/relay/"):
                headers["x-api-key"] = rng.choice([relay_token, "agr.x.y", "", "sk-ant-nope"])
            if rng.random() < 0.3:
                headers["Last-Event-ID"] = rng.choice(["abc", "-1", "9" * 50, "", "1.5"])
            if rng.random() < 0.2:
                headers["Accept"] = rng.choice(["text/event-stream", "*/*;q=abc", "application/xml"])
            content_type, body = rng.choice(BODIES) if method in ("POST", "PUT", "PATCH", "DELETE") else ("", b"")
            if content_type:
                headers["Content-Type"] = content_type
            plans.append((method, path + rng.choice(QUERIES), body, headers))

        def send(plan: tuple[str, str, bytes, dict[str, str]]) -> tuple[str, int]:
            method, path, body, headers = plan
            if method == "RAW":
                return "RAW", _raw(cp, body)
            try:
                encoded = {k: v.encode("latin-1", "replace").decode("latin-1") for k, v in headers.items()}
                with requests.request(method, cp.url + path, data=body or None, headers=encoded, stream=True,
                                      timeout=(10, 30), allow_redirects=False) as resp:
                    return f"{method} {path[:60]}", resp.status_code
            except requests.RequestException:
                return f"{method} {path[:60]}", 0

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(send, plans))
        statuses: dict[str, int] = {}
        for _, status in answers:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        server_errors = [(label, status) for label, status in answers if status >= 500]
        healthy = cp.http.get(f"{cp.url}/health", timeout=30).status_code == 200
        tracebacks = cp.log_tail(100_000).count("Traceback")
        cp.delete_session(session.session_id, session.key)
    finally:
        cp.stop()
    return {"requests": len(plans), "routes": len(routes), "statuses": dict(sorted(statuses.items())),
            "5xx": len(server_errors), "5xx_examples": server_errors[:10],
            "no_answer": statuses.get("0", 0), "healthy_after": healthy, "tracebacks_in_log": tracebacks}


# --------------------------------------------------------------------------- all drills
def run(ctx: Context) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, fn in (("cp_kill", cp_kill), ("machine_kill", machine_kill), ("fly_storm", fly_storm),
                     ("malformed", malformed)):
        if ctx.drills and name not in ctx.drills:
            continue
        print(f"bench: drill {name} ...", flush=True)
        try:
            data[name] = fn(ctx)
        except Exception as exc:  # noqa: BLE001 - one drill failing must not hide the others
            import traceback

            traceback.print_exc()
            data[name] = na(f"{type(exc).__name__}: {str(exc)[:200]}")
    if ctx.drills:
        # A partial run keeps the other drills' latest results.
        earlier = (ctx.previous.get("drills") or {}).get("data")
        if isinstance(earlier, dict) and not is_na(earlier):
            data = {**{k: v for k, v in earlier.items() if k in DRILLS}, **data}
    return result("drills", _tables(data), data, _targets(data))


def _get(data: dict[str, Any], drill: str, key: str) -> Any:
    value = data.get(drill)
    if value is None or is_na(value):
        return value
    return value.get(key)


def _tables(data: dict[str, Any]) -> list[Table]:
    t = Table("Reliability drills", ["result"])
    d = data.get("cp_kill")
    if d is None:
        pass
    elif is_na(d):
        t.add("kill -9 control plane", [d])
    else:
        t.add("kill -9 CP: turns in flight at the kill", [f"{d['in_flight_at_kill']} / {d['turns']}"])
        t.add("kill -9 CP: events lost (seen by clients, not in transcript)",
              [f"{d['events_lost']} of {d['events_seen_by_clients']}"])
        t.add("kill -9 CP: lost seqs re-used for new events", [d.get("seq_reused", 0)],
              "a client resuming with Last-Event-ID skips these")
        t.add("kill -9 CP: gaps in transcript seq", [d["seq_gaps"]])
        t.add("kill -9 CP: sessions recovered (next chat works)", [f"{d['sessions_recovered']} / {d['turns']}"])
        t.add("kill -9 CP: machine processes outliving the CP", [d["machine_processes_surviving_kill"]])
    d = data.get("machine_kill")
    if d is None:
        pass
    elif is_na(d):
        t.add("kill machines mid-turn", [d])
    else:
        t.add("machine kill: sessions reporting the fault", [f"{d['reported_fault']} / {d['killed']}"],
              ", ".join(d["error_codes"]))
        t.add("machine kill: untouched sessions' turns ok", [f"{d['untouched_turns_ok']} / {d['untouched']}"])
        t.add("machine kill: hung streams", [d["hung_streams"]])
        t.add("machine kill: orphan processes", [d["orphan_processes"]])
        t.add("machine kill: next chat wakes the session", [f"{d['recovered_next_chat']} / {d['killed']}"])
        t.add("machine kill: processes/dirs left after delete",
              [f"{d['leftover_after_delete']['processes']} / {d['leftover_after_delete']['dirs']}"])
    d = data.get("fly_storm")
    if d is None:
        pass
    elif is_na(d):
        t.add("Fly fault storm", [d])
    else:
        t.add("Fly storm (20% 429/5xx/slow): launches succeeded", [f"{d['succeeded']} / {d['launches']}"],
              ", ".join(f"{k}={v}" for k, v in d["outcomes"].items()))
        t.add("Fly storm: faults injected", [sum(d["faults_injected"].values())],
              ", ".join(f"{k}={v}" for k, v in sorted(d["faults_injected"].items())))
        t.add("Fly storm: launched sessions that chat", [f"{d['sessions_that_chat']} / {d['succeeded']}"])
        t.add("Fly storm: stray machines after storm", [d["stray_machines_after_storm"]])
        t.add("Fly storm: machines leaked after delete", [d["machines_leaked_after_delete"]])
    d = data.get("malformed")
    if d is None:
        pass
    elif is_na(d):
        t.add("malformed requests", [d])
    else:
        t.add(f"malformed requests ({d['routes']} routes): 5xx answers", [f"{d['5xx']} of {d['requests']}"],
              ", ".join(f"{k}:{v}" for k, v in d["statuses"].items()))
        t.add("malformed: no answer (connection dropped)", [d["no_answer"]])
        t.add("malformed: tracebacks in server log", [d["tracebacks_in_log"]])
        t.add("malformed: healthy afterwards", [d["healthy_after"]])
    return [t]


def _targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    out = []

    def zero(name: str, value: Any) -> None:
        if value is None or (is_na(value) and value["na"] == "not run"):
            return
        verdict = "n/a" if value is None or is_na(value) else ("met" if value == 0 else "missed")
        out.append(target(name, "0", value, verdict))

    zero("kill -9 CP: events lost", _get(data, "cp_kill", "events_lost"))
    zero("kill -9 CP: seq gaps", _get(data, "cp_kill", "seq_gaps"))
    machine = data.get("machine_kill")
    zero("machine kill: orphans", _get(data, "machine_kill", "orphan_processes"))
    if machine and not is_na(machine):
        zero("machine kill: sessions not reporting the fault", machine["killed"] - machine["reported_fault"])
    zero("Fly storm: machines leaked", _get(data, "fly_storm", "machines_leaked_after_delete"))
    zero("malformed: 5xx", _get(data, "malformed", "5xx"))
    return out
