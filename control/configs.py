"""Presets from ``presets/*.yaml`` and custom configs from SQLite, behind one lookup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from marshmallow import ValidationError

from control.config_schema import SLUG, AgentConfigSchema
from control.store import Store
from wire.errors import Conflict, NotFound, ValidationFailed

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"


class ConfigCatalog:
    def __init__(self, store: Store, presets_dir: Path = PRESETS_DIR) -> None:
        self.store = store
        self.presets: dict[str, dict[str, Any]] = {}
        for path in sorted(presets_dir.glob("*.yaml")):
            config = AgentConfigSchema().load(yaml.safe_load(path.read_text()))
            self.presets[config["id"]] = config

    def list(self) -> list[dict[str, Any]]:
        return list(self.presets.values()) + self.store.list_configs()

    def get(self, config_id: str) -> dict[str, Any]:
        # The id is only ever a dictionary key or a SQL parameter, never a path.
        if not isinstance(config_id, str) or not SLUG.match(config_id):
            raise NotFound(f"no config {config_id!r}")
        config = self.presets.get(config_id) or self.store.get_config(config_id)
        if config is None:
            raise NotFound(f"no config {config_id!r}", details={"config_id": config_id})
        return config

    def validate(self, raw: Any) -> dict[str, Any]:
        try:
            return AgentConfigSchema().load(raw)
        except ValidationError as exc:
            raise ValidationFailed("the config is not valid", details=_messages(exc)) from None

    def save(self, raw: Any, owner: str | None = None) -> dict[str, Any]:
        config = self.validate(raw)
        if config["id"] in self.presets:
            raise Conflict(f"{config['id']!r} is a preset and cannot be replaced", details={"id": "shadows a preset"})
        self.store.save_config(config["id"], config, owner)
        return config

    def delete(self, config_id: str) -> None:
        if config_id in self.presets:
            raise Conflict("presets cannot be deleted")
        if not self.store.delete_config(config_id):
            raise NotFound(f"no custom config {config_id!r}")


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
        "mcp_servers": {name: sorted(_declared(server)) for name, server in (config.get("mcp_servers") or {}).items()},
    }


def _declared(server: dict[str, Any]) -> set[str]:
    from control.config_schema import declared_mcp_keys

    return declared_mcp_keys(server)


def _messages(exc: ValidationError) -> dict[str, Any]:
    return exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
