"""Findings 3, 4, 5 and 6 on the local provider: an agent reaches nothing but its own relay
(and, with ``network: internet``, public addresses through the egress proxy)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from control.providers.sandbox import RELAY_PORT, MachineDirs
from stubs.anthropic import StubAnthropic
from tests.security.conftest import Agent, launch, post_on_relay_socket
from tests.support import ControlPlane, processes_with

PROBE = """python3 - <<'PY'
import json, socket
results = {}
for host, port in json.loads('''TARGETS'''):
    s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
    s.settimeout(3)
    try:
        s.connect((host, port)); results[f"{host}:{port}"] = "CONNECTED"
    except OSError as exc:
        results[f"{host}:{port}"] = type(exc).__name__
    finally:
        s.close()
print("RESULT " + json.dumps(results))
PY"""


def probe(agent: Agent, targets: list[tuple[str, int]]) -> dict[str, str]:
    out = agent.run(PROBE.replace("TARGETS", json.dumps(targets)))
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    return dict(json.loads(line[len("RESULT "):]))


def host_addresses() -> list[str]:
    """Every address of this host an agent might try, loopback and the rest."""
    found = {"127.0.0.1"}
    for line in Path("/proc/net/fib_trie").read_text().splitlines():
        parts = line.split()
        if parts and parts[-1].count(".") == 3:
            found.add(parts[-1])
    return sorted(a for a in found if not a.startswith(("0.", "255.")) and not a.endswith(".255"))


def test_nothing_on_the_host_is_reachable(agent: Agent, model: StubAnthropic) -> None:
    api_port = agent.cp.port
    model_port = int(model.url.rsplit(":", 1)[1])
    targets = [(address, port) for address in host_addresses() for port in (api_port, model_port, 22)]
    targets += [("::1", api_port)]
    results = probe(agent, targets)
    assert results and not [t for t, r in results.items() if r == "CONNECTED"], results


def test_another_machine_is_unreachable(local_cp: ControlPlane, agent: Agent) -> None:
    other = launch(local_cp)
    other_dirs = MachineDirs(other.machine_dir)
    out = agent.run(f"ls -la {other.machine_dir} 2>&1; ls /run/agcluster; cat /proc/net/unix | wc -l")
    assert "workspace" not in out and "relay.sock" in out
    # Its relay socket is not in this sandbox, and its agent socket lives outside every sandbox.
    assert str(other_dirs.root) not in agent.run("find / -name 'agent.sock' 2>/dev/null; echo done")


def test_the_relay_forwards_only_the_messages_api(agent: Agent, model: StubAnthropic) -> None:
    model.reset()
    paths = ["v1/models", "v1/files", "v1/organizations/me", "v1/messages/batches", "_stub/script",
             "./v1/messages", "v1/x/../messages", "v1//messages", "%2e/v1/messages"]
    command = "; ".join(
        f"curl -s -o /dev/null -w '%{{http_code}} {p}\\n' -X POST -H \"x-api-key: $ANTHROPIC_API_KEY\" "
        f"--path-as-is 'http://127.0.0.1:{RELAY_PORT}/relay/{p}'" for p in paths)
    out = agent.run(command)
    for path in paths:
        assert f"404 {path}" in out, out
    # None of them reached the upstream with the user's key.
    assert not [r for r in model.requests() if not r["path"].startswith("/v1/messages")], model.requests()
    assert not [r for r in model.requests() if r["path"] != "/v1/messages"
                and r["path"] != "/v1/messages/count_tokens"]


def test_a_relay_token_is_useless_outside_its_machine(local_cp: ControlPlane, agent: Agent,
                                                      model: StubAnthropic) -> None:
    token = agent.run("echo TOKEN=$ANTHROPIC_API_KEY").split("TOKEN=")[1].split()[0]
    assert token.startswith("agr.")
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
    headers = {"x-api-key": token, "content-type": "application/json", "anthropic-version": "2023-06-01"}
    # The public API does not serve the relay at all.
    public = requests.post(f"{local_cp.url}/relay/v1/messages", data=body, headers=headers, timeout=10)
    assert public.status_code == 404
    # Another machine's relay socket refuses it: the socket names its machine.
    other = launch(local_cp)
    before = len(model.requests(path="/v1/messages"))
    assert post_on_relay_socket(relay_socket_of(other), body, headers) == 401
    assert len(model.requests(path="/v1/messages")) == before
    # Its own socket (what the machine itself reaches) takes it, which is the point.
    assert post_on_relay_socket(relay_socket_of(agent), body, headers) == 200
    assert len(model.requests(path="/v1/messages")) == before + 1


def relay_socket_of(agent: Agent) -> Path:
    """The host side of the relay socket bound into this machine, read off its sandbox's
    command line (``--ro-bind <dir> /run/agcluster``)."""
    for pid in processes_with("bwrap", f"/machines/{agent.row['machine_key']}/"):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        for i, arg in enumerate(argv[:-2]):
            if arg == "--ro-bind" and argv[i + 2] == "/run/agcluster":
                return Path(argv[i + 1]) / "relay.sock"
    raise AssertionError("no sandbox found for this machine")


@pytest.fixture(scope="module")
def internet_agent(local_cp: ControlPlane) -> Agent:
    return launch(local_cp, config_id="research-agent")


def test_relay_configs_have_no_egress_at_all(agent: Agent) -> None:
    out = agent.run("env | grep -ic _proxy; curl -s -m 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:41002/ "
                    "|| echo no-proxy")
    assert out.splitlines()[0].strip() == "0" and "no-proxy" in out, out


@pytest.fixture(scope="module")
def internet_bash(local_cp: ControlPlane) -> Agent:
    """research-agent has no Bash; the same network policy with a shell."""
    return launch(local_cp, config={"id": "net-shell", "name": "Net shell", "allowed_tools": ["Bash"],
                                    "network": "internet"})


def test_internet_egress_refuses_everything_that_is_not_public(internet_bash: Agent, model: StubAnthropic) -> None:
    assert internet_bash.launch["enforced"]["network"].endswith("egress proxy")
    model_port = int(model.url.rsplit(":", 1)[1])
    urls = [f"http://127.0.0.1:{internet_bash.cp.port}/health", f"http://localhost:{model_port}/",
            "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://[::1]:22/",
            f"https://127.0.0.1:{internet_bash.cp.port}/", "http://0.0.0.0/", "http://100.100.100.200/"]
    command = "; ".join(f"curl -s -m 10 -o /dev/null -w '%{{http_code}} {u}\\n' '{u}' || echo 'fail {u}'"
                        for u in urls)
    out = internet_bash.run(command)
    for url in urls:
        assert f"403 {url}" in out or f"fail {url}" in out or f"000 {url}" in out, out
        assert f"200 {url}" not in out, out
    # The proxy's own refusal message, for a plain-HTTP request:
    detail = internet_bash.run("curl -s -m 10 http://169.254.169.254/")
    assert "egress refused" in detail and "link-local" in detail, detail


def test_internet_configs_still_have_no_raw_network(internet_bash: Agent) -> None:
    results = probe(internet_bash, [("1.1.1.1", 443), ("127.0.0.1", internet_bash.cp.port)])
    assert "CONNECTED" not in results.values(), results
