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
from pathlib import Path
from typing import Any

from bench import procs, stack
from bench.common import Context, launch_one, result, target
from bench.stats import Table, is_na, ms, na, summarize, verdict

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


def _variants(ctx: Context) -> list[tuple[str, str, int, str | None]]:
    """(column, provider, warm pool size, reason it cannot run or None)."""
    local_missing = None if (shutil.which("bwrap")) \
        else "bubblewrap not installed"
    docker_missing = stack.docker_provider_missing()
    fly_missing = stack.fly_stub_missing()
    fly_docker_missing = fly_missing or stack.docker_image(os.environ.get("AGENT_IMAGE", "agcluster/agent:latest"))
    everywhere = ctx.sizes.warm_variants_everywhere
    out = []
    if "local" in ctx.providers:
        out += [("local cold", "local", 0, local_missing), ("local warm", "local", 1, local_missing)]
    if "docker" in ctx.providers:
        out.append(("docker cold", "docker", 0, docker_missing))
        out.append(("docker warm", "docker", 1, docker_missing if everywhere else docker_missing or "--full only"))
    if "fly" in ctx.providers:
        out.append(("fly-stub/docker cold", "fly:docker", 0, fly_docker_missing))
        out.append(("fly-stub/docker warm", "fly:docker", 1,
                    fly_docker_missing if everywhere else fly_docker_missing or "--full only"))
        out.append(("fly-stub/process cold", "fly:process", 0, fly_missing))
    return out


def provider_env(ctx: Context, provider: str, cp_port_holder: dict[str, Any]) -> dict[str, str]:
    """Environment for a control plane on ``provider`` (starting the Fly stand-in if needed)."""
    if provider == "local":
        return {"CONTAINER_PROVIDER": "local"}
    if provider == "docker":
        return {"CONTAINER_PROVIDER": "docker"}
    backend = provider.split(":", 1)[1]
    from stubs.fly import StubFly

    fly = StubFly(backend=backend, token=FLY_TOKEN, data_dir=ctx.lab.dir(f"fly-{backend}")).start()
    ctx.lab.on_close(fly.stop)
    cp_port_holder["fly"] = fly
    return {"CONTAINER_PROVIDER": "fly_machines", "FLY_API_TOKEN": FLY_TOKEN, "FLY_APP_NAME": FLY_APP,
            "MACHINES_API_URL": fly.url}


def start_cp(ctx: Context, name: str, provider: str, pool: int, holder: dict[str, Any]) -> stack.ControlPlane:
    env = provider_env(ctx, provider, holder)
    env["WARM_POOL_SIZE"] = str(pool)
    cp = stack.ControlPlane(ctx.lab, name, {"ANTHROPIC_BASE_URL": ctx.model.url, **env})
    if provider.startswith("fly"):
        cp.env["RELAY_URL"] = f"http://127.0.0.1:{cp.port}/relay"
    return cp.start()


def measure(ctx: Context, column: str, provider: str, pool: int) -> dict[str, Any]:
    holder: dict[str, Any] = {}
    cp = start_cp(ctx, column.replace(" ", "-").replace("/", "-"), provider, pool, holder)
    times, failures = [], []
    try:
        for _ in range(ctx.sizes.launches):
            if pool:
                stack.wait_until(lambda: cp.health()["warm_pool"]["ready"] >= 1, 300, "the warm pool to refill")
            session, elapsed, why = launch_one(cp)
            if session is None:
                failures.append(why)
                continue
            times.append(elapsed)
            cp.delete_session(session.session_id, session.key)
    finally:
        cp.stop()
    fly = holder.get("fly")
    leaked: int | None = None
    if provider == "local":
        from bench import procs

        leaked = len(procs.find_by_cmdline(str(cp.machines_dir.resolve()) + "/"))
    elif provider == "docker":
        leaked = cp.swept
    if fly is not None:
        # Destroys finish in the background on Fly: give them a bounded while to land.
        with contextlib.suppress(TimeoutError):
            stack.wait_until(lambda: fly.count() == 0, 60, "Fly machines to be destroyed")
        leaked = fly.count()
    return {"summary": summarize(times), "samples": times, "failures": failures,
            "machines_left_after_stop": leaked}


def run(ctx: Context) -> dict[str, Any]:
    ctx.model.set_latency(0.0)
    columns: list[str] = []
    data: dict[str, Any] = {}
    for column, provider, pool, missing in _variants(ctx):
        columns.append(column)
        if missing:
            data[column] = na(missing)
            continue
        try:
            data[column] = measure(ctx, column, provider, pool)
        except Exception as exc:  # noqa: BLE001 - one provider failing must not hide the others
            data[column] = na(f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}")
    cli = cli_oneshot(ctx)
    data["cli_oneshot"] = cli
    try:
        boot = agent_boot(ctx)
    except Exception as exc:  # noqa: BLE001 - reported in its cell; the other columns stand
        boot = na(f"{type(exc).__name__}: {exc}"[:160])
    data["agent_boot"] = boot

    def cell(column: str, key: str) -> Any:
        value = data[column]
        if is_na(value):
            return value
        return ms(value["summary"][key])

    table = Table(f"Launch to ready (ms; {ctx.sizes.launches} launches per column, sequential)", columns)
    table.add("p50", [cell(c, "p50") for c in columns])
    table.add("p95", [cell(c, "p95") for c in columns])
    table.add("min", [cell(c, "min") for c in columns])
    table.add("failed launches", [data[c] if is_na(data[c]) else len(data[c]["failures"]) for c in columns])
    table.add("machines left after stop", [data[c] if is_na(data[c]) else data[c].get("machines_left_after_stop")
                                           for c in columns], "all sessions deleted, then SIGTERM")
    base = data.get("local cold")
    if base and not is_na(base) and base["summary"]["p50"]:
        table.add("ratio p50 / local cold", [
            data[c] if is_na(data[c]) else f"{data[c]['summary']['p50'] / base['summary']['p50']:.2f}x"
            for c in columns])
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

    warm = p50("local warm")
    docker_cold = p50("docker cold")
    targets = [
        target("launch from warm pool p50 (local)", "<= 150 ms", warm, verdict(warm, 150), "ms"),
        target("cold Docker launch p50", "<= 2000 ms", docker_cold, verdict(docker_cold, 2000), "ms"),
    ]
    if "docker warm" in data:
        dw = p50("docker warm")
        targets.append(target("launch from warm pool p50 (docker)", "<= 150 ms", dw, verdict(dw, 150), "ms"))
    return result("launch", [table, reference, memory], data, targets)
