import re
from pathlib import Path

API_DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def test_openapi_schema_and_docs_are_served(client, db):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/authorizations/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()
    assert b"cdn" not in docs.content.lower()  # the UI is served from the installed sidecar


def test_unknown_api_path_is_json_404(client, db):
    response = client.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_unauthenticated_api_call_is_json_401(client, db):
    response = client.get("/api/v1/authorizations/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


# docs/api.md lists endpoints as inline code: `GET segments/`, `GET/PUT/PATCH/DELETE destinations/{id}/`,
# optionally followed by a query (`GET profiles/lookup/?identity=…`); paths are relative to /api/v1/.
_ENDPOINT = re.compile(
    r"`((?:GET|POST|PUT|PATCH|DELETE)(?:/(?:GET|POST|PUT|PATCH|DELETE))*) ([a-z0-9_{}/-]+)(?:\?[^`]*)?`"
)
_METHODS = {"get", "post", "put", "patch", "delete"}


def documented_endpoints(text: str) -> set[tuple[str, str]]:
    return {(method, "/api/v1/" + path) for methods, path in _ENDPOINT.findall(text) for method in methods.split("/")}


def test_docs_api_md_lists_every_endpoint_of_the_openapi_schema_and_no_other(client, db):
    schema = client.get("/api/schema/?format=json").json()
    served = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in _METHODS
    }
    documented = documented_endpoints(API_DOC.read_text())
    assert len(served) > 40  # the schema really was read
    assert sorted(served - documented) == [], "endpoints of /api/schema/ missing from docs/api.md"
    assert sorted(documented - served) == [], "endpoints in docs/api.md that the API does not serve"


def test_docs_api_md_has_a_section_with_an_example_for_every_resource(client, db):
    schema = client.get("/api/schema/?format=json").json()
    resources = {path.removeprefix("/api/v1/").split("/")[0] for path in schema["paths"]}
    sections = dict(re.findall(r"^## ([a-z-]+)\n(.*?)(?=^## |\Z)", API_DOC.read_text(), flags=re.MULTILINE | re.DOTALL))
    assert sorted(resources - set(sections)) == [], "resources without a '## <resource>' section in docs/api.md"
    assert [name for name in sorted(resources) if "```" not in sections[name]] == [], "sections without an example"
