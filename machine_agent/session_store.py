"""The SDK's session store, mirrored into the control plane.

The CLI keeps its conversation as JSONL under ``$HOME/.claude``; on a fresh machine (a
replaced container, a new Fly Machine, a wiped home) that file is gone and ``resume``
would start from nothing. With this adapter every transcript line is also sent to the
control plane, and ``resume`` materialises the conversation from there when the local file
is missing. It authenticates with the session's relay token, like model calls.
"""

from __future__ import annotations

from typing import Any

import httpx

TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class ControlPlaneSessionStore:
    def __init__(self, relay_url: str, relay_token: str) -> None:
        self._base = relay_url.rstrip("/") + "/_store"
        self._headers = {"Authorization": f"Bearer {relay_token}"}

    async def append(self, key: dict[str, Any], entries: list[dict[str, Any]]) -> None:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            resp = await http.post(f"{self._base}/append", headers=self._headers, json={"key": key, "entries": entries})
            resp.raise_for_status()

    async def load(self, key: dict[str, Any]) -> list[dict[str, Any]] | None:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            resp = await http.post(f"{self._base}/load", headers=self._headers, json={"key": key})
            resp.raise_for_status()
            return resp.json()["entries"]

    async def list_subkeys(self, key: dict[str, Any]) -> list[str]:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            resp = await http.post(f"{self._base}/subkeys", headers=self._headers, json={"key": key})
            resp.raise_for_status()
            return list(resp.json()["subkeys"])
