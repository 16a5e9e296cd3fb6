"""Fuzzing a live control plane: no 5xx, ever, and every answer in the shape it promises.

Two parts:

* schemathesis, driven by the server's own ``/openapi.json``, in two passes: anonymous
  (random ids and credentials: every route's validation and auth paths), and against one
  real session with its key (the deep paths: chat turns, the machine's file API,
  transcripts). Bounded by example counts per operation, plus the file's pytest timeout
  as the overall deadline; loopback only (the server and the stand-in model both listen
  on 127.0.0.1).
* a plain loop of several hundred hand-made malformed requests across all routes: broken and deeply
  nested JSON, wrong types, oversized bodies, hostile paths, wrong methods and headers.

Launching is the one expensive operation (a machine each, seconds on small hosts), so the
fuzz never launches: a launch body that could succeed is rewritten to name a config that
does not exist before it is sent (see ``_never_launch``). Launch's validation is still
fuzzed in full; its success path is exercised once by the fixture's own launch, whose
answer is checked against the document too, and by the e2e tests.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err, Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from control.config_schema import SLUG
from stubs.anthropic import StubAnthropic
from tests.support import ControlPlane

pytestmark = pytest.mark.timeout(900)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
ABSENT_CONFIG = "fuzz-absent-config"
KEY = "sk-ant-fuzz-" + "k" * 24
EXAMPLES = 20
FEW = 6  # operations that start a real turn or stream a workspace


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory, model: StubAnthropic) -> Iterator[ControlPlane]:
    cp = ControlPlane(tmp_path_factory.mktemp("fuzz"), {
        "ANTHROPIC_BASE_URL": model.url, "API_HOST": "127.0.0.1", "WARM_POOL_SIZE": "0", "AUTH_MODE": "none",
    }).start()
    assert cp.url.startswith("http://127.0.0.1:")
    yield cp
    cp.stop()


@pytest.fixture(scope="module")
def document(plane: ControlPlane) -> dict[str, Any]:
    resp = requests.get(f"{plane.url}/openapi.json", timeout=30)
    assert resp.status_code == 200
    return resp.json()


@pytest.fixture(scope="module")
def session(plane: ControlPlane, document: dict[str, Any]) -> dict[str, str]:
    """One real session: the launch success path, checked against the document once."""
    resp = requests.post(f"{plane.url}/api/agents/launch", json={"api_key": KEY, "config_id": "code-assistant"},
                         timeout=180)
    assert resp.status_code == 201, resp.text
    schema = schemathesis.openapi.from_dict(document)
    case = schema["/api/agents/launch"]["POST"].Case(body={"api_key": KEY, "config_id": "code-assistant"})
    case.validate_response(resp, checks=CHECKS)
    return {"id": resp.json()["session_id"], "key": KEY}


def _operations(document: dict[str, Any]) -> list[Any]:
    loaded = schemathesis.openapi.from_dict(document)
    results = list(loaded.get_all_operations())
    assert not [r.err() for r in results if isinstance(r, Err)]
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert operations
    return operations


def _never_launch(case: Any) -> None:
    """Keep launch's validation under fuzz without starting machines: a body that names a
    config that could exist, or carries an inline config, is pointed at one that cannot."""
    if case.operation.path != "/api/agents/launch" or not isinstance(case.body, dict):
        return
    config_id = case.body.get("config_id")
    if isinstance(config_id, str) and SLUG.match(config_id):
        case.body["config_id"] = ABSENT_CONFIG
    if isinstance(case.body.get("config"), dict):
        case.body["config"] = {**case.body["config"], "id": "!"}  # never a valid slug


def _fuzz(operation: Any, examples: int, call: Callable[[Any], requests.Response],
          path_parameters: dict[str, str] | None = None) -> list[str]:
    """Positive then negative cases for one operation; returns the failures, not the first."""
    failures: list[str] = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        try:
            strategy = operation.as_strategy(mode, path_parameters=path_parameters)
        except Exception as exc:  # noqa: BLE001 - e.g. no negative variant exists for this operation
            if mode is GenerationMode.NEGATIVE:
                continue
            failures.append(f"{operation.label}: cannot generate cases: {exc}")
            continue
        _fuzz_mode(operation, mode, strategy, examples, call, failures)
    return failures


def _fuzz_mode(operation: Any, mode: GenerationMode, strategy: Any, examples: int,
               call: Callable[[Any], requests.Response], failures: list[str]) -> None:
    """Run one mode's cases, adding each distinct failure to ``failures``."""

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        try:
            case.validate_response(call(case), checks=CHECKS)
        except Exception as exc:  # a FailureGroup of schemathesis findings, or the server gone
            failure = f"{operation.label} [{mode.value}]: {type(exc).__name__}: {str(exc)[:1500]}"
            if failure not in failures:  # Hypothesis replays a failing case once
                failures.append(failure)
            raise

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            failures.append(f"{operation.label}: no valid case can be generated from the document")
        # else: nothing in this operation can be made invalid (e.g. no parameters, no body)
    except Exception:  # noqa: BLE001 - recorded above; go on with the other operations
        pass


def test_fuzz_anonymous(plane: ControlPlane, document: dict[str, Any]) -> None:
    """Every operation with random ids and credentials: validation and auth paths."""
    http = requests.Session()

    def call(case: Any) -> requests.Response:
        _never_launch(case)
        return case.call(base_url=plane.url, session=http, timeout=300)

    failures = [f for op in _operations(document) for f in _fuzz(op, EXAMPLES, call)]
    assert not failures, "\n\n".join(failures)


def test_fuzz_with_a_real_session(plane: ControlPlane, document: dict[str, Any], session: dict[str, str]) -> None:
    """Every operation again, now with a live session's id and key: the deep paths (real
    turns, the machine's file API, transcripts, and configs saved under the key as owner)."""
    http = requests.Session()
    auth = {"Authorization": f"Bearer {session['key']}"}

    def call(case: Any) -> requests.Response:
        if isinstance(case.query, dict):
            case.query.pop("follow", None)  # an SSE follow never ends, by design
        return case.call(base_url=plane.url, session=http, headers=auth, timeout=300)

    failures = []
    for op in _operations(document):
        if op.path in ("/api/agents/launch", "/api/agents/{session_id}/ws"):
            continue  # launches are the anonymous pass's; the WebSocket is not plain HTTP
        if op.method.upper() == "DELETE" and op.path == "/api/agents/sessions/{session_id}":
            continue  # deleting the session would end the pass; the anonymous pass covers it
        examples = FEW if op.path.endswith(("/chat", "/download")) else EXAMPLES
        fixed = {"session_id": session["id"]} if "{session_id}" in op.path else None
        failures += _fuzz(op, examples, call, path_parameters=fixed)
    assert not failures, "\n\n".join(failures)


# The plain loop --------------------------------------------------------------------------
def _malformed(document: dict[str, Any], session: dict[str, str]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, url path, requests kwargs) for every route, plus route-independent abuse."""
    bodies: list[tuple[bytes, str]] = [
        (b"{not json", "application/json"),
        (b"[" * 100_000, "application/json"),  # nesting deep enough to blow Python's recursion limit
        (b'{"a":' * 50_000, "application/json"),
        (b"\xff\xfe\x00\x01", "application/json"),
        (b"null", "application/json"),
        (b"[]", "application/json"),
        (b'"just a string"', "application/json"),
        (b"1e999999", "application/json"),
        (json.dumps({"message": 12, "api_key": [], "config_id": {}, "decision": None}).encode(), "application/json"),
        (json.dumps({"message": "x" * 300_000}).encode(), "application/json"),
        (b"x" * (3 * 1024 * 1024), "application/json"),  # past the 2 MB JSON limit
        (b"message=hi", "application/x-www-form-urlencoded"),
        (b"--x\r\nContent-Disposition: form-data; name=\"files\"\r\n\r\nno end", "multipart/form-data; boundary=x"),
        (b"{}", "text/plain"),
    ]
    headers_variants: list[dict[str, str]] = [
        {"Authorization": "Bearer "},
        {"Authorization": "Basic " + "A" * 200},
        {"Authorization": "Bearer " + "z" * 3000},
        {"Last-Event-ID": "-1"},
        {"Last-Event-ID": "9" * 40},
        {"X-Request-Id": "\u00e9\u00e9"},
    ]
    ids = [str(uuid.uuid4()), "..", "%2e%2e", "a" * 1500, "%00", "\u00fc\u00f1\u00ee", session["id"]]
    for path, item in document["paths"].items():
        for method in ("get", "post", "delete"):
            if method not in item:
                continue
            if method == "delete" and path == "/api/agents/sessions/{session_id}":
                continue  # keep the real session for the rest of the loop
            for sid in ids:
                url = (path.replace("{session_id}", sid).replace("{config_id}", sid[:80])
                       .replace("{request_id}", "r" * 20).replace("{path}", "../../etc/passwd"))
                auth = {"Authorization": f"Bearer {session['key']}"} if sid == session["id"] else {}
                if method == "post":
                    body, ctype = bodies[len(url) % len(bodies)]
                    if "/chat" in path and sid == session["id"]:
                        body, ctype = b'{"message": ""}', "application/json"  # never a real turn here
                    yield method.upper(), url, {"data": body, "headers": {**auth, "Content-Type": ctype}}
                else:
                    yield method.upper(), url + "?after=-1&limit=abc&depth=99999&format=xml&raw=maybe&group_by=x", \
                        {"headers": auth}
            if method == "post":  # every malformed body at the real thing (no body here is a valid chat)
                url = path.replace("{session_id}", session["id"]).replace("{config_id}", "code-assistant") \
                    .replace("{request_id}", "r1").replace("{path}", "nope.txt")
                for body, ctype in bodies:
                    yield "POST", url, {"data": body, "headers": {"Authorization": f"Bearer {session['key']}",
                                                                  "Content-Type": ctype}}
            for extra in headers_variants:
                url = path.replace("{session_id}", session["id"]).replace("{config_id}", "code-assistant") \
                    .replace("{request_id}", "r1").replace("{path}", "nope.txt")
                if method == "delete" or "/chat" in path or url.endswith("/ws"):
                    continue
                yield method.upper(), url, {"headers": extra, "data": b"{" if method == "post" else None}
        # Methods the route does not have.
        for method in ("PUT", "PATCH"):
            yield method, path.replace("{session_id}", "x").replace("{config_id}", "x") \
                .replace("{request_id}", "x").replace("{path}", "x"), {}
    for raw in ("/api/agents/sessions/%ZZ", "/api//agents", "/%2e%2e/%2e%2e/etc/passwd", "/api/files/x/%00",
                "/nope", "/api/agents/" + "s/" * 500, "/ui/../control/app.py", "/ui/%2e%2e/pyproject.toml"):
        yield "GET", raw, {}


def _is_error_body(resp: requests.Response, path: str) -> bool:
    try:
        body = resp.json()
    except ValueError:
        return False
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return False
    if path.startswith("/relay/") and body.get("type") == "error":  # the relay view speaks Anthropic's shape
        return {"type", "message"} <= set(error)
    return {"code", "message", "details"} <= set(error)


def test_malformed_requests_never_get_a_5xx(plane: ControlPlane, document: dict[str, Any],
                                             session: dict[str, str]) -> None:
    http = requests.Session()
    cases = list(_malformed(document, session))
    assert len(cases) >= 300, len(cases)
    assert any(path.endswith("/chat") and session["id"] in path for _, path, _ in cases)
    failures = []
    for method, path, kwargs in cases:
        # Prepared by hand so the path reaches the server byte for byte (no normalisation).
        request = requests.Request(method, f"{plane.url}{path}", **kwargs).prepare()
        request.url = f"{plane.url}{path}"
        resp = http.send(request, timeout=120)
        if resp.status_code >= 500 or (resp.status_code >= 400 and not _is_error_body(resp, path)):
            failures.append(f"{method} {path[:120]} -> {resp.status_code} {resp.text[:160]!r}")
    log = plane.log()
    assert not failures, "\n".join(failures)
    assert KEY not in log  # the server log never holds the key, however it was sent
