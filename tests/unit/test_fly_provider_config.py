"""What a session machine is on Fly: guest sizes, addressing, and the machine config."""

from __future__ import annotations

import itertools

import pytest

from control.providers.base import MACHINE_TOKEN_ENV, MachineSpec, ProviderError, ResourceLimits
from control.providers.fly import Guest, FlyProvider, guest_for, machine_address
from control.providers.fly_api import FlyMachinesClient
from stubs.fly.state import StubError, validate_guest
from wire.errors import ValidationFailed


@pytest.mark.parametrize(("cpus", "memory", "expected"), [
    (1, 256, Guest("shared", 1, 256)),
    (1, 1000, Guest("shared", 1, 1024)),           # memory rounds up to 256 MB steps
    (0.5, 512, Guest("shared", 1, 512)),           # fractional CPUs round up
    (2, 4096, Guest("shared", 2, 4096)),           # the settings' defaults
    (1, 4096, Guest("shared", 2, 4096)),           # memory beyond 2 GB per shared CPU needs more CPUs
    (3, 512, Guest("shared", 4, 1024)),            # 3 is not sold; memory raised to the per-CPU minimum
    (8, 16384, Guest("shared", 8, 16384)),
    (8, 20000, Guest("performance", 8, 20224)),    # beyond shared: performance CPUs
    (10, 4096, Guest("performance", 16, 32768)),
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
                {"cpu_kind": "performance", "cpus": 1, "memory_mb": 1024}, {"cpu_kind": "gpu"}):
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
    assert config["env"] == {"AGCLUSTER_SESSION_ID": "sess-1", MACHINE_TOKEN_ENV: "machine-token", "MAX_UPLOAD_MB": "50"}
    assert config["metadata"] == {"agcluster_role": "session-machine", "agcluster_session": "sess-1",
                                  "agcluster_agent": "agent-1"}
    assert config["services"] == []  # no public services: reached over 6PN only
    assert config["restart"] == {"policy": "no"} and config["auto_destroy"] is False


def test_a_key_in_the_environment_is_refused(provider: FlyProvider) -> None:
    spec = MachineSpec("s", "a", "t", env={"ANTHROPIC_API_KEY": "sk-ant-xyz"})
    with pytest.raises(ProviderError, match="ANTHROPIC_API_KEY"):
        provider.machine_config(spec)


def test_a_per_session_image_wins(provider: FlyProvider) -> None:
    assert provider.machine_config(MachineSpec("s", "a", "t", image="custom:1"))["image"] == "custom:1"


def test_validate_resources_is_the_launch_time_check(provider: FlyProvider) -> None:
    provider.validate_resources(ResourceLimits(cpus=2, memory_mb=4096))
    with pytest.raises(ValidationFailed):
        provider.validate_resources(ResourceLimits(cpus=64, memory_mb=4096))
