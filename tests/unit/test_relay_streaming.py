"""The relay hands each piece of the model's stream to the machine as it arrives.

Its listener buffers what werkzeug writes for one streamed chunk (size line, data, CRLF)
and sends it at werkzeug's flush, one send per chunk instead of three; a buffer that was
never flushed would hold the agent's stream back. Here the model does not send its second
event until the client has read the first, through a real relay listener.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from flask import Flask, Response

from control import unixhttp
from control.relay.listener import serve_unix
from control.session_status import SessionStatus
from stubs.serving import BackgroundServer
from tests.unit.test_metrics import build_app, insert_session

FIRST, SECOND = b"event: ping\ndata: {\"n\": 1}\n\n", b"event: ping\ndata: {\"n\": 2}\n\n"


class LockstepModel(BackgroundServer):
    """Streams its first event, then waits until the test has seen it before the second."""

    def __init__(self) -> None:
        super().__init__()
        self.first_seen = threading.Event()
        self.waited: list[bool] = []
        app = Flask(__name__)
        app.add_url_rule("/v1/messages", "messages", self._messages, methods=["POST"])
        self._serve(app, "lockstep-model")

    def _messages(self) -> Response:
        def events() -> Iterator[bytes]:
            yield FIRST
            self.waited.append(self.first_seen.wait(20))
            yield SECOND

        return Response(events(), mimetype="text/event-stream")

    def close(self) -> None:
        self._shutdown()


def test_each_model_event_reaches_the_machine_before_the_next_is_sent(tmp_path: Path) -> None:
    model = LockstepModel()
    app = build_app(tmp_path, ANTHROPIC_BASE_URL=model.url)
    ext = app.extensions["agcluster"]
    session_id = insert_session(ext.store, SessionStatus.RUNNING)
    ext.vault.put(session_id, "sk-ant-test-key-123")
    socket_path = tmp_path / "relay.sock"
    listener = serve_unix(ext.relay_app, socket_path, session_id)
    url = f"{unixhttp.SCHEME}{quote(str(socket_path), safe='')}/relay/v1/messages"
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 8,
                       "messages": [{"role": "user", "content": "hi"}]})
    received = b""
    try:
        with unixhttp.Session() as http, http.post(url, data=body, stream=True, timeout=30, headers={
                "x-api-key": ext.minter.relay_token(session_id), "content-type": "application/json",
                "anthropic-version": "2023-06-01"}) as resp:
            assert resp.status_code == 200
            for chunk in resp.iter_content(chunk_size=None):
                received += chunk
                if FIRST in received:
                    model.first_seen.set()
    finally:
        listener.close()
        model.close()
        for thread in threading.enumerate():  # close() stops the server in the background
            if thread.name == "listener-stop" or thread.name.startswith("relay-"):
                thread.join(10)
    assert received == FIRST + SECOND
    assert model.waited == [True], "the first event reached the client only after the model sent the second"
