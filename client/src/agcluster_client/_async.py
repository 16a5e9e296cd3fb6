"""The asyncio client: :class:`AsyncAgCluster`, mirroring :mod:`._sync` with ``await`` and
``async for``. Request shapes, errors and resume bookkeeping come from :mod:`._base`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, overload

import httpx

from ._base import (
    DEFAULT_TIMEOUT,
    Cursor,
    Decision,
    ExportFormat,
    Progress,
    Settings,
    file_path,
    launch_body,
    seg,
    stream_timeout,
    transport_error,
)
from ._errors import AgClusterError, error_from_response
from ._models import Config, FileTree, Reply
from ._transfer import ProgressReader, open_upload
from ._wire import sse
from ._wire.events import Event


class AsyncAgCluster:
    """``async with AsyncAgCluster(url, api_key=...) as ac: s = await ac.launch("code-assistant")``"""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None, token: str | None = None,
                 timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
                 http_client: httpx.AsyncClient | None = None) -> None:
        self.settings = Settings.resolve(base_url, api_key, token)
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._http = http_client or httpx.AsyncClient(timeout=self.timeout)
        self._owns_http = http_client is None

    async def __aenter__(self) -> AsyncAgCluster:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # the API --------------------------------------------------------------------------
    async def configs(self) -> list[Config]:
        return [Config.from_json(c) for c in (await self._json("GET", "/api/configs/"))["configs"]]

    async def launch(self, config_id: str | None = None, *, config: Mapping[str, Any] | None = None,
                     mcp_env: Mapping[str, Mapping[str, str]] | None = None) -> AsyncSession:
        launched = await self._json("POST", "/api/agents/launch", json=launch_body(config_id, config, mcp_env))
        return AsyncSession(self, launched)

    async def session(self, session_id: str) -> AsyncSession:
        return AsyncSession(self, await self._json("GET", f"/api/agents/sessions/{seg(session_id)}"))

    async def sessions(self) -> list[AsyncSession]:
        return [AsyncSession(self, s) for s in (await self._json("GET", "/api/agents/sessions"))["sessions"]]

    # transport ------------------------------------------------------------------------
    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, self.settings.base_url + path,
                                                headers={**self.settings.headers(), **kwargs.pop("headers", {})},
                                                timeout=kwargs.pop("timeout", self.timeout), **kwargs)
        except httpx.TransportError as exc:
            raise transport_error(exc) from None
        if response.status_code >= 400:
            raise error_from_response(response, response.content)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self._request(method, path, **kwargs)).json()

    async def _open(self, method: str, path: str, timeout: httpx.Timeout | None = None,
                    **kwargs: Any) -> httpx.Response:
        request = self._http.build_request(method, self.settings.base_url + path, timeout=timeout or self.timeout,
                                           headers={**self.settings.headers(), **kwargs.pop("headers", {})}, **kwargs)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise transport_error(exc) from None
        if response.status_code >= 400:
            try:
                body = await response.aread()
            except httpx.TransportError:
                body = b""
            finally:
                await response.aclose()
            raise error_from_response(response, body)
        return response


class AsyncSession:
    """The async form of :class:`agcluster_client.Session`."""

    def __init__(self, client: AsyncAgCluster, data: Mapping[str, Any]) -> None:
        self._client = client
        self.data = data
        self.id: str = str(data["session_id"])
        self.status: str = str(data.get("status", ""))
        self.config_id: str | None = data.get("config_id")
        self.files = AsyncFiles(client, self.id)

    def __repr__(self) -> str:
        return f"AsyncSession(id={self.id!r}, status={self.status!r}, config_id={self.config_id!r})"

    def stream(self, message: str | None = None, *, after: int | None = None) -> AsyncEventStream:
        return AsyncEventStream(self._client, self.id, Cursor(message, after))

    async def chat(self, message: str) -> Reply:
        async with self.stream(message) as events:
            return Reply([event async for event in events])

    async def interrupt(self) -> bool:
        return bool((await self._client._json("POST", f"/api/agents/{seg(self.id)}/interrupt")).get("interrupted"))

    async def approve(self, request_id: str, decision: Decision = "allow", message: str = "") -> None:
        body: dict[str, Any] = {"decision": decision, **({"message": message} if message else {})}
        await self._client._json("POST", f"/api/agents/{seg(self.id)}/permissions/{seg(request_id)}", json=body)

    @overload
    async def export(self, format: Literal["json"] = "json") -> dict[str, Any]: ...
    @overload
    async def export(self, format: Literal["markdown"]) -> str: ...
    async def export(self, format: ExportFormat = "json") -> dict[str, Any] | str:
        response = await self._client._request("GET", f"/api/agents/sessions/{seg(self.id)}/export",
                                               params={"format": format})
        return response.text if format == "markdown" else response.json()

    async def delete(self) -> None:
        await self._client._json("DELETE", f"/api/agents/sessions/{seg(self.id)}")


class AsyncEventStream:
    """``async for`` over one turn's events, resuming after a dropped connection."""

    def __init__(self, client: AsyncAgCluster, session_id: str, cursor: Cursor) -> None:
        self._client = client
        self._session_id = session_id
        self._cursor = cursor
        self._response: httpx.Response | None = None
        self._events = self._run()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events

    async def __anext__(self) -> Event:
        return await self._events.__anext__()

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    @property
    def last_seq(self) -> int | None:
        return self._cursor.last_seq

    async def aclose(self) -> None:
        await self._events.aclose()
        if self._response is not None:
            await self._response.aclose()

    async def _run(self) -> AsyncGenerator[Event, None]:
        cursor = self._cursor
        timeout = stream_timeout(self._client.timeout)
        while not cursor.done:
            path, kwargs = cursor.request(self._session_id)
            opened = False
            try:
                self._response = await self._client._open("POST", path, timeout=timeout, **kwargs)
                opened = True
                decoder = sse.Decoder()
                async for chunk in self._response.aiter_bytes():
                    for event in cursor.accept(decoder.feed(chunk)):
                        yield event
                    if cursor.done:
                        break
                if not cursor.done:
                    raise ConnectionError("the stream ended before the turn's done event")
            except (httpx.TransportError, ConnectionError, AgClusterError) as exc:
                error = transport_error(exc) if isinstance(exc, httpx.TransportError) else exc
                if not cursor.should_retry(error):
                    if isinstance(error, AgClusterError) and not opened:
                        raise error from None
                    raise cursor.lost() from None
                await asyncio.sleep(cursor.backoff())
            finally:
                if self._response is not None:
                    await self._response.aclose()
                    self._response = None


class AsyncFiles:
    """The async form of :class:`agcluster_client.Files`."""

    def __init__(self, client: AsyncAgCluster, session_id: str) -> None:
        self._client = client
        self._base = f"/api/files/{seg(session_id)}"

    async def tree(self, path: str = "", *, depth: int | None = None) -> FileTree:
        params: dict[str, Any] = {"path": path, **({"depth": depth} if depth else {})}
        return FileTree.from_json(await self._client._json("GET", self._base, params=params))

    async def read(self, path: str) -> bytes:
        return (await self._client._request("GET", f"{self._base}/{file_path(path)}", params={"raw": "1"})).content

    async def download(self, path: str, to: str | Path | IO[bytes], *, progress: Progress | None = None) -> None:
        await self._save("GET", f"{self._base}/{file_path(path)}", to, progress, params={"raw": "1"})

    async def download_zip(self, to: str | Path | IO[bytes], *, progress: Progress | None = None) -> None:
        await self._save("POST", f"{self._base}/download", to, progress)

    async def upload(self, file: str | Path, to: str = "", *, overwrite: bool = False,
                     progress: Progress | None = None) -> list[dict[str, Any]]:
        params = {"target_path": to.strip("/"), "overwrite": "1" if overwrite else "0"}
        with open_upload(file, progress) as (name, reader):
            body = await self._client._json("POST", f"{self._base}/upload", params=params,
                                            files={"files": (name, reader)})
        return list(body.get("uploaded") or [])

    async def _save(self, method: str, path: str, to: str | Path | IO[bytes], progress: Progress | None,
                    **kwargs: Any) -> None:
        response = await self._client._open(method, path, **kwargs)
        try:
            total = int(response.headers["Content-Length"]) if "Content-Length" in response.headers else None
            with ProgressReader.sink(to) as sink:
                done = 0
                async for chunk in response.aiter_bytes():
                    sink.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
        except httpx.TransportError as exc:
            raise transport_error(exc) from None
        finally:
            await response.aclose()
