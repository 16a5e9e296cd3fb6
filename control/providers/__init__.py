"""Machine providers behind one interface (``base.Provider``)."""

from __future__ import annotations

import hashlib

from control.providers.base import Provider, ProviderError
from control.settings import Settings


def relay_url_for(settings: Settings) -> str:
    return settings.relay_url or f"http://127.0.0.1:{settings.api_port}/relay"


def make_provider(settings: Settings) -> Provider:
    """Import lazily: a local install never needs the docker SDK to talk to an engine."""
    if settings.container_provider == "local":
        from control.providers.local import LocalProvider

        return LocalProvider(settings.machines_dir, hidden_dirs=[settings.data_dir],
                             max_upload_mb=settings.max_upload_mb)
    if settings.container_provider == "docker":
        from control.providers.docker import DockerProvider

        # A per-database instance label keeps two control planes on one engine from
        # reconciling away each other's machines.
        instance = hashlib.sha256(str(settings.database_path.resolve()).encode()).hexdigest()[:12]
        return DockerProvider(settings.agent_image, settings.relay_port, settings.egress_port, instance=instance)
    if settings.container_provider == "fly_machines":
        from control.providers.fly import FlyProvider

        return FlyProvider.from_settings(settings)
    raise ProviderError(f"unknown provider {settings.container_provider}")


__all__ = ["Provider", "ProviderError", "make_provider", "relay_url_for"]
