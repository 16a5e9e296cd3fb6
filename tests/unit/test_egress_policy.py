"""Which addresses the egress proxy connects to: public unicast only."""

from __future__ import annotations

import pytest

from control.relay.egress import refusal, resolve_public


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.1", "::1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "fe80::1",
    "100.64.0.1", "0.0.0.0", "::", "224.0.0.1", "ff02::1", "fd00::1", "fdaa:0:1::3", "240.0.0.1",
    "::ffff:127.0.0.1", "::ffff:10.1.2.3", "2002:7f00:1::", "64:ff9b::a00:1", "198.18.0.1", "192.0.2.1",
])
def test_non_public_addresses_are_refused(address: str) -> None:
    assert refusal(address) is not None


@pytest.mark.parametrize("address", ["1.1.1.1", "151.101.0.223", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(address) is None


def test_the_control_planes_own_public_address_is_refused() -> None:
    assert refusal("203.0.114.9", frozenset({"203.0.114.9"})) is not None


def test_a_name_is_judged_by_every_address_it_resolves_to() -> None:
    info, reason = resolve_public("localhost", 443)
    assert info is None and reason is not None and "loopback" in reason
    assert resolve_public("127.0.0.1", 0)[1] is not None
