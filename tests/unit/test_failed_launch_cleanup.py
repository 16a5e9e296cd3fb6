"""A machine whose removal fails is never forgotten: the janitor retries until it is gone.

A small in-memory provider stands in for an outage (the Fly fault storm found this leak);
the real providers are exercised by the e2e suites.
"""

from pathlib import Path

import pytest

from control.configs import ConfigCatalog
from control.providers.base import Machine, MachineSpec, Provider, ProviderError
from control.quotas import Quotas
from control.secrets import KeyVault, TokenMinter
from control.sessions import Caller, SessionService
from control.settings import from_env
from control.store import Store
from wire.errors import ApiError


class FlakyProvider(Provider):
    name = "flaky"

    def __init__(self) -> None:
        self.machines: dict[str, Machine] = {}
        self.destroy_failures = 3  # more than the immediate retries

    def start(self, spec: MachineSpec) -> Machine:
        machine = Machine(f"m-{spec.session_id}", "http://127.0.0.1:9", "started", spec.session_id)
        self.machines[machine.machine_id] = machine
        return machine  # the configure call that follows fails: nothing listens on :9

    def destroy(self, machine_id: str) -> None:
        if self.destroy_failures:
            self.destroy_failures -= 1
            raise ProviderError("the platform is having a bad minute")
        self.machines.pop(machine_id, None)

    def inspect(self, machine_id: str) -> Machine | None:
        return self.machines.get(machine_id)

    def list_machines(self) -> list[Machine]:
        return list(self.machines.values())

    def relay_url(self) -> str:
        return "http://127.0.0.1:9/relay"


def test_failed_launch_with_failed_cleanup_is_retried_until_removed(tmp_path: Path) -> None:
    settings = from_env({"DATABASE_PATH": str(tmp_path / "db.sqlite")})
    store = Store(settings.database_path)
    provider = FlakyProvider()
    service = SessionService(settings=settings, store=store, provider=provider, catalog=ConfigCatalog(store),
                             vault=KeyVault(), minter=TokenMinter(b"k" * 32), quotas=Quotas(settings, store))
    with pytest.raises(ApiError):
        service.launches.launch(Caller(), api_key="sk-ant-test-key-123", config_id="code-assistant")
    (row,) = store.list_sessions()
    assert row.status == "deleting" and len(provider.machines) == 1
    provider.destroy_failures = 0  # the outage is over
    assert service.lifecycle.retry_deletions() == 1
    assert provider.machines == {} and store.list_sessions() == []


def test_a_brief_outage_is_ridden_out_at_once(tmp_path: Path) -> None:
    settings = from_env({"DATABASE_PATH": str(tmp_path / "db.sqlite")})
    store = Store(settings.database_path)
    provider = FlakyProvider()
    provider.destroy_failures = 1
    service = SessionService(settings=settings, store=store, provider=provider, catalog=ConfigCatalog(store),
                             vault=KeyVault(), minter=TokenMinter(b"k" * 32), quotas=Quotas(settings, store))
    with pytest.raises(ApiError):
        service.launches.launch(Caller(), api_key="sk-ant-test-key-123", config_id="code-assistant")
    assert provider.machines == {} and store.list_sessions() == []
