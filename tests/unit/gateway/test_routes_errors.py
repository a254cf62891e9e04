"""Every error in one shape, ``{"error", "detail"}`` (SPEC §8), over the fakes: the
status codes the API gives, query parameters shaped like MongoDB operators refused,
a dependency that fails answered with a 503 naming it, a bug with a logged 500."""

from __future__ import annotations

import pytest
from minio.error import S3Error
from pymongo.errors import ServerSelectionTimeoutError

from tests.unit.app.library_world import stored
from tests.unit.core import factories as make
from tests.unit.gateway.harness import ADMIN, API, OWN


@pytest.mark.parametrize(
    ("method", "path", "role", "kwargs", "status", "error"),
    [
        (
            "GET",
            f"{API}/library/{OWN}",
            "server_admin",
            {"params": {"page": 0}},
            400,
            "bad_request",
        ),
        ("GET", f"{API}/library/{OWN}", "no_token", {}, 401, "unauthorized"),
        ("GET", f"{API}/library/{OWN}", "forged", {}, 401, "unauthorized"),
        ("GET", f"{API}/library/{OWN}", "plugin", {}, 403, "forbidden"),
        ("GET", f"{API}/library/nowhere", "server_admin", {}, 404, "not_found"),
        ("GET", "/api/v1/nothing-here", "server_admin", {}, 404, "not_found"),
        ("DELETE", f"{API}/library/{OWN}", "server_admin", {}, 405, "method_not_allowed"),
        (
            "POST",
            f"{ADMIN}/observatories",
            "server_admin",
            {"json": {"id": OWN, "name": "again"}},
            409,
            "conflict",
        ),
        (
            "PUT",
            f"{API}/settings/{OWN}",
            "server_admin",
            {"json": {"camera_type": "DSLR"}},
            422,
            "invalid_setting",
        ),
    ],
)
async def test_each_status_in_the_one_error_shape(api, method, path, role, kwargs, status, error):
    response = await api.call(method, path, role=role, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and isinstance(body["detail"], str) and body["detail"]
    assert set(body) <= {"error", "detail", "field", "dependency"}


@pytest.mark.parametrize("name", ["camera_name[$ne]", "$where", "filter[$gt]"])
async def test_query_parameters_shaped_like_operators_are_refused(api, name):
    response = await api.get(f"{API}/library/{OWN}", params={name: "x"})
    assert response.status_code == 400
    assert response.json()["detail"] == f"query parameter '{name}' is not allowed"


async def test_an_operator_as_a_value_is_only_a_literal(api):
    observatory_id = await api.observatory()
    for literal in ('{"$gt": ""}', '{"$ne": null}'):
        listed = await api.ok(
            "GET", f"{API}/library/{observatory_id}", params={"camera_name": literal}
        )
        assert listed["total"] == 0


async def test_a_dependency_that_fails_is_a_503_naming_it(api, monkeypatch):
    async def mongodb_down(*args, **kwargs):
        raise ServerSelectionTimeoutError("no servers")

    async def s3_down(*args, **kwargs):
        raise S3Error(None, "InternalError", "down", "r", "h", "req")

    monkeypatch.setattr(api.world.frames, "library_page", mongodb_down)
    response = await api.get(f"{API}/library/{OWN}")
    assert response.status_code == 503
    assert response.json() == {
        "error": "unavailable",
        "detail": "mongodb is unavailable: ServerSelectionTimeoutError",
        "dependency": "mongodb",
    }
    monkeypatch.undo()

    observatory_id = await api.observatory()
    dark = await stored(api.world, make.frame(observatory_id=observatory_id))
    monkeypatch.setattr(api.world.store, "stat", s3_down)
    response = await api.get(f"{API}/frames/{dark.id}/download")
    assert response.status_code == 503
    assert response.json() == {
        "error": "unavailable",
        "detail": "s3 is unavailable: S3Error",
        "dependency": "s3",
    }


async def test_a_bug_is_a_logged_500_without_its_details(api, monkeypatch):
    async def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(api.world.rejections, "list", broken)
    response = await api.get(f"{API}/rejections/{OWN}")
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "detail": "internal error"}
    [logged] = api.world.log.find("unhandled error", level="exception")
    assert logged.fields == {"path": f"{API}/rejections/{OWN}", "error": "secret internals"}
    assert isinstance(logged.exception, RuntimeError)


async def test_rejections_of_an_unknown_observatory_are_for_a_server_admin(api):
    assert (await api.get(f"{API}/rejections/nowhere")).status_code == 404
    assert (await api.get(f"{API}/rejections/nowhere", role="obs_admin")).status_code == 403
    assert (await api.ok("GET", f"{API}/rejections/{OWN}", role="obs_admin")) == {"items": []}
