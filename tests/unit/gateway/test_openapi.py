"""The OpenAPI document and the Swagger UI: every route is documented with its response
schema (no handler answers ``Any``), its errors in the API's one shape, and the
multipart uploads with their form."""

from __future__ import annotations

from typing import Any

from litestar.handlers import HTTPRouteHandler

from calib_gateway.app import create_app
from tests.unit.gateway.harness import API, Api

METHODS = ("get", "put", "post", "delete", "patch")


def operations(document: dict) -> list[tuple[str, str, dict]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


async def test_every_operation_documents_its_success_with_a_schema(api: Api):
    document = await api.ok("GET", "/api/openapi.json")
    assert document["openapi"].startswith("3.") and len(operations(document)) >= 30
    for method, path, operation in operations(document):
        success = {k: v for k, v in operation["responses"].items() if k.startswith("2")}
        [(status, response)] = success.items()
        if status == "204":
            assert "content" not in response, (method, path)
            continue
        [(media_type, content)] = response["content"].items()
        assert content["schema"] not in ({}, None), (method, path, media_type)


async def test_every_operation_documents_its_errors_in_the_one_shape(api: Api):
    document = await api.ok("GET", "/api/openapi.json")
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "detail"]
    for method, path, operation in operations(document):
        for status in ("400", "401", "403", "404", "409", "413", "422", "503"):
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


async def test_files_and_streams_are_documented_with_their_media_types(api: Api):
    paths = (await api.ok("GET", "/api/openapi.json"))["paths"]

    def content(path: str) -> dict[str, Any]:
        return paths[path]["get"]["responses"]["200"]["content"]

    assert set(content(f"{API}/frames/{{frame_id}}/download")) == {"application/fits"}
    assert set(content(f"{API}/frames/{{frame_id}}/calibrated")) == {"application/fits"}
    assert set(content(f"{API}/frames/{{frame_id}}/preview.png")) == {"image/png"}
    assert set(content(f"{API}/events/{{observatory_id}}")) == {"text/event-stream"}
    for upload in (f"{API}/frames", f"{API}/masters/upload"):
        body = paths[upload]["post"]["requestBody"]["content"]["multipart/form-data"]
        assert body["schema"]["required"] == ["file"]
        assert body["schema"]["properties"]["file"]["format"] == "binary"


def test_no_handler_answers_any(api: Api):
    app = create_app(api.gateway)
    handlers = [
        handler
        for route in app.routes
        for handler in getattr(route, "route_handlers", [])
        if isinstance(handler, HTTPRouteHandler)
    ]
    assert len(handlers) >= 30
    for handler in handlers:
        annotation = handler.parsed_fn_signature.return_type.annotation
        assert annotation is not Any, handler.handler_name


async def test_the_document_and_swagger_ui_are_served(api: Api):
    document = await api.ok("GET", "/api/openapi.json")
    error = document["paths"][f"{API}/library/{{observatory_id}}"]["get"]["responses"]["404"]
    assert error["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert document["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    docs = await api.get("/api/docs", role="no_token")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
