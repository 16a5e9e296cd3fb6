"""The OpenAPI document: complete for every route, valid OpenAPI 3.0, built from the same
marshmallow schemas the routes validate with, and honest about auth in both modes. Also
the /docs page, which must work under the dashboard's strict CSP."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask

from control import __version__, logs, metrics, openapi
from control.app import create_app
from control.blueprints.docs import docs_bp
from control.config_schema import AgentConfigSchema
from control.schemas import ChatSchema, LaunchSchema, PermissionAnswerSchema
from control.session_status import SessionStatus
from control.settings import from_env

METHODS = ("get", "post", "put", "patch", "delete")


def build_app(tmp_path: Path, **env: str) -> Flask:
    app = create_app(from_env({"DATABASE_PATH": str(tmp_path / "agcluster.db"), **env}))
    # Idempotent: harmless once the app factory wires these itself.
    metrics.install(app)
    logs.install(app)
    if "docs" not in app.blueprints:
        app.register_blueprint(docs_bp)
    return app


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return build_app(tmp_path_factory.mktemp("openapi"))


@pytest.fixture(scope="module")
def doc(app: Flask) -> dict[str, Any]:
    with app.test_request_context():
        return openapi.openapi_document()


@pytest.fixture(scope="module")
def token_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return openapi.openapi_document(build_app(tmp_path_factory.mktemp("openapi-token"), AUTH_MODE="token"))


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, item[method]) for path, item in doc["paths"].items() for method in METHODS if method in item]


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_the_document_is_valid_openapi_in_both_auth_modes(doc: dict[str, Any], token_doc: dict[str, Any]) -> None:
    for document in (doc, token_doc):
        assert document["openapi"].startswith("3.0")
        schemathesis.openapi.from_dict(document).validate()  # raises on any meta-schema violation


def test_every_route_of_the_app_is_in_the_document(app: Flask, doc: dict[str, Any]) -> None:
    documented = {(path, method.upper()) for path, method, _ in operations(doc)}
    missing = []
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            if (path, method) not in documented:
                missing.append(f"{method} {path}")
    assert not missing, missing


def test_operation_ids_are_unique_and_stable(doc: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))
    assert doc["paths"]["/api/agents/launch"]["post"]["operationId"] == "post_agents_launch"


def test_every_route_is_described_not_just_discovered(app: Flask) -> None:
    """A new route must say what it takes and returns: ``@describe(...)`` next to its view."""
    undescribed = sorted(rule.endpoint for rule in app.url_map.iter_rules()
                         if openapi.described(app, rule.endpoint) is None)
    assert not undescribed, f"describe these views with control.openapi.describe: {undescribed}"


def test_session_states_and_the_version_come_from_their_one_definition(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    states = [str(s) for s in SessionStatus]
    assert schemas["Session"]["properties"]["status"]["enum"] == states and "deleting" in states
    assert schemas["LaunchResult"]["properties"]["status"]["enum"] == states
    assert "busy" in schemas["Session"]["required"]
    assert doc["info"]["version"] == __version__


def test_request_bodies_are_the_route_schemas(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert set(schemas["Launch"]["properties"]) == set(LaunchSchema().fields)
    assert set(schemas["Chat"]["properties"]) == set(ChatSchema().fields)
    assert schemas["Chat"]["required"] == ["message"]
    config = schemas["AgentConfig"]
    assert set(config["properties"]) == {f.data_key or name for name, f in AgentConfigSchema().fields.items()}
    assert config["additionalProperties"] is False  # unknown=RAISE in the schema
    assert {"required": ["config_id"]} in schemas["Launch"]["oneOf"]  # the exactly-one rule
    body = doc["paths"]["/api/agents/launch"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Launch"}
    chat = doc["paths"]["/api/agents/{session_id}/chat"]["post"]["requestBody"]["content"]["application/json"]
    assert chat["schema"] == {"$ref": "#/components/schemas/Chat"}
    save = doc["paths"]["/api/configs/"]["post"]["requestBody"]["content"]["application/json"]
    assert save["schema"] == {"$ref": "#/components/schemas/AgentConfig"}
    assert set(schemas["PermissionAnswer"]["properties"]) == set(PermissionAnswerSchema().fields)
    assert schemas["PermissionAnswer"]["properties"]["decision"]["enum"] == ["allow", "allow_session", "deny"]


def test_dict_lengths_become_property_counts(doc: dict[str, Any]) -> None:
    env = doc["components"]["schemas"]["AgentConfig"]["properties"]["env"]
    assert "maxLength" not in env
    if "maxProperties" in env:
        assert isinstance(env["maxProperties"], int)


def test_path_parameters_come_from_the_url_map(doc: dict[str, Any]) -> None:
    params = {p["name"]: p for p in doc["paths"]["/api/files/{session_id}/{path}"]["parameters"]}
    assert params["session_id"]["required"] and params["session_id"]["schema"]["pattern"] == "^[^/]+$"
    assert "pattern" not in params["path"]["schema"]  # a path converter takes slashes
    perm = doc["paths"]["/api/agents/{session_id}/permissions/{request_id}"]["parameters"]
    assert [p["name"] for p in perm] == ["session_id", "request_id"]


def test_every_operation_answers_errors_in_the_shared_shape(doc: dict[str, Any]) -> None:
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    detail = resolve(doc, error["properties"]["error"])
    assert set(detail["required"]) == {"code", "message", "details"}
    for path, method, op in operations(doc):
        default = op["responses"]["default"]["$ref"]
        expected = "Error"
        assert default == f"#/components/responses/{expected}", (method, path)


def test_streams_are_documented_as_event_streams(doc: dict[str, Any]) -> None:
    chat = doc["paths"]["/api/agents/{session_id}/chat"]["post"]["responses"]["200"]["content"]
    assert set(chat) == {"application/json", "text/event-stream"}
    events = doc["paths"]["/api/agents/sessions/{session_id}/events"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]
    assert {p["name"] for p in events["parameters"]} >= {"after", "limit", "Last-Event-ID"}


def test_auth_in_none_mode_is_the_launch_key(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert schemes["launchKey"] == {"type": "http", "scheme": "bearer",
                                    "description": schemes["launchKey"]["description"]}
    assert "agclusterToken" not in schemes
    assert doc["paths"]["/api/agents/sessions/{session_id}"]["get"]["security"] == [{"launchKey": []}]
    assert doc["paths"]["/api/agents/launch"]["post"]["security"] == []  # the key is in the body
    assert doc["paths"]["/health"]["get"]["security"] == []
    # The model relay is for machines, on listeners of their own: never part of the public API.
    assert not [path for path in doc["paths"] if path.startswith("/relay")]


def test_auth_in_token_mode_is_an_agcluster_token(token_doc: dict[str, Any]) -> None:
    schemes = token_doc["components"]["securitySchemes"]
    assert schemes["anthropicKey"]["name"] == "X-Anthropic-Api-Key"
    assert "launchKey" not in schemes
    session = token_doc["paths"]["/api/agents/sessions/{session_id}"]["get"]["security"]
    assert {"agclusterToken": []} in session
    assert token_doc["paths"]["/api/agents/sessions"]["get"]["security"] == [{"agclusterToken": []}]
    assert token_doc["paths"]["/openapi.json"]["get"]["security"] == []
    assert "X-Anthropic-Api-Key" in token_doc["info"]["description"]


def test_documents_are_built_per_app(app: Flask, token_doc: dict[str, Any], doc: dict[str, Any]) -> None:
    assert openapi.openapi_document(app) is doc  # cached on the app
    assert token_doc is not doc


def test_openapi_json_route_serves_the_document(app: Flask, doc: dict[str, Any]) -> None:
    resp = app.test_client().get("/openapi.json")
    assert resp.status_code == 200 and resp.get_json() == doc


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []
        self.styles: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            self.scripts.append(attributes)
            self._in_script = True
        if tag == "link" and attributes.get("rel") == "stylesheet":
            self.styles.append(attributes.get("href") or "")
        if tag == "style" or "style" in attributes or any(name.startswith("on") for name in attributes):
            self.inline.append(tag)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("script body")


def test_docs_page_runs_under_the_strict_csp(app: Flask) -> None:
    client = app.test_client()
    resp = client.get("/docs")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    page = _Page()
    page.feed(resp.get_data(as_text=True))
    assert not page.inline, page.inline
    assert [s.get("type") for s in page.scripts] == ["module"]
    for url in [s["src"] for s in page.scripts] + page.styles:
        assert url and url.startswith("/ui/docs/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.mimetype in ("text/javascript", "application/javascript", "text/css"), (url, asset.mimetype)
    script = client.get(page.scripts[0]["src"] or "").get_data(as_text=True)
    assert "/openapi.json" in script
    assert not re.search(r"\.innerHTML\b|\.outerHTML\b|insertAdjacentHTML|document\.write|\beval\(", script)
