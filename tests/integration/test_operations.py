import httpx

from app.tickets.machine import Action


async def test_health_and_readiness_need_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ok"}


async def test_openapi_documents_the_contract(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in (
        "/api/v1/auth/token",
        "/api/v1/users/me",
        "/api/v1/org-units",
        "/api/v1/departments",
        "/api/v1/categories",
        "/api/v1/events",
        "/api/v1/tickets",
        "/api/v1/tickets/{ticket_id}",
        "/api/v1/tickets/{ticket_id}/history",
    ):
        assert path in paths, path
    for action in Action:
        operation = paths[f"/api/v1/tickets/{{ticket_id}}/actions/{action.value}"]["post"]
        assert operation["summary"].endswith(action.value)
    assert "Problem" in schema["components"]["schemas"]


async def test_unknown_path_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
