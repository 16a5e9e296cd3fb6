"""``agcluster serve`` monkey-patches before anything imports ``requests`` (or ``urllib3``).

In production the control plane runs in gunicorn's gevent worker: the worker patches the
standard library, then loads the app. A module that imports ``requests`` before the patch
(in the CLI, the server module, anything the arbiter imports before forking) gets sockets
that block the whole process instead of one greenlet (docs/ARCHITECTURE.md,
"Concurrency"). This test starts the real ``agcluster serve`` with an import hook that
records, in every process, whether the socket module was already patched when
``requests``/``urllib3`` were first imported.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import ControlPlane

WATCHED = ("requests", "urllib3")
HOOK = '''
import json, os, sys


class _Watch:
    """Records the first import of each watched module, and whether gevent had patched
    the socket module by then; finds nothing itself."""

    def find_spec(self, name, path=None, target=None):
        if name in {watched!r} and name not in sys.modules:
            monkey = sys.modules.get("gevent.monkey")
            patched = bool(monkey and monkey.is_module_patched("socket"))
            with open(os.environ["AGCLUSTER_IMPORT_LOG"], "a") as log:
                log.write(json.dumps({{"pid": os.getpid(), "module": name, "socket_patched": patched}}) + "\\n")
        return None


sys.meta_path.insert(0, _Watch())
'''


def test_serve_patches_before_requests_is_imported(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(HOOK.format(watched=WATCHED))
    log = tmp_path / "imports.jsonl"
    cp = ControlPlane(tmp_path / "cp", {"PYTHONPATH": str(hooks), "AGCLUSTER_IMPORT_LOG": str(log),
                                        "WARM_POOL_SIZE": "0"}).start()
    try:
        assert cp.get("/health").json()["status"] == "healthy"  # the worker has loaded the app
        assert cp.proc is not None
        arbiter = cp.proc.pid
    finally:
        cp.stop()
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r for r in records if not r["socket_patched"]] == [], "imported before gevent patched socket"
    # The arbiter (which forks the worker) never imports them; the worker does, after the patch.
    assert [r for r in records if r["pid"] == arbiter] == [], records
    assert {r["module"] for r in records} == set(WATCHED), records
