"""Liveness, readiness, the OpenAPI document, keys, and production settings."""

from __future__ import annotations

import time

import jwt
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from ox_sidecar.config import Settings
from support import bearer, signup


def test_health_and_ready(client: TestClient) -> None:
    """/ready's count and the OpenAPI document: test_http_edges.py."""
    assert client.get("/health").json() == {"status": "ok"}
    # Ready once the error codes are read, which start-up does in the background.
    for _ in range(50):
        ready = client.get("/ready")
        if ready.status_code == 200:
            break
        assert ready.json()["code"] in ("UNAVAILABLE", "DATABASE_UNAVAILABLE")
        time.sleep(0.1)
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_tokens_verify_against_the_published_key(client: TestClient) -> None:
    token = signup(client, "keys@example.com")
    jwks = client.get("/.well-known/jwks.json").json()
    header = jwt.get_unverified_header(token)
    (key,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["RS256"], audience="ox-predict-api")
    assert claims["role"] == "app_user" and claims["email"] == "keys@example.com"
    assert client.get("/v1/users/me", headers=bearer(token)).json()["email"] == "keys@example.com"


def test_production_refuses_to_start_without_real_secrets() -> None:
    with pytest.raises(ValidationError, match="JWT_PRIVATE_KEY"):
        Settings(env="production", database_url="postgresql://db/oxp")
    with pytest.raises(ValidationError, match="JWT_ADMIN_PRIVATE_KEY"):
        Settings(env="production", jwt_private_key="pem", database_url="postgresql://db/oxp")
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        Settings(env="production", jwt_private_key="pem", jwt_admin_private_key="pem")
