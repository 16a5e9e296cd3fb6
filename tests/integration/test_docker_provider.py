"""DockerProvider against a real engine and the real agent image (``make images``).

Proves the isolation promises (the README's "How it works": the key never enters a machine,
a locked-down machine per session) on what Docker actually did (``docker inspect`` and
commands inside the container), not on the arguments we meant to pass.
"""

from __future__ import annotations

import gc
import http.server
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from docker.models.containers import Container

from control.providers.base import AGENT_PORT, Machine, MachineSpec, ProviderError, ResourceLimits
from control.providers.docker import NETWORK, DockerProvider, _check_env, _cpu_percent
from tests.docker_support import container_exec
from tests.support import free_port

# The first test may pay for a cold image build (see tests/docker_support.py).
pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]

LIMITS = ResourceLimits(cpus=0.5, memory_mb=768, storage_mb=1024, pids=200)
SECRET_MARKER = f"sk-ant-marker-{uuid.uuid4().hex}"


def _spec(**overrides: Any) -> MachineSpec:
    session = f"t-{uuid.uuid4().hex[:12]}"
    fields: dict[str, Any] = {"session_id": session, "agent_id": f"agent-{session}",
                              "machine_token": f"mt-{uuid.uuid4().hex}", "resources": LIMITS,
                              "env": {"AGCLUSTER_SESSION_ID": session}}
    fields.update(overrides)
    return MachineSpec(**fields)


@pytest.fixture(scope="module")
def provider(agent_image: str, docker_instance: str) -> Iterator[DockerProvider]:
    p = DockerProvider(agent_image, relay_port=free_port(), egress_port=free_port(), in_docker=False,
                       instance=docker_instance, startup_timeout=120)
    yield p
    p.close()


@pytest.fixture(scope="module")
def machine(provider: DockerProvider) -> Iterator[tuple[MachineSpec, Machine]]:
    """One long-lived machine for the read-only checks, started while the control plane's
    own environment holds a user key: none of it may reach the machine."""
    mp = pytest.MonkeyPatch()
    mp.setenv("ANTHROPIC_API_KEY", SECRET_MARKER)
    mp.setenv("ANTHROPIC_AUTH_TOKEN", SECRET_MARKER)
    try:
        spec = _spec()
        started = provider.start(spec)
    finally:
        mp.undo()
    yield spec, started
    provider.destroy(started.machine_id)


def _inspect(client: Any, machine_id: str) -> dict[str, Any]:
    return client.api.inspect_container(machine_id)


def test_health_needs_the_machine_token(machine: tuple[MachineSpec, Machine]) -> None:
    spec, m = machine
    assert m.url.startswith("http://172.") or m.url.startswith("http://10.") or m.url.startswith("http://192.168.")
    ok = requests.get(f"{m.url}/health", headers={"Authorization": f"Bearer {spec.machine_token}"}, timeout=5)
    assert ok.status_code == 200 and ok.json()["status"] == "ok"
    assert requests.get(f"{m.url}/health", timeout=5).status_code == 401
    wrong = requests.get(f"{m.url}/health", headers={"Authorization": "Bearer not-the-token"}, timeout=5)
    assert wrong.status_code == 401


def test_container_is_locked_down(machine: tuple[MachineSpec, Machine], docker_client: Any) -> None:
    spec, m = machine
    info = _inspect(docker_client, m.machine_id)
    host = info["HostConfig"]
    assert host["NanoCpus"] == int(LIMITS.cpus * 1e9)
    assert host["Memory"] == LIMITS.memory_mb * 2**20
    assert host["MemorySwap"] == host["Memory"], "no swap beyond the memory limit"
    assert host["PidsLimit"] == LIMITS.pids
    # Disk quota only where the storage driver has one (overlay2 on ext4 has none).
    assert host.get("StorageOpt") in (None, {}, {"size": f"{LIMITS.storage_mb}M"})
    # Every capability dropped but the three the entrypoint needs to step down to uid 1000.
    assert host["CapDrop"] == ["ALL"] and sorted(host.get("CapAdd") or []) == ["SETGID", "SETPCAP",
                                                                             "SETUID"]
    assert any(opt.startswith("no-new-privileges") for opt in host["SecurityOpt"])
    assert host["ReadonlyRootfs"] is True
    assert host["Privileged"] is False
    assert host["RestartPolicy"]["Name"] in ("", "no")
    # Only pid 1 (tini) is root; the machine agent runs as uid 1000 with nothing.
    agent_pid = "$(pgrep -u 1000 -f 'python3 -m machine_agent' | head -1)"
    status = container_exec(docker_client, m.machine_id, "sh", "-c",
                            f"grep -E '^(Uid|CapEff|CapBnd|NoNewPrivs)' /proc/{agent_pid}/status")[1]
    fields = dict(line.split(":", 1) for line in status.strip().splitlines())
    assert fields["Uid"].split()[0] == "1000" and fields["CapEff"].strip() == "0000000000000000", status
    assert fields["CapBnd"].strip() == "0000000000000000" and fields["NoNewPrivs"].strip() == "1", status
    # Nothing published on the host: the machine is reached on the internal agents network.
    assert not (info["NetworkSettings"].get("Ports") or {}).get("8080/tcp")
    assert list(info["NetworkSettings"]["Networks"]) == [NETWORK]
    assert docker_client.networks.get(NETWORK).attrs["Internal"] is True
    # Storage: two per-session volumes, nothing from the host, never the Docker socket.
    mounts = {mnt["Destination"]: mnt for mnt in info["Mounts"]}
    assert set(mounts) == {"/workspace", "/home/agent"}
    assert all(mnt["Type"] == "volume" for mnt in mounts.values())
    assert not any("docker.sock" in json.dumps(mnt) for mnt in info["Mounts"])
    assert "/tmp" in host["Tmpfs"]
    labels = info["Config"]["Labels"]
    assert labels["agcluster.session_id"] == spec.session_id
    assert labels["agcluster.agent_id"] == spec.agent_id
    assert labels["agcluster.provider"] == "docker" and labels["agcluster.managed"] == "1"

    # And from the inside: not root, root filesystem read-only, the writable places writable.
    assert container_exec(docker_client, m.machine_id, "id", "-u")[1].strip() == "1000"
    code, _ = container_exec(docker_client, m.machine_id, "touch", "/usr/evil")
    assert code != 0
    for path in ("/tmp/x", "/workspace/x", "/home/agent/x"):
        assert container_exec(docker_client, m.machine_id, "touch", path)[0] == 0, path
    code, out = container_exec(docker_client, m.machine_id, "sh", "-c", "ls -la /var/run/docker.sock /run/docker.sock")
    assert code != 0, out
    code, out = container_exec(docker_client, m.machine_id, "grep", "CapEff", "/proc/self/status")
    assert out.split()[-1].strip("0") == "", f"effective capabilities left: {out}"


def test_agents_network_isolates_agents(provider: DockerProvider, docker_client: Any) -> None:
    network = docker_client.networks.get(NETWORK)
    if "com.docker.compose.network" in (network.attrs.get("Labels") or {}):
        pytest.skip("the network was created by docker compose (the control plane shares it there)")
    assert network.attrs["Options"].get("com.docker.network.bridge.enable_icc") == "false"


def test_no_user_secret_reaches_the_machine(machine: tuple[MachineSpec, Machine], docker_client: Any,
                                            provider: DockerProvider) -> None:
    _, m = machine
    assert SECRET_MARKER not in json.dumps(_inspect(docker_client, m.machine_id))
    code, env = container_exec(docker_client, m.machine_id, "sh", "-c",
                               "env; cat /proc/1/environ || echo pid1-environ-unreadable")
    assert code == 0
    # pid 1 (tini, root) holds the container's environment; the agent's uid cannot read it.
    assert "pid1-environ-unreadable" in env
    assert SECRET_MARKER not in env
    assert "ANTHROPIC_API_KEY" not in env
    # A secret slipped into the (non-secret) machine env is refused, not passed on.
    with pytest.raises(ProviderError, match="ANTHROPIC_API_KEY"):
        provider.start(_spec(env={"ANTHROPIC_API_KEY": SECRET_MARKER}))


def test_usage_reports_limits(machine: tuple[MachineSpec, Machine], provider: DockerProvider,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    _, m = machine
    calls: list[dict[str, Any]] = []
    real_stats = Container.stats

    def recording_stats(self: Container, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real_stats(self, **kwargs)

    monkeypatch.setattr(Container, "stats", recording_stats)
    first = provider.usage(m.machine_id)
    assert first is not None
    assert first["memory_limit_mb"] == pytest.approx(LIMITS.memory_mb)
    assert 0 < first["memory_used_mb"] < LIMITS.memory_mb
    assert first["disk_used_mb"] is not None and first["disk_used_mb"] >= 0
    second = provider.usage(m.machine_id)
    assert second is not None and second["cpu_percent"] is not None
    # The first read waits for Docker's two-sample CPU figure; later ones take a one-shot
    # sample and compute CPU % against the previous one, so a usage poll never blocks ~2 s.
    assert [c.get("one_shot", False) for c in calls] == [False, True]


def test_relay_url_is_reachable_from_a_machine(docker_client: Any, agent_image: str,
                                               docker_instance: str) -> None:
    """On the host the relay is served on the agents network's gateway; prove a machine gets there."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"relay-ok")

        def log_message(self, *args: Any) -> None:
            pass

    probe = DockerProvider(agent_image, relay_port=free_port(), egress_port=free_port(), in_docker=False,
                           instance=docker_instance)
    gateway = probe.gateway()
    server = http.server.ThreadingHTTPServer((gateway, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        relay = DockerProvider(agent_image, relay_port=server.server_address[1], egress_port=free_port(),
                               in_docker=False, instance=docker_instance, startup_timeout=120)
        assert relay.relay_url() == f"http://{gateway}:{server.server_address[1]}/relay"
        assert relay.relay_listen_address() == (gateway, server.server_address[1])
        spec = _spec()
        m = relay.start(spec)
        try:
            code, out = container_exec(docker_client, m.machine_id, "curl", "-sS", "-m", "10",
                                       f"{relay.relay_url()}/v1/ping")
            assert code == 0 and out == "relay-ok", out
            assert seen == ["/relay/v1/ping"]
        finally:
            relay.destroy(m.machine_id)
    finally:
        server.shutdown()
        server.server_close()
        probe.close()


def test_compose_mode_needs_the_control_plane_on_the_agents_network(agent_image: str,
                                                                   docker_instance: str) -> None:
    """In a container the relay listens on the control plane's own address on the agents
    network; outside one (as here) that address does not exist, and the error says so."""
    p = DockerProvider(agent_image, relay_port=8001, egress_port=8002, in_docker=True,
                       control_host="agcluster-no-such-control", instance=docker_instance)
    try:
        with pytest.raises(ProviderError) as failure:
            p.relay_url()
        assert "agcluster-no-such-control" in failure.value.message or "agents network" in failure.value.message
    finally:
        p.close()


def test_lifecycle_list_kill_resume_destroy(provider: DockerProvider, docker_client: Any) -> None:
    spec = _spec()
    m = provider.start(spec)
    ws_volume, home_volume = f"agcluster-ws-{spec.session_id}", f"agcluster-home-{spec.session_id}"
    try:
        assert m.machine_id in {x.machine_id for x in provider.list_machines()}
        listed = next(x for x in provider.list_machines() if x.machine_id == m.machine_id)
        assert listed.session_id == spec.session_id and listed.state == "started"
        assert container_exec(docker_client, m.machine_id, "sh", "-c", "echo kept > /workspace/keep.txt")[0] == 0

        # Killed behind our back: inspect tells the truth, and no restart policy revives it.
        container = docker_client.containers.get(m.machine_id)
        container.kill()
        container.wait(timeout=20)  # the engine's own "not running any more"
        seen = provider.inspect(m.machine_id)
        assert seen is not None and seen.state == "stopped" and seen.url == ""

        # Resume: same workspace, healthy again (maybe at a new address).
        resumed = provider.resume(m.machine_id)
        assert resumed.state == "started" and resumed.url
        health = requests.get(f"{resumed.url}/health", headers={"Authorization": f"Bearer {spec.machine_token}"},
                              timeout=5)
        assert health.status_code == 200
        assert container_exec(docker_client, m.machine_id, "cat", "/workspace/keep.txt")[1].strip() == "kept"

        provider.suspend(m.machine_id)
        suspended = provider.inspect(m.machine_id)
        assert suspended is not None and suspended.state == "stopped"
        assert {v.name for v in docker_client.volumes.list()} >= {ws_volume, home_volume}
    finally:
        provider.destroy(m.machine_id)

    assert provider.inspect(m.machine_id) is None
    assert m.machine_id not in {x.machine_id for x in provider.list_machines()}
    names = {v.name for v in docker_client.volumes.list()}
    assert ws_volume not in names and home_volume not in names
    provider.destroy(m.machine_id)  # idempotent


def _tcp_states_to(address: str, port: int) -> list[str]:
    """This host's TCP sockets connected to ``address:port`` and their states (/proc/net/tcp
    hex codes: 01 ESTABLISHED, 08 CLOSE_WAIT, 06 TIME_WAIT, ...)."""
    remote = f"{socket.inet_aton(address)[::-1].hex().upper()}:{port:04X}"
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return [row[3] for row in rows if row[2] == remote]


def test_a_started_machine_holds_no_connection_of_ours_open(provider: DockerProvider) -> None:
    """The start-up health checks close their connection when they are done. Left to the
    garbage collector, it was closed whenever a collection ran, often after the machine was
    gone, and that late FIN to a dead address made the next machine given that address
    wait up to a second for its first packet."""
    gc.collect()
    gc.disable()
    try:
        m = provider.start(_spec())
        try:
            address = urlsplit(m.url).hostname or ""
            open_states = [state for state in _tcp_states_to(address, AGENT_PORT) if state in ("01", "08")]
            assert open_states == [], f"connections to the new machine left open: {open_states}"
        finally:
            provider.destroy(m.machine_id)
    finally:
        gc.enable()


def test_restart_of_a_session_keeps_its_workspace(provider: DockerProvider, docker_client: Any) -> None:
    """start() for a session whose container exists replaces the container, not the volumes."""
    spec = _spec()
    first = provider.start(spec)
    try:
        assert container_exec(docker_client, first.machine_id, "sh", "-c", "echo v1 > /workspace/a.txt")[0] == 0
        second = provider.start(spec)
        assert second.machine_id == first.machine_id
        assert container_exec(docker_client, second.machine_id, "cat", "/workspace/a.txt")[1].strip() == "v1"
    finally:
        provider.destroy(first.machine_id)


def test_a_crashing_machine_fails_fast_with_its_output(provider: DockerProvider, docker_client: Any) -> None:
    spec = _spec(env={"MAX_UPLOAD_MB": "not-a-number"})  # the agent exits at start-up
    with pytest.raises(ProviderError) as caught:
        provider.start(spec)
    message = caught.value.message
    # "exit code" (not a start-up timeout) proves the dead machine was noticed, not waited out.
    assert "exit code" in message and "Last agent output" in message, message
    assert spec.machine_token not in message
    # Nothing is left behind by a failed first start.
    assert provider.inspect(f"agcluster-agent-{spec.session_id}") is None
    names = {v.name for v in docker_client.volumes.list()}
    assert f"agcluster-ws-{spec.session_id}" not in names


def test_missing_image_says_how_to_build_it(docker_instance: str) -> None:
    p = DockerProvider("agcluster/agent:does-not-exist", relay_port=8001, egress_port=8002, in_docker=False,
                       instance=docker_instance)
    try:
        with pytest.raises(ProviderError, match="make images"):
            p.start(_spec())
    finally:
        p.close()


def test_destroy_leaves_foreign_containers_alone(provider: DockerProvider, docker_client: Any,
                                                agent_image: str) -> None:
    name = f"agcluster-agent-foreign-{uuid.uuid4().hex[:8]}"
    docker_client.containers.create(agent_image, name=name, command=["true"])
    try:
        with pytest.raises(ProviderError, match="not an AgCluster machine"):
            provider.destroy(name)
        assert docker_client.containers.get(name)
    finally:
        docker_client.containers.get(name).remove(force=True)


def test_cpu_percent_from_engine_or_previous_sample() -> None:
    two_samples = {"cpu_stats": {"cpu_usage": {"total_usage": 3_000}, "system_cpu_usage": 20_000, "online_cpus": 2},
                   "precpu_stats": {"cpu_usage": {"total_usage": 1_000}, "system_cpu_usage": 10_000}}
    assert _cpu_percent(two_samples, None) == (40.0, (3_000, 20_000))
    one_shot = {"cpu_stats": {"cpu_usage": {"total_usage": 5_000}, "system_cpu_usage": 30_000, "online_cpus": 2},
                "precpu_stats": {"cpu_usage": {"total_usage": 0}}}
    assert _cpu_percent(one_shot, (3_000, 20_000)) == (40.0, (5_000, 30_000))
    assert _cpu_percent(one_shot, None) == (None, (5_000, 30_000))


def test_secret_looking_env_is_refused() -> None:
    _check_env({"AGCLUSTER_SESSION_ID": "s", "MAX_UPLOAD_MB": "50"})
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "GITHUB_SECRET", "AGCLUSTER_MACHINE_TOKEN"):
        with pytest.raises(ProviderError, match=name):
            _check_env({name: "x"})
