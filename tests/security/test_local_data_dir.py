"""Finding 2: the data directory (database, server secret, other machines) is out of every
sandbox's sight, wherever DATABASE_PATH puts it, even under a directory the sandbox needs
(the system, the interpreter)."""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stubs.anthropic import StubAnthropic
from tests.security.conftest import ROOT_ONLY, launch
from tests.support import ControlPlane

pytestmark = ROOT_ONLY
PLACES = {
    "usr-local-share": Path("/usr/local/share"),
    "etc": Path("/etc"),
    "opt": Path("/opt"),
    "python-prefix": Path(sys.base_prefix).resolve() / "share",
}


@pytest.fixture(params=sorted(PLACES))
def exposed_cp(request: pytest.FixtureRequest, model: StubAnthropic) -> Iterator[ControlPlane]:
    data_dir = PLACES[request.param] / f"agcluster-sec-{uuid.uuid4().hex[:8]}"
    cp = ControlPlane(data_dir, {"ANTHROPIC_BASE_URL": model.url}).start()
    try:
        yield cp
    finally:
        cp.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_server_secret_is_unreachable_wherever_the_data_dir_is(exposed_cp: ControlPlane) -> None:
    victim = launch(exposed_cp)
    victim.run("echo victim-data > /workspace/private.txt")
    attacker = launch(exposed_cp)
    secret = (exposed_cp.data_dir / "server.secret").read_text().strip()
    data_dir = exposed_cp.data_dir
    out = attacker.run(
        f"ls -la {data_dir} 2>&1; cat {data_dir}/server.secret 2>&1; "
        f"cat {data_dir}/machines/*/workspace/private.txt 2>&1; "
        f"python3 -c \"import sqlite3; db = sqlite3.connect('{data_dir}/agcluster.db'); "
        "print(db.execute('select count(*) from sessions').fetchone())\" 2>&1; "
        f"grep -rl {secret[:16]} {data_dir.parent} 2>/dev/null | head; echo end")
    assert secret not in out and "victim-data" not in out, out
    assert "agcluster.db" not in out.split("end")[0].split("\n", 1)[0], out
    # The directory itself is there (an empty tmpfs), nothing in it.
    listing = attacker.run(f"ls -A {data_dir} | wc -l")
    assert listing.strip().splitlines()[-1] == "0", listing
