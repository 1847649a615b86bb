"""Our access tokens (RS256 JWTs) and password hashes (argon2id): the parts
of auth that SQL cannot do."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
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

_hasher = PasswordHasher()  # argon2id with the library's current defaults
# Verifying against this when the email is unknown keeps both paths equally slow.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


def hash_memory_kib() -> int:
    """Memory one hash or verification takes (argon2's memory cost)."""
    return int(_hasher.memory_cost)


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


def signing_key(pem: bytes) -> SigningKey:
    private = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ValueError("the JWT signing key must be an RSA key (RS256)")
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


def previous_file(current: Path) -> Path:
    return current.with_name(current.stem + ".previous" + current.suffix)


def rotate_key_file(current: Path) -> str:
    """`oxp keys rotate`: the current key becomes the previous one (still
    accepted until its tokens expire), and a new current key is made. Returns
    the new key id. API processes notice the change within seconds."""
    ensure_dev_key(current)
    current.replace(previous_file(current))
    ensure_dev_key(current)
    return signing_key(current.read_bytes()).kid


class KeyRing:
    """The signing key of one audience (users or admins) and, during a
    rotation, the key before it. Files are re-read when they change."""

    RELOAD_SECONDS = 5.0

    def __init__(self, current_pem: str | None, previous_pem: str | None, key_file: Path | None):
        self._current_pem = current_pem
        self._previous_pem = previous_pem
        self._file = key_file
        self._stamp: tuple[float, float] | None = None
        self._checked = 0.0
        self._load()

    @classmethod
    def for_users(cls, settings: Settings) -> KeyRing:
        file = None if settings.jwt_private_key else settings.jwt_private_key_file
        return cls(settings.jwt_private_key, settings.jwt_previous_private_key, file)

    @classmethod
    def for_admins(cls, settings: Settings) -> KeyRing:
        file = None if settings.jwt_admin_private_key else settings.admin_key_file
        return cls(settings.jwt_admin_private_key, settings.jwt_admin_previous_private_key, file)

    def _file_stamp(self) -> tuple[float, float]:
        assert self._file is not None
        prev = previous_file(self._file)
        return (self._file.stat().st_mtime, prev.stat().st_mtime if prev.exists() else 0.0)

    def _load(self) -> None:
        if self._file is not None:
            ensure_dev_key(self._file)
            self.current = signing_key(self._file.read_bytes())
            prev = previous_file(self._file)
            previous = signing_key(prev.read_bytes()) if prev.exists() else None
            self._stamp = self._file_stamp()
        else:
            assert self._current_pem is not None
            self.current = signing_key(self._current_pem.encode())
            previous = signing_key(self._previous_pem.encode()) if self._previous_pem else None
        self.keys = {k.kid: k for k in (self.current, previous) if k is not None}

    def refresh(self) -> None:
        now = time.monotonic()
        if self._file is None or now - self._checked < self.RELOAD_SECONDS:
            return
        self._checked = now
        if self._file_stamp() != self._stamp:
            self._load()


@dataclass(frozen=True)
class _Verified:
    claims: dict[str, Any]
    exp: float
    role: str
    key: SigningKey


class TokenService:
    """Issues and verifies our access tokens. User tokens (role app_user) and
    admin tokens (role app_admin) are signed with different keys, and a
    token's role must match the key that signed it.

    A token that verified is remembered, by its exact text, until it expires
    (at most VERIFIED_MAX of them, the oldest forgotten first): a player's
    client sends the same token with every request, and checking its RS256
    signature and claims again is ~15 % of an API request's CPU. What could
    change meanwhile is checked again on every use: the clock against its
    `exp`, and whether its key is still one we accept (a key rotated out
    ends its tokens at the next key reload, as before). Only tokens whose
    signature verified are kept, so a forgery costs a full check every time."""

    VERIFIED_MAX = 10_000

    def __init__(self, settings: Settings):
        self.settings = settings
        self.rings = {
            "app_user": KeyRing.for_users(settings),
            "app_admin": KeyRing.for_admins(settings),
        }
        self._verified: dict[str, _Verified] = {}

    def _refresh(self) -> None:
        for ring in self.rings.values():
            ring.refresh()

    def jwks(self) -> dict[str, Any]:
        self._refresh()
        return {"keys": [k.jwk for ring in self.rings.values() for k in ring.keys.values()]}

    def issue(self, user: dict[str, Any]) -> dict[str, Any]:
        self._refresh()
        now = int(time.time())
        ttl = self.settings.jwt_access_ttl_seconds
        role = "app_admin" if user["role"] == "admin" else "app_user"
        key = self.rings[role].current
        claims = {
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "sub": str(user["id"]),
            "email": user["email"],
            "role": role,
            "iat": now,
            "exp": now + ttl,
        }
        token = jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})
        return {"access_token": token, "token_type": "Bearer", "expires_in": ttl}

    def verify(self, token: str) -> dict[str, Any]:
        """Claims of a token we signed, or INVALID_TOKEN; the algorithm and key are pinned."""
        self._refresh()
        known = self._verified.get(token)
        if known is not None:
            # PyJWT's own rule: expired once now >= exp (no leeway).
            if (
                time.time() < known.exp
                and self.rings[known.role].keys.get(known.key.kid) is known.key
            ):
                return dict(known.claims)
            del self._verified[token]
        verified = self._verify(token)
        if len(self._verified) >= self.VERIFIED_MAX:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = verified
        return dict(verified.claims)

    def _verify(self, token: str) -> _Verified:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            found = next(
                ((r, ring.keys[kid]) for r, ring in self.rings.items() if kid in ring.keys), None
            )
            if found is None:
                raise Problem("INVALID_TOKEN", "Unknown signing key")
            role, key = found
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
        if claims.get("role") != role:
            raise Problem("INVALID_TOKEN", "The token's role does not match its signing key")
        return _Verified(claims, float(claims["exp"]), role, key)


def new_refresh_token() -> tuple[str, bytes]:
    """An opaque token for the client and the hash the database keeps."""
    token = secrets.token_urlsafe(32)
    return token, refresh_hash(token)


def refresh_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def claims_json(claims: dict[str, Any] | None) -> str:
    return json.dumps(claims) if claims else ""
