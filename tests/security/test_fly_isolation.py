"""The attacks on the Fly path (stubs.fly's docker backend: real containers on an IPv6
network, as Fly's 6PN): an agent reaches the control plane's relay and nothing else of it,
and a relay token copied to another machine is refused there. (The machine agent refusing
every peer but the control plane is proven in tests/e2e/test_fly_flow.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stubs.anthropic import StubAnthropic
from stubs.fly import StubFly
from tests.e2e.test_machine_token_hidden import PROBE as TOKEN_PROBE
from tests.fly_support import config, fly_control_plane, key
from tests.security.conftest import Agent, steal_relay_token
from tests.security.test_local_network import probe
from tests.support import ControlPlane

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def fly_cp(fly: StubFly, agent_image: str, model: StubAnthropic,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = fly_control_plane(tmp_path_factory.mktemp("sec-fly"), fly, model, agent_image)
    yield plane
    plane.stop()


def fly_agent(cp: ControlPlane) -> Agent:
    api_key = key()
    body = cp.launch(api_key, config=config("1g"))
    return Agent(cp, body["session_id"], api_key, body)


def test_the_control_planes_api_is_out_of_reach(fly_cp: ControlPlane, fly: StubFly,
                                                model: StubAnthropic) -> None:
    agent = fly_agent(fly_cp)
    gateway = fly.gateway
    model_port = int(model.url.rsplit(":", 1)[1])
    relay_port = int(fly_cp.env["RELAY_PORT"])
    results = probe(agent, [(gateway, fly_cp.port), (gateway, model_port), ("127.0.0.1", fly_cp.port),
                            (gateway, relay_port)])
    reached = {target for target, result in results.items() if result == "CONNECTED"}
    # Only the relay answers, on the network's gateway: the API and the model are not there.
    assert reached == {f"{gateway}:{relay_port}"}, results
    # Fly cannot stop a machine's own internet egress; the launch says so instead of pretending.
    assert any("network: relay" in warning for warning in agent.launch["warnings"]), agent.launch


def test_a_relay_token_copied_to_another_machine_is_refused(fly_cp: ControlPlane, model: StubAnthropic) -> None:
    victim, thief = fly_agent(fly_cp), fly_agent(fly_cp)
    steal_relay_token(victim, thief, model)
    for agent in (victim, thief):
        assert fly_cp.delete(f"/api/agents/sessions/{agent.sid}", agent.key).status_code == 200


def test_no_tool_can_read_the_machine_token(fly_cp: ControlPlane) -> None:
    agent = fly_agent(fly_cp)
    out = agent.run(TOKEN_PROBE)
    assert "probe-done" in out and "agent=" in out, out
    assert "/environ" not in out, out
    assert fly_cp.delete(f"/api/agents/sessions/{agent.sid}", agent.key).status_code == 200
