"""Our access tokens (RS256 JWTs) and password hashes (argon2id): the parts
of auth that SQL cannot do."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from .config import Settings
from .problems import Problem

ROLES = frozenset({"app_user", "app_admin"})

_hasher = PasswordHasher()  # argon2id with the library's current defaults
# Verifying against this when the email is unknown keeps both paths equally slow.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def ensure_dev_key(path: Path) -> None:
    """Development only: a key pair made on first run, kept in an ignored folder."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.touch(mode=0o600)
    path.write_bytes(pem)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Any
    public_key: Any
    jwk: dict[str, Any]


def load_signing_key(settings: Settings) -> SigningKey:
    if settings.jwt_private_key:
        pem = settings.jwt_private_key.encode()
    else:
        ensure_dev_key(settings.jwt_private_key_file)
        pem = settings.jwt_private_key_file.read_bytes()
    private = serialization.load_pem_private_key(pem, password=None)
    public_jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    kid = _thumbprint(public_jwk)
    jwk = {**public_jwk, "kid": kid, "use": "sig", "alg": "RS256"}
    # Key objects, parsed once: parsing a PEM re-validates the RSA key (~30 ms).
    return SigningKey(kid, private, private.public_key(), jwk)


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: the key id is the hash of the key, so it changes when the key does."""
    members = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
    digest = hashlib.sha256(members.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class TokenService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.keys = {k.kid: k for k in [load_signing_key(settings)]}
        self.current = next(iter(self.keys.values()))

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk for k in self.keys.values()]}

    def issue(self, user: dict[str, Any]) -> dict[str, Any]:
        now = int(time.time())
        ttl = self.settings.jwt_access_ttl_seconds
        claims = {
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "sub": str(user["id"]),
            "email": user["email"],
            "role": "app_admin" if user["role"] == "admin" else "app_user",
            "iat": now,
            "exp": now + ttl,
        }
        token = jwt.encode(
            claims, self.current.private_key, algorithm="RS256", headers={"kid": self.current.kid}
        )
        return {"access_token": token, "token_type": "Bearer", "expires_in": ttl}

    def verify(self, token: str) -> dict[str, Any]:
        """Claims of a token we signed, or INVALID_TOKEN; the algorithm and key are pinned."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self.keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise Problem("INVALID_TOKEN", "Unknown signing key")
            claims = jwt.decode(
                token,
                key.public_key,
                algorithms=["RS256"],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={"require": ["exp", "iat", "sub", "role", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise Problem("INVALID_TOKEN", "The token is invalid or expired") from exc
        if claims.get("role") not in ROLES:
            raise Problem("INVALID_TOKEN", "The token carries no valid role")
        return claims


def claims_json(claims: dict[str, Any] | None) -> str:
    return json.dumps(claims) if claims else ""
