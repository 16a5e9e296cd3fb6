"""The images Fly runs, checked where they are built: `make images` (registry-free, cached)
and the properties Fly depends on.

* The agent image starts as root only to hand a fresh, root-owned volume at /workspace
  (what a new Fly Volume is) to uid 1000, then runs its CMD as uid 1000 with no
  capabilities and no_new_privs; started as uid 1000 (the Docker provider) it just runs.
* The control-plane image carries the dashboard's browser libraries, installed by npm
  inside its build, and serves them at /ui/node_modules/....
"""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from stubs.fly import StubFly
from tests.docker_support import AGENT_IMAGE, BUILD_SCRIPT, BUILD_TIMEOUT, ROOT
from tests.support import free_port

pytestmark = pytest.mark.docker

CONTROL_IMAGE = "agcluster/control:latest"


@pytest.fixture(scope="module")
def control_image(docker_client: Any) -> str:
    proc = subprocess.run(["bash", str(BUILD_SCRIPT), "control"], cwd=ROOT, capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return CONTROL_IMAGE


def test_make_images_is_cached_when_nothing_changed(agent_image: str, control_image: str) -> None:
    """A rerun with unchanged inputs builds nothing (two runs back to back: the first one
    catches up with any source edited since the fixtures built the images)."""
    for _ in range(2):
        proc = subprocess.run(["bash", str(BUILD_SCRIPT), "agent", "control"], cwd=ROOT, capture_output=True,
                              text=True, timeout=BUILD_TIMEOUT, check=False)
        assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"{AGENT_IMAGE} is up to date" in proc.stderr and f"{CONTROL_IMAGE} is up to date" in proc.stderr
    assert "building" not in proc.stderr


def test_the_agent_image_hands_a_fresh_volume_to_the_agent_user(docker_client: Any, agent_image: str) -> None:
    config = docker_client.images.get(agent_image).attrs["Config"]
    assert config["Entrypoint"] == ["/usr/local/bin/agcluster-entrypoint"]
    assert config["User"] in ("", "root")
    assert config["Cmd"][:3] == ["python3", "-m", "machine_agent"]
    volume = docker_client.volumes.create(f"h14-test-{uuid.uuid4().hex[:8]}")
    try:
        from docker.types import Mount

        probe = ("id -u; stat -c '%u %a' /workspace; touch /workspace/written && echo wrote; "
                 "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status")
        # A fresh volume mounted without the image's copy is root-owned, like a new Fly Volume.
        out = docker_client.containers.run(agent_image, ["sh", "-c", probe], remove=True,
                                           mounts=[Mount("/workspace", volume.name, type="volume", no_copy=True)])
        lines = out.decode().split("\n")
        assert lines[:3] == ["1000", "1000 750", "wrote"], out
        assert {line.split(":")[0]: line.split(":")[1].strip() for line in lines[3:6]} == {
            "CapEff": "0000000000000000", "CapBnd": "0000000000000000", "NoNewPrivs": "1"}
        # As the Docker provider runs it: uid 1000, every capability dropped; nothing to hand over.
        out = docker_client.containers.run(agent_image, ["sh", "-c", "id -u; stat -c '%u' /workspace/written"],
                                           remove=True, user="1000:1000", cap_drop=["ALL"],
                                           mounts=[Mount("/workspace", volume.name, type="volume")])
        assert out.decode().split() == ["1000", "1000"]
    finally:
        volume.remove(force=True)


@pytest.fixture()
def control_plane(docker_client: Any, control_image: str) -> Iterator[str]:
    """The image as fly.toml runs it (the Fly provider), against a stand-in Machines API."""
    port, relay_port = free_port(), free_port()
    with StubFly(token="t", apps=["agents"]) as fly:
        container = docker_client.containers.run(
            control_image, ["agcluster", "serve", "--host", "127.0.0.1", "--port", str(port),
                            "--provider", "fly_machines"],
            detach=True, name=f"h14-control-{uuid.uuid4().hex[:8]}", network_mode="host",
            environment={"FLY_API_TOKEN": "t", "AGCLUSTER_AGENTS_APP": "agents", "MACHINES_API_URL": fly.url,
                         "RELAY_PORT": str(relay_port), "RELAY_URL": f"http://127.0.0.1:{relay_port}/relay",
                         "DATABASE_PATH": "/tmp/agcluster.db"})
        try:
            url = f"http://127.0.0.1:{port}"
            tick = threading.Event()
            for _ in range(600):
                try:
                    if requests.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                container.reload()
                assert container.status in ("created", "running"), container.logs().decode()[-2000:]
                tick.wait(0.1)
            yield url
        finally:
            container.remove(force=True)


@pytest.mark.parametrize(("path", "kind"), [
    ("/ui/node_modules/marked/lib/marked.esm.js", "javascript"),
    ("/ui/node_modules/dompurify/dist/purify.es.mjs", "javascript"),
    ("/ui/node_modules/yaml/browser/index.js", "javascript"),
    ("/ui/node_modules/@highlightjs/cdn-assets/styles/github.min.css", "css"),
])
def test_the_control_image_serves_the_dashboards_libraries(control_plane: str, path: str, kind: str) -> None:
    resp = requests.get(control_plane + path, timeout=10)
    assert resp.status_code == 200, resp.text[:300]
    assert kind in resp.headers["Content-Type"] and resp.content.strip()
    local = ROOT / "static_ui" / path.removeprefix("/ui/")
    if local.is_file():  # the same pinned version as `make ui` installs here (one package-lock.json)
        assert resp.content == local.read_bytes()
