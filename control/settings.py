"""Every setting, read from the environment in one place and validated at start-up.

A bad value stops start-up with a message naming the variable (``SettingsError``), so a
typo never turns into a confusing failure an hour later.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

PROVIDERS = ("local", "docker", "fly_machines")
AUTH_MODES = ("none", "token")
_PRESET = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")  # a config id (control.config_schema.SLUG)
POOL_MAX = 50
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*$", re.IGNORECASE)


class SettingsError(ValueError):
    """A setting has a bad value; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    container_provider: str = "local"
    database_path: Path = Path("./data/agcluster.db")
    agent_image: str = "agcluster/agent:latest"
    container_cpu_quota: int = 200_000
    container_memory_limit_mb: int = 4096
    container_storage_limit_mb: int = 10_240
    session_cleanup_interval: int = 300
    session_idle_timeout: int = 1800
    fly_api_token: str = ""
    fly_app_name: str = ""
    fly_region: str = ""
    machines_api_url: str = "https://api.machines.dev"
    anthropic_base_url: str = "https://api.anthropic.com"
    cors_origins: tuple[str, ...] = ()
    max_upload_mb: int = 50
    auth_mode: str = "none"
    allow_public_bind: bool = False
    relay_url: str = ""
    relay_port: int = 8001
    allowed_hosts: tuple[str, ...] = ()
    """Host names (and addresses) requests may be addressed to; empty means any (a public bind)."""
    local_admin: bool = False
    egress_port: int = 8002
    machines_dir: Path = Path("./data/machines")
    demo: bool = False
    warm_pool_size: int = 0
    """Machines kept started but unconfigured (``WARM_POOL``'s ``*``), per class."""
    hot_pool: tuple[tuple[str, int], ...] = ()
    """Per preset id, machines kept started *and configured* for it (``WARM_POOL``)."""
    session_ttl: int = 0
    quota_max_sessions: int = 0
    quota_launches_per_hour: int = 0
    quota_daily_tokens: int = 0
    quota_daily_usd: float = 0.0
    rate_limit_per_minute: int = 120
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.database_path.parent

    def with_overrides(self, **changes: Any) -> Settings:
        return validate(replace(self, **changes))


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    reader = _Reader(env)
    database_path = Path(reader.text("DATABASE_PATH", "./data/agcluster.db"))
    api_port = reader.integer("API_PORT", 8000, 1, 65535)
    api_host = reader.text("API_HOST", "127.0.0.1")
    warm_size, hot_pool = reader.pool("WARM_POOL", "WARM_POOL_SIZE")
    settings = Settings(
        api_host=api_host,
        api_port=api_port,
        container_provider=reader.choice("CONTAINER_PROVIDER", "local", PROVIDERS),
        database_path=database_path,
        agent_image=reader.text("AGENT_IMAGE", "agcluster/agent:latest"),
        container_cpu_quota=reader.integer("CONTAINER_CPU_QUOTA", 200_000, 1_000, 6_400_000),
        container_memory_limit_mb=reader.size_mb("CONTAINER_MEMORY_LIMIT", "4g"),
        container_storage_limit_mb=reader.size_mb("CONTAINER_STORAGE_LIMIT", "10g"),
        session_cleanup_interval=reader.integer("SESSION_CLEANUP_INTERVAL", 300, 1, 86_400),
        session_idle_timeout=reader.integer("SESSION_IDLE_TIMEOUT", 1800, 1, 30 * 86_400),
        fly_api_token=reader.text("FLY_API_TOKEN", ""),
        # On Fly the runtime sets FLY_APP_NAME to the control plane's own app, so the agents
        # app can also be named by a variable Fly leaves alone (see docs/FLY.md).
        fly_app_name=reader.text("AGCLUSTER_AGENTS_APP", "") or reader.text("FLY_APP_NAME", ""),
        fly_region=reader.text("FLY_REGION", ""),
        machines_api_url=reader.url("MACHINES_API_URL", "https://api.machines.dev"),
        anthropic_base_url=reader.url("ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
        cors_origins=reader.origins("CORS_ORIGINS"),
        allowed_hosts=reader.hosts("ALLOWED_HOSTS", api_host),
        local_admin=reader.boolean("AGCLUSTER_LOCAL_ADMIN", False),
        max_upload_mb=reader.integer("MAX_UPLOAD_MB", 50, 1, 10_240),
        auth_mode=reader.choice("AUTH_MODE", "none", AUTH_MODES),
        allow_public_bind=reader.boolean("AGCLUSTER_ALLOW_PUBLIC_BIND", False),
        relay_url=reader.url("RELAY_URL", "", allow_empty=True),
        relay_port=reader.integer("RELAY_PORT", api_port + 1 if api_port < 65534 else 8001, 1, 65535),
        egress_port=reader.integer("EGRESS_PORT", api_port + 2 if api_port < 65533 else 8002, 1, 65535),
        machines_dir=Path(reader.text("MACHINES_DIR", str(database_path.parent / "machines"))),
        warm_pool_size=warm_size,
        hot_pool=hot_pool,
        session_ttl=reader.integer("SESSION_TTL", 0, 0, 10 * 365 * 86_400),
        quota_max_sessions=reader.integer("QUOTA_MAX_SESSIONS", 0, 0, 100_000),
        quota_launches_per_hour=reader.integer("QUOTA_LAUNCHES_PER_HOUR", 0, 0, 1_000_000),
        quota_daily_tokens=reader.integer("QUOTA_DAILY_TOKENS", 0, 0, 10**12),
        quota_daily_usd=reader.number("QUOTA_DAILY_USD", 0.0, 0.0, 1e9),
        rate_limit_per_minute=reader.integer("RATE_LIMIT_PER_MINUTE", 120, 0, 1_000_000),
    )
    return validate(settings)


def validate(settings: Settings) -> Settings:
    if len({settings.api_port, settings.relay_port, settings.egress_port}) != 3:
        raise SettingsError(f"API_PORT, RELAY_PORT and EGRESS_PORT must differ, got {settings.api_port}, "
                            f"{settings.relay_port} and {settings.egress_port}")
    if settings.container_provider == "fly_machines":
        for name, value in (("FLY_API_TOKEN", settings.fly_api_token), ("FLY_APP_NAME", settings.fly_app_name)):
            if not value:
                raise SettingsError(f"{name} is required when CONTAINER_PROVIDER=fly_machines")
    if settings.auth_mode == "none" and not _is_loopback(settings.api_host) and not settings.allow_public_bind:
        raise SettingsError(
            f"API_HOST={settings.api_host} would expose an unauthenticated server (AUTH_MODE=none); "
            "bind to 127.0.0.1, set AUTH_MODE=token, or set AGCLUSTER_ALLOW_PUBLIC_BIND=1 to accept the risk"
        )
    return settings


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


def _is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str, default: str) -> str:
        return self.env.get(name, default).strip() or default

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
        return value

    def number(self, name: str, default: float, low: float, high: float) -> float:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.env.get(name, "").strip() or default
        if value not in choices:
            raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.env.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name} must be true or false, got {raw!r}")

    def size_mb(self, name: str, default: str) -> int:
        raw = self.env.get(name, "").strip() or default
        try:
            return parse_size_mb(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a size such as 512m or 4g, got {raw!r}") from None

    def url(self, name: str, default: str, allow_empty: bool = False) -> str:
        value = self.env.get(name, "").strip() or default
        if allow_empty and not value:
            return ""
        if not re.match(r"^https?://[^\s/]+", value):
            raise SettingsError(f"{name} must be an http(s) URL, got {value!r}")
        return value.rstrip("/")

    def hosts(self, name: str, api_host: str) -> tuple[str, ...]:
        """``ALLOWED_HOSTS``: a comma list (``*`` for any). Unset, a loopback-bound server
        answers only to loopback names, so a web page cannot reach it by DNS rebinding; a
        server bound elsewhere answers to any name unless told otherwise."""
        raw = self.env.get(name, "").strip()
        if not raw:
            return LOOPBACK_NAMES if _is_loopback(api_host) else ()
        hosts = tuple(h.strip().lower().rstrip(".") for h in raw.split(",") if h.strip())
        if "*" in hosts:
            return ()
        for host in hosts:
            if not re.match(r"^(\[[0-9a-f:.]+\]|[a-z0-9.-]+|[0-9a-f:]+)$", host):
                raise SettingsError(f"{name} must list host names such as agents.example.com, got {host!r}")
        return hosts

    def pool(self, name: str, legacy: str) -> tuple[int, tuple[tuple[str, int], ...]]:
        """``WARM_POOL=code-assistant:2,research-agent:1,*:1``: machines kept ready per preset
        (started and configured for it) and, under ``*``, started but unconfigured ones for
        anything else. ``WARM_POOL_SIZE=N`` is the older spelling of ``*:N``."""
        raw = self.env.get(name, "").strip()
        if not raw:
            return self.integer(legacy, 0, 0, POOL_MAX), ()
        if self.env.get(legacy, "").strip():
            raise SettingsError(f"set {name} or {legacy}, not both ({legacy}=N is {name}=*:N)")
        sizes: dict[str, int] = {}
        for entry in (e.strip() for e in raw.split(",")):
            preset, colon, count = entry.rpartition(":")
            preset = preset.strip()
            if not colon or not (preset == "*" or _PRESET.match(preset)) or not count.strip().isdigit():
                raise SettingsError(f"{name} must list preset:count pairs such as code-assistant:2,*:1, got {entry!r}")
            if preset in sizes:
                raise SettingsError(f"{name} names {preset!r} twice")
            sizes[preset] = int(count)
            if sizes[preset] > POOL_MAX:
                raise SettingsError(f"{name}: at most {POOL_MAX} machines per entry, got {entry!r}")
        return sizes.pop("*", 0), tuple((preset, n) for preset, n in sizes.items() if n > 0)

    def origins(self, name: str) -> tuple[str, ...]:
        raw = self.env.get(name, "").strip()
        origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
        for origin in origins:
            if origin == "*" or not re.match(r"^https?://[^\s/]+$", origin):
                raise SettingsError(f"{name} must list explicit origins like https://app.example.com, got {origin!r}")
        return origins


def parse_size_mb(raw: str) -> int:
    """``"4g"`` → 4096; plain numbers are bytes, as Docker reads them."""
    match = _SIZE.match(str(raw))
    if not match:
        raise ValueError(raw)
    number, unit = float(match.group(1)), match.group(2).lower()
    factor = {"": 1 / (1024 * 1024), "k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}[unit]
    return max(1, int(number * factor))
