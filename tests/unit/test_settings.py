from pathlib import Path

import pytest

from control.settings import SettingsError, from_env, parse_size_mb


def test_defaults_match_the_design() -> None:
    s = from_env({})
    assert (s.api_host, s.api_port, s.container_provider) == ("127.0.0.1", 8000, "local")
    assert s.database_path == Path("./data/agcluster.db")
    assert (s.session_cleanup_interval, s.session_idle_timeout, s.max_upload_mb) == (300, 1800, 50)
    assert s.anthropic_base_url == "https://api.anthropic.com" and s.auth_mode == "none"


@pytest.mark.parametrize("env, name", [
    ({"API_PORT": "eighty"}, "API_PORT"),
    ({"API_PORT": "70000"}, "API_PORT"),
    ({"CONTAINER_PROVIDER": "k8s"}, "CONTAINER_PROVIDER"),
    ({"AUTH_MODE": "magic"}, "AUTH_MODE"),
    ({"CONTAINER_MEMORY_LIMIT": "lots"}, "CONTAINER_MEMORY_LIMIT"),
    ({"ANTHROPIC_BASE_URL": "ftp://x"}, "ANTHROPIC_BASE_URL"),
    ({"CORS_ORIGINS": "*"}, "CORS_ORIGINS"),
    ({"MAX_UPLOAD_MB": "0"}, "MAX_UPLOAD_MB"),
    ({"CONTAINER_PROVIDER": "fly_machines"}, "FLY_API_TOKEN"),
    ({"API_HOST": "0.0.0.0"}, "API_HOST"),
    ({"RELAY_PORT": "8000"}, "RELAY_PORT"),
])
def test_bad_values_name_the_variable(env: dict, name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        from_env(env)


def test_public_bind_needs_auth_or_explicit_opt_in() -> None:
    assert from_env({"API_HOST": "0.0.0.0", "AGCLUSTER_ALLOW_PUBLIC_BIND": "1"}).api_host == "0.0.0.0"
    assert from_env({"API_HOST": "0.0.0.0", "AUTH_MODE": "token"}).auth_mode == "token"


def test_sizes() -> None:
    assert parse_size_mb("4g") == 4096 and parse_size_mb("512m") == 512 and parse_size_mb("1073741824") == 1024
    assert from_env({"CORS_ORIGINS": "https://a.example, http://localhost:3000"}).cors_origins == (
        "https://a.example", "http://localhost:3000")


def test_bad_setting_stops_the_cli_with_the_name(capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from control import cli

    monkeypatch.setenv("API_PORT", "nope")
    with pytest.raises(SystemExit) as exc:
        cli.main(["serve"])
    assert "API_PORT" in str(exc.value.code)


def test_warm_pool_per_preset_and_its_older_spelling() -> None:
    s = from_env({"WARM_POOL": "code-assistant:2, research-agent:1,*:3,data-analysis:0"})
    assert (s.warm_pool_size, s.hot_pool) == (3, (("code-assistant", 2), ("research-agent", 1)))
    assert (from_env({"WARM_POOL_SIZE": "2"}).warm_pool_size, from_env({}).hot_pool) == (2, ())
    for bad in ("code-assistant", "code-assistant:two", "Code:1", "*:1,*:2", "code-assistant:51"):
        with pytest.raises(SettingsError, match="WARM_POOL"):
            from_env({"WARM_POOL": bad})
    with pytest.raises(SettingsError, match="WARM_POOL_SIZE"):
        from_env({"WARM_POOL": "*:1", "WARM_POOL_SIZE": "1"})


def test_warm_pool_presets_are_checked_against_the_catalog(tmp_path: Path) -> None:
    from control.app import create_app

    def build(pool: str) -> None:
        create_app(from_env({"DATABASE_PATH": str(tmp_path / "agcluster.db"), "WARM_POOL": pool}))

    build("code-assistant:1,*:1")
    with pytest.raises(SettingsError, match="no-such-preset"):
        build("no-such-preset:1")
    with pytest.raises(SettingsError, match="mcp_env"):
        build("github-code-review:1")
