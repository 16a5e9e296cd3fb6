"""A local stand-in of the Fly Machines API whose machines really run.

``StubFly`` runs it in-process; ``python -m stubs.fly --port N --backend docker|process``
serves it standalone. Machines run as bubblewrap-sandboxed local agents (``process``) or
as containers of the configured image (``docker``); each gets its own loopback address
(127.0.0.N) as ``private_ip`` with the agent on port 8080, so a client's addressing code
(``http://<private_ip>:8080``) runs unchanged.

Fidelity: what it models
------------------------
- Routes under ``/v1/apps/{app}/machines``: list (``metadata.<key>=`` filters, ``region``,
  ``include_deleted``), create, get, update, start, stop, suspend, wait, destroy, lease
  acquire/refresh/get/release, exec, events, metadata get/set/delete.
- Auth: ``Authorization: Bearer <token>`` or ``FlyV1 <macaroon>``; 401 otherwise (and for
  a wrong token when one is configured). Unknown apps are 404 when an app list is given.
- Error bodies ``{"error": "..."}``, with ``"status": "insufficient_capacity"`` on capacity
  errors; ``Retry-After`` on 429.
- Identifiers: 14-hex machine ids, ULID instance ids (versions) and event ids, hex nonces.
- States and transitions: ``created`` → ``starting`` → ``started``; stop → ``stopping`` →
  ``stopped``; suspend → ``suspending`` → ``suspended``; start from stopped, suspended or
  failed; update → ``replacing`` with a new ``instance_id`` (then started, stopped, or
  ``created`` with ``skip_launch``); destroy → ``destroying`` → ``destroyed`` (still
  readable with GET, hidden from list unless ``include_deleted``). Transitions finish in the
  background, so clients see transient states and must ``/wait``.
- 412 for start while ``created`` (image not yet prepared) or ``replacing``/other
  transients, for unforced destroy of a machine that is not stopped, for stop/suspend
  from states that do not allow it; 412 on update with a stale ``current_version``.
- ``/wait``: ``state`` in started/stopped/suspended/destroyed (several allowed),
  ``timeout`` whole seconds in [1, 60] else 400, ``instance_id`` (or ``version``) required
  for ``stopped``, unknown instance ids are 400, 408 ``deadline_exceeded`` at the deadline.
- Leases: TTL, owner and description; 409 when held by someone else (for acquiring, and
  for every change made without the holder's ``fly-machine-lease-nonce``); refresh with the
  nonce; release needs the nonce (400 without, 409 with a wrong one); leases expire.
  ``lease_ttl`` on create returns the nonce with the machine.
- Guest validation as Fly sells sizes: shared CPUs 1/2/4/6/8 with 256–2048 MB each,
  performance 1/2/4/8/16 with 2048–8192 MB each, memory in 256 MB steps, ``size`` presets
  (``shared-cpu-2x``…) mutually exclusive with ``guest``; 400 on anything else.
- Machine env is ``config.env`` plus what Fly's init adds (``FLY_APP_NAME``,
  ``FLY_MACHINE_ID``, ``FLY_REGION``, ``FLY_PRIVATE_IP``, ``FLY_IMAGE_REF``,
  ``FLY_MACHINE_VERSION``…). Ephemeral root filesystem: every start after a stop (or an
  update) begins from an empty workspace and home; suspend keeps memory and disk (SIGSTOP
  of the process tree, or ``docker pause``).
- ``restart.policy`` (``no``, ``on-failure`` with ``max_retries``, ``always``) applied when
  the agent exits by itself; exits are recorded as events.
- Exec runs a command in the machine (the same sandbox layout, or ``docker exec``).
- Fault injection (Python API and ``/_stub`` routes): any status for the next N calls of an
  action (before acting, or *after* acting — the ambiguous failure), slow answers, capacity
  errors, machines held in ``created``, and Fly's documented rate limits (1 req/s per action
  per machine with bursts of 3; Get Machine 5 req/s, bursts of 10) as an opt-in.
- A record of every call (method, path, action, machine, query, body, answer status).

Fidelity: what it does not model
--------------------------------
- 6PN: addresses are IPv4 loopback (127.0.0.N), not ``fdaa:…`` IPv6; no ``.internal``
  DNS, no ``network_id`` isolation, no WireGuard. The docker backend uses host networking
  and sets the agent's bind address on the command line instead of the image's ``CMD``.
- The Fly Proxy: ``services``, ``checks``, autostart/autostop, public IPs are accepted and
  echoed but do nothing; a machine is ``started`` when its process runs, not when healthy.
- Volumes, ``files``, ``processes``, ``init`` overrides, ``schedule``, ``standbys``,
  ``statics``, GPUs, regions and placement (every region is accepted, nothing is far away),
  cordon/uncordon, apps/volumes/secrets/tokens resources, ``/ps``, ``/signal``,
  ``/restart``, ``/versions``, ``from_event_id`` on wait.
- Resource limits: the docker backend applies CPU and memory limits; the process backend
  does not enforce the guest size. Suspend always succeeds (Fly refuses it for some
  machines) unless a fault is injected; start of a started machine is a no-op answer.
- Images are never pulled: the docker backend needs the image locally; the process backend
  ignores ``image`` and runs this checkout's ``machine_agent``.
- Org-wide and per-app quotas, billing, migrations, host failures, ``launch_failed`` and
  ``failed`` beyond "the backend could not run it".
"""

from .backends import BackendError, DockerBackend, LoopbackPool, ProcessBackend
from .control import Fault, StubControl
from .runtime import StubFly
from .server import create_app
from .state import FlyState, StubError

__all__ = ["BackendError", "DockerBackend", "Fault", "FlyState", "LoopbackPool", "ProcessBackend", "StubControl",
           "StubError", "StubFly", "create_app"]
