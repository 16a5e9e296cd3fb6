"""The same attacks on the Docker provider: an agent container reaches the control plane's
relay (and, with network: internet, its egress proxy) on the agents network, and nothing
else: not the host, not another container, not the outside."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from control.providers.docker import NETWORK
from stubs.anthropic import StubAnthropic
from tests.docker_support import cleanup_instance
from tests.e2e.test_machine_token_hidden import PROBE as TOKEN_PROBE
from tests.security.conftest import Agent, launch, steal_relay_token
from tests.security.test_local_network import probe
from tests.support import ControlPlane, free_port

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def docker_cp(tmp_path_factory: pytest.TempPathFactory, model: StubAnthropic, agent_image: str,
              docker_client: Any) -> Iterator[ControlPlane]:
    cp = ControlPlane(tmp_path_factory.mktemp("sec-docker"), {
        "ANTHROPIC_BASE_URL": model.url, "CONTAINER_PROVIDER": "docker", "AGENT_IMAGE": agent_image,
        "RELAY_PORT": str(free_port()), "EGRESS_PORT": str(free_port())}).start()
    yield cp
    cp.stop()
    cleanup_instance(docker_client, cp.docker_instance)


@pytest.fixture(scope="module")
def dagent(docker_cp: ControlPlane) -> Agent:
    return launch(docker_cp, config={"id": "sec-box", "name": "Sec box", "allowed_tools": ["Bash"],
                                     "resource_limits": {"memory_limit": "512m"}})


@pytest.fixture(scope="module")
def gateway(docker_client: Any, dagent: Agent) -> str:
    network = docker_client.networks.get(NETWORK)
    return str(network.attrs["IPAM"]["Config"][0]["Gateway"])


@pytest.fixture()
def host_service(gateway: str) -> Iterator[int]:
    """A host service listening on every address, as a careless one would."""
    with _serving_on(0) as port:
        yield port


@contextlib.contextmanager
def _serving_on(port: int) -> Iterator[int]:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(8)
    port = int(server.getsockname()[1])
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conn.sendall(b"host-secret\n")
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join()
    server.close()


def test_the_agents_network_is_internal_and_nothing_is_published(docker_client: Any, dagent: Agent) -> None:
    assert docker_client.networks.get(NETWORK).attrs["Internal"] is True
    container = docker_client.containers.get(dagent.row["machine_id"])
    assert not (container.attrs["NetworkSettings"].get("Ports") or {}).get("8080/tcp")
    assert dagent.launch["enforced"]["network"].startswith("internal Docker network")


def test_host_services_are_out_of_reach(docker_cp: ControlPlane, dagent: Agent, gateway: str,
                                        host_service: int, model: StubAnthropic) -> None:
    model_port = int(model.url.rsplit(":", 1)[1])
    results = probe(dagent, [(gateway, host_service), (gateway, docker_cp.port), (gateway, model_port),
                             (gateway, 22), ("127.0.0.1", docker_cp.port), ("172.17.0.1", host_service)])
    assert "CONNECTED" not in results.values(), results


def test_other_containers_are_out_of_reach(docker_cp: ControlPlane, dagent: Agent, docker_client: Any) -> None:
    other = launch(docker_cp, config={"id": "sec-box-2", "name": "Sec box 2", "allowed_tools": ["Bash"],
                                      "resource_limits": {"memory_limit": "512m"}})
    networks = docker_client.containers.get(other.row["machine_id"]).attrs["NetworkSettings"]["Networks"]
    address = networks[NETWORK]["IPAddress"]
    results = probe(dagent, [(address, 8080), (address, 22)])
    assert "CONNECTED" not in results.values(), results


def test_a_copied_relay_token_is_refused_from_another_container(docker_cp: ControlPlane, dagent: Agent,
                                                                model: StubAnthropic) -> None:
    other = launch(docker_cp, config={"id": "sec-box-3", "name": "Sec box 3", "allowed_tools": ["Bash"],
                                      "resource_limits": {"memory_limit": "512m"}})
    steal_relay_token(dagent, other, model)


def test_relay_configs_cannot_use_the_egress_proxy(docker_cp: ControlPlane, dagent: Agent, gateway: str) -> None:
    egress_port = int(docker_cp.env["EGRESS_PORT"])
    out = dagent.run(f"env | grep -ic _proxy; curl -s -m 10 -x http://{gateway}:{egress_port} "
                     "http://203.0.113.9/ -w ' %{http_code}'")
    assert out.splitlines()[0].strip() == "0", out
    assert "no internet access" in out and "403" in out, out


def test_internet_configs_reach_only_public_addresses(docker_cp: ControlPlane, gateway: str) -> None:
    agent = launch(docker_cp, config={"id": "sec-net", "name": "Sec net", "allowed_tools": ["Bash"],
                                      "network": "internet", "resource_limits": {"memory_limit": "512m"}})
    assert agent.launch["enforced"]["network"].endswith("egress proxy")
    urls = [f"http://{gateway}:{docker_cp.port}/health", "http://169.254.169.254/", "http://10.1.2.3/",
            f"https://{gateway}:{docker_cp.env['RELAY_PORT']}/"]
    out = agent.run("; ".join(f"curl -s -m 10 -o /dev/null -w '%{{http_code}} {u}\\n' '{u}' || echo 'fail {u}'"
                              for u in urls))
    for url in urls:
        assert f"200 {url}" not in out, out
    assert "egress refused" in agent.run("curl -s -m 10 http://169.254.169.254/")


def test_setuid_is_inert_in_a_container(dagent: Agent, docker_client: Any) -> None:
    out = dagent.run("cp /usr/bin/id /workspace/id; chmod 4755 /workspace/id; /workspace/id -u; "
                     "stat -c %u /workspace/id")
    uid, owner = out.split()[-2:]
    assert uid == "1000" and owner == "1000", out


def test_no_tool_can_read_the_machine_token(dagent: Agent) -> None:
    """pid 1 (tini) holds the container's environment, token included: it stays root, and
    the machine agent makes itself unreadable, so no process a tool can read holds it."""
    out = dagent.run(TOKEN_PROBE)
    assert "probe-done" in out and "agent=" in out, out
    assert "/environ" not in out, out


@pytest.mark.skipif(os.geteuid() != 0, reason="the host firewall exists only for a root control plane")
def test_a_gone_control_planes_ports_are_not_left_open_to_agents(
        tmp_path_factory: pytest.TempPathFactory, model: StubAnthropic, agent_image: str, docker_client: Any,
        dagent: Agent, gateway: str) -> None:
    """Each control plane opens its relay and egress ports to agents; a rule left behind
    would open that port to whatever host service binds it later. One stopped cleanly and
    one killed (its rules swept by the next start) must leave nothing open."""
    ports: dict[str, int] = {}
    for way in ("stopped", "killed", "sweeper"):
        ports[way] = free_port()
        cp = ControlPlane(tmp_path_factory.mktemp(f"sec-fw-{way}"), {
            "ANTHROPIC_BASE_URL": model.url, "CONTAINER_PROVIDER": "docker", "AGENT_IMAGE": agent_image,
            "RELAY_PORT": str(ports[way]), "EGRESS_PORT": str(free_port())}).start()
        if way == "killed":
            cp.kill9()
        else:
            cp.stop()
        cleanup_instance(docker_client, cp.docker_instance)
    with _serving_on(ports["stopped"]), _serving_on(ports["killed"]):
        results = probe(dagent, [(gateway, ports["stopped"]), (gateway, ports["killed"])])
    assert "CONNECTED" not in results.values(), results
