"""One persistent ``ClaudeSDKClient`` per machine, driven from a private asyncio loop.

The HTTP server is threaded; the SDK is asyncio. A single loop thread owns the client so
its subprocess and streams never cross threads; HTTP handlers submit coroutines to it and
read events from a queue. A turn runs to completion in the loop even if the HTTP reader
goes away, so a reconnecting control plane loses nothing.

The SDK (and, through it, the MCP types and pydantic: ~0.45 s of imports) is imported at
``/configure``, not at start-up, so a fresh machine answers ``/health`` without it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from wire.errors import Conflict, NotFound
from wire.events import make_event

if TYPE_CHECKING:
    from claude_agent_sdk import ClaudeSDKClient, ToolPermissionContext

    from machine_agent.convert import EventConverter
    from machine_agent.session_store import ControlPlaneSessionStore

_END = object()
STDERR_LINES = 40
PERMISSION_TIMEOUT = 300.0


class AgentRunner:
    def __init__(self, workspace: str, home: str) -> None:
        self.workspace = workspace
        self.home = home
        self.session_id = ""
        self.effective: dict[str, Any] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sdk-loop", daemon=True)
        self._thread.start()
        self._client: ClaudeSDKClient | None = None
        self._converter: EventConverter | None = None
        self._turn_lock = threading.Lock()
        self._configure_lock = threading.Lock()
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._options: Any = None
        self._store: ControlPlaneSessionStore | None = None
        self._prefetch: threading.Thread | None = None
        self._prefetch_lock = threading.Lock()
        self._events: queue.Queue[Any] | None = None
        self._permission_waiters: dict[str, asyncio.Future[tuple[str, str]]] = {}

    def prefetch(self) -> None:
        """Import what ``configure`` needs, in the background, once.

        Called when ``/health`` is first answered: by then the machine is visibly up, and
        ``/configure`` (which follows at once on a cold launch, or much later for a machine
        waiting in the warm pool) finds the SDK imported or being imported.
        """
        with self._prefetch_lock:  # not the configure lock: /health must never wait
            if self._prefetch is None:
                self._prefetch = threading.Thread(target=_import_sdk, name="sdk-import", daemon=True)
                self._prefetch.start()

    def prepare(self, timeout: float = 120.0) -> bool:
        """Block until what ``configure`` imports is imported (starting it if need be), so a
        warm-pool machine counts as ready only once a launch would not wait for it."""
        self.prefetch()
        assert self._prefetch is not None
        self._prefetch.join(timeout)
        return not self._prefetch.is_alive()

    @property
    def configured(self) -> bool:
        return self._client is not None

    @property
    def busy(self) -> bool:
        return self._turn_lock.locked()

    @property
    def claude_session_id(self) -> str | None:
        return self._converter.claude_session_id if self._converter else None

    @property
    def cli_init(self) -> dict[str, Any]:
        """What the CLI itself reported in its last init message: tools, agents, MCP servers, model."""
        return dict(self._converter.init_info) if self._converter else {}

    def configure(self, session_id: str, config: dict[str, Any], relay_url: str, relay_token: str,
                  mcp_env: dict[str, Any] | None = None, resume: str | None = None) -> dict[str, Any]:
        """Start the CLI now, so the first chat does not pay its start-up."""
        with self._configure_lock:
            if self._client is not None:
                if session_id == self.session_id:
                    return self.effective
                raise Conflict("this machine is already configured for another session")
            from claude_agent_sdk import ClaudeSDKClient

            from machine_agent.convert import EventConverter
            from machine_agent.options import MachineContext, build_options, effective_summary
            from machine_agent.session_store import ControlPlaneSessionStore

            ctx = MachineContext(self.workspace, self.home, relay_url, relay_token)
            asks = config.get("permission_mode") == "default"
            self._store = ControlPlaneSessionStore(relay_url, relay_token)
            self._options = replace(
                build_options(config, ctx, mcp_env=mcp_env, resume=resume, stderr=self._stderr.append,
                              can_use_tool=self._can_use_tool if asks else None),
                session_store=self._store,  # type: ignore[arg-type]  # the SDK's Protocol lists optional methods too
            )
            client = ClaudeSDKClient(self._options)
            self._submit(client.connect(), timeout=120)
            self._client = client
            self.session_id = session_id
            self._converter = EventConverter(session_id)
            self.effective = effective_summary(self._options)
            return self.effective

    def chat(self, message: str) -> Iterator[list[dict[str, Any]]]:
        """Start a turn and yield its events in batches; raises Conflict while another turn runs."""
        if self._client is None or self._converter is None:
            raise Conflict("configure the machine before chatting", code="not_configured")
        if not self._turn_lock.acquire(blocking=False):
            raise Conflict("a turn is already running; interrupt it or wait", code="busy")
        events: queue.Queue[Any] = queue.Queue()
        self._events = events
        events.put(make_event("user", self.session_id, text=message))
        asyncio.run_coroutine_threadsafe(self._run_turn(message, events), self._loop)
        return _drain(events)

    def interrupt(self) -> bool:
        if self._client is None or not self.busy:
            return False
        self._submit(self._client.interrupt(), timeout=30)
        return True

    def answer_permission(self, request_id: str, decision: str, message: str = "") -> None:
        future = self._permission_waiters.get(request_id)
        if future is None:
            raise NotFound(f"no pending permission request {request_id!r}")

        def resolve() -> None:
            if not future.done():
                future.set_result((decision, message))

        self._loop.call_soon_threadsafe(resolve)

    async def _can_use_tool(self, tool_name: str, tool_input: dict[str, Any], context: ToolPermissionContext) -> Any:
        """Ask the user through the event stream; silence past the timeout is a denial."""
        from claude_agent_sdk import PermissionResultAllow, PermissionResultDeny, PermissionUpdate
        from claude_agent_sdk.types import PermissionRuleValue

        request_id = f"perm_{uuid.uuid4().hex[:16]}"
        future: asyncio.Future[tuple[str, str]] = self._loop.create_future()
        self._permission_waiters[request_id] = future
        if self._events is not None:
            self._events.put(make_event("permission_request", self.session_id, request_id=request_id,
                                        tool_name=tool_name, input=tool_input, tool_use_id=context.tool_use_id))
        try:
            decision, message = await asyncio.wait_for(future, PERMISSION_TIMEOUT)
        except TimeoutError:
            decision, message = "deny", "No answer from the user in time; the tool call was denied."
        finally:
            self._permission_waiters.pop(request_id, None)
        if decision == "allow":
            return PermissionResultAllow()
        if decision == "allow_session":
            rule = PermissionUpdate(type="addRules", rules=[PermissionRuleValue(tool_name=tool_name)],
                                    behavior="allow", destination="session")
            return PermissionResultAllow(updated_permissions=[rule])
        return PermissionResultDeny(message=message or "The user denied this tool call.")

    def shutdown(self) -> None:
        """Stop the CLI (the SDK flushes the transcript mirror on disconnect), then the loop."""
        # Best effort at exit: whatever a step raises, the next still runs.
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._submit(self._client.disconnect(), timeout=10)
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._submit(self._store.close(), timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)

    async def _run_turn(self, message: str, events: queue.Queue[Any]) -> None:
        assert self._client is not None and self._converter is not None
        started = time.monotonic()
        got_result = False
        try:
            await self._client.query(message)
            async for sdk_message in self._client.receive_response():
                for event in self._converter.convert(sdk_message):
                    got_result = got_result or event["type"] == "result"
                    events.put(event)
        except Exception as exc:  # noqa: BLE001 - any CLI failure becomes an event
            detail = "\n".join(self._stderr) or str(exc)
            events.put(make_event("error", self.session_id, code="agent_failed",
                                  message=f"{type(exc).__name__}: {exc}", stderr=detail[-4000:]))
            await self._reset_client()
        finally:
            if not got_result:
                events.put(make_event("result", self.session_id, subtype="error_during_execution", is_error=True,
                                      num_turns=0, duration_ms=int((time.monotonic() - started) * 1000),
                                      total_cost_usd=None, usage={}))
            self._turn_lock.release()  # before "done": the next message may follow it at once
            events.put(make_event("done", self.session_id))
            events.put(_END)

    async def _reset_client(self) -> None:
        """After the CLI died, start a fresh one that resumes the same conversation."""
        old = self._client
        if old is not None:
            with contextlib.suppress(Exception):  # it is dead already: disconnecting is a courtesy
                await old.disconnect()
        # Whatever the dead CLI's tools left running (a fork bomb's children hold the
        # machine's process cap, a runaway the memory) would starve the new one.
        _kill_strays()
        if self._options is None:
            return
        from claude_agent_sdk import ClaudeSDKClient

        resume = self.claude_session_id or self._options.resume
        client = ClaudeSDKClient(replace(self._options, resume=resume))
        try:
            await client.connect()
            self._client = client
        except Exception:  # noqa: BLE001 - the next chat will report it again
            self._client = client

    def _submit(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)


def _kill_strays() -> None:
    """Kill every other process of this machine's user: the machine is ours alone, and only
    an unprivileged uid can do this safely (it can signal nothing but its own processes)."""
    uid = os.geteuid()
    if uid == 0:
        return
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            if os.stat(entry.path).st_uid == uid:
                os.kill(int(entry.name), signal.SIGKILL)
        except OSError:
            continue


def _import_sdk() -> None:
    # Imported for what importing them costs (the SDK), not for a name.
    import machine_agent.convert
    import machine_agent.options  # noqa: F401 - see above
    from machine_agent import session_store

    session_store.prepare()


def _drain(events: queue.Queue[Any]) -> Iterator[list[dict[str, Any]]]:
    """Yield, in order, everything queued since the last yield: a burst of deltas is one write."""
    while True:
        batch = [events.get()]
        while True:
            try:
                batch.append(events.get_nowait())
            except queue.Empty:
                break
        if batch[-1] is _END:  # always the last item of a turn
            if len(batch) > 1:
                yield batch[:-1]
            return
        yield batch
