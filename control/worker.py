"""gunicorn's gevent worker, made to stop AgCluster's own machines as SIGTERM arrives.

The arbiter kills a worker ``graceful_timeout`` after SIGTERM, and the gevent worker spends
that whole time draining while any connection is open (an SSE follower, an idle keep-alive
client), so work left for its exit hook is cut off: a warm-pool machine being removed then
outlives the control plane, unknown to anyone. Here the pool and the janitor stop alongside
the drain; the exit hook (``control.server``) then only closes what requests were using.
"""

from __future__ import annotations

import threading
from types import FrameType

from gunicorn.workers.ggevent import GeventWorker


class Worker(GeventWorker):
    _quiescing: threading.Thread | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._quiescing is None:
            # Out of the signal handler, which must not block (a greenlet: threading is patched).
            self._quiescing = threading.Thread(target=self._quiesce, name="quiesce", daemon=True)
            self._quiescing.start()

    def _quiesce(self) -> None:
        extensions = getattr(getattr(self, "wsgi", None), "extensions", {})
        if "agcluster" in extensions:
            extensions["agcluster"].quiesce()
