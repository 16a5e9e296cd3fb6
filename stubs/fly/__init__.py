"""A local stand-in of the Fly Machines API whose machines really run.

``StubFly`` runs it in-process; ``python -m stubs.fly --port N --backend docker|process``
serves it standalone. Machines run as containers of their image (``docker``: the realistic
one) or as bubblewrap-sandboxed local agents (``process``: fast, for API semantics).

Sources for what it models: Fly's Machines API reference (https://fly.io/docs/machines/api/,
machines, volumes and apps resources), "Machine Suspend and Resume"
(https://fly.io/docs/reference/suspend-resume/), "Fly Volumes overview" and "Manage volume
snapshots" (https://fly.io/docs/volumes/), "Machine Sizing"
(https://fly.io/docs/machines/guides-examples/machine-sizing/), "Private Networking"
(https://fly.io/docs/networking/private-networking/), "Machine restart policy", the Go
client superfly/fly-go (``flaps`` client, ``MachineConfig``, ``MachineRootfs``,
``MachinePresets``, ``Volume``, ``Machine.HostStatus``/``IncompleteConfig``,
``tokens.Parse``) and superfly/flyctl (``fly machine run`` flags, ``fly apps create
--network``, ``fly deploy --build-only --push``).

Fidelity: what it models
------------------------
- Routes under ``/v1/apps/{app}/machines``: list (``metadata.<key>=`` filters, ``region``,
  ``include_deleted``), create, get, update, start, stop, suspend, wait, destroy, lease
  acquire/refresh/get/release, exec, events, metadata get/set/delete; under
  ``/v1/apps/{app}/volumes``: list, create, get, destroy.
- Auth: ``Authorization: Bearer <token>`` or ``FlyV1 <macaroon>``; 401 otherwise (and for
  a wrong token when one is configured). Unknown apps are 404 when an app list is given.
- Error bodies ``{"error": "..."}``, with ``"status": "insufficient_capacity"`` on capacity
  errors; ``Retry-After`` on 429.
- Identifiers: 14-hex machine ids, ULID instance ids (versions, also answered as
  ``version``) and event ids, hex nonces, ``vol_`` + 16 characters for volumes.
- States and transitions: ``created`` → ``starting`` → ``started``; stop → ``stopping`` →
  ``stopped``; suspend → ``suspending`` → ``suspended``; start from stopped, suspended or
  failed; update → ``replacing`` with a new version (then started, stopped, or ``created``
  with ``skip_launch``); destroy → ``destroying`` → ``destroyed`` (still readable with GET,
  hidden from list unless ``include_deleted``). Transitions finish in the background, so
  clients see transient states and must ``/wait``.
- 412 for start while ``created`` (image not yet prepared) or ``replacing``/other
  transients, for unforced destroy of a machine that is started (stopped, suspended,
  created and failed machines are destroyed without ``force``, as on Fly), for
  stop/suspend from states that do not allow them; 412 on update with a stale
  ``current_version``.
- Suspend only where Fly suspends: at most 2 GB of memory, no swap (``init.swap_size_mb``),
  no ``schedule``, no GPU; otherwise 412 (the status is the stand-in's choice; the rules are
  Fly's). A resume is only an attempt: ``cold_resume(probability, seed=…)`` (or
  ``--cold-resume``) makes it a cold boot from a fresh root filesystem, volumes kept, as
  when Fly drops a snapshot on migration or host maintenance; the start event says
  ``cold_boot``.
- Root filesystem: every boot that is not a resume starts from a fresh one (the docker
  backend runs a new container; the process backend empties home and a workspace that is
  not a volume): what a stopped Fly Machine gets. ``rootfs.persist`` other than ``never``
  is refused with 400 rather than silently ignored (not modelled).
- Volumes: name ``[a-z0-9_]``, at most 30; ``size_gb`` 1–500; region of three letters
  (default the stand-in's); ``compute`` checked as a guest. One volume per machine, in the
  machine's region (a machine that mounts one is placed in its region; another region is
  400), attached to one live machine at a time (412 otherwise); destroy refused (412)
  while its machine exists; a destroyed volume stays listed as ``pending_destroy`` (fly-go
  filters those client-side). In the docker backend a volume is a Docker volume mounted
  without the image's content, so it starts empty and root-owned like a new Fly Volume.
- ``/wait``: ``state`` in started/stopped/suspended/destroyed (several allowed),
  ``timeout`` whole seconds in [1, 60] else 400, ``version`` (or the older ``instance_id``)
  required for ``stopped``, unknown versions are 400, 408 ``deadline_exceeded`` at the
  deadline.
- Leases: TTL, owner and description; 409 when held by someone else (for acquiring, and
  for every change made without the holder's ``fly-machine-lease-nonce``); refresh with the
  nonce; release needs the nonce (400 without, 409 with a wrong one); leases expire.
  ``lease_ttl`` on create returns the nonce with the machine.
- Guests as fly-go's ``MachinePresets``: shared CPUs 1/2/4/6/8 with 256–2048 MB each in
  256 MB steps, performance 1/2/4/6/8/10/12/14/16 with 2048–8192 MB each in 1024 MB steps,
  ``size`` presets mutually exclusive with ``guest``; 400 on anything else.
- Unreachable hosts: ``host_unreachable(machine_id)`` makes flyd lose the machine's host
  (and the volume it mounts): GET and list answer ``host_status: "unknown"``, no
  ``config``, a partial ``incomplete_config`` (image, metadata, guest; no env) and the last
  known state; changes (start, stop, suspend, destroy, lease, exec) are 503.
- Network (docker backend): a Docker network of the stand-in's own with an IPv6 ULA
  subnet, like an app's 6PN: machines get ``fd…`` addresses as ``private_ip`` (clients
  are exercised on ``http://[addr]:8080``), reach each other (as machines of one Fly app
  do) and the host through the network's gateway (``StubFly.gateway``), where a control
  plane listens for them; the gateway is usable before the first machine starts.
- The image runs as Fly's init runs it: its own ENTRYPOINT, CMD and USER, with
  ``config.env`` plus what Fly adds (``FLY_APP_NAME``, ``FLY_MACHINE_ID``, ``FLY_REGION``,
  ``FLY_PRIVATE_IP``, ``FLY_IMAGE_REF``, ``FLY_MACHINE_VERSION``…), the machine id as its
  hostname, CPU and memory limits and no swap. Exec runs as root in the machine.
- ``restart.policy`` (``no``, ``on-failure`` with ``max_retries``, ``always``) applied when
  the process exits by itself; exits are recorded as events.
- Fault injection (Python API and ``/_stub`` routes): any status for the next N calls of an
  action (before acting, or *after* acting — the ambiguous failure), slow answers, capacity
  errors, machines held in ``created``, cold resumes, unreachable hosts, and Fly's
  documented rate limits (1 req/s per action per machine with bursts of 3; Get Machine
  5 req/s, bursts of 10) as an opt-in.
- A record of every call (method, path, action, machine or volume, query, body, status).

Fidelity: what it does not model
--------------------------------
- ``.internal`` DNS (``<id>.vm.<app>.internal``, ``<app>.internal``), ``fly-local-6pn``,
  WireGuard, Flycast, and networks shared between apps: the whole network is one app's.
  The process backend has no network of its own at all: machines are 127.0.0.N on the
  host's loopback, so a peer address does not name a machine there (use docker for that).
- The Fly Proxy: ``services``, ``checks``, autostart/autostop, public IPs are accepted and
  echoed but do nothing; a machine is ``started`` when its process runs, not when healthy.
- ``files``, ``processes``, ``init`` overrides, ``standbys``, ``statics``, GPUs, placement
  beyond "same region as its volume" (every region exists and has room), cordon, volume
  snapshots/forks/extend, apps/secrets/tokens resources, ``/ps``, ``/signal``,
  ``/restart``, ``/versions``, ``from_event_id`` on wait.
- Resource limits: the process backend does not enforce the guest size; volume sizes are
  not enforced by either backend.
- Images are never pulled: the docker backend needs the image locally; the process backend
  ignores ``image`` and runs this checkout's ``machine_agent``.
- Org-wide and per-app quotas, billing, live migration (the address never changes),
  ``launch_failed`` and ``failed`` beyond "the backend could not run it".
"""

from .backends import BackendError, DockerBackend, LoopbackPool, ProcessBackend
from .control import Fault, StubControl
from .runtime import StubFly
from .server import create_app
from .state import FlyState, StubError

__all__ = ["BackendError", "DockerBackend", "Fault", "FlyState", "LoopbackPool", "ProcessBackend", "StubControl",
           "StubError", "StubFly", "create_app"]
