"""The Machines API client's transport rules, against scripted answers (no network, no sleeps)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from control.providers.fly_api import (
    NO_RATE_LIMIT,
    FlyBadRequest,
    FlyCapacityError,
    FlyConflict,
    FlyConnectionError,
    FlyMachine,
    FlyMachinesClient,
    FlyNotFound,
    FlyPreconditionFailed,
    FlyRateLimited,
    FlyServerError,
    FlyUnauthorized,
    FlyWaitTimeout,
    LeaseHeld,
    RateLimiter,
    RetryPolicy,
    authorization_header,
    duration,
    error_for,
)

Handler = Callable[[httpx.Request], httpx.Response]


class Script:
    """Answers requests from a list and remembers them; what the test asserts on.

    Time is simulated: sleeping and a ``/wait`` answered 408 advance the clock by what
    they would have taken, so deadlines are exercised without waiting.
    """

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []
        self.now = 0.0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if answer.status_code == 408 and "timeout" in request.url.params:
            self.now += int(request.url.params["timeout"])
        return answer

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def client(self, token: str = "secret-token", attempts: int = 6,
               limiter: RateLimiter = NO_RATE_LIMIT) -> FlyMachinesClient:
        http = httpx.Client(transport=httpx.MockTransport(self))
        return FlyMachinesClient("agents", token, "http://fly.test", http=http, limiter=limiter,
                                 retry=RetryPolicy(attempts=attempts), sleep=self.sleep, clock=lambda: self.now)


def fly_error(status: int, message: str, code: str | None = None, **headers: str) -> httpx.Response:
    body = {"error": message, **({"status": code} if code else {})}
    return httpx.Response(status, json=body, headers=headers)


MACHINE = {"id": "3d8d413b29d089", "state": "started", "instance_id": "01H0000000000000000000000A",
           "private_ip": "fdaa::3", "config": {"image": "a:1", "metadata": {"k": "v"}, "env": {"X": "1"}}}


# --------------------------------------------------------------------------- error mapping
@pytest.mark.parametrize(("status", "body", "action", "kind"), [
    (400, {"error": "bad"}, "create", FlyBadRequest),
    (401, {"error": "no"}, "get", FlyUnauthorized),
    (403, {"error": "no"}, "get", FlyUnauthorized),
    (404, {"error": "machine not found"}, "get", FlyNotFound),
    (408, {"error": "deadline_exceeded"}, "wait", FlyWaitTimeout),
    (409, {"error": "lease currently held by x"}, "lease_acquire", LeaseHeld),
    (409, {"error": "machine is currently leased by x"}, "stop", LeaseHeld),
    (409, {"error": "name taken"}, "create", FlyConflict),
    (409, {"error": "insufficient memory available to fulfill request"}, "update", FlyCapacityError),
    (422, {"error": "no room", "status": "insufficient_capacity"}, "create", FlyCapacityError),
    (412, {"error": "unable to start machine from current state: 'created'"}, "start", FlyPreconditionFailed),
    (429, {"error": "slow down"}, "create", FlyRateLimited),
    (503, {"error": "unavailable"}, "get", FlyServerError),
    (502, "<html>bad gateway</html>", "get", FlyServerError),
])
def test_every_error_answer_maps_to_one_type(status: int, body: object, action: str, kind: type) -> None:
    error = error_for(status, body, action=action, machine_id="m1", headers={"retry-after": "2"})
    assert type(error) is kind
    assert error.status == status and error.action == action and error.machine_id == "m1"
    assert error.retry_after == 2.0
    assert f"Fly {action} machine m1 failed (HTTP {status})" in error.message


@pytest.mark.parametrize(("token", "header"), [
    ("FlyV1 fm2_abc,fm2_def", "FlyV1 fm2_abc,fm2_def"),   # what `fly tokens create deploy` prints
    ("fm2_abc,fm2_def", "FlyV1 fm2_abc,fm2_def"),         # the same, pasted without its scheme
    ("fm1r_abc", "FlyV1 fm1r_abc"),
    ("fm1a_abc", "FlyV1 fm1a_abc"),
    ("Bearer fm2_abc", "FlyV1 fm2_abc"),                  # a wrong scheme is replaced, not kept
    ("  FlyV1 fm2_abc \n", "FlyV1 fm2_abc"),
    ("plain-token", "Bearer plain-token"),                # an OAuth / personal token
    ("Bearer plain-token", "Bearer plain-token"),
    ("fm3_future", "Bearer fm3_future"),
])
def test_macaroons_go_with_the_flyv1_scheme_and_others_as_bearer(token: str, header: str) -> None:
    assert authorization_header(token) == header


def test_every_request_carries_that_header() -> None:
    script = Script(httpx.Response(200, json=[]), httpx.Response(200, json=[]))
    script.client(token="fm2_abc").list_machines()
    script.client(token="plain").list_machines()
    assert [r.headers["Authorization"] for r in script.requests] == ["FlyV1 fm2_abc", "Bearer plain"]


def test_the_token_never_appears_in_an_error_message() -> None:
    script = Script(httpx.ConnectError("refused"))
    with pytest.raises(FlyConnectionError) as err:
        script.client(token="FlyV1 fm2_very-secret", attempts=1).get_machine("m1")
    assert "very-secret" not in str(err.value)


# --------------------------------------------------------------------------- retries
def test_a_429_storm_is_ridden_out_even_for_create_honouring_retry_after() -> None:
    script = Script(*[fly_error(429, "slow down", **{"Retry-After": "1.5"})] * 4, httpx.Response(200, json=MACHINE))
    machine = script.client().create_machine({"image": "a:1"})
    assert machine.id == MACHINE["id"] and len(script.requests) == 5
    assert all(delay >= 1.5 for delay in script.sleeps)


def test_a_5xx_on_create_is_not_repeated_because_the_machine_may_exist() -> None:
    script = Script(fly_error(500, "oops"))
    with pytest.raises(FlyServerError):
        script.client().create_machine({"image": "a:1"})
    assert len(script.requests) == 1


def test_a_connection_that_never_reached_fly_is_repeated_even_for_create() -> None:
    script = Script(httpx.ConnectError("refused"), httpx.Response(200, json=MACHINE))
    assert script.client().create_machine({"image": "a:1"}).id == MACHINE["id"]


def test_a_connection_that_broke_after_sending_is_not_repeated_for_create() -> None:
    script = Script(httpx.ReadTimeout("slow"))
    with pytest.raises(FlyConnectionError) as err:
        script.client().create_machine({"image": "a:1"})
    assert err.value.sent and len(script.requests) == 1


def test_idempotent_calls_repeat_on_5xx_and_give_up_after_the_budget() -> None:
    script = Script(fly_error(502, "bad gateway"), fly_error(503, "busy"), httpx.Response(200, json=MACHINE))
    assert script.client().get_machine("m1").state == "started"
    script = Script(*[fly_error(500, "down")] * 3)
    with pytest.raises(FlyServerError):
        script.client(attempts=3).get_machine("m1")
    assert len(script.requests) == 3


def test_client_errors_are_never_repeated() -> None:
    script = Script(fly_error(404, "machine not found"))
    with pytest.raises(FlyNotFound):
        script.client().get_machine("m1")
    assert len(script.requests) == 1


def test_backoff_grows_with_full_jitter_and_a_cap() -> None:
    policy = RetryPolicy(attempts=10, base_delay=0.1, max_delay=1.0)
    for attempt in range(10):
        for _ in range(50):
            assert 0 <= policy.delay(attempt) <= min(1.0, 0.1 * 2 ** attempt)
    assert policy.delay(0, retry_after=3.0) == 3.0


# --------------------------------------------------------------------------- endpoint rules
def test_wait_repeats_408_rounds_with_timeouts_inside_one_to_sixty() -> None:
    script = Script(*[fly_error(408, "deadline_exceeded")] * 3, httpx.Response(200, json={"ok": True}))
    script.client().wait_machine("m1", "started", timeout=200, version="01H")
    assert [int(r.url.params["timeout"]) for r in script.requests] == [60, 60, 60, 20]
    assert all(r.url.params["version"] == "01H" and r.url.params["state"] == "started" for r in script.requests)


def test_wait_gives_up_at_the_callers_deadline() -> None:
    script = Script(*[fly_error(408, "deadline_exceeded")] * 3)
    with pytest.raises(FlyWaitTimeout):
        script.client().wait_machine("m1", "stopped", timeout=90, version="01H")
    assert [r.url.params["timeout"] for r in script.requests] == ["60", "30"]
    script = Script(fly_error(408, "deadline_exceeded"))
    with pytest.raises(FlyWaitTimeout):
        script.client().wait_machine("m1", "started", timeout=0)
    assert script.requests[0].url.params["timeout"] == "1"


def test_wait_rounds_can_be_shorter_and_call_back_between_them() -> None:
    """How the provider keeps its lease alive while a slow first start goes on."""
    script = Script(*[fly_error(408, "deadline_exceeded")] * 3, httpx.Response(200, json={"ok": True}))
    calls: list[float] = []
    script.client().wait_machine("m1", "started", timeout=200, version="01H", round_seconds=20,
                                 on_round=lambda: calls.append(script.now))
    assert [int(r.url.params["timeout"]) for r in script.requests] == [20, 20, 20, 20]
    assert calls == [20, 40, 60]
    assert all("instance_id" not in r.url.params for r in script.requests)  # the deprecated name is never sent


def test_start_calls_back_between_412_retries() -> None:
    script = Script(*[fly_error(412, "unable to start machine from current state: 'created'")] * 2,
                    httpx.Response(200, json={"previous_state": "created"}))
    calls: list[int] = []
    script.client().start_machine("m1", on_retry=lambda: calls.append(1))
    assert calls == [1, 1]


def test_a_machine_on_an_unreachable_host_keeps_what_flyd_still_knows() -> None:
    data = {"id": "m1", "state": "started", "host_status": "unknown",
            "incomplete_config": {"image": "a:1", "metadata": {"agcluster_session": "s1"}}}
    machine = FlyMachine.from_api(data)
    assert not machine.host_ok and not machine.config_complete
    assert machine.metadata == {"agcluster_session": "s1"} and machine.env == {}
    healthy = FlyMachine.from_api(MACHINE)
    assert healthy.host_ok and healthy.config_complete and healthy.version == MACHINE["instance_id"]


def test_volume_requests_and_answers() -> None:
    volume = {"id": "vol_abc", "name": "ws_x", "state": "created", "size_gb": 10, "region": "ord",
              "attached_machine_id": None, "host_status": "ok"}
    script = Script(httpx.Response(200, json=volume),
                    httpx.Response(200, json=[volume, {**volume, "id": "vol_old", "state": "pending_destroy"},
                                              {**volume, "id": "vol_lost", "host_status": "unknown",
                                               "attached_machine_id": "m1"}]),
                    httpx.Response(200, json=volume), httpx.Response(200, json={**volume, "state": "destroyed"}))
    client = script.client()
    created = client.create_volume("ws_x", size_gb=10, region="ord",
                                   compute={"cpu_kind": "shared", "cpus": 2, "memory_mb": 4096})
    assert (created.id, created.size_gb, created.gone) == ("vol_abc", 10, False)
    listed = client.list_volumes()
    assert [(v.id, v.gone, v.host_ok, v.attached_machine_id) for v in listed] == [
        ("vol_abc", False, True, None), ("vol_old", True, True, None), ("vol_lost", False, False, "m1")]
    assert client.get_volume("vol_abc").name == "ws_x"
    client.destroy_volume("vol_abc")
    seen = [(r.method, r.url.path, json.loads(r.content) if r.content else None) for r in script.requests]
    base = "/v1/apps/agents/volumes"
    assert seen == [
        ("POST", base, {"name": "ws_x", "size_gb": 10, "encrypted": True, "region": "ord",
                        "compute": {"cpu_kind": "shared", "cpus": 2, "memory_mb": 4096}}),
        ("GET", base, None), ("GET", f"{base}/vol_abc", None), ("DELETE", f"{base}/vol_abc", None)]


def test_a_5xx_on_volume_create_is_not_repeated_because_the_volume_may_exist() -> None:
    script = Script(fly_error(500, "oops"))
    with pytest.raises(FlyServerError) as err:
        script.client().create_volume("ws_x", size_gb=1)
    assert len(script.requests) == 1 and "Fly volume_create failed (HTTP 500)" in err.value.message
    script = Script(fly_error(404, "volume not found"))
    with pytest.raises(FlyNotFound) as missing:
        script.client().destroy_volume("vol_abc")
    assert "volume vol_abc" in missing.value.message


def test_wait_refuses_states_fly_cannot_wait_for() -> None:
    with pytest.raises(ValueError):
        Script().client().wait_machine("m1", "starting")


def test_start_retries_412_while_the_machine_is_still_created() -> None:
    script = Script(fly_error(412, "unable to start machine from current state: 'created'"),
                    fly_error(412, "unable to start machine from current state: 'replacing'"),
                    httpx.Response(200, json={"previous_state": "created"}))
    assert script.client().start_machine("m1", nonce="n1")["previous_state"] == "created"
    assert [r.headers["fly-machine-lease-nonce"] for r in script.requests] == ["n1"] * 3


def test_start_gives_up_on_412_at_its_deadline() -> None:
    script = Script(*[fly_error(412, "unable to start machine from current state: 'created'")] * 50)
    with pytest.raises(FlyPreconditionFailed):
        script.client().start_machine("m1", ready_timeout=5)
    assert 1 < len(script.requests) < 50 and sum(script.sleeps) <= 5


def test_request_shapes() -> None:
    ok = httpx.Response(200, json={"ok": True})
    lease = httpx.Response(201, json={"status": "success", "data": {"nonce": "n1", "expires_at": 99, "owner": "o"}})
    script = Script(httpx.Response(200, json=[MACHINE]), ok, ok, ok, lease, ok, httpx.Response(204), ok,
                    httpx.Response(200, json={"exit_code": 3, "stdout": "out", "stderr": "err"}))
    client = script.client()
    assert client.list_machines(metadata={"agcluster_session": "s1"}, region="ord")[0].metadata == {"k": "v"}
    client.stop_machine("m1", signal="SIGTERM", timeout=10, nonce="n1")
    client.destroy_machine("m1", force=True)
    client.suspend_machine("m1")
    assert client.acquire_lease("m1", ttl=30, description="d").nonce == "n1"
    client.release_lease("m1", "n1")
    client.set_metadata("m1", "k", "v")
    client.delete_metadata("m1", "k")
    result = client.exec_machine("m1", ["ls", "-la"], timeout=5)
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out", "err")
    seen = [(r.method, r.url.path, dict(r.url.params), json.loads(r.content) if r.content else None)
            for r in script.requests]
    base = "/v1/apps/agents/machines"
    assert seen == [
        ("GET", base, {"metadata.agcluster_session": "s1", "region": "ord"}, None),
        ("POST", f"{base}/m1/stop", {}, {"signal": "SIGTERM", "timeout": "10s"}),
        ("DELETE", f"{base}/m1", {"force": "true"}, None),
        ("POST", f"{base}/m1/suspend", {}, None),
        ("POST", f"{base}/m1/lease", {}, {"ttl": 30, "description": "d"}),
        ("DELETE", f"{base}/m1/lease", {}, None),
        ("POST", f"{base}/m1/metadata/k", {}, {"value": "v"}),
        ("DELETE", f"{base}/m1/metadata/k", {}, None),
        ("POST", f"{base}/m1/exec", {}, {"command": ["ls", "-la"], "timeout": 5}),
    ]
    assert script.requests[1].headers["fly-machine-lease-nonce"] == "n1"
    assert script.requests[5].headers["fly-machine-lease-nonce"] == "n1"


def test_durations_are_go_strings() -> None:
    assert duration(30) == "30s" and duration(1.5) == "1500ms"


# --------------------------------------------------------------------------- pacing
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_pacing_allows_a_burst_of_three_then_one_per_second_per_action_and_machine() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    for _ in range(3):
        limiter.acquire("start", "m1")
    assert clock.now == 0.0
    limiter.acquire("start", "m1")
    assert clock.now == pytest.approx(1.0)
    limiter.acquire("start", "m2")  # another machine has its own budget
    limiter.acquire("stop", "m1")   # and so has another action
    assert clock.now == pytest.approx(1.0)


def test_get_machine_has_the_larger_budget() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    for _ in range(10):
        limiter.acquire("get", "m1")
    assert clock.now == 0.0
    limiter.acquire("get", "m1")
    assert clock.now == pytest.approx(0.2)
