"""The mock OpenID provider (tests/oidc) on its own, without our app: discovery, authorize
with PKCE S256 + nonce, code exchange, ID token checked against the JWKS, claim overrides."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest

from oidc import OidcServer, follow_authorize, run_oidc_server

CLIENT_ID = "oxp-test"
CLIENT_SECRET = "oxp-test-secret"
REDIRECT_URI = "http://127.0.0.1:9/cb"


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcServer]:
    with run_oidc_server(tmp_path_factory.mktemp("oidc")) as server:
        yield server


@pytest.fixture(autouse=True)
def _default_claims(idp: OidcServer) -> Iterator[None]:
    idp.reset_claims()
    yield
    idp.reset_claims()


def http() -> httpx.Client:
    return httpx.Client(trust_env=False, timeout=10.0)


def discover(idp: OidcServer) -> dict[str, Any]:
    with http() as client:
        response = client.get(idp.discovery_url)
    response.raise_for_status()
    return response.json()


def authorize(config: dict[str, Any], *, pkce: bool = True) -> dict[str, str]:
    """Run /authorize; return state, nonce, code_verifier and the code it redirected with."""
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    verifier = secrets.token_urlsafe(48)
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email",
        "state": state,
        "nonce": nonce,
    }
    if pkce:
        digest = hashlib.sha256(verifier.encode()).digest()
        params["code_challenge"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        params["code_challenge_method"] = "S256"
    location = follow_authorize(f"{config['authorization_endpoint']}?{urlencode(params)}")
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == REDIRECT_URI
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["state"] == state
    return {"state": state, "nonce": nonce, "verifier": verifier, "code": query["code"]}


def exchange(
    config: dict[str, Any], code: str, verifier: str | None, *, basic: bool = False
) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    if verifier is not None:
        data["code_verifier"] = verifier
    auth = None
    if basic:
        auth = (CLIENT_ID, CLIENT_SECRET)
    else:
        data |= {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    with http() as client:
        return client.post(config["token_endpoint"], data=data, auth=auth)


def verify_id_token(idp: OidcServer, config: dict[str, Any], id_token: str) -> dict[str, Any]:
    with http() as client:
        jwks = jwt.PyJWKSet.from_dict(client.get(config["jwks_uri"]).json())
    header = jwt.get_unverified_header(id_token)
    assert header["alg"] == "RS256"
    key = next(k for k in jwks.keys if k.key_id == header["kid"])
    return jwt.decode(
        id_token,
        key.key,
        algorithms=["RS256"],
        audience=CLIENT_ID,
        issuer=idp.issuer,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )


def login(idp: OidcServer, *, basic: bool = False) -> tuple[dict[str, Any], dict[str, str]]:
    config = discover(idp)
    flow = authorize(config)
    response = exchange(config, flow["code"], flow["verifier"], basic=basic)
    assert response.status_code == 200, response.text
    return verify_id_token(idp, config, response.json()["id_token"]), flow


def test_discovery(idp: OidcServer) -> None:
    config = discover(idp)
    assert idp.issuer.startswith("http://127.0.0.1:")
    assert config["issuer"] == idp.issuer
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        assert config[endpoint].startswith(idp.issuer + "/")
    assert "S256" in config["code_challenge_methods_supported"]
    assert config["id_token_signing_alg_values_supported"] == ["RS256"]


@pytest.mark.parametrize("basic", [False, True], ids=["client_secret_post", "client_secret_basic"])
def test_code_flow_id_token(idp: OidcServer, basic: bool) -> None:
    claims, flow = login(idp, basic=basic)
    assert claims["aud"] == CLIENT_ID
    assert claims["nonce"] == flow["nonce"]
    assert claims["sub"] == "google-sub-1"
    assert claims["email"] == "oidc-user@example.com"
    assert claims["email_verified"] is True


def test_claim_overrides_apply_to_next_tokens(idp: OidcServer) -> None:
    idp.set_claims(email_verified=False)
    claims, flow = login(idp)
    assert claims["email_verified"] is False
    assert claims["email"] == "oidc-user@example.com"
    assert claims["nonce"] == flow["nonce"]

    idp.set_claims(email="x@example.com", sub="123", nonce="wrong")
    claims, _ = login(idp)
    assert (claims["email"], claims["sub"], claims["nonce"]) == ("x@example.com", "123", "wrong")
    assert claims["email_verified"] is True

    idp.set_claims(email=None)
    claims, _ = login(idp)
    assert "email" not in claims

    idp.reset_claims()
    claims, _ = login(idp)
    assert claims["email_verified"] is True
    assert claims["email"] == "oidc-user@example.com"


def test_pkce_and_codes_are_checked(idp: OidcServer) -> None:
    config = discover(idp)

    flow = authorize(config)
    wrong = exchange(config, flow["code"], secrets.token_urlsafe(48))
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_request"

    flow = authorize(config)
    missing = exchange(config, flow["code"], None)
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_grant"

    flow = authorize(config)
    assert exchange(config, flow["code"], flow["verifier"]).status_code == 200
    reused = exchange(config, flow["code"], flow["verifier"])
    assert reused.status_code == 400

    flow = authorize(config, pkce=False)
    assert exchange(config, flow["code"], None).status_code == 200

    assert exchange(config, "never-issued", None).json()["error"] == "invalid_grant"


def test_set_and_reset_claims_write_and_delete_the_file(idp: OidcServer) -> None:
    idp.set_claims(email_verified=False)
    assert idp.overrides_path.is_file()
    idp.reset_claims()
    assert not idp.overrides_path.exists()
