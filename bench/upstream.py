"""Upstream AgCluster (whiteboardmonk/agcluster-container) and this tree side by side, on Docker.

Both systems launch the code-assistant preset cold (a new container each time) and are at
once asked ``run: echo first-tool``; the figure is launch request → first tool-use event, the
moment a user sees the agent act. Rounds alternate which system goes first, and both talk to
one stand-in model, so neither gets a warmer engine or a faster model. Then the idle memory
of one session's container each: PSS summed over its processes a few seconds after its first
turn (PSS, because RSS counts shared pages once per process).

Upstream is an optional, separately prepared copy (``scripts/prepare-upstream.sh``): its
tracked files with a handful of edits that only rename its Docker objects (``upstream-``),
label them for cleanup and pass the stand-in's URL into its containers, a virtualenv for its
backend, and its agent image built on our local base. Without it this bench reports n/a.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from bench import procs, stack
from bench.common import Context, launch_one, result, target
from bench.launch import _first_tool_call
from bench.stats import Table, is_na, ms, na, percentile, ratio, summarize, verdict

IMAGE = "upstream-agcluster/agent:latest"
NETWORK = "upstream-agcluster-net"
NAME_PREFIX = "upstream-agcluster-"
"""Upstream's containers as the prepared copy names them: upstream-agcluster-agent-<hex>."""
VOLUME_PREFIX = "upstream-agcluster-workspace-"
LABEL = "upstream-bench=1"
PREPARE = "scripts/prepare-upstream.sh UPSTREAM_CHECKOUT"
PRESET = "code-assistant"
PROMPT = "run: echo first-tool"
SETTLE_S = 5.0
"""Idle time after the first turn before memory is read (the CLI's start-up work is over)."""
TIMEOUT_S = 180.0
FIRST_TOOL_TARGET = 0.7
IDLE_MEMORY_TARGET = 1.0
UPSTREAM_KEY = "sk-ant-api03-" + "0123456789abcdef" * 2 + "01234567"
"""Upstream validates the key's shape only; the stand-in accepts any."""


def upstream_dir() -> Path:
    """Where scripts/prepare-upstream.sh put upstream (``AGCLUSTER_UPSTREAM_DIR``)."""
    return Path(os.environ.get("AGCLUSTER_UPSTREAM_DIR") or stack.ROOT / ".bench-upstream").resolve()


def prepare_command(directory: Path) -> str:
    default = (stack.ROOT / ".bench-upstream").resolve()
    return PREPARE if directory == default else f"{PREPARE} {directory}"


def missing(directory: Path) -> str | None:
    """None when upstream can be measured; otherwise why not and how to prepare it. The
    prepared copy is checked first, so an unprepared box never needs Docker to say so."""
    how = f"prepare it with {prepare_command(directory)}"
    if not (directory / "src" / ".prepared").is_file():
        return f"upstream not prepared in {directory}; {how}"
    if not (directory / "venv" / "bin" / "python").exists():
        return f"no upstream virtualenv in {directory}/venv; {how}"
    engine = stack.docker_engine()
    if engine:
        return engine
    if _docker("image", "inspect", IMAGE).returncode != 0:
        return f"image {IMAGE} not built; {how}"
    return stack.docker_provider_missing()  # this tree's side: its agent image, no foreign machines


def _docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def _summary(values: list[float]) -> dict[str, Any]:
    """summarize() plus p90, the tail quoted for a handful of rounds."""
    return {**summarize(values), "p90": percentile(values, 90)}


# ------------------------------------------------------------------------ docker objects
def ensure_network() -> tuple[str, bool]:
    """(IPv4 gateway of the upstream network, whether this run created it). The stand-in
    listens on that gateway: upstream's containers reach the model there directly."""
    created = False
    if not _docker("network", "ls", "-q", "--filter", f"name=^{NETWORK}$").stdout.strip():
        out = _docker("network", "create", "--driver", "bridge", NETWORK)
        if out.returncode != 0:
            raise RuntimeError(f"docker network create {NETWORK}: {out.stderr.strip()[:200]}")
        created = True
    gateways = _docker("network", "inspect", NETWORK, "--format",
                       "{{range .IPAM.Config}}{{.Gateway}} {{end}}").stdout.split()
    ipv4 = [g for g in gateways if ":" not in g]
    if not ipv4:
        if created:
            _docker("network", "rm", NETWORK)
        raise RuntimeError(f"network {NETWORK} has no IPv4 gateway")
    return ipv4[0], created


def sweep_upstream() -> dict[str, int]:
    """Remove what upstream's patched backend made: containers with the bench label *and* the
    upstream- name, and their workspace volumes (upstream never removes those itself)."""
    listed = _docker("ps", "-a", "--filter", f"label={LABEL}", "--format", "{{.ID}} {{.Names}}").stdout
    containers = [line.split()[0] for line in listed.splitlines()
                  if len(line.split()) == 2 and line.split()[1].startswith(NAME_PREFIX)]
    if containers:
        _docker("rm", "-f", "-v", *containers, timeout=120)
    volumes = [v for v in _docker("volume", "ls", "-q", "--filter", f"name={VOLUME_PREFIX}").stdout.split()
               if v.startswith(VOLUME_PREFIX)]
    if volumes:
        _docker("volume", "rm", "-f", *volumes, timeout=120)
    return {"containers": len(containers), "volumes": len(volumes)}


def container_memory(container: str) -> dict[str, Any]:
    """PSS and RSS summed over every process of a running container (host PIDs from the engine)."""
    out = _docker("top", container, "-eo", "pid")
    if out.returncode != 0:
        return na(f"docker top {container}: {out.stderr.strip()[:160]}")
    pids = [int(word) for word in out.stdout.split()[1:] if word.isdigit()]
    names = []
    for pid in pids:
        with contextlib.suppress(OSError):
            names.append(Path(f"/proc/{pid}/comm").read_text().strip())
    return {"pss_mb": sum(procs.pss_kb(p) for p in pids) / 1024, "rss_mb": sum(procs.rss_kb(p) for p in pids) / 1024,
            "processes": len(pids), "names": names, "settle_s": SETTLE_S}


# ------------------------------------------------------------------------ upstream backend
class Upstream:
    """Upstream's FastAPI backend (uvicorn from the prepared virtualenv) on loopback."""

    def __init__(self, ctx: Context, directory: Path, model_url: str) -> None:
        self.directory = directory
        self.port = stack.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = ctx.lab.dir("upstream") / "backend.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.model_url = model_url
        self.http = requests.Session()

    def start(self) -> Upstream:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "DOCKER_NETWORK"))}
        env.update({"PYTHONPATH": str(self.directory / "src" / "src"),
                    "DOCKER_NETWORK": NETWORK,  # upstream's Settings.docker_network
                    "AGENT_IMAGE": IMAGE,  # upstream only logs it; the edited provider names the image
                    "ANTHROPIC_BASE_URL": self.model_url,  # passed into its containers by the edit
                    "LOG_LEVEL": "info"})
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(self.directory / "venv" / "bin" / "python"), "-m", "uvicorn", "agcluster.container.api.main:app",
                 "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=self.directory / "src", env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        stack.wait_until(self._healthy, 60, f"upstream's backend (log: {self.log_path})", interval=0.2)
        return self

    def _healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"upstream's backend exited; see {self.log_path}")
        try:
            return self.http.get(f"{self.url}/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        """SIGTERM first: upstream's shutdown hook stops its sessions' containers."""
        self.http.close()
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def first_tool_call(self, session_id: str) -> float | None:
        """Seconds from sending the prompt to the first ``tool_use`` event; the turn is read to
        its end (as our side's post_turn does) so the next round starts from an idle engine."""
        first: float | None = None
        sent = time.perf_counter()
        with self.http.post(f"{self.url}/api/agents/chat", stream=True, timeout=(10, TIMEOUT_S),
                            json={"messages": [{"role": "user", "content": PROMPT}], "sessionId": session_id},
                            headers={"Authorization": f"Bearer {UPSTREAM_KEY}", "Accept": "text/event-stream"}) as resp:
            if resp.status_code != 200:
                return None
            for line in resp.iter_lines(decode_unicode=True):
                if line == "data: [DONE]":
                    break
                if not line or not line.startswith("data: "):
                    continue
                try:
                    event = json.loads(line[6:])
                except ValueError:
                    continue
                if event.get("msg_type") == "tool_use" and first is None:
                    first = time.perf_counter()
                if event.get("type") in ("complete", "error"):
                    break
        return None if first is None else first - sent

    def round(self, memory: bool) -> dict[str, Any]:
        started = time.perf_counter()
        resp = self.http.post(f"{self.url}/api/agents/launch", json={"api_key": UPSTREAM_KEY, "config_id": PRESET},
                              timeout=TIMEOUT_S)
        elapsed = time.perf_counter() - started
        if resp.status_code != 200:
            return {"error": f"launch HTTP {resp.status_code}: {resp.text[:200]}"}
        launched = resp.json()
        session_id, container = launched["session_id"], NAME_PREFIX + launched["agent_id"]
        row: dict[str, Any] = {"launch": elapsed}
        try:
            row.update(_first_tool_fields(elapsed, self.first_tool_call(session_id)))
            if memory:
                time.sleep(SETTLE_S)
                row["idle_memory"] = container_memory(container)
        finally:
            with contextlib.suppress(requests.RequestException):
                self.http.delete(f"{self.url}/api/agents/sessions/{session_id}", timeout=120)
            _docker("rm", "-f", "-v", container, timeout=120)
            _docker("volume", "rm", "-f", VOLUME_PREFIX + launched["agent_id"])
        return row


def _first_tool_fields(elapsed: float, tool: float | None) -> dict[str, Any]:
    """A round's launch → first tool call (``tool`` is counted from the chat's send), or why
    there was none; the same for both systems."""
    return {"error": "no tool_use event in the first turn"} if tool is None else {"first_tool": elapsed + tool}


# ------------------------------------------------------------------------ this tree
def our_round(cp: stack.ControlPlane, memory: bool) -> dict[str, Any]:
    session, elapsed, why = launch_one(cp, {"config_id": PRESET})
    if session is None:
        return {"error": why}
    row: dict[str, Any] = {"launch": elapsed}
    try:
        row.update(_first_tool_fields(elapsed, _first_tool_call(cp, session)))
        if memory:
            time.sleep(SETTLE_S)
            containers = stack.docker_containers(f"agcluster.instance={cp.docker_instance}")
            row["idle_memory"] = container_memory(containers[0]) if len(containers) == 1 else \
                na(f"expected one container for the session, found {len(containers)}")
    finally:
        cp.delete_session(session.session_id, session.key)
    return row


# ------------------------------------------------------------------------ the bench
def measure(ctx: Context, directory: Path) -> dict[str, Any]:
    rounds: dict[str, list[dict[str, Any]]] = {"ours": [], "upstream": []}
    cleanup: dict[str, Any] = {}
    created = False
    model: Any = None
    backend: Upstream | None = None
    cp: stack.ControlPlane | None = None
    try:
        from stubs.anthropic import StubAnthropic

        gateway, created = ensure_network()
        model = StubAnthropic(gateway, 0).start()
        backend = Upstream(ctx, directory, model.url).start()
        cp = stack.ControlPlane(ctx.lab, "upstream-ours", {"CONTAINER_PROVIDER": "docker",
                                                           "ANTHROPIC_BASE_URL": model.url}).start()
        for i in range(ctx.sizes.launches):
            order = ("ours", "upstream") if i % 2 == 0 else ("upstream", "ours")
            for side in order:
                rounds[side].append(our_round(cp, i == 0) if side == "ours" else backend.round(i == 0))
    finally:
        if cp is not None:
            cp.stop()  # also removes whatever it left on the engine
            cleanup["ours_left_after_stop"] = cp.swept
        if backend is not None:
            backend.stop()
        cleanup["upstream_left_after_stop"] = sweep_upstream()
        if model is not None:
            model.stop()
        if created:
            _docker("network", "rm", NETWORK)
    out: dict[str, Any] = {"rounds": ctx.sizes.launches, "cleanup": cleanup}
    for side, rows in rounds.items():
        memory = next((r["idle_memory"] for r in rows if "idle_memory" in r), na("not measured"))
        out[side] = {"launch": _summary([r["launch"] for r in rows if "launch" in r]),
                     "first_tool": _summary([r["first_tool"] for r in rows if "first_tool" in r]),
                     "idle_memory": memory, "failures": [r["error"] for r in rows if "error" in r]}
    stamp = (directory / "src" / ".prepared").read_text().split()
    out["upstream"]["commit"] = stamp[0] if stamp else None
    out["upstream"]["image_id"] = _docker("image", "inspect", "--format", "{{.Id}}", IMAGE).stdout.strip()

    def pss(side: str) -> Any:
        memory = out[side]["idle_memory"]
        return memory if is_na(memory) else memory["pss_mb"]

    out["ratios"] = {"first_tool_p50": ratio(out["ours"]["first_tool"]["p50"], out["upstream"]["first_tool"]["p50"]),
                     "first_tool_p90": ratio(out["ours"]["first_tool"]["p90"], out["upstream"]["first_tool"]["p90"]),
                     "launch_p50": ratio(out["ours"]["launch"]["p50"], out["upstream"]["launch"]["p50"]),
                     "idle_pss": ratio(pss("ours"), pss("upstream"))}
    return out


def measure_or_na(ctx: Context, directory: Path) -> dict[str, Any]:
    reason = missing(directory)
    if reason:
        return na(reason)
    try:
        return measure(ctx, directory)
    except Exception as exc:  # noqa: BLE001 - reported as n/a; cleanup already ran in measure()
        return na(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")


def run(ctx: Context) -> dict[str, Any]:
    directory = upstream_dir()
    columns = ["this tree", "upstream", "this / upstream"]
    table = Table(f"Upstream side by side (Docker, cold; {ctx.sizes.launches} rounds, alternating which goes "
                  "first; one stand-in model)", columns)
    data = measure_or_na(ctx, directory)
    if is_na(data):
        table.add("launch → first tool call p50 (ms)", [data, data, None])
        return result("upstream", [table], data, [
            target("cold launch → first tool call p50 vs upstream", f"<= {FIRST_TOOL_TARGET:.2f}x", data, "n/a"),
            target("idle session memory (PSS) vs upstream", f"<= {IDLE_MEMORY_TARGET:.2f}x", data, "n/a")])

    def times(what: str, stat: str) -> list[Any]:
        values = [ms(data[side][what][stat]) for side in ("ours", "upstream")]
        r = ratio(values[0], values[1])
        return [*values, f"{r:.2f}x" if r else None]

    def memory(key: str) -> list[Any]:
        cells = [m if is_na(m) else m[key] for m in (data["ours"]["idle_memory"], data["upstream"]["idle_memory"])]
        r = ratio(cells[0], cells[1]) if key == "pss_mb" else None
        return [*cells, f"{r:.2f}x" if r else None]

    table.add("launch → ready p50 (ms)", times("launch", "p50"), "upstream sleeps 3 s after docker run by design")
    table.add("launch → ready p90 (ms)", times("launch", "p90"))
    table.add("launch → first tool call p50 (ms)", times("first_tool", "p50"), f"`{PROMPT}` right after launch")
    table.add("launch → first tool call p90 (ms)", times("first_tool", "p90"))
    table.add("idle session container, PSS (MiB)", memory("pss_mb"),
              f"every process of one container, first turn + {SETTLE_S:.0f} s")
    table.add("idle session container, processes", memory("processes"))
    table.add("failed rounds", [len(data["ours"]["failures"]), len(data["upstream"]["failures"]), None])
    commit = data["upstream"].get("commit") or "?"
    table.add("upstream commit", [None, commit[:12], None], IMAGE)
    first, idle = data["ratios"]["first_tool_p50"], data["ratios"]["idle_pss"]
    targets = [target("cold launch → first tool call p50 vs upstream", f"<= {FIRST_TOOL_TARGET:.2f}x",
                      first, verdict(first, FIRST_TOOL_TARGET), "x"),
               target("idle session memory (PSS) vs upstream", f"<= {IDLE_MEMORY_TARGET:.2f}x",
                      idle, verdict(idle, IDLE_MEMORY_TARGET), "x")]
    return result("upstream", [table], data, targets)
