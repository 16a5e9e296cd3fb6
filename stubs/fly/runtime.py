"""Running the stand-in in-process on a background thread, for tests and benchmarks."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from stubs.serving import BackgroundServer

from .backends import AddressPool, Backend, DockerBackend, ProcessBackend
from .control import Fault, StubControl
from .ids import machine_id as _new_id
from .server import create_app
from .state import FlyState


class StubFly(BackgroundServer):
    """A Fly Machines API on ``http://host:port`` (``port=0`` picks a free port).

    ``backend`` is ``"process"`` (sandboxed local agents), ``"docker"`` (agent containers)
    or a backend object. ``token`` (when set) is the only credential accepted; ``apps``
    (when set) are the only apps that exist. ``stop()`` destroys every machine.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, backend: str | Backend = "process",
                 data_dir: Path | None = None, token: str | None = None, apps: list[str] | None = None,
                 region: str = "ord", sandbox: bool | None = None, pool: AddressPool | None = None) -> None:
        super().__init__(host, port)
        self.token = token
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="stubs-fly-"))
        if isinstance(backend, str):
            if backend == "process":
                backend = ProcessBackend(self.data_dir / "machines", sandbox=sandbox)
            elif backend == "docker":
                backend = DockerBackend(label=_new_id())
            else:
                raise ValueError(f"unknown backend {backend!r}: process or docker")
        self.backend = backend
        self.control = StubControl()
        addresses = getattr(backend, "addresses", None)
        self.state = FlyState(backend, region=region, apps=apps,
                              pool=pool or (addresses() if callable(addresses) else None))

    @property
    def gateway(self) -> str:
        """The host's address as the machines see it (where a control plane serves them)."""
        return str(getattr(self.backend, "gateway", "127.0.0.1"))

    def start(self) -> StubFly:
        if not self.serving:
            self._serve(create_app(self.state, self.control, token=self.token), "stubs-fly")
        return self

    def stop(self) -> None:
        self._shutdown()
        self.state.close()
        self.backend.close()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> StubFly:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # record ---------------------------------------------------------------------------
    def calls(self, action: str | None = None, machine_id: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        """Every API call received, in order: method, path, action, machine_id, query, body, status."""
        return self.control.calls(action, machine_id, since)

    def actions(self, since: int = 0) -> list[str]:
        return [c["action"] for c in self.calls(since=since)]

    def clear_calls(self) -> None:
        self.control.clear_calls()

    def machines(self, include_destroyed: bool = False) -> list[dict[str, Any]]:
        return self.state.snapshot(include_destroyed)

    def machine(self, machine_id: str) -> dict[str, Any]:
        return next(m for m in self.state.snapshot(True) if m["id"] == machine_id)

    def count(self) -> int:
        """Machines that exist (anything not yet ``destroyed``): the leak detector."""
        return self.state.live_count()

    def volumes(self) -> list[dict[str, Any]]:
        """Every volume ever created, those being destroyed included, as the API shows them."""
        return self.state.volume_snapshot()

    def volume_count(self) -> int:
        """Volumes not on their way out: the other leak detector."""
        return self.state.live_volumes()

    def cold_resume(self, probability: float = 1.0, *, seed: int | None = None) -> None:
        """Make a resume cold-boot with this probability, as Fly does when a snapshot is lost."""
        self.state.cold_resume(probability, seed)

    def host_unreachable(self, machine_id: str, unreachable: bool = True) -> None:
        """flyd loses (or regains) the host of this machine and of the volume it mounts."""
        self.state.set_host_reachable(machine_id, not unreachable)

    # faults ---------------------------------------------------------------------------
    def fail_next(self, status: int, *, count: int = 1, action: str | None = None, machine_id: str | None = None,
                  when: str = "before", message: str | None = None, code: str | None = None,
                  retry_after: float | None = None) -> None:
        """Answer the next ``count`` matching calls with ``status`` (``count=-1``: until cleared).

        ``when="after"`` performs the call first, then fails it (the ambiguous failure).
        """
        self.control.add_fault(Fault(status, action, machine_id, count, when, message, code, retry_after))

    def slow_next(self, seconds: float, *, count: int = 1, action: str | None = None) -> None:
        self.control.add_fault(Fault(None, action, None, count, "before", delay=seconds))

    def capacity_error(self, *, count: int = 1) -> None:
        self.fail_next(422, count=count, action="create", code="insufficient_capacity",
                       message="insufficient resources available to fulfill request")

    def hold_in_created(self, count: int = 1) -> None:
        """The next ``count`` new machines stay ``created`` (start answers 412) until released."""
        self.state.hold_in_created(count)

    def release_held(self) -> None:
        self.state.release_held()

    def rate_limits(self, enabled: bool = True) -> None:
        """Enforce Fly's documented per-action, per-machine limits (429 with Retry-After)."""
        self.control.set_rate_limits(enabled)

    def clear_faults(self) -> None:
        self.control.clear_faults()
        self.state.release_held()
