"""The HTTP face of the stand-in: Fly's routes, auth, error bodies, the call record and faults.

Every request under ``/v1`` is recorded first (action, machine, query, body, answer), so a
test can assert the exact sequence of calls a client made, refused ones included. The
``/_stub`` routes expose the same controls as :class:`stubs.fly.StubFly` to out-of-process
callers.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from flask import Flask, Response, request

from .control import Fault, StubControl
from .state import FlyState, StubError

NONCE_HEADER = "fly-machine-lease-nonce"
ANY = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def create_app(state: FlyState, control: StubControl, *, token: str | None = None) -> Flask:
    app = Flask("stubs.fly")
    app.config["stubs.fly"] = (state, control)

    def volumes(app_name: str, rest: str = "") -> Response:
        return api(app_name, rest, resource="volumes")

    def api(app_name: str, rest: str = "", resource: str = "machines") -> Response:
        if resource == "volumes":
            action, machine_id, key = resolve_volume(request.method, rest)
        else:
            action, machine_id, key = resolve(request.method, rest)
        body = request.get_json(silent=True) if request.data else None
        nonce = request.headers.get(NONCE_HEADER) or None
        entry = control.record({
            "method": request.method, "path": request.path, "app": app_name, "action": action,
            "machine_id": machine_id, "query": {k: (v if len(v) > 1 else v[0]) for k, v in request.args.lists()},
            "body": body, "nonce": bool(nonce), "auth": _scheme(request.headers.get("Authorization", "")),
        })
        injected = False
        try:
            if action is None:
                raise StubError(404 if request.method in ("GET", "POST", "DELETE") else 405,
                                f"no route for {request.method} {request.path}")
            credential = _authenticate(request.headers.get("Authorization", ""), token)
            state.check_app(app_name)
            fault = control.take_fault(action, machine_id, "before")
            if fault is not None:
                if fault.delay:
                    time.sleep(fault.delay)  # a slow Fly, as the client experiences it
                if fault.status:
                    injected = True
                    raise StubError(fault.status, fault.describe(), fault.code, fault.retry_after)
            if not control.allow(action, machine_id or app_name):
                raise StubError(429, f"rate limit exceeded for {action}", retry_after=1.0)
            status, answer = dispatch(state, action, app_name, machine_id, key, body, nonce, _owner(credential))
            after = control.take_fault(action, machine_id, "after")
            if after is not None and after.status:
                injected = True
                raise StubError(after.status, after.describe(), after.code, after.retry_after)
        except StubError as exc:
            control.finish(entry, exc.status, fault=injected)
            headers = {"Retry-After": f"{exc.retry_after:g}"} if exc.retry_after is not None else {}
            return _json(exc.body(), exc.status, headers)
        control.finish(entry, status)
        if status == 204:
            return Response(status=204)
        return _json(answer, status)

    app.add_url_rule("/v1/apps/<app_name>/machines", "machines", api, methods=ANY)
    app.add_url_rule("/v1/apps/<app_name>/machines/<path:rest>", "machine", api, methods=ANY)
    app.add_url_rule("/v1/apps/<app_name>/volumes", "volumes", volumes, methods=ANY)
    app.add_url_rule("/v1/apps/<app_name>/volumes/<path:rest>", "volume", volumes, methods=ANY)
    _admin(app, state, control)
    app.register_error_handler(404, lambda _e: _json({"error": f"no route for {request.path}"}, 404))
    app.register_error_handler(405, lambda _e: _json({"error": "method not allowed"}, 405))
    return app


def resolve(method: str, rest: str) -> tuple[str | None, str | None, str | None]:
    """(action, machine id, metadata key) for a path under ``/machines``; action None = no route."""
    parts = [p for p in rest.split("/") if p]
    if not parts:
        return {"GET": "list", "POST": "create"}.get(method), None, None
    machine_id = parts[0]
    if len(parts) == 1:
        return {"GET": "get", "POST": "update", "DELETE": "destroy"}.get(method), machine_id, None
    sub = parts[1]
    if len(parts) == 2:
        if method == "POST" and sub in ("start", "stop", "suspend", "exec"):
            return sub, machine_id, None
        if method == "GET" and sub in ("wait", "events"):
            return sub, machine_id, None
        if sub == "lease":
            if method == "POST":
                return ("lease_refresh" if request.headers.get(NONCE_HEADER) else "lease_acquire"), machine_id, None
            return {"GET": "lease_get", "DELETE": "lease_release"}.get(method), machine_id, None
        if sub == "metadata" and method == "GET":
            return "metadata_get", machine_id, None
    if len(parts) == 3 and sub == "metadata":
        return {"POST": "metadata_set", "DELETE": "metadata_delete"}.get(method), machine_id, parts[2]
    return None, machine_id, None


def resolve_volume(method: str, rest: str) -> tuple[str | None, str | None, str | None]:
    """(action, volume id, None) for a path under ``/volumes``; the id rides in the machine slot."""
    parts = [p for p in rest.split("/") if p]
    if not parts:
        return {"GET": "volume_list", "POST": "volume_create"}.get(method), None, None
    if len(parts) == 1:
        return {"GET": "volume_get", "DELETE": "volume_destroy"}.get(method), parts[0], None
    return None, parts[0], None


def dispatch(state: FlyState, action: str, app: str, machine_id: str | None, key: str | None, body: Any,
             nonce: str | None, owner: str) -> tuple[int, Any]:
    args = request.args
    mid = machine_id or ""
    if action == "list":
        metadata = {k[len("metadata."):]: v for k, v in args.items() if k.startswith("metadata.")}
        return 200, state.list_machines(app, metadata=metadata, region=args.get("region"),
                                        include_deleted=args.get("include_deleted", "").lower() in ("1", "true"))
    if action == "create":
        return 200, state.create(app, body, owner)
    if action == "get":
        return 200, state.get(app, mid)
    if action == "update":
        return 200, state.update(app, mid, body, nonce)
    if action == "start":
        return 200, state.start(app, mid, nonce)
    if action == "stop":
        return 200, state.stop(app, mid, body, nonce)
    if action == "suspend":
        return 200, state.suspend(app, mid, nonce)
    if action == "wait":
        return 200, state.wait(app, mid, args.getlist("state"), args.get("timeout"),
                               args.get("instance_id") or args.get("version"))
    if action == "destroy":
        force = any(args.get(name, "").lower() in ("1", "true") for name in ("force", "kill"))
        return 200, state.destroy(app, mid, force, nonce)
    if action in ("lease_acquire", "lease_refresh"):
        return state.lease_acquire(app, mid, body, args.get("ttl"), nonce, owner)
    if action == "lease_get":
        return 200, state.lease_get(app, mid)
    if action == "lease_release":
        return 200, state.lease_release(app, mid, nonce)
    if action == "exec":
        return 200, state.exec(app, mid, body)
    if action == "events":
        return 200, state.events(app, mid)
    if action == "metadata_get":
        return 200, state.metadata_get(app, mid)
    if action == "metadata_set":
        state.metadata_set(app, mid, key or "", body, nonce)
        return 204, None
    if action == "metadata_delete":
        state.metadata_delete(app, mid, key or "", nonce)
        return 204, None
    if action == "volume_list":
        return 200, state.volume_list(app)
    if action == "volume_create":
        return 200, state.volume_create(app, body)
    if action == "volume_get":
        return 200, state.volume_get(app, mid)
    if action == "volume_destroy":
        return 200, state.volume_destroy(app, mid)
    raise StubError(404, f"no route for {action}")


def _authenticate(header: str, token: str | None) -> str:
    scheme, _, credential = header.partition(" ")
    if scheme not in ("Bearer", "FlyV1") or not credential.strip():
        raise StubError(401, "unauthorized: send Authorization: Bearer <token> or FlyV1 <macaroon>")
    if token is not None and credential != token and header != token:
        raise StubError(401, "unauthorized: the token is not valid for this organization")
    return credential


def _owner(credential: str) -> str:
    """Leases name their holder; Fly uses the token's user, we use a digest of the token."""
    return "user-" + hashlib.sha256(credential.encode()).hexdigest()[:8] + "@stubs.fly"


def _scheme(header: str) -> str:
    return header.split(" ", 1)[0] if header else ""


def _json(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json", headers=headers or {})


def _admin(app: Flask, state: FlyState, control: StubControl) -> None:
    """``/_stub`` controls for out-of-process callers (the same as :class:`StubFly`'s methods)."""

    def calls() -> Response:
        if request.method == "DELETE":
            control.clear_calls()
            return _json({"ok": True}, 200)
        return _json({"calls": control.calls(request.args.get("action"), request.args.get("machine_id"),
                                             int(request.args.get("since", 0) or 0))}, 200)

    def machines() -> Response:
        everything = request.args.get("include_destroyed", "true").lower() in ("1", "true")
        return _json({"machines": state.snapshot(everything), "live": state.live_count()}, 200)

    def faults() -> Response:
        if request.method == "DELETE":
            control.clear_faults()
            state.release_held()
            return _json({"ok": True}, 200)
        data = request.get_json(silent=True) or {}
        try:
            control.add_fault(Fault(
                status=int(data["status"]) if data.get("status") is not None else None,
                action=data.get("action"), machine_id=data.get("machine_id"), remaining=int(data.get("count", 1)),
                when=str(data.get("when", "before")), message=data.get("message"), code=data.get("code"),
                retry_after=float(data["retry_after"]) if data.get("retry_after") is not None else None,
                delay=float(data.get("delay", 0.0)),
            ))
        except (TypeError, ValueError) as exc:
            return _json({"error": f"bad fault: {exc}"}, 400)
        return _json({"ok": True}, 200)

    def hold() -> Response:
        state.hold_in_created(int((request.get_json(silent=True) or {}).get("count", 1)))
        return _json({"ok": True}, 200)

    def release() -> Response:
        state.release_held()
        return _json({"ok": True}, 200)

    def volumes_view() -> Response:
        return _json({"volumes": state.volume_snapshot(), "live": state.live_volumes()}, 200)

    def cold_resume() -> Response:
        data = request.get_json(silent=True) or {}
        try:
            state.cold_resume(float(data.get("probability", 1.0)),
                              int(data["seed"]) if data.get("seed") is not None else None)
        except (TypeError, ValueError) as exc:
            return _json({"error": f"bad cold_resume: {exc}"}, 400)
        return _json({"ok": True}, 200)

    def host() -> Response:
        data = request.get_json(silent=True) or {}
        try:
            state.set_host_reachable(str(data["machine_id"]), bool(data.get("reachable", False)))
        except KeyError:
            return _json({"error": "machine_id names no machine"}, 400)
        return _json({"ok": True}, 200)

    def rate_limits() -> Response:
        control.set_rate_limits(bool((request.get_json(silent=True) or {}).get("enabled", True)))
        return _json({"ok": True}, 200)

    app.add_url_rule("/_stub/calls", "stub_calls", calls, methods=["GET", "DELETE"])
    app.add_url_rule("/_stub/machines", "stub_machines", machines, methods=["GET"])
    app.add_url_rule("/_stub/faults", "stub_faults", faults, methods=["POST", "DELETE"])
    app.add_url_rule("/_stub/hold", "stub_hold", hold, methods=["POST"])
    app.add_url_rule("/_stub/release", "stub_release", release, methods=["POST"])
    app.add_url_rule("/_stub/rate_limits", "stub_rate_limits", rate_limits, methods=["POST"])
    app.add_url_rule("/_stub/volumes", "stub_volumes", volumes_view, methods=["GET"])
    app.add_url_rule("/_stub/cold_resume", "stub_cold_resume", cold_resume, methods=["POST"])
    app.add_url_rule("/_stub/host", "stub_host", host, methods=["POST"])
