"""The OpenAPI document comes from the route table that registers the routes: every registered route is
in it, and it is structurally an OpenAPI 3 document."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aiohttp import web

from imsconf.web.app import ROUTES, build_app
from imsconf.web.auth import Tokens
from imsconf.web.deps import WebDeps
from imsconf.web.openapi import OPENAPI, document_path
from imsconf.web.routes import Access
from web_harness import ServedApi, with_deps

_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _document(tmp_path: Path) -> tuple[web.Application, dict[str, Any]]:
    app = build_app(WebDeps(Tokens("o" * 43, "v" * 43)))
    return app, app[OPENAPI]


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_registered_route_is_documented(tmp_path: Path) -> None:
    app, doc = _document(tmp_path)
    registered = {(r.method.lower(), r.resource.canonical) for r in app.router.routes() if r.resource}
    documented = {(m, p) for p, item in doc["paths"].items() for m in item}
    assert registered == documented
    assert len(registered) == len(ROUTES) + sum(len(r.aliases) for r in ROUTES)
    assert ("get", "/api/v1/bookings/{id}") in documented and ("get", "/bookings/{id}") in documented
    assert doc["paths"]["/bookings"]["get"]["deprecated"] is True


def test_document_structure(tmp_path: Path) -> None:
    _, doc = _document(tmp_path)
    assert re.fullmatch(r"3\.\d+\.\d+", doc["openapi"])
    assert doc["info"]["title"] and doc["info"]["version"]
    schemas = doc["components"]["schemas"]
    operation_ids = []
    for path, item in doc["paths"].items():
        assert path.startswith("/") and ":" not in path
        placeholders = set(re.findall(r"\{([^}]+)\}", path))
        for method, op in item.items():
            assert method in _METHODS
            operation_ids.append(op["operationId"])
            assert op["summary"] and op["responses"]
            for status, answer in op["responses"].items():
                assert re.fullmatch(r"[1-5]\d\d", status) and answer["description"]
            params = op.get("parameters", [])
            assert {p["name"] for p in params if p["in"] == "path"} == placeholders
            assert all(p["in"] in ("path", "query") and "schema" in p for p in params)
            assert all(p["required"] for p in params if p["in"] == "path")
            if op["security"]:
                assert op["security"] == [{"bearer": []}] and "401" in op["responses"]
            if op["x-roles"] == ["operator"]:
                assert "403" in op["responses"]
    assert len(operation_ids) == len(set(operation_ids))
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}


def test_roles_follow_the_table() -> None:
    writes = {r.name for r in ROUTES if r.access is Access.WRITE}
    assert {"create_booking", "cancel_booking", "end_conference", "participant_mute"} <= writes
    public = {r.name for r in ROUTES if r.access is Access.PUBLIC}
    assert public == {"health_live", "health_ready", "console_index", "console_file", "openapi"}


def test_served_without_a_token(tmp_path: Path) -> None:
    api = ServedApi(tmp_path, with_deps())
    try:
        status, doc, resp = api.request("GET", "/api/v1/openapi.json", token=None)
        assert status == 200 and resp.getheader("Content-Type") == "application/json"
        assert "/api/v1/conferences/{id}/participants/{pid}/mute" in doc["paths"]
    finally:
        api.close()


def test_document_path() -> None:
    assert document_path("/api/v1/bookings/{id:[a-z0-9]{8,64}}") == "/api/v1/bookings/{id}"
    assert document_path("/a/{id:[A-Za-z0-9._~-]{1,128}}/b/{pid:x}") == "/a/{id}/b/{pid}"
    assert document_path("/plain") == "/plain"
