"""What a session machine is on Fly: guest sizes, addressing, and the machine config."""

from __future__ import annotations

import itertools
import re

import pytest

from control.providers.base import MachineSpec, ProviderError, ResourceLimits
from control.providers.fly import (
    CONTROL_PLANE_ENV,
    FlyProvider,
    Guest,
    can_suspend,
    guest_for,
    machine_address,
    machine_name,
    normalize_ip,
    session_of_volume,
    volume_gb,
    volume_name,
)
from control.providers.fly_api import FlyMachinesClient
from stubs.fly.state import StubError, validate_guest
from wire.errors import ValidationFailed
from wire.protocol import MACHINE_TOKEN_ENV


@pytest.mark.parametrize(("cpus", "memory", "expected"), [
    (1, 256, Guest("shared", 1, 256)),
    (1, 1000, Guest("shared", 1, 1024)),           # memory rounds up to 256 MB steps
    (0.5, 512, Guest("shared", 1, 512)),           # fractional CPUs round up
    (2, 4096, Guest("shared", 2, 4096)),           # the settings' defaults
    (1, 4096, Guest("shared", 2, 4096)),           # memory beyond 2 GB per shared CPU needs more CPUs
    (3, 512, Guest("shared", 4, 1024)),            # 3 is not sold; memory raised to the per-CPU minimum
    (8, 16384, Guest("shared", 8, 16384)),
    (8, 20000, Guest("performance", 8, 20480)),    # beyond shared: performance CPUs, 1024 MB steps
    (10, 4096, Guest("performance", 10, 20480)),   # fly-go's presets include performance-10x
    (3, 20000, Guest("performance", 4, 20480)),    # 3 is not sold there either
    (12, 24576, Guest("performance", 12, 24576)),
    (16, 131072, Guest("performance", 16, 131072)),
])
def test_limits_map_onto_the_cheapest_valid_size(cpus: float, memory: int, expected: Guest) -> None:
    assert guest_for(ResourceLimits(cpus=cpus, memory_mb=memory)) == expected


@pytest.mark.parametrize(("cpus", "memory"), [(17, 4096), (16, 131073), (2, 200_000)])
def test_impossible_limits_are_a_validation_error_naming_the_sizes(cpus: float, memory: int) -> None:
    with pytest.raises(ValidationFailed) as err:
        guest_for(ResourceLimits(cpus=cpus, memory_mb=memory))
    assert err.value.status == 400
    assert "shared CPUs come in 1, 2, 4, 6 or 8" in err.value.message
    assert "performance CPUs in 1, 2, 4, 6, 8, 10, 12, 14 or 16" in err.value.message
    assert "resource_limits" in err.value.details


def test_every_size_we_choose_is_one_the_stand_in_accepts() -> None:
    """The stand-in encodes Fly's rules independently; our choices must pass them all."""
    for cpus, memory in itertools.product([0.25, 1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16],
                                          [128, 256, 300, 1024, 2048, 3000, 4096, 8192, 16384, 40000, 131072]):
        try:
            guest = guest_for(ResourceLimits(cpus=cpus, memory_mb=memory))
        except ValidationFailed:
            continue
        assert guest.cpus >= cpus and guest.memory_mb >= memory
        validate_guest(guest.as_config())  # raises StubError when Fly would refuse it


def test_the_stand_in_refuses_what_fly_refuses() -> None:
    for bad in ({"cpus": 3}, {"cpus": 1, "memory_mb": 300}, {"cpus": 1, "memory_mb": 4096},
                {"cpu_kind": "performance", "cpus": 1, "memory_mb": 1024}, {"cpu_kind": "gpu"},
                {"cpu_kind": "performance", "cpus": 2, "memory_mb": 4352},   # not a 1024 MB step
                {"cpu_kind": "performance", "cpus": 3, "memory_mb": 6144}):
        with pytest.raises(StubError) as err:
            validate_guest(bad)
        assert err.value.status == 400


def test_addresses_bracket_ipv6_and_leave_ipv4_plain() -> None:
    assert machine_address("fdaa:0:1:a7b:1f:2:3:4") == "http://[fdaa:0:1:a7b:1f:2:3:4]:8080"
    assert machine_address("127.0.0.7") == "http://127.0.0.7:8080"
    with pytest.raises(ProviderError):
        machine_address("")


@pytest.fixture()
def provider() -> FlyProvider:
    api = FlyMachinesClient("agents", "FlyV1 fm2_test", "http://127.0.0.1:9")
    return FlyProvider(api, image="registry.fly.io/agents:v1", relay_url="http://control.internal:8000/relay")


def test_machine_config_is_private_tagged_and_free_of_secrets(provider: FlyProvider) -> None:
    spec = MachineSpec("sess-1", "agent-1", "machine-token", resources=ResourceLimits(cpus=2, memory_mb=4096),
                       env={"AGCLUSTER_SESSION_ID": "sess-1"})
    config = provider.machine_config(spec)
    assert config["image"] == "registry.fly.io/agents:v1"
    assert config["guest"] == {"cpu_kind": "shared", "cpus": 2, "memory_mb": 4096}
    # CONTROL_PLANE_ENV is the relay URL's host: who may call the agent.
    assert config["env"] == {"AGCLUSTER_SESSION_ID": "sess-1", MACHINE_TOKEN_ENV: "machine-token",
                             "MAX_UPLOAD_MB": "50", CONTROL_PLANE_ENV: "control.internal"}
    assert config["metadata"] == {"agcluster_role": "session-machine", "agcluster_session": "sess-1",
                                  "agcluster_agent": "agent-1"}
    assert config["services"] == []  # no public services: reached over 6PN only
    assert config["restart"] == {"policy": "no"} and config["auto_destroy"] is False
    assert "mounts" not in config
    assert provider.machine_config(spec, "vol_abc")["mounts"] == [{"volume": "vol_abc", "path": "/workspace"}]


def test_a_key_in_the_environment_is_refused(provider: FlyProvider) -> None:
    spec = MachineSpec("s", "a", "t", env={"ANTHROPIC_API_KEY": "sk-ant-xyz"})
    with pytest.raises(ProviderError, match="ANTHROPIC_API_KEY"):
        provider.machine_config(spec)


def test_a_per_session_image_wins(provider: FlyProvider) -> None:
    assert provider.machine_config(MachineSpec("s", "a", "t", image="custom:1"))["image"] == "custom:1"


def test_validate_resources_is_the_launch_time_check(provider: FlyProvider) -> None:
    provider.validate_resources(ResourceLimits(cpus=2, memory_mb=4096, storage_mb=500 * 1024))
    with pytest.raises(ValidationFailed):
        provider.validate_resources(ResourceLimits(cpus=64, memory_mb=4096))
    with pytest.raises(ValidationFailed) as err:  # more than a Fly Volume holds
        provider.validate_resources(ResourceLimits(cpus=2, memory_mb=4096, storage_mb=500 * 1024 + 1))
    assert "at most 500 GB" in err.value.message and err.value.details["resource_limits"]["max_storage_gb"] == 500


# --------------------------------------------------------------------------- workspace volumes
@pytest.mark.parametrize(("storage_mb", "gb"), [(None, 1), (1, 1), (1024, 1), (1025, 2), (10_240, 10)])
def test_the_volume_is_the_storage_limit_rounded_up_to_whole_gb(storage_mb: int | None, gb: int) -> None:
    assert volume_gb(ResourceLimits(storage_mb=storage_mb)) == gb


def test_volume_names_fit_flys_rules_and_name_their_session_back() -> None:
    for key in ("3f2a6c1e-8b7d-4e2f-9a1b-0c3d4e5f6a7b", "pool-0123456789abcdef0123"):
        name = volume_name(key)
        assert re.fullmatch(r"[a-z0-9_]{1,30}", name), name
        assert session_of_volume(name) == key
    odd = volume_name("Some Other Key/with stuff")
    assert re.fullmatch(r"[a-z0-9_]{1,30}", odd) and session_of_volume(odd) is None
    assert volume_name("3F2A6C1E-8B7D-4E2F-9A1B-0C3D4E5F6A7B") != volume_name("3f2a6c1e-8b7d-4e2f-9a1b-0c3d4e5f6a7b")
    assert session_of_volume("data") is None and session_of_volume("ws_u") is None


def test_machine_names_never_repeat_and_fit_flys_rules() -> None:
    key = "3f2a6c1e-8b7d-4e2f-9a1b-0c3d4e5f6a7b"
    names = {machine_name(key) for _ in range(50)}
    assert len(names) == 50  # a machine still being destroyed never holds the next one's name
    assert all(re.fullmatch(r"agcluster-3f2a6c1e-8b7d-4e2f-9a1b-0c3d4e5f6a7b-[0-9a-f]{6}", n) for n in names)
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", machine_name("X" * 200))


@pytest.mark.parametrize(("config", "suspends"), [
    ({"guest": {"memory_mb": 2048}}, True),
    ({"guest": {"memory_mb": 256}}, True),
    ({"guest": {"memory_mb": 4096}}, False),                          # the default 4 GB session: stop
    ({"guest": {"memory_mb": 1024}, "init": {"swap_size_mb": 512}}, False),
    ({"guest": {"memory_mb": 1024}, "schedule": "hourly"}, False),
    ({"guest": {"memory_mb": 1024, "gpus": 1}}, False),
])
def test_only_what_fly_can_suspend_is_suspended(config: dict, suspends: bool) -> None:
    assert can_suspend(config) is suspends


def test_peer_addresses_have_one_spelling() -> None:
    assert normalize_ip("fdaa:0:1:a7b:0:0:0:2") == "fdaa:0:1:a7b::2"
    assert normalize_ip("[fdaa::2]") == "fdaa::2"
    assert normalize_ip("::ffff:127.0.0.5") == "127.0.0.5"
    assert normalize_ip("fe80::1%eth0") == "fe80::1"
    assert normalize_ip("not-an-ip") is None


def test_machines_are_addressed_by_internal_name_when_it_resolves(provider: FlyProvider) -> None:
    from control.providers.fly_api import FlyMachine

    machine = FlyMachine(id="3d8d413b29d089", private_ip="fdaa:0:1::3")
    asked: list[str] = []

    def resolver(name: str) -> bool:
        asked.append(name)
        return True

    on_fly = FlyProvider(provider.api, image="i", relay_url="http://control.internal:8001/relay", internal_dns=True,
                         resolver=resolver)
    assert on_fly._address(machine) == "http://3d8d413b29d089.vm.agents.internal:8080"
    assert asked == ["3d8d413b29d089.vm.agents.internal"]
    unresolved = FlyProvider(provider.api, image="i", relay_url="http://control.internal:8001/relay",
                             internal_dns=True, resolver=lambda name: False)
    assert unresolved._address(machine) == "http://[fdaa:0:1::3]:8080"  # the private IP when DNS has no answer
    assert provider._address(machine) == "http://[fdaa:0:1::3]:8080"    # off Fly: no lookup at all


def test_the_relay_listens_on_the_control_planes_own_6pn_address(monkeypatch: pytest.MonkeyPatch,
                                                                 provider: FlyProvider) -> None:
    assert provider.relay_listen_address() == ("control.internal", 8000)  # off Fly: RELAY_URL's host and port
    on_fly = FlyProvider(provider.api, image="i", relay_url="http://agcluster.internal:8001/relay", internal_dns=True)
    monkeypatch.setenv("FLY_PRIVATE_IP", "fdaa:0:1:a7b:9:2:3:4")
    assert on_fly.relay_listen_address() == ("fdaa:0:1:a7b:9:2:3:4", 8001)  # never <app>.internal: all instances


def test_what_fly_enforces_is_said_and_what_it_cannot_is_none(provider: FlyProvider) -> None:
    enforced = provider.enforcement()
    assert enforced["memory"] and enforced["cpu"] and enforced["storage"]
    assert enforced["pids"] is None and enforced["network"] is None  # a Fly Machine reaches the internet directly


def test_relay_url_and_relay_port_must_agree() -> None:
    from control.settings import from_env

    base = {"CONTAINER_PROVIDER": "fly_machines", "FLY_API_TOKEN": "fm2_x", "AGCLUSTER_AGENTS_APP": "agents"}
    settings = from_env({**base, "RELAY_URL": "http://agcluster.internal:8001/relay", "RELAY_PORT": "8001"})
    assert FlyProvider.from_settings(settings).relay_listen_address()[1] == 8001
    if hasattr(settings, "relay_port"):  # RELAY_PORT is the relay listener's setting
        wrong = from_env({**base, "RELAY_URL": "http://agcluster.internal:8000/relay", "RELAY_PORT": "8001"})
        with pytest.raises(ProviderError, match="must be RELAY_PORT"):
            FlyProvider.from_settings(wrong)
