"""The control plane run by an ordinary user (no root, no cgroups to write): the sandbox
maps the agent to that same user in a user namespace, so the file-permission walls of the
root case do not exist between them. What must still hold: the data directory out of sight,
no network, root-only files unreadable, and honest reports of which limits are enforced."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stubs.anthropic import StubAnthropic
from tests.security.conftest import ROOT_ONLY, launch
from tests.security.test_local_network import probe
from tests.support import ROOT, ControlPlane

pytestmark = ROOT_ONLY  # root sets the scene (a user, a writable data dir) and then steps down
NOBODY = 65534


def as_nobody() -> list[str]:
    """Run as ``nobody``. What the server needs (the interpreter, the virtualenv, this
    checkout) may sit under a directory nobody cannot traverse (/root is 0700 on CI
    machines): a private mount namespace shows just those there, read-only."""
    wrapper = ["bwrap", "--dev-bind", "/", "/", "--die-with-parent"]
    hidden: dict[Path, list[Path]] = {}
    for needed in {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), ROOT.resolve()}:
        closed = next((a for a in reversed(needed.parents) if a != Path("/") and not a.stat().st_mode & 0o001), None)
        if closed is not None:  # bind its first level: bwrap makes missing parents 0700
            hidden.setdefault(closed, []).append(closed / needed.relative_to(closed).parts[0])
    for closed, paths in sorted(hidden.items()):
        wrapper += ["--tmpfs", str(closed)]
        for path in sorted(set(paths)):
            wrapper += ["--ro-bind", str(path), str(path)]
    return [*wrapper, "--", "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]


@pytest.fixture(scope="module")
def nobody_cp(model: StubAnthropic) -> Iterator[ControlPlane]:
    # The data directory sits under /opt, which every sandbox sees read-only: only the
    # tmpfs laid over it keeps the secret out of reach of an agent that is the same user.
    data_dir = Path("/opt") / f"agcluster-nobody-{uuid.uuid4().hex[:8]}"
    data_dir.mkdir()
    os.chown(data_dir, NOBODY, NOBODY)
    env = {"ANTHROPIC_BASE_URL": model.url, "HOME": str(data_dir), "TMPDIR": tempfile.gettempdir()}
    cp = ControlPlane(data_dir, env, wrapper=as_nobody()).start()
    try:
        yield cp
    finally:
        cp.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_the_control_plane_really_runs_as_nobody(nobody_cp: ControlPlane) -> None:
    assert (nobody_cp.data_dir / "agcluster.db").stat().st_uid == NOBODY
    assert (nobody_cp.data_dir / "server.secret").stat().st_uid == NOBODY


def test_the_data_dir_is_hidden_from_an_agent_of_the_same_user(nobody_cp: ControlPlane) -> None:
    agent = launch(nobody_cp)
    secret = (nobody_cp.data_dir / "server.secret").read_text().strip()
    out = agent.run(f"id -u; cat {nobody_cp.data_dir}/server.secret 2>&1; ls -A {nobody_cp.data_dir} | wc -l; "
                    f"grep -rl {secret[:16]} /opt 2>/dev/null | head -3; echo end")
    assert secret not in out, out
    lines = out.strip().splitlines()
    uid, entries = lines[0], lines[-2]  # `id -u`, then the data directory's entry count
    assert uid == "1000" and entries.strip() == "0", out
    host_file = agent.machine_dir / "workspace"
    assert host_file.stat().st_uid == NOBODY  # files belong to the control plane's user, not root


def test_no_network_and_no_root_files(nobody_cp: ControlPlane, model: StubAnthropic) -> None:
    agent = launch(nobody_cp)
    results = probe(agent, [("127.0.0.1", nobody_cp.port), ("127.0.0.1", int(model.url.rsplit(":", 1)[1]))])
    assert "CONNECTED" not in results.values(), results
    out = agent.run("cat /etc/shadow >/dev/null 2>&1 && echo READ || echo DENIED")
    assert "DENIED" in out


def test_limits_it_cannot_enforce_are_reported_not_pretended(nobody_cp: ControlPlane) -> None:
    agent = launch(nobody_cp)
    enforced, warnings = agent.launch["enforced"], agent.launch["warnings"]
    assert enforced["cpu"] is None and any(w.startswith("cpu") for w in warnings), agent.launch
    assert enforced["memory"] is None or enforced["memory"].startswith("rlimit"), enforced
    assert enforced["network"] == "empty network namespace"
