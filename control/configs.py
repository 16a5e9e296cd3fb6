"""Presets from ``presets/*.yaml`` and custom configs from SQLite, behind one lookup.

Custom configs are owned by whoever saved them. With ``AUTH_MODE=token`` the owner is the
caller's account (admins may delete any config); with ``AUTH_MODE=none`` it is the
``Authorization: Bearer`` secret sent with the save, kept only as a salted hash. Only the
owner can replace or delete a config.

A saved config is someone else's code: its MCP commands and environment run in the
launcher's machine. So with ``AUTH_MODE=token`` a custom config is visible (listed, read,
launched) only to its owner and to admins, until an admin shares it; replacing a shared
config's content takes the share away again, so what was approved is what runs. Another
user's unshared config is a 404, exactly like one that does not exist. With
``AUTH_MODE=none`` there are no users to keep apart: everyone who can reach the server
sees every config (docs/SECURITY.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from marshmallow import ValidationError

from control.config_schema import SLUG, AgentConfigSchema, declared_mcp_keys, error_paths, reserved_env
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

    def list(self, viewer: Owner | None) -> list[dict[str, Any]]:
        """Presets and the custom configs ``viewer`` may see (``None``: AUTH_MODE=none, all),
        each custom one marked with ``shared``."""
        customs = [{**config, "shared": shared} for config, owner, shared in self.store.list_configs()
                   if _visible(viewer, owner, shared)]
        return list(self.presets.values()) + customs

    def get(self, config_id: Any, viewer: Owner | None) -> dict[str, Any]:
        # The id is only ever a dictionary key or a SQL parameter, never a path; anything
        # that is not a slug cannot name a config at all.
        if not isinstance(config_id, str) or not SLUG.match(config_id):
            raise NotFound("no such config", details={"config_id": "not a config id (a lowercase slug)"})
        config = self.presets.get(config_id)
        if config is None:
            config = self.store.get_config(config_id)
            owner = self.store.get_config_owner(config_id)
            if config is None or owner is None or not _visible(viewer, owner, self.store.config_shared(config_id)):
                raise NotFound(f"no config {config_id!r}", details={"config_id": config_id})
        return config

    def share(self, config_id: str, shared: bool, admin: Owner) -> None:
        """Admins only (the route checks): let every user see and launch a custom config."""
        if config_id in self.presets:
            raise Conflict("presets are shared already", details={"config_id": "is a preset"})
        if not SLUG.match(config_id) or not self.store.share_config(config_id, shared):
            raise NotFound(f"no custom config {config_id!r}", details={"config_id": config_id[:64]})

    def validate(self, raw: Any) -> dict[str, Any]:
        """The normalised config, or a 400 whose details mirror the config's shape."""
        try:
            config: dict[str, Any] = AgentConfigSchema().load(raw)
        except ValidationError as exc:
            raise ValidationFailed("the config is not valid", details=_details(exc)) from None
        return config

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
            if reserved_env(key):
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


def _visible(viewer: Owner | None, stored_owner: str, shared: bool) -> bool:
    """None is AUTH_MODE=none (no users to keep apart); an account sees its own configs,
    shared ones, and an admin sees everything."""
    if viewer is None or viewer.user_id is None or shared or viewer.is_admin:
        return True
    return stored_owner == f"user:{viewer.user_id}"


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
        "mcp_servers": {name: sorted(declared_mcp_keys(server))
                        for name, server in (config.get("mcp_servers") or {}).items()},
        "network": config.get("network", "relay"),
        "shared": config.get("shared", True),
    }


def _details(exc: ValidationError) -> dict[str, Any]:
    cleaned = error_paths(exc.messages)
    return cleaned if isinstance(cleaned, dict) else {"_schema": cleaned}
