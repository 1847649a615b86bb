"""Google sign-in (OpenID Connect) with authlib: the redirect with state,
nonce and PKCE, the code exchange and the ID token check. The issuer is a
setting and is discovered, so a local OIDC server stands in for Google in
tests. What the flow must remember (state, nonce, verifier) lives in
crypto.oauth_states; who the user is, in SQL."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt as rfc_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .config import Settings
from .problems import Problem

# Only what Google signs with; never "none", never a shared-secret algorithm.
_ALGORITHMS = ["RS256"]
_CACHE_SECONDS = 3600.0


@dataclass
class Authorization:
    url: str
    state: str
    nonce: str
    code_verifier: str


class OidcClient:
    def __init__(self, settings: Settings):
        self.issuer = settings.google_oidc_issuer.rstrip("/")
        self.client_id = settings.google_client_id
        self.client_secret = settings.google_client_secret
        self.redirect_uri = settings.oauth_redirect_uri
        self._metadata: dict[str, Any] | None = None
        self._jwks: dict[str, Any] | None = None
        self._fetched = 0.0

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.client_secret)

    async def _get(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.get(url)
                response.raise_for_status()
                return response.json()  # type: ignore[no-any-return]
        except (httpx.HTTPError, ValueError) as exc:
            raise Problem("UNAVAILABLE", "The identity provider is unreachable") from exc

    async def metadata(self, fresh: bool = False) -> dict[str, Any]:
        if fresh or self._metadata is None or time.monotonic() - self._fetched > _CACHE_SECONDS:
            metadata = await self._get(f"{self.issuer}/.well-known/openid-configuration")
            if metadata.get("issuer", "").rstrip("/") != self.issuer:
                raise Problem("UNAVAILABLE", "The provider's metadata names another issuer")
            self._metadata, self._jwks = metadata, None
            self._fetched = time.monotonic()
        return self._metadata

    async def _keys(self, fresh: bool = False) -> dict[str, Any]:
        if fresh or self._jwks is None:
            self._jwks = await self._get((await self.metadata())["jwks_uri"])
        return self._jwks

    def _client(self) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.client_id,
            client_secret=self.client_secret,
            redirect_uri=self.redirect_uri,
            scope="openid email profile",
            code_challenge_method="S256",
            timeout=10,
        )

    async def authorization(self) -> Authorization:
        state, nonce, verifier = generate_token(43), generate_token(43), generate_token(64)
        endpoint = (await self.metadata())["authorization_endpoint"]
        async with self._client() as client:
            url, _ = client.create_authorization_url(
                endpoint, state=state, nonce=nonce, code_verifier=verifier
            )
        return Authorization(url, state, nonce, verifier)

    async def exchange(self, code: str, code_verifier: str, redirect_uri: str) -> str:
        """The ID token the issuer gives for this code (and our PKCE verifier)."""
        endpoint = (await self.metadata())["token_endpoint"]
        try:
            async with self._client() as client:
                client.redirect_uri = redirect_uri
                token = await client.fetch_token(
                    endpoint,
                    code=code,
                    code_verifier=code_verifier,
                    grant_type="authorization_code",
                )
        except Exception as exc:  # authlib raises OAuthError, httpx its own
            raise Problem("OAUTH_FAILED", "The identity provider refused the code") from exc
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise Problem("OAUTH_FAILED", "The identity provider sent no ID token")
        return id_token

    async def verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        """Signature (the issuer's JWKS, RS256 only), iss, aud, exp, iat and nonce
        (joserfc: authlib's own JOSE library, which authlib.jose now defers to)."""
        registry = rfc_jwt.JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.client_id or ""},  # unset: nothing matches
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            head = id_token.split(".", 1)[0]
            kid = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))).get("kid")
        except (ValueError, AttributeError) as exc:
            raise Problem("OAUTH_FAILED", "The ID token is malformed") from exc
        jwks = await self._keys()
        if kid not in {k.get("kid") for k in jwks.get("keys", [])}:
            jwks = await self._keys(fresh=True)  # the issuer may have rotated its keys
        try:
            keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
            token = rfc_jwt.decode(id_token, keys, algorithms=_ALGORITHMS)
            registry.validate(token.claims)
        except (JoseError, ValueError) as exc:
            raise Problem("OAUTH_FAILED", "The ID token is not valid") from exc
        return dict(token.claims)
