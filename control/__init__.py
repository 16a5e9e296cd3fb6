"""AgCluster control plane (docs/ARCHITECTURE.md)."""

__version__ = "0.1.0"
"""The one version string: /health, /openapi.json and the package metadata read it."""
