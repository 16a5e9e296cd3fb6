"""``AUTH_MODE=token``: the client sends the AgCluster token as Bearer and the Anthropic
key in its own header; a rate limit comes back as :class:`RateLimited` with ``retry_after``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import new_key

from agcluster_client import AgCluster, NotFound, RateLimited, Unauthorized
from stubs.anthropic import StubAnthropic
from tests.support import ROOT, ControlPlane

RATE_LIMIT = 3  # launches and chats a minute, per user


def make_user(data_dir: Path, name: str) -> str:
    env = {**os.environ, "DATABASE_PATH": str(data_dir / "agcluster.db")}

    def cli(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "control.cli", *args], env=env, cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout

    cli("users", "add", name)
    return cli("tokens", "create", name).strip().splitlines()[-1]


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory,
         model: StubAnthropic) -> Iterator[tuple[ControlPlane, dict[str, str]]]:
    data_dir = tmp_path_factory.mktemp("client-team")
    tokens = {name: make_user(data_dir, name) for name in ("alice", "bob")}
    cp = ControlPlane(data_dir, {"ANTHROPIC_BASE_URL": model.url, "AUTH_MODE": "token",
                                 "RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT)}).start()
    yield cp, tokens
    cp.stop()


def test_token_auth_and_rate_limit(team: tuple[ControlPlane, dict[str, str]]) -> None:
    cp, tokens = team
    with AgCluster(cp.url, token=tokens["alice"], api_key=new_key()) as alice:
        s = alice.launch("code-assistant")  # 1
        assert "token-mode" in s.chat("run: echo token-mode").text  # 2
        assert [x.id for x in alice.sessions()] == [s.id]
        # A resumed stream is not a new request against the limit.
        assert len(list(s.stream(after=0))) > 3
        s.chat("run: echo three")  # 3
        with pytest.raises(RateLimited) as limited:
            s.chat("run: echo four")
        assert limited.value.status == 429 and limited.value.code == "rate_limited"
        assert limited.value.retry_after is not None and 0 < limited.value.retry_after <= 60

    with AgCluster(cp.url, token=tokens["bob"], api_key=new_key()) as bob:
        with pytest.raises(NotFound):  # not Forbidden: others' sessions are invisible
            bob.session(s.id)
        assert bob.sessions() == []
    with (AgCluster(cp.url, token="agc_not-a-token", api_key=new_key()) as nobody,
          pytest.raises(Unauthorized) as denied):
        nobody.configs()
    assert denied.value.code == "unauthorized"
