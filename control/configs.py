"""Presets from ``presets/*.yaml`` and custom configs from SQLite, behind one lookup.

Custom configs are owned by whoever saved them. With ``AUTH_MODE=token`` the owner is the
caller's account (admins may delete any config); with ``AUTH_MODE=none`` it is the
``Authorization: Bearer`` secret sent with the save, kept only as a salted hash. Only the
owner can replace or delete a config. Anyone may read and launch any config: configs hold
no secrets (credentials are declared, and supplied per launch through ``mcp_env``, which is
never stored).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from marshmallow import ValidationError

from control.config_schema import RESERVED_ENV, SLUG, AgentConfigSchema, declared_mcp_keys, error_paths
from control.secrets import REDACTOR, hash_key, key_matches
from control.store import Store
from wire.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"
MIN_OWNER_KEY = 8
MAX_MCP_VALUE = 8192


@dataclass(frozen=True)
class Owner:
    """Who is saving or deleting: an account (token mode) or a Bearer secret (none mode)."""

    user_id: str | None = None
    key: str | None = None
    is_admin: bool = False

    def require(self) -> None:
        if self.user_id is None and (not self.key or len(self.key) < MIN_OWNER_KEY):
            raise Unauthorized("saving or deleting a config needs 'Authorization: Bearer <secret>' (8+ characters); "
                               "the secret a config was saved with is the one that can replace or delete it")

    def stored(self) -> str:
        if self.user_id is not None:
            return f"user:{self.user_id}"
        salt, digest = hash_key(self.key or "")
        return f"key:{salt}:{digest}"

    def owns(self, stored: str) -> bool:
        kind, _, rest = stored.partition(":")
        if kind == "user":
            return self.user_id is not None and (rest == self.user_id or self.is_admin)
        if kind == "key":
            salt, _, digest = rest.partition(":")
            return self.key is not None and bool(salt and digest) and key_matches(self.key, salt, digest)
        return self.is_admin


class ConfigCatalog:
    def __init__(self, store: Store, presets_dir: Path = PRESETS_DIR) -> None:
        self.store = store
        self.presets: dict[str, dict[str, Any]] = {}
        for path in sorted(presets_dir.glob("*.yaml")):
            try:
                config = AgentConfigSchema().load(yaml.safe_load(path.read_text()))
            except ValidationError as exc:  # a broken preset is a packaging bug: refuse to start
                raise RuntimeError(f"preset {path.name} is invalid: {error_paths(exc.messages)}") from None
            if config["id"] != path.stem:
                raise RuntimeError(f"preset {path.name} must have id {path.stem!r}, not {config['id']!r}")
            self.presets[config["id"]] = config

    def list(self) -> list[dict[str, Any]]:
        return list(self.presets.values()) + self.store.list_configs()

    def get(self, config_id: Any) -> dict[str, Any]:
        # The id is only ever a dictionary key or a SQL parameter, never a path; anything
        # that is not a slug cannot name a config at all.
        if not isinstance(config_id, str) or not SLUG.match(config_id):
            raise NotFound("no such config", details={"config_id": "not a config id (a lowercase slug)"})
        config = self.presets.get(config_id) or self.store.get_config(config_id)
        if config is None:
            raise NotFound(f"no config {config_id!r}", details={"config_id": config_id})
        return config

    def validate(self, raw: Any) -> dict[str, Any]:
        """The normalised config, or a 400 whose details mirror the config's shape."""
        try:
            return AgentConfigSchema().load(raw)
        except ValidationError as exc:
            raise ValidationFailed("the config is not valid", details=_details(exc)) from None

    def validate_inline(self, raw: Any) -> dict[str, Any]:
        """A config given at launch: valid, and not pretending to be a preset."""
        config = self.validate(raw)
        self._not_a_preset(config)
        return config

    def save(self, raw: Any, owner: Owner) -> tuple[dict[str, Any], bool]:
        """Store a custom config; returns it and whether it was new."""
        owner.require()
        config = self.validate(raw)
        self._not_a_preset(config)
        stored = self.store.get_config_owner(config["id"])
        if stored is not None and not owner.owns(stored):
            raise Conflict(f"a custom config {config['id']!r} already exists and belongs to someone else",
                           details={"id": ["already taken; choose another id"]})
        self.store.save_config(config["id"], config, owner.stored())
        return config, stored is None

    def delete(self, config_id: str, owner: Owner) -> None:
        if config_id in self.presets:
            raise Conflict("presets cannot be deleted", details={"config_id": "is a preset"})
        if not SLUG.match(config_id):
            raise NotFound("no such config", details={"config_id": "not a config id (a lowercase slug)"})
        stored = self.store.get_config_owner(config_id)
        if stored is None:
            raise NotFound(f"no custom config {config_id!r}", details={"config_id": config_id})
        owner.require()
        if not owner.owns(stored):
            raise Forbidden("only the config's owner can delete it")
        self.store.delete_config(config_id)

    def _not_a_preset(self, config: dict[str, Any]) -> None:
        if config["id"] in self.presets:
            raise ValidationFailed(f"{config['id']!r} is a preset id; a custom config cannot shadow a preset",
                                   details={"id": ["is a preset id; choose another"]})


def admit_mcp_env(config: dict[str, Any], mcp_env: dict[str, dict[str, str]]) -> None:
    """Check a launch's ``mcp_env`` against the config, then register its values as secrets.

    Each server must exist, each key must be declared by that server (an ``env`` key, a
    header name, or a ``${VAR}`` in a header), no key may be a core variable, and values
    are strings. Values are added to the log redactor; callers keep them in memory only.
    """
    servers = config.get("mcp_servers") or {}
    errors: dict[str, Any] = {}
    for server, values in mcp_env.items():
        if server not in servers:
            errors[server] = [f"the config has no MCP server {server!r}"]
            continue
        declared = declared_mcp_keys(servers[server])
        problems: dict[str, list[str]] = {}
        for key, value in values.items():
            if key in RESERVED_ENV:
                problems[key] = [f"{key} is reserved and cannot be set"]
            elif key not in declared:
                allowed = ", ".join(sorted(declared)) or "none"
                problems[key] = [f"not declared by MCP server {server!r} (declared: {allowed})"]
            elif not isinstance(value, str) or len(value) > MAX_MCP_VALUE:
                problems[key] = [f"must be a string of at most {MAX_MCP_VALUE} characters"]
        if problems:
            errors[server] = problems
    if errors:
        raise ValidationFailed("mcp_env does not match the config's MCP servers", details={"mcp_env": errors})
    for values in mcp_env.values():
        for value in values.values():
            REDACTOR.add(value)


def summary(config: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": config["id"],
        "name": config["name"],
        "description": config.get("description", ""),
        "allowed_tools": config.get("allowed_tools", []),
        "has_mcp_servers": bool(config.get("mcp_servers")),
        "has_sub_agents": bool(config.get("agents")),
        "resource_limits": config.get("resource_limits", {}),
        "image": config.get("image"),
        # What the launch form must ask for: each server's mcp_env keys.
        "mcp_servers": {name: sorted(declared_mcp_keys(server)) for name, server in (config.get("mcp_servers") or {}).items()},
    }


def _details(exc: ValidationError) -> dict[str, Any]:
    cleaned = error_paths(exc.messages)
    return cleaned if isinstance(cleaned, dict) else {"_schema": cleaned}
