"""The application as a whole: liveness, the OpenAPI document against the real routes, and JSON
answers for unknown paths and methods."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from starlette.applications import Starlette
from starlette.routing import Route

from sim.run.embedded import EmbeddedTarget
from target.api.app import create_app
from target.settings import Settings
from tests.target.conftest import SharedTarget
from tests.target.helpers import TIMEOUT_S

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


@pytest.fixture(scope="module")
def target(shared_target: SharedTarget) -> EmbeddedTarget:
    return shared_target("ES256")


@pytest.fixture(scope="module")
def app() -> Iterator[Starlette]:
    """The real app, built in-process only to read its route table."""
    app = create_app(Settings(db=":memory:", alg="HS256"))
    yield app
    app.state.target.close()


def _routes(app: Starlette) -> set[tuple[str, str]]:
    """(path, method) for every route; Starlette adds HEAD to each GET route by itself."""
    found = set()
    for route in app.routes:
        assert isinstance(route, Route), route
        assert route.methods is not None
        for method in route.methods - {"HEAD"}:
            found.add((route.path, method.lower()))
    return found


def test_healthz(target: EmbeddedTarget) -> None:
    response = requests.get(f"{target.url}/healthz", timeout=TIMEOUT_S)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "server" not in response.headers  # no server banner


def test_openapi_documents_every_route_and_nothing_else(
    target: EmbeddedTarget, app: Starlette
) -> None:
    response = requests.get(f"{target.url}/openapi.json", timeout=TIMEOUT_S)
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    documented = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert documented == _routes(app)


def test_openapi_operations_name_their_security_and_responses(target: EmbeddedTarget) -> None:
    document = requests.get(f"{target.url}/openapi.json", timeout=TIMEOUT_S).json()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            assert operation["responses"], (path, method)
            if path.startswith("/admin/"):
                assert operation["security"] == [{"adminKey": []}], (path, method)
                assert "401" in operation["responses"]
            if path.startswith(("/devices/", "/api/")):
                assert operation["security"] == [{"bearer": []}], (path, method)
                assert "401" in operation["responses"]


def test_unknown_path_is_a_json_404(target: EmbeddedTarget) -> None:
    response = requests.get(f"{target.url}/no/such/path", timeout=TIMEOUT_S)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/admin/devices", {"POST"}),
        ("PUT", "/admin/devices/x", {"GET", "DELETE"}),
        ("GET", "/admin/keys/rotate", {"POST"}),
        ("DELETE", "/healthz", {"GET"}),
        ("POST", "/.well-known/jwks.json", {"GET"}),
    ],
)
def test_wrong_method_is_a_json_405_listing_the_allowed(
    target: EmbeddedTarget, method: str, path: str, allowed: set[str]
) -> None:
    response = requests.request(method, f"{target.url}{path}", timeout=TIMEOUT_S)
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert {m.strip() for m in response.headers["Allow"].split(",")} - {"HEAD"} == allowed
