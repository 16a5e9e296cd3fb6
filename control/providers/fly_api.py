"""A typed client for the Fly Machines API: one method per endpoint, errors mapped once.

Everything the provider needs to know about Fly's HTTP surface lives here, so the provider
reads as lifecycle policy and the stand-in (``stubs.fly``) can be checked against one place.

- **Auth.** Macaroon tokens (``fm1r_``, ``fm1a_``, ``fm2_``; what ``fly tokens create deploy``
  prints, with or without its ``FlyV1`` prefix, possibly several comma-separated) go with the
  ``FlyV1`` scheme; anything else is sent as ``Bearer <token>`` (fly-go ``tokens.Parse``).
- **Errors.** Fly answers ``{"error": "...", "status": "<code>"}``; :func:`error_for` turns
  every non-2xx answer into one :class:`FlyApiError` subclass, and nothing else inspects
  status codes.
- **Retries.** A 429 or a connection that never reached Fly is safe to repeat for any call;
  a 5xx or a broken connection after sending is repeated only for idempotent calls, because
  a create or lease that Fly did carry out must not happen twice. Delays are exponential with
  full jitter and honour ``Retry-After``.
- **Pacing.** Fly limits each action per machine (1 req/s, bursts of 3; Get Machine 5 req/s,
  bursts of 10). :class:`RateLimiter` keeps us inside that budget instead of discovering it
  through 429s.
- **Long waits.** ``/wait`` accepts 1–60 s and answers 408 at its deadline, so
  :meth:`FlyMachinesClient.wait_machine` repeats rounds until the caller's own deadline. It
  names the machine version with ``version`` (``instance_id`` is the deprecated spelling).
- **Unreachable hosts.** A machine (or volume) on a host flyd cannot reach comes back with
  ``host_status`` other than ``ok`` and no ``config``; :class:`FlyMachine` falls back to the
  partial ``incomplete_config`` and says so (``host_ok``), so callers never mistake "unknown"
  for "has no metadata".
- **Start races.** ``/start`` answers 412 while a machine is still ``created`` (its image is
  being prepared) or ``replacing``; :meth:`FlyMachinesClient.start_machine` retries until it
  is ready.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

DEFAULT_API_URL = "https://api.machines.dev"
NONCE_HEADER = "fly-machine-lease-nonce"
WAIT_MIN_SECONDS = 1
WAIT_MAX_SECONDS = 60
WAIT_STATES = ("started", "stopped", "suspended", "destroyed")
CAPACITY_CODES = ("insufficient_capacity", "volume_placement_capacity")
MACAROON_PREFIXES = ("fm1r", "fm1a", "fm2")
# States of a volume on its way out; Fly still lists them (fly-go filters them client-side).
VOLUME_GONE_STATES = ("scheduling_destroy", "fork_cleanup", "waiting_for_detach", "pending_destroy", "destroying",
                      "destroyed")
CAPACITY_PHRASES = ("insufficient cpus available", "insufficient memory available",
                    "insufficient resources available", "no capacity")
LEASE_ACTIONS = ("lease_acquire", "lease_refresh", "lease_get", "lease_release")


# --------------------------------------------------------------------------- errors
class FlyApiError(Exception):
    """A Machines API call failed; ``message`` names the action and never carries the token."""

    status = 0

    def __init__(self, message: str, *, status: int | None = None, code: str = "", action: str = "",
                 machine_id: str = "", request_id: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.code = code
        self.action = action
        self.machine_id = machine_id
        self.request_id = request_id
        self.retry_after = retry_after


class FlyConnectionError(FlyApiError):
    """No HTTP answer. ``sent`` says whether the request may have reached Fly (and acted)."""

    def __init__(self, message: str, *, sent: bool, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.sent = sent


class FlyBadRequest(FlyApiError):
    status = 400


class FlyUnauthorized(FlyApiError):
    status = 401


class FlyNotFound(FlyApiError):
    status = 404


class FlyWaitTimeout(FlyApiError):
    """``/wait`` reached its deadline (408), or :meth:`wait_machine` ran out of rounds."""

    status = 408


class FlyConflict(FlyApiError):
    status = 409


class LeaseHeld(FlyConflict):
    """Someone else holds the machine's lease (or we did not send its nonce)."""


class FlyPreconditionFailed(FlyApiError):
    """The machine is in a state that does not allow the action (e.g. start while ``created``)."""

    status = 412


class FlyCapacityError(FlyApiError):
    """Fly has no room for this guest size in this region (or on the volume's host)."""


class FlyRateLimited(FlyApiError):
    status = 429


class FlyServerError(FlyApiError):
    status = 500


def error_for(status: int, body: Any, *, action: str, machine_id: str = "",
              headers: Mapping[str, str] | None = None) -> FlyApiError:
    """The one place a Fly error answer becomes an exception."""
    headers = headers or {}
    message, code = _error_text(body)
    noun = "volume" if action.startswith("volume") else "machine"
    where = f" {noun} {machine_id}" if machine_id else ""
    text = f"Fly {action}{where} failed (HTTP {status}): {message or 'no details'}"
    kwargs: dict[str, Any] = {"status": status, "code": code, "action": action, "machine_id": machine_id,
                              "request_id": headers.get("fly-request-id", ""),
                              "retry_after": _retry_after(headers.get("retry-after"))}
    lowered = message.lower()
    if code in CAPACITY_CODES or (status == 409 and any(p in lowered for p in CAPACITY_PHRASES)):
        return FlyCapacityError(text, **kwargs)
    if status == 400:
        return FlyBadRequest(text, **kwargs)
    if status in (401, 403):
        return FlyUnauthorized(text, **kwargs)
    if status == 404:
        return FlyNotFound(text, **kwargs)
    if status == 408:
        return FlyWaitTimeout(text, **kwargs)
    if status == 409:
        if action in LEASE_ACTIONS or "lease" in lowered:
            return LeaseHeld(text, **kwargs)
        return FlyConflict(text, **kwargs)
    if status == 412:
        return FlyPreconditionFailed(text, **kwargs)
    if status == 429:
        return FlyRateLimited(text, **kwargs)
    if status >= 500:
        return FlyServerError(text, **kwargs)
    return FlyApiError(text, **kwargs)


def _error_text(body: Any) -> tuple[str, str]:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # tolerate a nested shape rather than lose the message
            return str(error.get("message") or error), str(error.get("code") or body.get("status") or "")
        if error is not None:
            return str(error), str(body.get("status") or "")
        return str(body.get("message") or ""), str(body.get("status") or "")
    return (str(body)[:300] if body else ""), ""


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def authorization_header(token: str) -> str:
    """``FlyV1`` for macaroons (recognised by prefix, as fly-go does), ``Bearer`` otherwise.

    ``fly tokens create`` prints ``FlyV1 fm2_…``; people also paste the bare ``fm2_…`` or
    a ``Bearer``-prefixed copy, so any scheme given is stripped and the right one chosen.
    """
    bare = token.strip()
    while True:
        scheme, _, rest = bare.partition(" ")
        if rest and scheme.lower() in ("bearer", "flyv1"):
            bare = rest.strip()
            continue
        break
    parts = [part.strip() for part in bare.split(",") if part.strip()]
    if any(part.split("_", 1)[0] in MACAROON_PREFIXES for part in parts):
        return "FlyV1 " + ",".join(parts)
    return f"Bearer {bare}"


# --------------------------------------------------------------------------- typed answers
@dataclass(frozen=True)
class FlyMachine:
    id: str
    name: str = ""
    state: str = ""
    region: str = ""
    instance_id: str = ""
    private_ip: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    nonce: str | None = None
    host_status: str = "ok"
    config_complete: bool = True

    @property
    def host_ok(self) -> bool:
        """False when flyd cannot reach the machine's host: its state and config are stale."""
        return self.host_status in ("", "ok")

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.config.get("metadata") or {})

    @property
    def image(self) -> str:
        return str(self.config.get("image") or "")

    @property
    def env(self) -> dict[str, str]:
        return dict(self.config.get("env") or {})

    @property
    def guest(self) -> dict[str, Any]:
        return dict(self.config.get("guest") or {})

    @property
    def mounts(self) -> list[dict[str, Any]]:
        return [dict(m) for m in self.config.get("mounts") or [] if isinstance(m, dict)]

    @property
    def version(self) -> str:
        """The machine version ``/wait`` takes (``instance_id`` in older answers)."""
        return self.instance_id

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> FlyMachine:
        config = data.get("config")
        complete = isinstance(config, dict)
        if not complete:
            config = data.get("incomplete_config") if isinstance(data.get("incomplete_config"), dict) else {}
        return cls(
            id=str(data.get("id") or ""), name=str(data.get("name") or ""), state=str(data.get("state") or ""),
            region=str(data.get("region") or ""),
            instance_id=str(data.get("instance_id") or data.get("version") or ""),
            private_ip=str(data.get("private_ip") or ""), config=dict(config or {}),
            created_at=str(data.get("created_at") or ""), updated_at=str(data.get("updated_at") or ""),
            events=list(data.get("events") or []), nonce=data.get("nonce") or None,
            host_status=str(data.get("host_status") or "ok"), config_complete=complete,
        )


@dataclass(frozen=True)
class FlyVolume:
    id: str
    name: str = ""
    state: str = ""
    size_gb: int = 0
    region: str = ""
    attached_machine_id: str | None = None
    host_status: str = "ok"

    @property
    def gone(self) -> bool:
        return self.state in VOLUME_GONE_STATES

    @property
    def host_ok(self) -> bool:
        return self.host_status in ("", "ok")

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> FlyVolume:
        return cls(id=str(data.get("id") or ""), name=str(data.get("name") or ""), state=str(data.get("state") or ""),
                   size_gb=int(data.get("size_gb") or 0), region=str(data.get("region") or ""),
                   attached_machine_id=data.get("attached_machine_id") or None,
                   host_status=str(data.get("host_status") or "ok"))


@dataclass(frozen=True)
class Lease:
    nonce: str
    expires_at: int = 0
    owner: str = ""
    description: str = ""
    version: str = ""

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Lease:
        nested = data.get("data")
        inner: dict[str, Any] = nested if isinstance(nested, dict) else data
        return cls(nonce=str(inner.get("nonce") or ""), expires_at=int(inner.get("expires_at") or 0),
                   owner=str(inner.get("owner") or ""), description=str(inner.get("description") or ""),
                   version=str(inner.get("version") or ""))


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str = ""
    stderr: str = ""


@dataclass(frozen=True)
class MachineEvent:
    id: str
    type: str
    status: str
    source: str = ""
    timestamp: int = 0
    request: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> MachineEvent:
        return cls(id=str(data.get("id") or ""), type=str(data.get("type") or ""),
                   status=str(data.get("status") or ""), source=str(data.get("source") or ""),
                   timestamp=int(data.get("timestamp") or 0), request=dict(data.get("request") or {}))


# --------------------------------------------------------------------------- pacing and retries
@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: spreads retries of many callers apart."""

    attempts: int = 6
    base_delay: float = 0.2
    max_delay: float = 5.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        ceiling = min(self.max_delay, self.base_delay * (2 ** attempt))
        jittered = random.uniform(0, ceiling)
        return max(jittered, retry_after or 0.0)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Fly's documented per-action, per-machine limits, as token buckets on our side.

    Sustained ``rate`` requests per second with bursts of ``burst``; Get Machine has its own,
    higher budget. Buckets are keyed by (action, machine or app), exactly as Fly scopes them.
    """

    DEFAULT = (1.0, 3)
    PER_ACTION: ClassVar[dict[str, tuple[float, int]]] = {"get": (5.0, 10)}

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 limits: Mapping[str, tuple[float, int]] | None = None,
                 default: tuple[float, int] | None = None) -> None:
        self._clock = clock
        self._sleep = sleep
        self._limits = dict(self.PER_ACTION if limits is None else limits)
        self._default = default or self.DEFAULT
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def reserve(self, action: str, scope: str) -> float:
        """Take one token and return how long the caller must wait before using it."""
        rate, burst = self._limits.get(action, self._default)
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get((action, scope))
            if bucket is None:
                bucket = self._buckets[(action, scope)] = _Bucket(float(burst), now)
            bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            bucket.tokens -= 1.0
            return 0.0 if bucket.tokens >= 0 else -bucket.tokens / rate

    def acquire(self, action: str, scope: str) -> None:
        wait = self.reserve(action, scope)
        if wait > 0:
            self._sleep(wait)


class _NoLimit(RateLimiter):
    def reserve(self, action: str, scope: str) -> float:
        return 0.0


NO_RATE_LIMIT: RateLimiter = _NoLimit()


# --------------------------------------------------------------------------- the client
class FlyMachinesClient:
    """The Machines API of one Fly app (``/v1/apps/{app}/machines``)."""

    def __init__(self, app: str, token: str, base_url: str = DEFAULT_API_URL, *,
                 http: httpx.Client | None = None, retry: RetryPolicy | None = None,
                 limiter: RateLimiter | None = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, timeout: float = 30.0) -> None:
        if not app:
            raise ValueError("a Fly app name is required")
        if not token:
            raise ValueError("a Fly API token is required")
        self.app = app
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.limiter = limiter or RateLimiter(sleep=sleep)
        self._sleep = sleep
        self._clock = clock
        self._timeout = timeout
        self._own_http = http is None
        self._http = http or httpx.Client(timeout=httpx.Timeout(timeout, connect=5.0))
        self._auth = authorization_header(token)

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    # machines -------------------------------------------------------------------------
    def list_machines(self, *, metadata: Mapping[str, str] | None = None, region: str | None = None,
                      include_deleted: bool = False) -> list[FlyMachine]:
        params: dict[str, str] = {f"metadata.{k}": v for k, v in (metadata or {}).items()}
        if region:
            params["region"] = region
        if include_deleted:
            params["include_deleted"] = "true"
        data = self._call("GET", "", action="list", idempotent=True, params=params)
        return [FlyMachine.from_api(m) for m in data or []]

    def create_machine(self, config: Mapping[str, Any], *, name: str | None = None, region: str | None = None,
                       skip_launch: bool = False, lease_ttl: int | None = None) -> FlyMachine:
        """Not idempotent: after a 5xx the machine may exist; callers look it up by metadata."""
        body: dict[str, Any] = {"config": dict(config)}
        if name:
            body["name"] = name
        if region:
            body["region"] = region
        if skip_launch:
            body["skip_launch"] = True
        if lease_ttl:
            body["lease_ttl"] = lease_ttl
        return FlyMachine.from_api(self._call("POST", "", action="create", idempotent=False, json=body))

    def get_machine(self, machine_id: str) -> FlyMachine:
        return FlyMachine.from_api(self._call("GET", f"/{_seg(machine_id)}", action="get", machine_id=machine_id,
                                              idempotent=True))

    def update_machine(self, machine_id: str, config: Mapping[str, Any], *, nonce: str | None = None,
                       skip_launch: bool = False, current_version: str | None = None) -> FlyMachine:
        body: dict[str, Any] = {"config": dict(config)}
        if skip_launch:
            body["skip_launch"] = True
        if current_version:
            body["current_version"] = current_version
        return FlyMachine.from_api(self._call("POST", f"/{_seg(machine_id)}", action="update",
                                              machine_id=machine_id, idempotent=False, json=body, nonce=nonce))

    def start_machine(self, machine_id: str, *, nonce: str | None = None, ready_timeout: float = 60.0,
                      on_retry: Callable[[], None] | None = None) -> dict[str, Any]:
        """Start; a 412 (still ``created``/``replacing``) is retried until ``ready_timeout``.

        ``on_retry`` runs between attempts (the provider refreshes its lease there).
        """
        deadline = self._clock() + ready_timeout
        attempt = 0
        while True:
            try:
                return self._call("POST", f"/{_seg(machine_id)}/start", action="start", machine_id=machine_id,
                                  idempotent=True, nonce=nonce) or {}
            except FlyPreconditionFailed:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise
                self._sleep(min(remaining, self.retry.delay(attempt)))
                attempt += 1
                if on_retry is not None:
                    on_retry()

    def stop_machine(self, machine_id: str, *, signal: str | None = None, timeout: float | None = None,
                     nonce: str | None = None) -> None:
        body: dict[str, Any] = {}
        if signal:
            body["signal"] = signal
        if timeout is not None:
            body["timeout"] = duration(timeout)
        self._call("POST", f"/{_seg(machine_id)}/stop", action="stop", machine_id=machine_id, idempotent=True,
                   json=body, nonce=nonce)

    def suspend_machine(self, machine_id: str, *, nonce: str | None = None) -> None:
        self._call("POST", f"/{_seg(machine_id)}/suspend", action="suspend", machine_id=machine_id,
                   idempotent=True, nonce=nonce)

    def wait_machine(self, machine_id: str, state: str = "started", *, timeout: float = 60.0,
                     version: str | None = None, from_event_id: str | None = None,
                     round_seconds: int = WAIT_MAX_SECONDS, on_round: Callable[[], None] | None = None) -> None:
        """Block until ``state``; waits longer than one round are several ``/wait`` rounds.

        ``version`` is the machine version (its ``instance_id``) the state must belong to;
        Fly requires it for ``stopped``. ``on_round`` runs between rounds, so a caller
        holding a lease can refresh it while a slow first start goes on.
        """
        if state not in WAIT_STATES:
            raise ValueError(f"cannot wait for state {state!r}; one of {', '.join(WAIT_STATES)}")
        longest = max(WAIT_MIN_SECONDS, min(WAIT_MAX_SECONDS, int(round_seconds)))
        deadline = self._clock() + max(timeout, WAIT_MIN_SECONDS)
        while True:
            remaining = deadline - self._clock()
            seconds = int(min(longest, max(WAIT_MIN_SECONDS, math.ceil(remaining))))
            params: dict[str, str] = {"state": state, "timeout": str(seconds)}
            if version:
                params["version"] = version
            if from_event_id:
                params["from_event_id"] = from_event_id
            try:
                self._call("GET", f"/{_seg(machine_id)}/wait", action="wait", machine_id=machine_id,
                           idempotent=True, params=params, read_timeout=seconds + 15)
                return
            except FlyWaitTimeout:
                if deadline - self._clock() <= 0:
                    raise
            if on_round is not None:
                on_round()

    def destroy_machine(self, machine_id: str, *, force: bool = False, nonce: str | None = None) -> None:
        params = {"force": "true"} if force else {}
        self._call("DELETE", f"/{_seg(machine_id)}", action="destroy", machine_id=machine_id, idempotent=True,
                   params=params, nonce=nonce)

    # leases ---------------------------------------------------------------------------
    def acquire_lease(self, machine_id: str, *, ttl: int = 30, description: str = "") -> Lease:
        """Not retried on 5xx: a lease Fly granted but we never saw would lock us out for ``ttl``."""
        body = {"ttl": int(ttl), "description": description}
        return Lease.from_api(self._call("POST", f"/{_seg(machine_id)}/lease", action="lease_acquire",
                                         machine_id=machine_id, idempotent=False, json=body) or {})

    def refresh_lease(self, machine_id: str, nonce: str, *, ttl: int = 30) -> Lease:
        return Lease.from_api(self._call("POST", f"/{_seg(machine_id)}/lease", action="lease_refresh",
                                         machine_id=machine_id, idempotent=True, json={"ttl": int(ttl)},
                                         nonce=nonce) or {})

    def get_lease(self, machine_id: str) -> Lease:
        return Lease.from_api(self._call("GET", f"/{_seg(machine_id)}/lease", action="lease_get",
                                         machine_id=machine_id, idempotent=True) or {})

    def release_lease(self, machine_id: str, nonce: str) -> None:
        self._call("DELETE", f"/{_seg(machine_id)}/lease", action="lease_release", machine_id=machine_id,
                   idempotent=True, nonce=nonce)

    # inside the machine -----------------------------------------------------------------
    def exec_machine(self, machine_id: str, command: list[str], *, timeout: int = 30) -> ExecResult:
        data = self._call("POST", f"/{_seg(machine_id)}/exec", action="exec", machine_id=machine_id,
                          idempotent=False, json={"command": list(command), "timeout": int(timeout)},
                          read_timeout=timeout + 15) or {}
        return ExecResult(exit_code=int(data.get("exit_code") or 0), stdout=str(data.get("stdout") or ""),
                          stderr=str(data.get("stderr") or ""))

    def list_events(self, machine_id: str) -> list[MachineEvent]:
        data = self._call("GET", f"/{_seg(machine_id)}/events", action="events", machine_id=machine_id,
                          idempotent=True)
        return [MachineEvent.from_api(e) for e in data or []]

    # metadata -------------------------------------------------------------------------
    def get_metadata(self, machine_id: str) -> dict[str, str]:
        data = self._call("GET", f"/{_seg(machine_id)}/metadata", action="metadata_get", machine_id=machine_id,
                          idempotent=True)
        return {str(k): str(v) for k, v in (data or {}).items()}

    def set_metadata(self, machine_id: str, key: str, value: str, *, nonce: str | None = None) -> None:
        self._call("POST", f"/{_seg(machine_id)}/metadata/{_seg(key)}", action="metadata_set",
                   machine_id=machine_id, idempotent=True, json={"value": value}, nonce=nonce)

    def delete_metadata(self, machine_id: str, key: str, *, nonce: str | None = None) -> None:
        self._call("DELETE", f"/{_seg(machine_id)}/metadata/{_seg(key)}", action="metadata_delete",
                   machine_id=machine_id, idempotent=True, nonce=nonce)

    # volumes --------------------------------------------------------------------------
    def list_volumes(self) -> list[FlyVolume]:
        """Every volume of the app, those being destroyed included (filter with ``gone``)."""
        data = self._call("GET", "", action="volume_list", idempotent=True, resource="volumes")
        return [FlyVolume.from_api(v) for v in data or []]

    def create_volume(self, name: str, *, size_gb: int, region: str | None = None,
                      compute: Mapping[str, Any] | None = None, encrypted: bool = True) -> FlyVolume:
        """Not idempotent (names need not be unique): after a 5xx, look it up by name first.

        ``compute`` is the guest the volume's machine will have, so Fly places the volume
        on a host with room for that machine.
        """
        body: dict[str, Any] = {"name": name, "size_gb": int(size_gb), "encrypted": encrypted}
        if region:
            body["region"] = region
        if compute:
            body["compute"] = dict(compute)
        return FlyVolume.from_api(self._call("POST", "", action="volume_create", idempotent=False, json=body,
                                             resource="volumes") or {})

    def get_volume(self, volume_id: str) -> FlyVolume:
        return FlyVolume.from_api(self._call("GET", f"/{_seg(volume_id)}", action="volume_get", idempotent=True,
                                             machine_id=volume_id, resource="volumes") or {})

    def destroy_volume(self, volume_id: str) -> None:
        self._call("DELETE", f"/{_seg(volume_id)}", action="volume_destroy", idempotent=True,
                   machine_id=volume_id, resource="volumes")

    # transport ------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, action: str, idempotent: bool, machine_id: str = "",
              json: Any = None, params: Mapping[str, str] | None = None, nonce: str | None = None,
              read_timeout: float | None = None, resource: str = "machines") -> Any:
        url = f"{self.base_url}/v1/apps/{_seg(self.app)}/{resource}{path}"
        headers = {"Authorization": self._auth, "Accept": "application/json"}
        if nonce:
            headers[NONCE_HEADER] = nonce
        timeout = httpx.Timeout(read_timeout or self._timeout, connect=5.0)
        last = self.retry.attempts - 1
        for attempt in range(self.retry.attempts):
            self.limiter.acquire(action, machine_id or self.app)
            try:
                resp = self._http.request(method, url, headers=headers, params=params, json=json, timeout=timeout)
            except httpx.TransportError as exc:
                sent = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
                error: FlyApiError = FlyConnectionError(
                    f"Fly {action} failed: cannot reach the Machines API at {self.base_url} ({type(exc).__name__})",
                    sent=sent, action=action, machine_id=machine_id)
                repeatable = idempotent or not sent
            else:
                if resp.status_code < 400:
                    return _json(resp)
                error = error_for(resp.status_code, _json(resp), action=action, machine_id=machine_id,
                                  headers=resp.headers)
                repeatable = isinstance(error, FlyRateLimited) or (idempotent and isinstance(error, FlyServerError))
            if not repeatable or attempt == last:
                raise error
            self._sleep(self.retry.delay(attempt, error.retry_after))
        raise AssertionError("unreachable")  # pragma: no cover


def duration(seconds: float) -> str:
    """Fly takes stop timeouts as Go duration strings (``"30s"``)."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def _json(resp: httpx.Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return resp.text
