"""The SDK's session store, mirrored into the control plane.

The CLI keeps its conversation as JSONL under ``$HOME/.claude``; on a fresh machine (a
replaced container, a new Fly Machine, a wiped home) that file is gone and ``resume``
would start from nothing. With this adapter every transcript line is also sent to the
control plane, and ``resume`` materialises the conversation from there when the local file
is missing. It authenticates with the session's relay token, like model calls.

The SDK flushes the mirror before it hands over a turn's ``result``, so the append is on
every turn's critical path (last event → ``done``). One HTTP client is kept for the
machine's life: building one per call cost ~18 ms (its TLS context), and a kept-alive
connection saves the connect as well. :func:`prepare` pays the rest (the TLS context and
httpcore's import, ~30 ms) before ``/configure``, so neither the configure answer nor the
first turn waits for it.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx

TIMEOUT = httpx.Timeout(30.0, connect=5.0)


@functools.cache
def tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def prepare() -> None:
    tls_context()
    import httpcore  # noqa: F401 - what httpx imports when its first client is built


class ControlPlaneSessionStore:
    def __init__(self, relay_url: str, relay_token: str) -> None:
        self._base = relay_url.rstrip("/") + "/_store"
        self._headers = {"Authorization": f"Bearer {relay_token}"}
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        # Created on the SDK's event loop (the only one that calls us) and kept there.
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=TIMEOUT, headers=self._headers, verify=tls_context())
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def append(self, key: dict[str, Any], entries: list[dict[str, Any]]) -> None:
        resp = await self._client().post(f"{self._base}/append", json={"key": key, "entries": entries})
        resp.raise_for_status()

    async def load(self, key: dict[str, Any]) -> list[dict[str, Any]] | None:
        resp = await self._client().post(f"{self._base}/load", json={"key": key})
        resp.raise_for_status()
        entries: list[dict[str, Any]] | None = resp.json()["entries"]
        return entries

    async def list_subkeys(self, key: dict[str, Any]) -> list[str]:
        resp = await self._client().post(f"{self._base}/subkeys", json={"key": key})
        resp.raise_for_status()
        return list(resp.json()["subkeys"])
