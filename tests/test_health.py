"""GET /healthz: up, and down naming what is down."""

from __future__ import annotations

from tests.fixtures.app import build_app


def test_healthz_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "down": [], "database": "ok", "redis": "ok"}


def test_healthz_names_redis_when_down(database_url, tmp_path):
    app = build_app(database_url, "redis://127.0.0.1:1/0", tmp_path / "i")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["down"] == ["redis"]
    assert response.json["database"] == "ok"


def test_healthz_names_database_when_down(redis_url, tmp_path):
    app = build_app("postgresql://nobody@127.0.0.1:1/none", redis_url, tmp_path / "i")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["down"] == ["database"]
    assert response.json["redis"] == "ok"
