"""A machine whose removal fails is never forgotten: the janitor retries until it is gone.

A small in-memory provider stands in for an outage (the Fly fault storm found this leak);
the real providers are exercised by the e2e suites.
"""

from pathlib import Path

import pytest

from control.providers.base import ProviderError
from control.sessions import Caller
from tests.unit.fakes import FakeProvider, build_service
from wire.errors import ApiError


class FlakyProvider(FakeProvider):
    """Its machines never answer (nothing listens on :9, so configure fails) and removing
    them fails a few times first."""

    name = "flaky"

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9")
        self.destroy_failures = 3  # more than the immediate retries

    def destroy(self, machine_id: str) -> None:
        if self.destroy_failures:
            self.destroy_failures -= 1
            raise ProviderError("the platform is having a bad minute")
        super().destroy(machine_id)


def test_failed_launch_with_failed_cleanup_is_retried_until_removed(tmp_path: Path) -> None:
    provider = FlakyProvider()
    service = build_service(tmp_path, provider)
    store = service.store
    with pytest.raises(ApiError):
        service.launches.launch(Caller(), api_key="sk-ant-test-key-123", config_id="code-assistant")
    (row,) = store.list_sessions()
    assert row.status == "deleting" and len(provider.machines) == 1
    provider.destroy_failures = 0  # the outage is over
    assert service.lifecycle.retry_deletions() == 1
    assert provider.machines == {} and store.list_sessions() == []


def test_a_brief_outage_is_ridden_out_at_once(tmp_path: Path) -> None:
    provider = FlakyProvider()
    provider.destroy_failures = 1
    service = build_service(tmp_path, provider)
    store = service.store
    with pytest.raises(ApiError):
        service.launches.launch(Caller(), api_key="sk-ant-test-key-123", config_id="code-assistant")
    assert provider.machines == {} and store.list_sessions() == []
