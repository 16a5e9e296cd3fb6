"""The blocking client: :class:`AgCluster`, its :class:`Session` and :class:`Files`."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Mapping
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


class AgCluster:
    """A connection to one AgCluster server.

    >>> ac = AgCluster("http://127.0.0.1:8000", api_key="sk-ant-...")
    >>> s = ac.launch("code-assistant")
    >>> print(s.chat("run: ls").text)
    """

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None, token: str | None = None,
                 timeout: float | httpx.Timeout = DEFAULT_TIMEOUT, http_client: httpx.Client | None = None) -> None:
        self.settings = Settings.resolve(base_url, api_key, token)
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._http = http_client or httpx.Client(timeout=self.timeout)
        self._owns_http = http_client is None

    def __enter__(self) -> AgCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    # the API --------------------------------------------------------------------------
    def configs(self) -> list[Config]:
        return [Config.from_json(c) for c in self._json("GET", "/api/configs/")["configs"]]

    def launch(self, config_id: str | None = None, *, config: Mapping[str, Any] | None = None,
               mcp_env: Mapping[str, Mapping[str, str]] | None = None) -> Session:
        """Start an agent in its own machine, from a config id or an inline config."""
        launched = self._json("POST", "/api/agents/launch", json=launch_body(config_id, config, mcp_env))
        return Session(self, launched)

    def session(self, session_id: str) -> Session:
        return Session(self, self._json("GET", f"/api/agents/sessions/{seg(session_id)}"))

    def sessions(self) -> list[Session]:
        return [Session(self, s) for s in self._json("GET", "/api/agents/sessions")["sessions"]]

    # transport ------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, self.settings.base_url + path,
                                          headers={**self.settings.headers(), **kwargs.pop("headers", {})},
                                          timeout=kwargs.pop("timeout", self.timeout), **kwargs)
        except httpx.TransportError as exc:
            raise transport_error(exc) from None
        if response.status_code >= 400:
            raise error_from_response(response, response.content)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def _open(self, method: str, path: str, timeout: httpx.Timeout | None = None,
              **kwargs: Any) -> httpx.Response:
        """A streamed response with a 2xx status; the caller closes it."""
        request = self._http.build_request(method, self.settings.base_url + path, timeout=timeout or self.timeout,
                                           headers={**self.settings.headers(), **kwargs.pop("headers", {})}, **kwargs)
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise transport_error(exc) from None
        if response.status_code >= 400:
            try:
                body = response.read()
            except httpx.TransportError:
                body = b""
            finally:
                response.close()
            raise error_from_response(response, body)
        return response


class Session:
    """One agent session: its machine, conversation and workspace.

    ``status`` is the server's word at the time this object was fetched (a string: the
    set of states may grow); fetch again with ``ac.session(id)`` to refresh it.
    """

    def __init__(self, client: AgCluster, data: Mapping[str, Any]) -> None:
        self._client = client
        self.data = data
        self.id: str = str(data["session_id"])
        self.status: str = str(data.get("status", ""))
        self.config_id: str | None = data.get("config_id")
        self.files = Files(client, self.id)

    def __repr__(self) -> str:
        return f"Session(id={self.id!r}, status={self.status!r}, config_id={self.config_id!r})"

    def stream(self, message: str | None = None, *, after: int | None = None) -> EventStream:
        """Send ``message`` and iterate over the turn's events until ``done``.

        Without a message, follow the turn after event ``after`` (e.g. one started by
        another client). A dropped connection is resumed from the last event seen.
        """
        return EventStream(self._client, self.id, Cursor(message, after))

    def chat(self, message: str) -> Reply:
        """Send ``message`` and wait for the whole turn."""
        with self.stream(message) as events:
            return Reply(list(events))

    def interrupt(self) -> bool:
        """Stop the running turn; False when none was running."""
        return bool(self._client._json("POST", f"/api/agents/{seg(self.id)}/interrupt").get("interrupted"))

    def approve(self, request_id: str, decision: Decision = "allow", message: str = "") -> None:
        """Answer a ``permission_request`` event."""
        body: dict[str, Any] = {"decision": decision, **({"message": message} if message else {})}
        self._client._json("POST", f"/api/agents/{seg(self.id)}/permissions/{seg(request_id)}", json=body)

    @overload
    def export(self, format: Literal["json"] = "json") -> dict[str, Any]: ...
    @overload
    def export(self, format: Literal["markdown"]) -> str: ...
    def export(self, format: ExportFormat = "json") -> dict[str, Any] | str:
        """The conversation with every tool call and the costs: a dict, or Markdown text."""
        response = self._client._request("GET", f"/api/agents/sessions/{seg(self.id)}/export",
                                         params={"format": format})
        return response.text if format == "markdown" else response.json()

    def delete(self) -> None:
        """Remove the session and its machine (the transcript goes too)."""
        self._client._json("DELETE", f"/api/agents/sessions/{seg(self.id)}")


class EventStream:
    """An iterator over one turn's events that survives dropped connections.

    Use it in a ``with`` block (or exhaust it) so the connection is released.
    """

    def __init__(self, client: AgCluster, session_id: str, cursor: Cursor) -> None:
        self._client = client
        self._session_id = session_id
        self._cursor = cursor
        self._response: httpx.Response | None = None
        self._events = self._run()

    def __iter__(self) -> Iterator[Event]:
        return self._events

    def __next__(self) -> Event:
        return next(self._events)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def last_seq(self) -> int | None:
        """The seq of the last event delivered (resume from it with ``stream(after=...)``)."""
        return self._cursor.last_seq

    def close(self) -> None:
        self._events.close()
        if self._response is not None:
            self._response.close()

    def _run(self) -> Generator[Event, None, None]:
        cursor = self._cursor
        timeout = stream_timeout(self._client.timeout)
        while not cursor.done:
            path, kwargs = cursor.request(self._session_id)
            opened = False
            try:
                self._response = self._client._open("POST", path, timeout=timeout, **kwargs)
                opened = True
                decoder = sse.Decoder()
                for chunk in self._response.iter_bytes():
                    yield from cursor.accept(decoder.feed(chunk))
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
                time.sleep(cursor.backoff())
            finally:
                if self._response is not None:
                    self._response.close()
                    self._response = None


class Files:
    """The session's workspace (paths are relative to it)."""

    def __init__(self, client: AgCluster, session_id: str) -> None:
        self._client = client
        self._base = f"/api/files/{seg(session_id)}"

    def tree(self, path: str = "", *, depth: int | None = None) -> FileTree:
        params: dict[str, Any] = {"path": path, **({"depth": depth} if depth else {})}
        return FileTree.from_json(self._client._json("GET", self._base, params=params))

    def read(self, path: str) -> bytes:
        """The file's bytes (for large files prefer :meth:`download`)."""
        return self._client._request("GET", f"{self._base}/{file_path(path)}", params={"raw": "1"}).content

    def download(self, path: str, to: str | Path | IO[bytes], *, progress: Progress | None = None) -> None:
        """Stream a file into ``to`` (a path or a binary file object)."""
        self._save("GET", f"{self._base}/{file_path(path)}", to, progress, params={"raw": "1"})

    def download_zip(self, to: str | Path | IO[bytes], *, progress: Progress | None = None) -> None:
        """The whole workspace as a ZIP archive."""
        self._save("POST", f"{self._base}/download", to, progress)

    def upload(self, file: str | Path, to: str = "", *, overwrite: bool = False,
               progress: Progress | None = None) -> list[dict[str, Any]]:
        """Put a local file into directory ``to``; returns what the server stored."""
        params = {"target_path": to.strip("/"), "overwrite": "1" if overwrite else "0"}
        with open_upload(file, progress) as (name, reader):
            body = self._client._json("POST", f"{self._base}/upload", params=params,
                                      files={"files": (name, reader)})
        return list(body.get("uploaded") or [])

    def _save(self, method: str, path: str, to: str | Path | IO[bytes], progress: Progress | None,
              **kwargs: Any) -> None:
        response = self._client._open(method, path, **kwargs)
        try:
            total = int(response.headers["Content-Length"]) if "Content-Length" in response.headers else None
            with ProgressReader.sink(to) as sink:
                done = 0
                for chunk in response.iter_bytes():
                    sink.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
        except httpx.TransportError as exc:
            raise transport_error(exc) from None
        finally:
            response.close()
