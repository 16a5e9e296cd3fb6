"""The client as a user gets it: built (sdist, then a wheel from that sdist) from a clean
copy of the sources, installed into a fresh venv from PyPI, and used against the server.

Proves the vendored ``wire`` schema is inside both artifacts, that installing pulls nothing
heavy (no Flask, Docker SDK or Agent SDK), and that no top-level package is shared with
the server's distribution.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from tests.support import ROOT, ControlPlane

FORBIDDEN = {"flask", "docker", "claude-agent-sdk", "agcluster", "werkzeug", "gunicorn"}


def run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def clean_copy(target: Path) -> Path:
    """The client and wire as a fresh checkout has them: tracked and new files, no build
    leftovers, the ``_wire`` symlink kept as a symlink."""
    listed = run("git", "ls-files", "-co", "--exclude-standard", "client", "wire", cwd=ROOT).split()
    for name in listed:
        source, dest = ROOT / name, target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            os.symlink(os.readlink(source), dest)
        elif source.is_file():
            shutil.copy2(source, dest)
    assert (target / "client/src/agcluster_client/_wire").is_symlink()
    return target / "client"


def test_fresh_venv_install(tmp_path: Path, control_plane: ControlPlane, key: str) -> None:
    project = clean_copy(tmp_path / "checkout")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "build")
    run(python, "-m", "build", "--outdir", tmp_path / "dist", project)

    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with tarfile.open(sdist) as archive:
        assert any(n.endswith("src/agcluster_client/_wire/events.py") for n in archive.getnames())
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    shipped = {"agcluster_client/_wire/events.py", "agcluster_client/_wire/sse.py", "agcluster_client/py.typed"}
    assert shipped <= set(names)
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"agcluster_client"}  # never `wire`, which the server's distribution installs

    run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel)
    installed = {p["name"].lower() for p in json.loads(run(python, "-m", "pip", "list", "--format=json"))}
    assert {"agcluster-client", "httpx", "rich"} <= installed
    assert not installed & FORBIDDEN, installed & FORBIDDEN

    # The installed copy works on its own: no import reaches the repository.
    script = (
        "import sys; from agcluster_client import AgCluster\n"
        "from agcluster_client.events import ToolResultEvent\n"
        "import agcluster_client; assert 'site-packages' in agcluster_client.__file__\n"
        "ac = AgCluster(sys.argv[1], api_key=sys.argv[2]); s = ac.launch('code-assistant')\n"
        "events = list(s.stream('run: echo from-a-wheel'))\n"
        "print(next(e for e in events if isinstance(e, ToolResultEvent)).output); s.delete()\n"
    )
    out = run(python, "-I", "-c", script, control_plane.url, key, cwd=tmp_path)
    assert "from-a-wheel" in out
    configs = run(venv / "bin" / "agc", "--url", control_plane.url, "--api-key", key, "configs", cwd=tmp_path)
    assert "code-assistant" in configs
