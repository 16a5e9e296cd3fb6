"""HTTP client for one machine agent (docs/MACHINE_PROTOCOL.md). Errors mapped once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import requests

from control import unixhttp
from wire import sse
from wire.errors import ApiError, UpstreamError

CONNECT_TIMEOUT = 5.0


class MachineUnreachable(UpstreamError):
    code = "machine_unreachable"


class MachineClient:
    def __init__(self, url: str, token: str, http: unixhttp.Session | None = None) -> None:
        """``http``: the session's pooled connections, kept by their owner; without one the
        client has its own, closed by :meth:`close` (or the ``with`` block)."""
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._owned = http is None
        self._http = http or unixhttp.Session()

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def __enter__(self) -> MachineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, timeout: float | None = 30.0, stream: bool = False,
                **kwargs: Any) -> requests.Response:
        headers = {**self._headers, **kwargs.pop("headers", {})}
        try:
            resp = self._http.request(method, f"{self.url}{path}", headers=headers, stream=stream,
                                      timeout=(CONNECT_TIMEOUT, timeout), **kwargs)
        except requests.RequestException as exc:
            raise MachineUnreachable(f"the session's machine is not reachable ({type(exc).__name__})") from None
        if resp.status_code >= 400:
            raise _as_api_error(resp)
        return resp

    def health(self) -> dict[str, Any]:
        return _object(self.request("GET", "/health", timeout=5))

    def configure(self, body: dict[str, Any]) -> dict[str, Any]:
        return _object(self.request("POST", "/configure", json=body, timeout=180))

    def chat(self, message: str) -> Iterator[list[sse.Piece]]:
        """Yield the machine's events, undecoded, in the batches they arrived in; no read
        timeout, turns can be long."""
        resp = self.request("POST", "/chat", json={"message": message}, stream=True, timeout=None,
                            headers={"Accept": "text/event-stream"})
        try:
            yield from sse.read_pieces(resp.iter_content(chunk_size=None))
        except requests.RequestException as exc:
            raise MachineUnreachable(f"the machine's event stream broke ({type(exc).__name__})") from None
        finally:
            resp.close()

    def interrupt(self) -> bool:
        return bool(self.request("POST", "/interrupt", timeout=35).json().get("interrupted"))


def _object(resp: requests.Response) -> dict[str, Any]:
    """The machine's answer, which the protocol makes a JSON object; anything else is its fault."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise UpstreamError("the machine's answer is not a JSON object")
    return body


def _as_api_error(resp: requests.Response) -> ApiError:
    """Pass the machine's own error through when it is in our shape (it speaks wire.errors)."""
    try:
        error = resp.json()["error"]
        return ApiError(str(error.get("message", "")), code=str(error.get("code", "machine_error")),
                        status=resp.status_code if resp.status_code < 500 else 502, details=error.get("details") or {})
    except (ValueError, KeyError, TypeError, AttributeError):
        return UpstreamError(f"the machine answered HTTP {resp.status_code}")
    finally:
        resp.close()
