"""Launch to ready: POST /api/agents/launch until the session is ready for its first chat.

The launch answer comes back only after the machine is up *and* configured (the CLI is
started at configure time), so the answer's arrival is the moment a chat can start.
Variants: each provider that is available, cold (no warm pool) and from the warm pool.
Reference: the bundled Claude Code CLI's own one-shot start-up against the same stand-in.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import requests

from bench import procs, stack
from bench.common import Context, Session, launch_one, result, target
from bench.sseclient import TurnTrace, post_turn
from bench.stats import Table, is_na, ms, na, ratio, summarize, verdict

FLY_APP = "agcluster-bench"
FLY_TOKEN = "bench-fly-token"


def bundled_cli() -> Path | None:
    try:
        import claude_agent_sdk
    except ImportError:
        return None
    path = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    return path if path.exists() else None


def cli_oneshot(ctx: Context, runs: int = 5) -> dict[str, Any]:
    """``claude -p hello`` against the stand-in: the CLI's own start-up plus one short answer."""
    cli = bundled_cli()
    if cli is None:
        return {"na": "bundled Claude Code CLI not found"}
    home = ctx.lab.dir("cli-home")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "ANTHROPIC_BASE_URL": ctx.model.url,
           "ANTHROPIC_API_KEY": "sk-ant-bench", "LANG": "C.UTF-8"}
    ctx.model.set_latency(0.0)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        out = subprocess.run([str(cli), "-p", "hello", "--output-format", "text"], env=env, cwd=home,
                             capture_output=True, timeout=120)
        if out.returncode == 0:
            times.append(time.perf_counter() - started)
    version = (cli.parent / "claude.version").read_text().strip() if (cli.parent / "claude.version").exists() else ""
    return {"summary": summarize(times), "version": version}


BOOT_CONFIG = {"allowed_tools": ["Bash", "Read", "Write", "Edit", "Glob", "Grep"],
               "permission_mode": "bypassPermissions"}


def agent_boot(ctx: Context, runs: int = 5) -> dict[str, Any]:
    """One machine agent (unsandboxed) from spawn to ready, in its two steps, and its memory.

    The agent serves a socket this process already bound and put in listening state
    (``--listen-fd``, as the local provider does), so the first ``/health`` is sent at
    spawn and answered the moment the agent can: no polling interval in the figure. Then
    ``/configure`` (the SDK import the first ``/health`` started, plus the CLI's start)
    against the stand-in model, and PSS/RSS per process of the configured, idle machine.
    """
    import socket
    import sys

    import requests

    health, configure, memory = [], [], []
    for i in range(runs):
        workdir = ctx.lab.dir(f"agent-boot-{i}")
        (workdir / "workspace").mkdir()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), "LANG": "C.UTF-8",
               "AGCLUSTER_MACHINE_TOKEN": "bench-token"}
        listener = socket.create_server(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        headers = {"Authorization": "Bearer bench-token"}
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "machine_agent", "--listen-fd", str(listener.fileno()),
                                 "--workspace", str(workdir / "workspace")], cwd=stack.ROOT, env=env,
                                pass_fds=(listener.fileno(),), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        listener.close()
        try:
            with requests.Session() as http:
                http.get(f"{url}/health", headers=headers, timeout=60).raise_for_status()
                up = time.perf_counter()
                health.append(up - started)
                http.post(f"{url}/configure", headers=headers, timeout=180, json={
                    "session_id": f"boot-{i}", "config": BOOT_CONFIG, "relay_url": ctx.model.url,
                    "relay_token": "sk-ant-bench"}).raise_for_status()
                configure.append(time.perf_counter() - up)
            memory.append(procs.tree_breakdown_kb(proc.pid))
        finally:
            os.killpg(proc.pid, 9)
            proc.wait()
    per_role = {role: {key.replace("_kb", "_mb"): summarize([m[role][key] / 1024 for m in memory])
                       for key in ("pss_kb", "rss_kb")}
                for role in procs.ROLES}
    counts = {role: max(m[role]["processes"] for m in memory) for role in procs.ROLES}
    return {"summary": summarize(health), "configure": summarize(configure),
            "ready": summarize([a + b for a, b in zip(health, configure, strict=False)]),
            "memory_mb": per_role, "processes": counts,
            "total_pss_mb": summarize([sum(m[r]["pss_kb"] for r in procs.ROLES) / 1024 for m in memory])}


@dataclass(frozen=True)
class Variant:
    column: str
    provider: str
    pool: str
    """``WARM_POOL`` ("" for none)."""
    custom: bool = False
    """Launch an inline config (the preset's content under another id) instead of the preset."""
    before: bool = False
    """Also measure the baseline tree, interleaved launch by launch (local only)."""
    missing: str | None = None


HOT = "code-assistant:1"
WARM = "*:1"


def custom_config(before: bool = False) -> dict[str, Any]:
    """A custom config: code-assistant's content under an id of its own (never a hot machine).
    The older tree's schema has no ``network`` (relay-only was its only policy)."""
    import yaml

    from control.configs import PRESETS_DIR

    config: dict[str, Any] = yaml.safe_load((PRESETS_DIR / "code-assistant.yaml").read_text())
    if before:
        config.pop("network", None)
    return {**config, "id": "bench-custom", "name": "Bench custom"}


def _variants(ctx: Context) -> list[Variant]:
    local_missing = None if shutil.which("bwrap") else "bubblewrap not installed"
    docker_missing = stack.docker_provider_missing()
    image = os.environ.get("AGENT_IMAGE", "agcluster/agent:latest")
    fly_missing = stack.fly_stub_missing() or stack.docker_image(image)
    full_only = None if ctx.sizes.warm_variants_everywhere else "--full only"
    out = []
    if "local" in ctx.providers:
        out += [Variant("local cold", "local", "", before=True, missing=local_missing),
                Variant("local warm (custom config)", "local", WARM, custom=True, before=True, missing=local_missing),
                Variant("local hot", "local", HOT, missing=local_missing)]
    if "docker" in ctx.providers:
        out += [Variant("docker cold", "docker", "", missing=docker_missing),
                Variant("docker warm (custom config)", "docker", WARM, custom=True,
                        missing=docker_missing or full_only),
                Variant("docker hot", "docker", HOT, missing=docker_missing)]
    if "fly" in ctx.providers:
        # The stand-in's docker backend: machines reach the relay from addresses of their own
        # (its process backend's all come from 127.0.0.1, so the relay could not tell them apart).
        out += [Variant("fly-stub/docker cold", "fly", "", missing=fly_missing),
                Variant("fly-stub/docker hot", "fly", HOT, missing=fly_missing or full_only)]
    return out


def provider_env(ctx: Context, provider: str, holder: dict[str, Any]) -> dict[str, str]:
    """Environment for a control plane on ``provider`` (starting the Fly stand-in if needed)."""
    if provider in ("local", "docker"):
        return {"CONTAINER_PROVIDER": provider}
    from stubs.fly import StubFly

    fly = StubFly(backend="docker", token=FLY_TOKEN, apps=[FLY_APP], data_dir=ctx.lab.dir("fly")).start()
    ctx.lab.on_close(fly.stop)
    holder["fly"] = fly
    relay_port = stack.free_port()
    host = f"[{fly.gateway}]" if ":" in fly.gateway else fly.gateway
    return {"CONTAINER_PROVIDER": "fly_machines", "FLY_API_TOKEN": FLY_TOKEN, "FLY_APP_NAME": FLY_APP,
            "MACHINES_API_URL": fly.url, "RELAY_PORT": str(relay_port), "RELAY_URL": f"http://{host}:{relay_port}/relay"}


def _ready(cp: stack.ControlPlane, pool: str) -> bool:
    if not pool:
        return True
    warm = cp.health()["warm_pool"]
    if pool == WARM:
        return bool(warm["ready"] >= 1)
    return bool(warm.get("hot", {}).get("code-assistant", {}).get("ready", 0) >= 1)


def _first_tool_call(cp: stack.ControlPlane, session: Session) -> float | None:
    """Seconds from sending ``run: …`` to the agent's first tool call event."""
    seen: list[float] = []

    def on_event(kind: str, _ident: int | None, _trace: TurnTrace) -> None:
        if kind == "tool_use" and not seen:
            seen.append(time.perf_counter())

    with requests.Session() as http:
        trace = post_turn(http, cp.chat_url(session.session_id), {"Authorization": f"Bearer {session.key}"},
                          "run: echo first-tool", timeout=300, on_event=on_event)
    return seen[0] - trace.sent if seen and trace.ok else None


def measure(ctx: Context, variant: Variant) -> dict[str, Any]:
    """Sequential launches, each session deleted before the next; with ``before``, the baseline
    tree's control plane takes every other launch (alternating which goes first)."""
    holder: dict[str, Any] = {}
    env = {**provider_env(ctx, variant.provider, holder), "ANTHROPIC_BASE_URL": ctx.model.url}
    if variant.pool:
        env["WARM_POOL"] = variant.pool
    name = variant.column.split(" (")[0].replace(" ", "-").replace("/", "-")
    after = stack.ControlPlane(ctx.lab, name, env).start()
    sides: dict[str, stack.ControlPlane | None] = {"after": after}
    tree = ctx.baseline if variant.before else None
    if variant.before:
        if isinstance(tree, str):
            sides["before"] = None
        else:
            # The older tree knows only WARM_POOL_SIZE (its pool was unconfigured machines only).
            old_env = {k: v for k, v in env.items() if k != "WARM_POOL"}
            if variant.pool == WARM:
                old_env["WARM_POOL_SIZE"] = "1"
            sides["before"] = stack.ControlPlane(ctx.lab, name + "-before", old_env, tree=tree).start()
    bodies: dict[str, dict[str, Any]] = {
        side: {"config": custom_config(before=side == "before")} if variant.custom else {"config_id": "code-assistant"}
        for side in sides}
    cold = not variant.pool
    out: dict[str, Any] = {side: {"times": [], "failures": [], "tool_call": []} for side in sides}
    try:
        for i in range(ctx.sizes.launches):
            order = list(sides) if i % 2 == 0 else list(sides)[::-1]
            for side in order:
                cp = sides[side]
                if cp is None:
                    continue
                stack.wait_until(partial(_ready, cp, variant.pool), 300, "the pool to refill")
                session, elapsed, why = launch_one(cp, bodies[side])
                if session is None:
                    out[side]["failures"].append(why)
                    continue
                out[side]["times"].append(elapsed)
                if cold and i < 3:  # launch → first tool call, a few per side
                    tool = _first_tool_call(cp, session)
                    if tool is not None:
                        out[side]["tool_call"].append(elapsed + tool)
                cp.delete_session(session.session_id, session.key)
    finally:
        for cp in sides.values():
            if cp is not None:
                cp.stop()
    fly = holder.get("fly")
    leaked: int | None = None
    if variant.provider == "local":
        leaked = len(procs.find_by_cmdline(str(after.machines_dir.resolve()) + "/"))
    elif variant.provider == "docker":
        leaked = after.swept
    if fly is not None:
        with contextlib.suppress(TimeoutError):  # Fly destroys finish in the background
            stack.wait_until(lambda: fly.count() == 0, 60, "Fly machines to be destroyed")
        leaked = fly.count()
    result_ = {"summary": summarize(out["after"]["times"]), "samples": out["after"]["times"],
               "failures": out["after"]["failures"], "machines_left_after_stop": leaked,
               "launch_to_first_tool_call": summarize(out["after"]["tool_call"])}
    if variant.before:
        if isinstance(tree, str) or tree is None:
            result_["before"] = na(tree or "no baseline")
        else:
            result_["before"] = {"summary": summarize(out["before"]["times"]), "samples": out["before"]["times"],
                                 "failures": out["before"]["failures"], "ref": tree.ref, "commit": tree.commit,
                                 "launch_to_first_tool_call": summarize(out["before"]["tool_call"])}
    return result_


def run(ctx: Context) -> dict[str, Any]:
    ctx.model.set_latency(0.0)
    columns: list[str] = []
    data: dict[str, Any] = {}
    variants = _variants(ctx)
    for variant in variants:
        columns.append(variant.column)
        if variant.missing:
            data[variant.column] = na(variant.missing)
            continue
        try:
            data[variant.column] = measure(ctx, variant)
        except Exception as exc:  # noqa: BLE001 - one provider failing must not hide the others
            data[variant.column] = na(f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}")
        before = data[variant.column].get("before") if not is_na(data[variant.column]) else None
        if variant.before:
            columns.append(f"{variant.column}, before")
            data[f"{variant.column}, before"] = before if before is not None else data[variant.column]
    cli = cli_oneshot(ctx)
    data["cli_oneshot"] = cli
    try:
        boot = agent_boot(ctx)
    except Exception as exc:  # noqa: BLE001 - reported in its cell; the other columns stand
        boot = na(f"{type(exc).__name__}: {exc}"[:160])
    data["agent_boot"] = boot

    def cell(column: str, key: str, figure: str = "summary") -> Any:
        value = data[column]
        if is_na(value):
            return value
        return ms(value[figure][key])

    ref = next((v["ref"] for v in data.values() if isinstance(v, dict) and "ref" in v), None)
    table = Table(f"Launch to ready (ms; {ctx.sizes.launches} launches per column, sequential; \"before\" is the "
                  f"tree {ref or '-'} served beside this one, launches alternating)", columns)
    table.add("p50", [cell(c, "p50") for c in columns])
    table.add("p95", [cell(c, "p95") for c in columns])
    table.add("min", [cell(c, "min") for c in columns])
    table.add("failed launches", [data[c] if is_na(data[c]) else len(data[c]["failures"]) for c in columns])
    table.add("machines left after stop", [data[c] if is_na(data[c]) else data[c].get("machines_left_after_stop")
                                           for c in columns], "all sessions deleted, then SIGTERM")
    table.add("launch → first tool call p50",
              [cell(c, "p50", "launch_to_first_tool_call")
               if not is_na(data[c]) and data[c].get("launch_to_first_tool_call", {}).get("n") else None
               for c in columns], "cold columns: `run: echo` right after launch")
    base = data.get("local cold")
    if base and not is_na(base) and base["summary"]["p50"]:
        ratios = [None if is_na(data[c]) else ratio(data[c]["summary"]["p50"], base["summary"]["p50"])
                  for c in columns]
        table.add("ratio p50 / local cold", [f"{r:.2f}x" if r else None for r in ratios])
    reference = Table("Reference points, same run (ms)", ["p50", "p95"])
    steps = (("summary", "machine agent process: spawn → /health (no sandbox, no CLI)"),
             ("configure", "machine agent: /configure (SDK import + CLI start)"),
             ("ready", "machine agent: spawn → configured"))
    for key, label in steps:
        if is_na(boot):
            reference.add(label, [boot, boot])
        else:
            reference.add(label, [ms(boot[key]["p50"]), ms(boot[key]["p95"])], f"n={boot[key]['n']}")
    memory = Table("Memory of one configured, idle machine (no sandbox; MiB, mean)", ["PSS", "RSS", "processes"])
    if is_na(boot):
        memory.add("all figures", [boot, boot, boot])
    else:
        for role in procs.ROLES:
            if boot["processes"][role]:
                memory.add(role, [boot["memory_mb"][role]["pss_mb"]["mean"], boot["memory_mb"][role]["rss_mb"]["mean"],
                                  boot["processes"][role]])
        memory.add("whole machine", [boot["total_pss_mb"]["mean"], None, sum(boot["processes"].values())],
                   "PSS sums honestly; RSS counts shared pages in every process")
    if is_na(cli):
        reference.add("Claude Code CLI one-shot `claude -p hello` (stand-in model)", [cli, cli])
    else:
        reference.add("Claude Code CLI one-shot `claude -p hello` (stand-in model)",
                      [ms(cli["summary"]["p50"]), ms(cli["summary"]["p95"])],
                      f"v{cli['version']}, n={cli['summary']['n']}")

    def p50(column: str) -> Any:
        value = data.get(column)
        if value is None or is_na(value):
            return value
        return ms(value["summary"]["p50"])

    targets = []
    for column, goal in (("local hot", 100), ("docker hot", 100), ("local warm (custom config)", 400),
                         ("local cold", 1200), ("docker cold", 1500)):
        if column in data:
            value = p50(column)
            targets.append(target(f"launch → ready p50, {column}", f"<= {goal:,} ms", value, verdict(value, goal),
                                  "ms"))
    for column in ("local hot", "docker hot"):
        value = data.get(column)
        if value is not None and not is_na(value):
            p95 = ms(value["summary"]["p95"])
            targets.append(target(f"launch → ready p95, {column}", "<= 200 ms", p95, verdict(p95, 200), "ms"))
    return result("launch", [table, reference, memory], data, targets)
