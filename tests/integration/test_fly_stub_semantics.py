"""The stand-in speaks Fly's semantics: shapes, states, waits, 412s, leases, auth, faults.

These run the real HTTP stand-in and the real client with a fake backend (no processes),
so they are fast; tests/integration/test_fly_provider.py runs real machines.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from control.providers.fly_api import (
    NO_RATE_LIMIT,
    FlyBadRequest,
    FlyCapacityError,
    FlyMachinesClient,
    FlyNotFound,
    FlyPreconditionFailed,
    FlyRateLimited,
    FlyServerError,
    FlyUnauthorized,
    FlyWaitTimeout,
    LeaseHeld,
    RetryPolicy,
)
from stubs.fly import StubFly
from stubs.fly.backends import RunSpec
from stubs.fly.server import resolve
from stubs.fly.state import StubError, parse_duration

TOKEN = "test-token"
APP = "agcluster-test"
CONFIG: dict[str, Any] = {"image": "agcluster/agent:latest",
                          "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
                          "metadata": {"agcluster_session": "s1"}, "env": {"A": "1"}, "restart": {"policy": "no"}}


class FakeHandle:
    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.exited = threading.Event()
        self.code = 0
        self.frozen = False


class FakeBackend:
    """Runs nothing; lets a test crash a machine or hold a stop halfway."""

    name = "fake"

    def __init__(self) -> None:
        self.handles: list[FakeHandle] = []
        self.stop_gate: threading.Event | None = None
        self.volumes: set[str] = set()

    def create_volume(self, volume_id: str) -> None:
        self.volumes.add(volume_id)

    def destroy_volume(self, volume_id: str) -> None:
        self.volumes.discard(volume_id)

    def start(self, spec: RunSpec) -> FakeHandle:
        handle = FakeHandle(spec)
        self.handles.append(handle)
        return handle

    def wait_exit(self, handle: FakeHandle) -> int:
        handle.exited.wait()
        return handle.code

    def stop(self, handle: FakeHandle, sig: str, timeout: float) -> None:
        if self.stop_gate is not None:
            self.stop_gate.wait()
        handle.exited.set()

    def suspend(self, handle: FakeHandle) -> None:
        handle.frozen = True

    def resume(self, handle: FakeHandle) -> None:
        handle.frozen = False

    def destroy(self, machine_id: str, handle: FakeHandle | None) -> None:
        if handle is not None:
            handle.exited.set()

    def exec(self, handle: FakeHandle, command: list[str], timeout: float) -> tuple[int, str, str]:
        return 0, " ".join(command), ""

    def close(self) -> None:
        pass

    def crash(self, code: int) -> None:
        handle = self.handles[-1]
        handle.code = code
        handle.exited.set()


@pytest.fixture()
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture()
def stub(backend: FakeBackend) -> Iterator[StubFly]:
    with StubFly(backend=backend, token=TOKEN, apps=[APP]) as running:
        yield running
        running.clear_faults()
        if backend.stop_gate is not None:
            backend.stop_gate.set()


@pytest.fixture()
def api(stub: StubFly) -> Iterator[FlyMachinesClient]:
    client = FlyMachinesClient(APP, TOKEN, stub.url, limiter=NO_RATE_LIMIT,
                               retry=RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05))
    yield client
    client.close()


def started(api: FlyMachinesClient, **config: Any) -> str:
    machine = api.create_machine({**CONFIG, **config})
    api.wait_machine(machine.id, "started", version=machine.instance_id, timeout=10)
    return machine.id


def raw(stub: StubFly, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {TOKEN}", **kwargs.pop("headers", {})}
    return httpx.request(method, f"{stub.url}/v1/apps/{APP}/machines{path}", headers=headers, timeout=30, **kwargs)


# --------------------------------------------------------------------------- shapes
def test_machines_have_fly_shaped_ids_addresses_and_events(api: FlyMachinesClient, stub: StubFly) -> None:
    created = api.create_machine(CONFIG, name="agcluster-s1", region="ams")
    assert re.fullmatch(r"[0-9a-f]{14}", created.id)
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", created.instance_id)
    assert re.fullmatch(r"127\.0\.\d+\.\d+", created.private_ip)
    assert created.state == "created" and created.name == "agcluster-s1" and created.region == "ams"
    assert created.config["guest"] == {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}
    api.wait_machine(created.id, "started", version=created.instance_id, timeout=10)
    machine = api.get_machine(created.id)
    assert machine.state == "started" and machine.private_ip == created.private_ip
    events = api.list_events(created.id)
    assert [e.type for e in events][:1] == ["start"] and events[-1].type == "launch"
    assert all(re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", e.id) for e in events)


def test_the_machine_env_is_the_config_env_plus_flys_runtime_variables(api: FlyMachinesClient,
                                                                       backend: FakeBackend) -> None:
    machine_id = started(api)
    env = backend.handles[-1].spec.env
    assert env["A"] == "1" and env["FLY_APP_NAME"] == APP and env["FLY_MACHINE_ID"] == machine_id
    assert env["FLY_PRIVATE_IP"] == api.get_machine(machine_id).private_ip


def test_list_filters_by_metadata_and_hides_the_destroyed(api: FlyMachinesClient) -> None:
    mine = started(api)
    other = started(api, metadata={"agcluster_session": "s2"})
    assert [m.id for m in api.list_machines(metadata={"agcluster_session": "s1"})] == [mine]
    api.destroy_machine(other, force=True)
    api.wait_machine(other, "destroyed", timeout=10)
    assert [m.id for m in api.list_machines()] == [mine]
    assert {m.id for m in api.list_machines(include_deleted=True)} == {mine, other}
    assert api.get_machine(other).state == "destroyed"
    with pytest.raises(FlyNotFound):
        api.start_machine(other)


def test_metadata_endpoints(api: FlyMachinesClient) -> None:
    machine_id = started(api)
    api.set_metadata(machine_id, "team", "blue")
    assert api.get_metadata(machine_id) == {"agcluster_session": "s1", "team": "blue"}
    api.delete_metadata(machine_id, "team")
    assert api.get_metadata(machine_id) == {"agcluster_session": "s1"}


# --------------------------------------------------------------------------- validation and errors
@pytest.mark.parametrize("config", [
    {"guest": {"cpus": 3}},
    {"guest": {"cpus": 1, "memory_mb": 300}},
    {"guest": {"cpus": 1, "memory_mb": 4096}},
    {"guest": {"cpu_kind": "performance", "cpus": 2, "memory_mb": 2048}},
    {"image": ""},
    {"size": "shared-cpu-2x"},  # size together with guest
    {"restart": {"policy": "sometimes"}},
    {"guest": {"cpu_kind": "performance", "cpus": 3, "memory_mb": 6144}},     # 3 is not sold
    {"guest": {"cpu_kind": "performance", "cpus": 2, "memory_mb": 4352}},     # not a 1024 MB step
    {"mounts": [{"volume": "vol_x", "path": "relative"}]},
    {"mounts": [{"volume": "vol_x", "path": "/a"}, {"volume": "vol_y", "path": "/b"}]},  # one volume per machine
    {"rootfs": {"persist": "always"}},                                          # not modelled: refused, not ignored
])
def test_invalid_configs_are_400_in_flys_error_shape(stub: StubFly, config: dict[str, Any]) -> None:
    resp = raw(stub, "POST", "", json={"config": {**CONFIG, **config}})
    assert resp.status_code == 400 and set(resp.json()) == {"error"} and resp.json()["error"]


def test_performance_guests_are_flys_presets(api: FlyMachinesClient) -> None:
    for cpus in (6, 10, 12, 14):
        machine = api.create_machine({**CONFIG, "guest": {"cpu_kind": "performance", "cpus": cpus,
                                                          "memory_mb": 2048 * cpus + 1024}}, skip_launch=True)
        assert machine.config["guest"]["cpus"] == cpus


def test_size_presets_expand_into_a_guest(api: FlyMachinesClient) -> None:
    config = {k: v for k, v in CONFIG.items() if k != "guest"}
    machine = api.create_machine({**config, "size": "performance-2x"})
    assert machine.config["guest"] == {"cpu_kind": "performance", "cpus": 2, "memory_mb": 4096}


def test_auth_is_required_and_checked(stub: StubFly) -> None:
    assert raw(stub, "GET", "", headers={"Authorization": ""}).status_code == 401
    wrong = FlyMachinesClient(APP, "not-the-token", stub.url, limiter=NO_RATE_LIMIT)
    with pytest.raises(FlyUnauthorized):
        wrong.list_machines()
    assert raw(stub, "GET", "", headers={"Authorization": f"FlyV1 {TOKEN}"}).status_code == 200
    assert [c["auth"] for c in stub.calls()] == ["", "Bearer", "FlyV1"]


def test_unknown_apps_and_machines_are_404(stub: StubFly, api: FlyMachinesClient) -> None:
    other = FlyMachinesClient("no-such-app", TOKEN, stub.url, limiter=NO_RATE_LIMIT)
    with pytest.raises(FlyNotFound):
        other.list_machines()
    with pytest.raises(FlyNotFound):
        api.get_machine("0123456789abcd")


# --------------------------------------------------------------------------- states and waits
def test_wait_timeout_must_be_within_one_and_sixty_seconds(stub: StubFly, api: FlyMachinesClient) -> None:
    machine_id = started(api)
    for timeout in ("0", "61", "soon"):
        resp = raw(stub, "GET", f"/{machine_id}/wait", params={"state": "started", "timeout": timeout})
        assert resp.status_code == 400 and "timeout" in resp.json()["error"]
    resp = raw(stub, "GET", f"/{machine_id}/wait", params={"state": "starting"})
    assert resp.status_code == 400
    resp = raw(stub, "GET", f"/{machine_id}/wait", params={"state": "stopped", "timeout": "1"})
    assert resp.status_code == 400 and "version" in resp.json()["error"]


def test_wait_answers_408_at_its_deadline(stub: StubFly, api: FlyMachinesClient) -> None:
    stub.hold_in_created()
    machine = api.create_machine(CONFIG)
    resp = raw(stub, "GET", f"/{machine.id}/wait", params={"state": "started", "timeout": "1",
                                                            "instance_id": machine.instance_id})
    assert resp.status_code == 408 and resp.json()["error"].startswith("deadline_exceeded")
    with pytest.raises(FlyWaitTimeout):
        api.wait_machine(machine.id, "started", timeout=1)


def test_start_from_created_is_412_until_the_machine_is_ready(stub: StubFly, api: FlyMachinesClient) -> None:
    stub.hold_in_created()
    machine = api.create_machine(CONFIG, skip_launch=True)
    resp = raw(stub, "POST", f"/{machine.id}/start")
    assert resp.status_code == 412 and "'created'" in resp.json()["error"]
    stub.release_held()
    api.start_machine(machine.id, ready_timeout=10)  # retries the 412 until prepared
    api.wait_machine(machine.id, "started", timeout=10)
    assert api.get_machine(machine.id).state == "started"


def test_destroying_a_running_machine_needs_force(api: FlyMachinesClient) -> None:
    machine_id = started(api)
    with pytest.raises(FlyPreconditionFailed, match="not currently stopped"):
        api.destroy_machine(machine_id)
    api.destroy_machine(machine_id, force=True)
    api.wait_machine(machine_id, "destroyed", timeout=10)


def test_a_suspended_machine_is_destroyed_without_force(api: FlyMachinesClient) -> None:
    machine_id = started(api)
    api.suspend_machine(machine_id)
    api.wait_machine(machine_id, "suspended", timeout=10)
    api.destroy_machine(machine_id)
    api.wait_machine(machine_id, "destroyed", timeout=10)


@pytest.mark.parametrize(("config", "why"), [
    ({"guest": {"cpu_kind": "shared", "cpus": 2, "memory_mb": 4096}}, "4096 MB of memory"),
    ({"init": {"swap_size_mb": 512}}, "swap"),
    ({"schedule": "daily"}, "schedule"),
])
def test_suspend_is_refused_where_fly_refuses_it(api: FlyMachinesClient, config: dict[str, Any], why: str) -> None:
    machine_id = started(api, **config)
    with pytest.raises(FlyPreconditionFailed, match=why):
        api.suspend_machine(machine_id)
    assert api.get_machine(machine_id).state == "started"


def test_a_resume_may_cold_boot_seeded(stub: StubFly, api: FlyMachinesClient, backend: FakeBackend) -> None:
    def resumes_cold(seed: int, n: int = 8) -> list[bool]:
        stub.cold_resume(0.5, seed=seed)
        machine_id = started(api)
        cold = []
        for _ in range(n):
            before = len(backend.handles)
            api.suspend_machine(machine_id)
            api.wait_machine(machine_id, "suspended", timeout=10)
            api.start_machine(machine_id)
            api.wait_machine(machine_id, "started", timeout=10)
            cold.append(len(backend.handles) > before)  # a new VM from a fresh rootfs, not the frozen one
            if cold[-1]:
                assert backend.handles[-2].exited.is_set()  # the discarded snapshot's VM is gone
        return cold

    first, again = resumes_cold(seed=3), resumes_cold(seed=3)
    assert first == again and True in first and False in first  # repeatable, and both outcomes happen
    assert any(e.type == "start" and e.request.get("cold_boot") for m in api.list_machines()
               for e in api.list_events(m.id))  # the machine's events say which starts were cold


# --------------------------------------------------------------------------- volumes
def test_volumes_are_created_listed_attached_and_destroyed(stub: StubFly, api: FlyMachinesClient,
                                                           backend: FakeBackend) -> None:
    volume = api.create_volume("ws_one", size_gb=3, region="ams", compute={"cpu_kind": "shared", "cpus": 1})
    assert re.fullmatch(r"vol_[a-z0-9]{16}", volume.id) and (volume.size_gb, volume.region) == (3, "ams")
    assert volume.id in backend.volumes
    machine = api.create_machine({**CONFIG, "mounts": [{"volume": volume.id, "path": "/workspace"}]})
    assert machine.region == "ams"  # placed where its volume is
    api.wait_machine(machine.id, "started", timeout=10)
    assert backend.handles[-1].spec.mounts == ((volume.id, "/workspace"),)
    assert api.get_volume(volume.id).attached_machine_id == machine.id
    with pytest.raises(FlyPreconditionFailed, match="attached"):
        api.destroy_volume(volume.id)  # not while its machine exists
    with pytest.raises(FlyPreconditionFailed, match="already attached"):
        api.create_machine({**CONFIG, "mounts": [{"volume": volume.id, "path": "/data"}]})
    api.destroy_machine(machine.id, force=True)
    api.wait_machine(machine.id, "destroyed", timeout=10)
    assert api.get_volume(volume.id).attached_machine_id is None
    api.destroy_volume(volume.id)
    [listed] = api.list_volumes()
    assert listed.id == volume.id and listed.state == "pending_destroy" and listed.gone  # still listed, as on Fly
    assert volume.id not in backend.volumes and stub.volume_count() == 0


@pytest.mark.parametrize(("body", "why"), [
    ({"name": "Has-Caps", "size_gb": 1}, "volume name"),
    ({"name": "x" * 31, "size_gb": 1}, "volume name"),
    ({"name": "ok", "size_gb": 0}, "size_gb"),
    ({"name": "ok", "size_gb": 501}, "size_gb"),
    ({"name": "ok", "size_gb": "10"}, "size_gb"),
    ({"name": "ok", "region": "chicago"}, "region"),
    ({"name": "ok", "compute": {"cpus": 3}}, "CPUs"),
])
def test_volume_rules(stub: StubFly, body: dict[str, Any], why: str) -> None:
    resp = httpx.post(f"{stub.url}/v1/apps/{APP}/volumes", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 400 and why in resp.json()["error"]


def test_a_machine_mounts_only_a_volume_in_its_region(api: FlyMachinesClient) -> None:
    volume = api.create_volume("ws_far", size_gb=1, region="syd")
    with pytest.raises(FlyBadRequest, match="region syd"):
        api.create_machine({**CONFIG, "mounts": [{"volume": volume.id, "path": "/workspace"}]}, region="ord")
    with pytest.raises(FlyNotFound):
        api.create_machine({**CONFIG, "mounts": [{"volume": "vol_doesnotexist0000", "path": "/workspace"}]})


def test_a_machine_on_an_unreachable_host(stub: StubFly, api: FlyMachinesClient) -> None:
    volume = api.create_volume("ws_host", size_gb=1)
    machine_id = started(api, mounts=[{"volume": volume.id, "path": "/workspace"}])
    stub.host_unreachable(machine_id)
    answer = raw(stub, "GET", f"/{machine_id}").json()
    assert answer["host_status"] == "unknown" and "config" not in answer
    assert answer["incomplete_config"]["metadata"] == CONFIG["metadata"] and "env" not in answer["incomplete_config"]
    assert [m.id for m in api.list_machines(metadata={"agcluster_session": "s1"})] == [machine_id]
    assert not api.get_volume(volume.id).host_ok
    for method, path in (("POST", f"/{machine_id}/stop"), ("POST", f"/{machine_id}/suspend"),
                         ("DELETE", f"/{machine_id}"), ("POST", f"/{machine_id}/lease")):
        assert raw(stub, method, path).status_code == 503
    stub.host_unreachable(machine_id, False)
    assert api.get_machine(machine_id).host_ok and api.get_volume(volume.id).host_ok


def test_stop_suspend_start_cycle(api: FlyMachinesClient, backend: FakeBackend) -> None:
    machine_id = started(api)
    instance = api.get_machine(machine_id).instance_id
    api.suspend_machine(machine_id)
    api.wait_machine(machine_id, "suspended", version=instance, timeout=10)
    assert backend.handles[-1].frozen
    with pytest.raises(FlyPreconditionFailed):
        api.suspend_machine(api.create_machine(CONFIG, skip_launch=True).id)
    assert api.start_machine(machine_id)["previous_state"] == "suspended"
    api.wait_machine(machine_id, "started", version=instance, timeout=10)
    assert not backend.handles[-1].frozen and len(backend.handles) == 1  # resumed, not rebooted
    api.stop_machine(machine_id, signal="SIGTERM", timeout=5)
    api.wait_machine(machine_id, "stopped", version=instance, timeout=10)
    api.start_machine(machine_id)
    api.wait_machine(machine_id, "started", version=instance, timeout=10)
    assert len(backend.handles) == 2  # a stopped machine boots again from a fresh rootfs


def test_update_replaces_the_version_and_start_is_412_while_replacing(stub: StubFly, api: FlyMachinesClient,
                                                                      backend: FakeBackend) -> None:
    machine_id = started(api)
    old = api.get_machine(machine_id).instance_id
    backend.stop_gate = threading.Event()
    updated = api.update_machine(machine_id, {**CONFIG, "env": {"A": "2"}})
    assert updated.state == "replacing" and updated.instance_id != old
    refused = raw(stub, "POST", f"/{machine_id}/start")
    assert refused.status_code == 412 and "'replacing'" in refused.json()["error"]
    backend.stop_gate.set()
    api.wait_machine(machine_id, "started", version=updated.instance_id, timeout=10)
    assert backend.handles[-1].spec.env["A"] == "2"
    with pytest.raises(FlyPreconditionFailed):
        api.update_machine(machine_id, CONFIG, current_version=old)


def test_restart_policy_decides_what_an_exit_does(api: FlyMachinesClient, backend: FakeBackend) -> None:
    machine_id = started(api)
    instance = api.get_machine(machine_id).instance_id
    backend.crash(1)
    api.wait_machine(machine_id, "stopped", version=instance, timeout=10)
    assert api.list_events(machine_id)[0].type == "exit"
    always = started(api, restart={"policy": "always"})
    backend.crash(0)
    api.wait_machine(always, "started", timeout=10)
    assert any(e.type == "exit" for e in api.list_events(always)) and len(backend.handles) == 3


def test_exec_runs_in_a_started_machine_only(api: FlyMachinesClient) -> None:
    machine_id = started(api)
    assert api.exec_machine(machine_id, ["echo", "hi"]).stdout == "echo hi"
    other = api.create_machine(CONFIG, skip_launch=True)
    with pytest.raises(FlyPreconditionFailed):
        api.exec_machine(other.id, ["true"])


# --------------------------------------------------------------------------- leases
def test_leases_lock_out_everyone_without_the_nonce(stub: StubFly, api: FlyMachinesClient) -> None:
    machine_id = started(api)
    lease = api.acquire_lease(machine_id, ttl=30, description="theirs")
    assert lease.nonce and lease.description == "theirs"
    with pytest.raises(LeaseHeld, match="theirs"):
        api.acquire_lease(machine_id)
    with pytest.raises(LeaseHeld):
        api.stop_machine(machine_id)
    with pytest.raises(LeaseHeld):
        api.destroy_machine(machine_id, force=True)
    assert api.get_lease(machine_id).nonce == lease.nonce
    refreshed = api.refresh_lease(machine_id, lease.nonce, ttl=60)
    assert refreshed.nonce == lease.nonce and refreshed.expires_at >= lease.expires_at
    assert raw(stub, "DELETE", f"/{machine_id}/lease").status_code == 400
    with pytest.raises(LeaseHeld):
        api.release_lease(machine_id, "not-the-nonce")
    api.stop_machine(machine_id, nonce=lease.nonce)
    api.release_lease(machine_id, lease.nonce)
    with pytest.raises(FlyNotFound):
        api.get_lease(machine_id)


def test_create_with_lease_ttl_returns_the_nonce(api: FlyMachinesClient) -> None:
    machine = api.create_machine(CONFIG, lease_ttl=30)
    assert machine.nonce and api.get_lease(machine.id).nonce == machine.nonce


# --------------------------------------------------------------------------- faults and the record
def test_faults_before_and_after_and_the_call_record(stub: StubFly, api: FlyMachinesClient) -> None:
    stub.fail_next(500, action="create", when="after")
    with pytest.raises(FlyServerError):
        api.create_machine(CONFIG)
    assert stub.count() == 1  # it failed *after* creating: the ambiguous case
    stub.fail_next(503, action="get", count=2)
    machine = api.list_machines()[0]
    assert api.get_machine(machine.id).id == machine.id  # idempotent: retried through the 503s
    stub.capacity_error()
    with pytest.raises(FlyCapacityError):
        api.create_machine(CONFIG)
    calls = stub.calls()
    assert [(c["action"], c["status"], c.get("fault", False)) for c in calls] == [
        ("create", 500, True), ("list", 200, False), ("get", 503, True), ("get", 503, True), ("get", 200, False),
        ("create", 422, True)]
    assert calls[0]["body"]["config"]["image"] == CONFIG["image"] and calls[0]["method"] == "POST"


def test_rate_limits_are_flys_documented_ones(stub: StubFly, api: FlyMachinesClient) -> None:
    machine_id = started(api)
    stub.rate_limits(True)
    impatient = FlyMachinesClient(APP, TOKEN, stub.url, limiter=NO_RATE_LIMIT, retry=RetryPolicy(attempts=1))
    for _ in range(3):
        impatient.start_machine(machine_id)
    with pytest.raises(FlyRateLimited) as err:
        impatient.start_machine(machine_id)
    assert err.value.retry_after == 1.0
    impatient.stop_machine(machine_id)  # another action has its own budget
    for _ in range(9):
        impatient.get_machine(machine_id)  # Get Machine bursts to 10


def test_bad_requests_do_not_crash_the_stand_in(stub: StubFly, api: FlyMachinesClient) -> None:
    assert raw(stub, "POST", "", content=b"{not json").status_code == 400
    assert raw(stub, "PUT", "/abc").status_code == 405
    machine_id = started(api)
    assert raw(stub, "POST", f"/{machine_id}/stop", json={"timeout": "soon"}).status_code == 400
    with pytest.raises(FlyBadRequest):
        api.exec_machine(machine_id, [])


# --------------------------------------------------------------------------- pure helpers
def test_go_durations() -> None:
    assert parse_duration("30s", 0) == 30 and parse_duration("1m30s", 0) == 90
    assert parse_duration("500ms", 0) == 0.5 and parse_duration("7", 0) == 7 and parse_duration(None, 5) == 5
    for bad in ("s", "30x", "1h30", 30):
        with pytest.raises(StubError):
            parse_duration(bad, 0)


def test_routes_resolve_to_actions() -> None:
    assert resolve("GET", "") == ("list", None, None)
    assert resolve("POST", "") == ("create", None, None)
    assert resolve("DELETE", "m1") == ("destroy", "m1", None)
    assert resolve("GET", "m1/wait") == ("wait", "m1", None)
    assert resolve("DELETE", "m1/metadata/k") == ("metadata_delete", "m1", "k")
    assert resolve("PUT", "m1") == (None, "m1", None)
