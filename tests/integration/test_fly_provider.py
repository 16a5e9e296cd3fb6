"""The Fly provider against the stand-in with real (sandboxed) machine agents and injected faults.

After every test the stand-in must hold no machine: whatever happened, nothing leaks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
import requests

from control.providers.base import MachineSpec, ProviderError, ResourceLimits
from control.providers.fly import FlyProvider
from control.providers.fly_api import FlyMachinesClient, RetryPolicy
from stubs.fly import StubFly

TOKEN = "test-token"
APP = "agcluster-test"


@pytest.fixture(scope="module")
def stub() -> Iterator[StubFly]:
    with StubFly(token=TOKEN, apps=[APP]) as running:
        yield running


@pytest.fixture()
def fly(stub: StubFly) -> Iterator[StubFly]:
    stub.clear_calls()
    yield stub
    stub.clear_faults()
    stub.rate_limits(False)
    leftovers = stub.machines()
    for machine in leftovers:  # clean up for the next test, then fail this one
        FlyMachinesClient(APP, TOKEN, stub.url).destroy_machine(machine["id"], force=True)
    assert leftovers == [], "machines leaked"


def make_provider(stub: StubFly, **kwargs: object) -> FlyProvider:
    # Real pacing (Fly's documented limits); quick retries so storms do not take long.
    api = FlyMachinesClient(APP, TOKEN, stub.url, retry=RetryPolicy(attempts=8, base_delay=0.02, max_delay=0.2))
    options = {"image": "agcluster/agent:latest", "relay_url": "http://127.0.0.1:9/relay", "start_timeout": 90.0,
               "lease_wait": 10.0, **kwargs}
    return FlyProvider(api, **options)  # type: ignore[arg-type]


@pytest.fixture()
def provider(fly: StubFly) -> Iterator[FlyProvider]:
    made = make_provider(fly)
    yield made
    made.close()


def spec(session: str = "sess-1") -> MachineSpec:
    return MachineSpec(session, f"agent-{session}", f"machine-token-{session}",
                       resources=ResourceLimits(cpus=1, memory_mb=1024), env={"AGCLUSTER_SESSION_ID": session})


def health(url: str, session: str = "sess-1") -> dict:
    resp = requests.get(f"{url}/health", headers={"Authorization": f"Bearer machine-token-{session}"}, timeout=10)
    assert resp.status_code == 200
    return resp.json()


def mutating(fly: StubFly) -> list[str]:
    """The calls that change something, in order (reads and polling are timing-dependent)."""
    return [c["action"] for c in fly.calls() if c["action"] not in ("get", "list", "wait", "events")]


# --------------------------------------------------------------------------- the lifecycle
def test_start_suspend_resume_destroy(fly: StubFly, provider: FlyProvider) -> None:
    machine = provider.start(spec())
    assert machine.url == f"http://{fly.machine(machine.machine_id)['private_ip']}:8080"
    assert health(machine.url)["status"] == "ok"
    assert provider.inspect(machine.machine_id).state == "started"
    assert [m.machine_id for m in provider.list_machines()] == [machine.machine_id]
    provider.suspend(machine.machine_id)
    assert fly.machine(machine.machine_id)["state"] == "suspended"
    resumed = provider.resume(machine.machine_id)
    assert resumed.url == machine.url and health(resumed.url)["status"] == "ok"
    provider.destroy(machine.machine_id)
    provider.destroy(machine.machine_id)  # idempotent
    assert provider.inspect(machine.machine_id) is None
    assert mutating(fly) == ["create", "lease_acquire", "lease_release",            # start
                             "lease_acquire", "suspend", "lease_release",           # suspend
                             "lease_acquire", "start", "lease_release",             # resume
                             "lease_acquire", "stop", "destroy", "lease_release",   # destroy
                             "lease_acquire"]                                       # again: 404, done
    create = fly.calls("create")[0]["body"]
    assert create["name"] == "agcluster-sess-1"
    assert create["config"]["env"] == {"AGCLUSTER_SESSION_ID": "sess-1", "AGCLUSTER_MACHINE_TOKEN": "machine-token-sess-1",
                                       "MAX_UPLOAD_MB": "50"}
    waits = fly.calls("wait")
    assert all(1 <= int(w["query"]["timeout"]) <= 60 for w in waits)
    assert all("instance_id" in w["query"] for w in waits if w["query"]["state"] != "destroyed")


def test_start_is_idempotent_per_session(fly: StubFly, provider: FlyProvider) -> None:
    first = provider.start(spec())
    again = provider.start(spec())
    assert again.machine_id == first.machine_id and fly.count() == 1
    provider.destroy(first.machine_id)


def test_a_stopped_machine_restarts_from_a_fresh_root_filesystem(fly: StubFly, provider: FlyProvider) -> None:
    machine = provider.start(spec())
    api = provider.api
    api.exec_machine(machine.machine_id, ["sh", "-c", "echo kept > /workspace/note.txt"])
    provider.suspend(machine.machine_id)
    provider.resume(machine.machine_id)
    assert api.exec_machine(machine.machine_id, ["cat", "/workspace/note.txt"]).stdout == "kept\n"
    fly.fail_next(412, action="suspend", message="unable to suspend: machine has too much memory")
    provider.suspend(machine.machine_id)  # falls back to stop
    assert fly.machine(machine.machine_id)["state"] == "stopped"
    provider.resume(machine.machine_id)
    assert api.exec_machine(machine.machine_id, ["ls", "-A", "/workspace"]).stdout == ""
    provider.destroy(machine.machine_id)


def test_an_agent_that_dies_leaves_a_stopped_machine_that_can_be_resumed(fly: StubFly, provider: FlyProvider) -> None:
    machine = provider.start(spec())
    fly.backend.stop(fly.state.machines[machine.machine_id].handle, "SIGKILL", 0)  # the agent crashes
    provider.api.wait_machine(machine.machine_id, "stopped", instance_id=fly.machine(machine.machine_id)["instance_id"],
                              timeout=30)
    assert provider.inspect(machine.machine_id).state == "stopped"  # restart policy "no": nobody restarts it
    assert health(provider.resume(machine.machine_id).url)["status"] == "ok"
    provider.destroy(machine.machine_id)


def test_reconciliation_sees_only_our_machines(fly: StubFly, provider: FlyProvider) -> None:
    ours = provider.start(spec())
    foreign = provider.api.create_machine({"image": "something/else", "metadata": {"team": "other"}}, skip_launch=True)
    assert [m.machine_id for m in provider.list_machines()] == [ours.machine_id]
    assert provider.list_machines()[0].session_id == "sess-1"
    provider.destroy(ours.machine_id)
    provider.destroy(foreign.id)


# --------------------------------------------------------------------------- faults
def test_a_429_storm_on_create_is_ridden_out(fly: StubFly, provider: FlyProvider) -> None:
    fly.fail_next(429, action="create", count=5, retry_after=0)
    machine = provider.start(spec())
    creates = fly.calls("create")
    assert [c["status"] for c in creates] == [429] * 5 + [200]
    assert fly.count() == 1
    provider.destroy(machine.machine_id)


def test_5xx_on_reads_and_waits_are_retried(fly: StubFly, provider: FlyProvider) -> None:
    fly.fail_next(503, action="get", count=3)
    fly.fail_next(502, action="wait", count=2)
    fly.fail_next(500, action="lease_release", count=1)
    machine = provider.start(spec())
    assert health(machine.url)["status"] == "ok"
    provider.destroy(machine.machine_id)


def test_a_create_that_fails_after_creating_adopts_the_machine(fly: StubFly, provider: FlyProvider) -> None:
    fly.fail_next(500, action="create", when="after")
    machine = provider.start(spec())
    assert [c["status"] for c in fly.calls("create")] == [500]  # no second create: found by metadata
    assert fly.count() == 1 and health(machine.url)["status"] == "ok"
    provider.destroy(machine.machine_id)


def test_create_failing_every_time_is_a_clear_error(fly: StubFly, provider: FlyProvider) -> None:
    fly.fail_next(503, action="create", count=-1)
    with pytest.raises(ProviderError, match="could not create a Fly machine") as err:
        provider.start(spec())
    assert err.value.retryable and fly.count() == 0


def test_no_capacity_is_a_clear_retryable_error(fly: StubFly, provider: FlyProvider) -> None:
    fly.capacity_error()
    with pytest.raises(ProviderError, match="no capacity for a shared-cpu-1x machine") as err:
        provider.start(spec())
    assert err.value.retryable and fly.count() == 0


def test_a_machine_stuck_in_created_is_destroyed_not_leaked(fly: StubFly) -> None:
    fly.hold_in_created()
    impatient = make_provider(fly, start_timeout=3.0)
    with pytest.raises(ProviderError, match="did not start in 3s .*stayed created"):
        impatient.start(spec())
    assert fly.count() == 0
    assert "destroy" in mutating(fly)


def test_a_wait_that_needs_several_408_rounds(fly: StubFly, provider: FlyProvider) -> None:
    fly.fail_next(408, action="wait", count=3, message="deadline_exceeded: timed out")
    machine = provider.start(spec())
    started_waits = [c["status"] for c in fly.calls("wait") if c["query"]["state"] == "started"]
    assert started_waits == [408, 408, 408, 200]
    provider.destroy(machine.machine_id)


def test_a_lease_held_by_someone_else_is_waited_for(fly: StubFly, provider: FlyProvider) -> None:
    machine = provider.start(spec())
    other = FlyMachinesClient(APP, TOKEN, fly.url)
    lease = other.acquire_lease(machine.machine_id, ttl=120, description="a human with flyctl")
    done: list[BaseException | None] = []
    worker = threading.Thread(target=lambda: done.append(_run(provider.destroy, machine.machine_id)))
    since = len(fly.calls())
    worker.start()
    # Release as soon as the provider has been refused (a condition, not a sleep).
    _poll(lambda: any(c["action"] == "lease_acquire" and c["status"] == 409 for c in fly.calls(since=since)))
    other.release_lease(machine.machine_id, lease.nonce)
    worker.join(timeout=60)
    assert done == [None] and fly.count() == 0


def test_a_lease_that_is_never_released_is_a_clear_error(fly: StubFly) -> None:
    provider = make_provider(fly, lease_wait=0.5)
    machine = provider.start(spec())
    other = FlyMachinesClient(APP, TOKEN, fly.url)
    lease = other.acquire_lease(machine.machine_id, ttl=120, description="a human with flyctl")
    with pytest.raises(ProviderError, match="leased by another process.*a human with flyctl") as err:
        provider.destroy(machine.machine_id)
    assert err.value.retryable and fly.machine(machine.machine_id)["state"] == "started"
    other.release_lease(machine.machine_id, lease.nonce)
    provider.destroy(machine.machine_id)


def test_destroying_a_running_machine_whose_stop_fails_forces_it(fly: StubFly, provider: FlyProvider) -> None:
    machine = provider.start(spec())
    fly.fail_next(500, action="stop", count=-1)
    provider.destroy(machine.machine_id)
    destroys = fly.calls("destroy")
    assert [(c["query"].get("force"), c["status"]) for c in destroys] == [(None, 412), ("true", 200)]
    assert fly.count() == 0


def test_everything_works_under_flys_rate_limits(fly: StubFly, provider: FlyProvider) -> None:
    fly.rate_limits(True)
    machine = provider.start(spec())
    provider.suspend(machine.machine_id)
    provider.resume(machine.machine_id)
    provider.destroy(machine.machine_id)


def _run(fn: Callable[..., object], *args: object) -> BaseException | None:
    try:
        fn(*args)
    except BaseException as exc:  # noqa: BLE001 - reported to the test thread
        return exc
    return None


def _poll(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait for a condition by polling it (never a fixed sleep standing in for synchronisation)."""
    tick = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        tick.wait(0.02)
    raise AssertionError("condition not reached")
