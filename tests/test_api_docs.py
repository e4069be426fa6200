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
