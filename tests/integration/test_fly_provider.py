"""The Fly provider against the stand-in with real (sandboxed) machine agents and injected faults.

After every test the stand-in must hold no machine and no volume: whatever happened,
nothing leaks. Workspaces live on a Fly Volume per session, so they survive a stop, a cold
boot and a replaced machine; the machine's root filesystem does not.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from control.providers.base import MachineSpec, ProviderError, ResourceLimits
from control.providers.fly import VOLUME_PSEUDO_STATE, FlyProvider, volume_name
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
    stub.cold_resume(0.0)
    leftovers = stub.machines()
    cleaner = FlyMachinesClient(APP, TOKEN, stub.url)
    for machine in leftovers:  # clean up for the next test, then fail this one
        stub.host_unreachable(machine["id"], False)
        cleaner.destroy_machine(machine["id"], force=True)
        cleaner.wait_machine(machine["id"], "destroyed", timeout=30)
    volumes = [v for v in stub.volumes() if v["state"] not in ("pending_destroy", "destroyed")]
    for volume in volumes:
        cleaner.destroy_volume(volume["id"])
    assert leftovers == [], "machines leaked"
    assert volumes == [], "volumes leaked"


def make_provider(stub: StubFly, **kwargs: Any) -> FlyProvider:
    # Real pacing (Fly's documented limits); quick retries so storms do not take long.
    api = FlyMachinesClient(APP, TOKEN, stub.url, retry=RetryPolicy(attempts=8, base_delay=0.02, max_delay=0.2))
    options: dict[str, Any] = {"image": "agcluster/agent:latest", "relay_url": "http://127.0.0.1:9/relay",
                               "start_timeout": 90.0, "lease_wait": 10.0, **kwargs}
    return FlyProvider(api, **options)


@pytest.fixture()
def provider(fly: StubFly) -> Iterator[FlyProvider]:
    made = make_provider(fly)
    yield made
    made.close()


KEY = "3f2a6c1e-8b7d-4e2f-9a1b-0c3d4e5f6a7b"


def spec(session: str = KEY, memory_mb: int = 1024, image: str | None = None) -> MachineSpec:
    return MachineSpec(session, f"agent-{session[:8]}", f"machine-token-{session}", image=image,
                       resources=ResourceLimits(cpus=1, memory_mb=memory_mb, storage_mb=3 * 1024),
                       env={"AGCLUSTER_SESSION_ID": session})


def health(url: str, session: str = KEY) -> dict:
    resp = requests.get(f"{url}/health", headers={"Authorization": f"Bearer machine-token-{session}"}, timeout=10)
    assert resp.status_code == 200
    return resp.json()


READS = ("get", "list", "wait", "events", "volume_list", "volume_get")


def mutating(fly: StubFly, since: int = 0) -> list[str]:
    """The calls that change something, in order (reads and polling are timing-dependent)."""
    return [c["action"] for c in fly.calls(since=since) if c["action"] not in READS]


def live_volumes(fly: StubFly) -> list[dict]:
    return [v for v in fly.volumes() if v["state"] not in ("pending_destroy", "destroyed")]


def state_of(provider: FlyProvider, machine_id: str) -> str | None:
    machine = provider.inspect(machine_id)
    return machine.state if machine else None


def run(provider: FlyProvider, machine_id: str, script: str) -> str:
    result = provider.api.exec_machine(machine_id, ["sh", "-c", script])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def last_seq(fly: StubFly) -> int:
    calls = fly.calls()
    return calls[-1]["seq"] if calls else 0


# --------------------------------------------------------------------------- the lifecycle
def test_start_suspend_resume_destroy(fly: StubFly, provider: FlyProvider) -> None:
    machine = provider.start(spec())
    assert machine.url == f"http://{fly.machine(machine.machine_id)['private_ip']}:8080"
    assert health(machine.url)["status"] == "ok"
    assert state_of(provider, machine.machine_id) == "started"
    assert [m.machine_id for m in provider.list_machines()] == [machine.machine_id]
    [volume] = live_volumes(fly)
    assert volume["name"] == volume_name(KEY) and volume["size_gb"] == 3 and volume["region"] == "ord"
    assert volume["attached_machine_id"] == machine.machine_id
    provider.suspend(machine.machine_id)
    assert fly.machine(machine.machine_id)["state"] == "suspended"
    resumed = provider.resume(machine.machine_id)
    assert resumed.url == machine.url and health(resumed.url)["status"] == "ok"
    provider.suspend(machine.machine_id)
    provider.destroy(machine.machine_id)   # Fly destroys a suspended machine without a stop or force
    provider.destroy(machine.machine_id)   # idempotent
    assert provider.inspect(machine.machine_id) is None and live_volumes(fly) == []
    assert mutating(fly) == ["volume_create", "create", "lease_acquire", "lease_release",   # start
                             "lease_acquire", "suspend", "lease_release",                   # suspend
                             "lease_acquire", "start", "lease_release",                     # resume
                             "lease_acquire", "suspend", "lease_release",                   # suspend
                             "lease_acquire", "destroy", "lease_release",                   # destroy
                             "volume_destroy"]                                              # and its volume
    assert fly.calls("destroy")[0]["query"] == {}
    create = fly.calls("create")[0]["body"]
    assert create["name"].startswith(f"agcluster-{KEY}-") and create["region"] == "ord"
    assert create["config"]["mounts"] == [{"volume": volume["id"], "path": "/workspace"}]
    assert create["config"]["env"] == {"AGCLUSTER_SESSION_ID": KEY, "AGCLUSTER_MACHINE_TOKEN": f"machine-token-{KEY}",
                                       "MAX_UPLOAD_MB": "50", "AGCLUSTER_CONTROL_PLANE": "127.0.0.1"}
    assert fly.calls("volume_create")[0]["body"]["compute"] == {"cpu_kind": "shared", "cpus": 1, "memory_mb": 1024}
    waits = fly.calls("wait")
    assert all(1 <= int(w["query"]["timeout"]) <= 60 for w in waits)
    assert all("version" in w["query"] and "instance_id" not in w["query"]
               for w in waits if w["query"]["state"] != "destroyed")


def test_start_is_idempotent_per_session(fly: StubFly, provider: FlyProvider) -> None:
    first = provider.start(spec())
    again = provider.start(spec())
    assert again.machine_id == first.machine_id and fly.count() == 1 and len(live_volumes(fly)) == 1
    provider.destroy(first.machine_id)


def test_a_suspendable_session_keeps_memory_and_disk(fly: StubFly, provider: FlyProvider) -> None:
    machine = provider.start(spec(memory_mb=2048))
    run(provider, machine.machine_id, "echo kept > /workspace/note.txt && echo rootfs > /home/agent/mark")
    provider.suspend(machine.machine_id)
    assert fly.machine(machine.machine_id)["state"] == "suspended"
    provider.resume(machine.machine_id)
    assert run(provider, machine.machine_id, "cat /workspace/note.txt /home/agent/mark") == "kept\nrootfs\n"
    provider.destroy(machine.machine_id)


def test_a_4gb_session_is_stopped_and_its_workspace_survives_the_cold_boot(fly: StubFly,
                                                                           provider: FlyProvider) -> None:
    machine = provider.start(spec(memory_mb=4096))
    run(provider, machine.machine_id, "echo kept > /workspace/note.txt && echo gone > /home/agent/mark")
    since = last_seq(fly)
    provider.suspend(machine.machine_id)
    assert fly.machine(machine.machine_id)["state"] == "stopped"
    assert mutating(fly, since) == ["lease_acquire", "stop", "lease_release"]  # no suspend attempt above 2 GB
    woken = provider.resume(machine.machine_id)
    assert health(woken.url)["status"] == "ok"
    assert run(provider, machine.machine_id, "cat /workspace/note.txt; ls -A /home/agent") == "kept\n"
    provider.destroy(machine.machine_id)


def test_when_fly_refuses_to_suspend_the_machine_is_stopped_and_keeps_its_workspace(
        fly: StubFly, provider: FlyProvider) -> None:
    machine = provider.start(spec())
    run(provider, machine.machine_id, "echo kept > /workspace/note.txt")
    fly.fail_next(412, action="suspend", message="failed_precondition: cannot suspend this machine")
    provider.suspend(machine.machine_id)
    assert fly.machine(machine.machine_id)["state"] == "stopped"
    provider.resume(machine.machine_id)
    assert run(provider, machine.machine_id, "cat /workspace/note.txt") == "kept\n"
    provider.destroy(machine.machine_id)


def test_a_resume_that_cold_boots_keeps_the_workspace(fly: StubFly, provider: FlyProvider) -> None:
    fly.cold_resume(1.0, seed=7)
    machine = provider.start(spec())
    run(provider, machine.machine_id, "echo kept > /workspace/note.txt && echo gone > /home/agent/mark")
    provider.suspend(machine.machine_id)
    assert fly.machine(machine.machine_id)["state"] == "suspended"
    resumed = provider.resume(machine.machine_id)
    assert health(resumed.url)["status"] == "ok"
    assert run(provider, machine.machine_id, "cat /workspace/note.txt; ls -A /home/agent") == "kept\n"
    starts = [e for e in provider.api.list_events(machine.machine_id) if e.type == "start" and e.source == "user"]
    assert starts[0].request.get("cold_boot") is True  # newest first: the resume was a cold boot
    provider.destroy(machine.machine_id)


def test_a_new_image_replaces_the_machine_on_the_same_volume(fly: StubFly, provider: FlyProvider) -> None:
    old = provider.start(spec(image="agcluster/agent:v1"))
    run(provider, old.machine_id, "echo kept > /workspace/note.txt")
    provider.suspend(old.machine_id)
    new = provider.start(spec(image="agcluster/agent:v2"))
    assert new.machine_id != old.machine_id and fly.machine(old.machine_id)["state"] == "destroyed"
    assert run(provider, new.machine_id, "cat /workspace/note.txt") == "kept\n"
    [volume] = live_volumes(fly)
    assert volume["attached_machine_id"] == new.machine_id
    provider.destroy(new.machine_id)
    assert live_volumes(fly) == []


def test_an_agent_that_dies_leaves_a_stopped_machine_that_can_be_resumed(fly: StubFly, provider: FlyProvider) -> None:
    machine = provider.start(spec())
    fly.backend.stop(fly.state.machines[machine.machine_id].handle, "SIGKILL", 0)  # the agent crashes
    provider.api.wait_machine(machine.machine_id, "stopped", version=fly.machine(machine.machine_id)["instance_id"],
                              timeout=30)
    assert state_of(provider, machine.machine_id) == "stopped"  # restart policy "no": nobody restarts it
    assert health(provider.resume(machine.machine_id).url)["status"] == "ok"
    provider.destroy(machine.machine_id)


def test_reconciliation_sees_only_our_machines(fly: StubFly, provider: FlyProvider) -> None:
    ours = provider.start(spec())
    foreign = provider.api.create_machine({"image": "something/else", "metadata": {"team": "other"}}, skip_launch=True)
    other_volume = provider.api.create_volume("postgres_data", size_gb=1)
    assert [m.machine_id for m in provider.list_machines()] == [ours.machine_id]
    assert provider.list_machines()[0].session_id == KEY
    provider.destroy(ours.machine_id)
    provider.destroy(foreign.id)
    provider.api.destroy_volume(other_volume.id)


# --------------------------------------------------------------------------- the relay's view
def test_machine_for_peer_names_the_machine_at_an_address(fly: StubFly, provider: FlyProvider) -> None:
    other_key = str(uuid.uuid4())
    first = provider.start(spec())
    second = make_provider(fly).start(spec(other_key))  # started elsewhere: not in this provider's memory
    ip_first, ip_second = (fly.machine(m.machine_id)["private_ip"] for m in (first, second))
    since = last_seq(fly)
    assert provider.machine_for_peer(ip_first) == KEY  # remembered when it started: no API call
    assert fly.calls(since=since) == []
    provider.peer_refresh_seconds = 0.0
    assert provider.machine_for_peer(f"::ffff:{ip_second}") == other_key  # a miss refreshes the map
    assert [c["action"] for c in fly.calls(since=since)] == ["list"]
    provider.peer_refresh_seconds = 3600.0
    since = last_seq(fly)
    for _ in range(20):
        assert provider.machine_for_peer("127.0.0.254") is None  # a stranger cannot make it list on every call
    assert fly.calls("list", since=since) == []
    provider.destroy(first.machine_id)
    provider.destroy(second.machine_id)


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
    fly.fail_next(503, action="volume_list", count=2)
    machine = provider.start(spec())
    assert health(machine.url)["status"] == "ok"
    provider.destroy(machine.machine_id)


def test_a_create_that_fails_after_creating_adopts_the_machine(fly: StubFly, provider: FlyProvider) -> None:
    fly.fail_next(500, action="create", when="after")
    machine = provider.start(spec())
    assert [c["status"] for c in fly.calls("create")] == [500]  # no second create: found by metadata
    assert fly.count() == 1 and health(machine.url)["status"] == "ok"
    provider.destroy(machine.machine_id)


def test_a_volume_create_that_fails_after_creating_adopts_the_volume(fly: StubFly, provider: FlyProvider) -> None:
    fly.fail_next(500, action="volume_create", when="after")
    machine = provider.start(spec())
    assert [c["status"] for c in fly.calls("volume_create")] == [500]  # found by name, not created twice
    assert len(live_volumes(fly)) == 1
    provider.destroy(machine.machine_id)


def test_create_failing_every_time_is_a_clear_error_and_leaks_no_volume(fly: StubFly, provider: FlyProvider) -> None:
    fly.fail_next(503, action="create", count=-1)
    with pytest.raises(ProviderError, match="could not create a Fly machine") as err:
        provider.start(spec())
    assert err.value.retryable and fly.count() == 0
    assert [c["status"] for c in fly.calls("volume_create")] == [200] and live_volumes(fly) == []


def test_no_capacity_is_a_clear_retryable_error_and_leaks_no_volume(fly: StubFly, provider: FlyProvider) -> None:
    fly.capacity_error()
    with pytest.raises(ProviderError, match="no capacity for a shared-cpu-1x machine") as err:
        provider.start(spec())
    assert err.value.retryable and fly.count() == 0 and live_volumes(fly) == []


def test_no_room_for_the_volume_is_a_clear_error_before_any_machine(fly: StubFly, provider: FlyProvider) -> None:
    fly.fail_next(422, action="volume_create", code="volume_placement_capacity", message="no room for it")
    with pytest.raises(ProviderError, match="no room for a 3 GB volume") as err:
        provider.start(spec())
    assert err.value.retryable and fly.calls("create") == [] and live_volumes(fly) == []


def test_a_machine_stuck_in_created_is_destroyed_with_its_volume(fly: StubFly) -> None:
    fly.hold_in_created()
    impatient = make_provider(fly, start_timeout=3.0)
    with pytest.raises(ProviderError, match=r"did not start in 3s .*stayed created"):
        impatient.start(spec())
    assert fly.count() == 0 and live_volumes(fly) == []
    assert "destroy" in mutating(fly) and "volume_destroy" in mutating(fly)


def test_a_launch_whose_cleanup_also_fails_leaves_its_volume_findable(fly: StubFly) -> None:
    """Fly down halfway through: the volume stays, listed under its session for the janitor."""
    fly.capacity_error()
    fly.fail_next(503, action="volume_destroy", count=-1)
    flaky = make_provider(fly, stop_timeout=2.0)
    with pytest.raises(ProviderError):
        flaky.start(spec())
    [volume] = live_volumes(fly)
    listed = [m for m in flaky.list_machines() if m.state == VOLUME_PSEUDO_STATE]
    assert [(m.machine_id, m.session_id) for m in listed] == [(volume["id"], KEY)]
    fly.clear_faults()
    flaky.destroy(volume["id"])  # what reconciliation or the janitor does with it
    assert live_volumes(fly) == []


def test_a_wake_that_fails_keeps_the_workspace_volume(fly: StubFly, provider: FlyProvider) -> None:
    machine = provider.start(spec())
    run(provider, machine.machine_id, "echo kept > /workspace/note.txt")
    provider.destroy(machine.machine_id)  # gone; recreate a session volume with data to wake onto
    kept = provider.start(spec())
    run(provider, kept.machine_id, "echo kept > /workspace/note.txt")
    provider.suspend(kept.machine_id)
    fly.capacity_error()
    with pytest.raises(ProviderError, match="no capacity"):
        provider.start(spec(image="agcluster/agent:v2"))  # a replacement that cannot be placed
    assert fly.count() == 0 and len(live_volumes(fly)) == 1  # the old machine went, the data did not
    again = provider.start(spec(image="agcluster/agent:v2"))
    assert run(provider, again.machine_id, "cat /workspace/note.txt") == "kept\n"
    provider.destroy(again.machine_id)


def test_a_wait_that_needs_several_408_rounds(fly: StubFly, provider: FlyProvider) -> None:
    fly.fail_next(408, action="wait", count=3, message="deadline_exceeded: timed out")
    machine = provider.start(spec())
    started_waits = [c["status"] for c in fly.calls("wait") if c["query"]["state"] == "started"]
    assert started_waits == [408, 408, 408, 200]
    provider.destroy(machine.machine_id)


def test_the_start_lease_is_refreshed_through_a_slow_first_start(fly: StubFly) -> None:
    """A start that takes longer than the lease's TTL keeps the lease: nobody can cut in."""
    fly.hold_in_created()
    patient = make_provider(fly, lease_ttl=2)
    result: list[BaseException | None] = []
    worker = threading.Thread(target=lambda: result.append(_run(patient.start, spec())))
    worker.start()
    _poll(lambda: len([c for c in fly.calls("lease_refresh") if c["status"] == 200]) >= 2)
    machine_id = fly.machines()[0]["id"]
    intruder = FlyMachinesClient(APP, TOKEN, fly.url, retry=RetryPolicy(attempts=1))
    with pytest.raises(Exception, match="409"):
        intruder.acquire_lease(machine_id, ttl=5, description="someone else")
    fly.release_held()
    worker.join(timeout=60)
    assert result == [None]
    patient.destroy(machine_id)


def test_a_lease_granted_but_answered_with_a_5xx_is_adopted(fly: StubFly, provider: FlyProvider) -> None:
    """Fly granted the lease, the answer was lost: without reading it back the provider would
    be locked out of its own machine for the whole TTL (the Fly storm drill's one leak)."""
    machine = provider.start(spec())
    since = len(fly.calls())
    fly.fail_next(503, action="lease_acquire", when="after")
    provider.destroy(machine.machine_id)
    calls = [(c["action"], c["status"]) for c in fly.calls(since=since)]
    # One acquire (granted, answered 503), read back and adopted at once: no 409s waited out.
    assert [status for action, status in calls if action == "lease_acquire"] == [503]
    assert ("lease_get", 200) in calls and ("destroy", 200) in calls
    assert fly.count() == 0


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
    with pytest.raises(ProviderError, match=r"leased by another process.*a human with flyctl") as err:
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
    assert fly.count() == 0 and live_volumes(fly) == []


def test_a_machine_on_an_unreachable_host_is_left_alone(fly: StubFly, provider: FlyProvider) -> None:
    machine = provider.start(spec())
    run(provider, machine.machine_id, "echo kept > /workspace/note.txt")
    fly.host_unreachable(machine.machine_id)
    seen = provider.inspect(machine.machine_id)
    assert seen is not None and seen.state == "unknown" and seen.url == ""
    assert [(m.machine_id, m.session_id) for m in provider.list_machines()] == [(machine.machine_id, KEY)]
    since = last_seq(fly)
    with pytest.raises(ProviderError, match="unreachable") as err:
        provider.start(spec())  # a wake: neither replaced nor given a second volume
    assert err.value.retryable
    with pytest.raises(ProviderError, match="unreachable"):
        provider.resume(machine.machine_id)
    with pytest.raises(ProviderError, match="unreachable"):
        provider.destroy(machine.machine_id)
    assert mutating(fly, since) == [] and fly.count() == 1 and len(live_volumes(fly)) == 1
    fly.host_unreachable(machine.machine_id, False)  # the host comes back: everything is still there
    assert run(provider, machine.machine_id, "cat /workspace/note.txt") == "kept\n"
    provider.destroy(machine.machine_id)


def test_everything_works_under_flys_rate_limits(fly: StubFly, provider: FlyProvider) -> None:
    """The client paces itself inside Fly's documented limits; what Fly still refuses with a
    429 is retried, and every step completes."""
    fly.rate_limits(True)
    machine = provider.start(spec())
    states = [fly.machine(machine.machine_id)["state"]]
    provider.suspend(machine.machine_id)
    states.append(fly.machine(machine.machine_id)["state"])
    provider.resume(machine.machine_id)
    states.append(fly.machine(machine.machine_id)["state"])
    provider.destroy(machine.machine_id)
    states.append(fly.machine(machine.machine_id)["state"])
    assert states == ["started", "suspended", "started", "destroyed"] and live_volumes(fly) == []
    calls = fly.calls()
    assert {c["status"] for c in calls} <= {200, 201, 204, 404, 429}, dump_calls(calls)
    for i, call in enumerate(calls):  # every refusal was followed by the same call succeeding
        if call["status"] == 429:
            later = [c for c in calls[i + 1:] if (c["action"], c["machine_id"]) == (call["action"], call["machine_id"])]
            assert later and later[0]["status"] in (200, 201, 204), dump_calls(calls)
    assert mutating(fly) == [a for a in mutating(fly) if a]  # nothing unrecorded


def dump_calls(calls: list[dict]) -> str:
    return "\n".join(f"{c['seq']} {c['action']} {c['machine_id']} {c['status']}" for c in calls)


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


def test_a_workspace_restored_from_a_snapshot_wins_over_one_on_a_lost_host(fly: StubFly,
                                                                           provider: FlyProvider) -> None:
    """docs/FLY.md, Host trouble: a new volume of the same name is what the next wake uses."""
    lost = provider.start(spec())
    fly.host_unreachable(lost.machine_id)
    restored = provider.api.create_volume(volume_name(KEY), size_gb=3)  # what `--snapshot-id` gives back
    woken = provider.start(spec())
    assert woken.machine_id != lost.machine_id and health(woken.url)["status"] == "ok"
    assert fly.machine(woken.machine_id)["config"]["mounts"][0]["volume"] == restored.id
    assert fly.machine(lost.machine_id)["state"] == "started"  # untouched: nothing can act on it
    fly.host_unreachable(lost.machine_id, False)
    provider.destroy(lost.machine_id)  # the old machine and its volume, not the one in use
    assert [v["id"] for v in live_volumes(fly)] == [restored.id]
    assert fly.machine(woken.machine_id)["state"] == "started"
    provider.destroy(woken.machine_id)
