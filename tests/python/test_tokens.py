"""TokenService remembers tokens that verified (tokens.py): what it must still
refuse. No database: the service only needs its key files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ox_sidecar.config import Settings
from ox_sidecar.problems import Problem
from ox_sidecar.tokens import KeyRing, TokenService, rotate_key_file

PLAYER = {"id": "00000000-0000-4000-8000-000000000001", "email": "p@example.com", "role": "user"}


def service(tmp_path: Path, **settings: object) -> TokenService:
    return TokenService(
        Settings(
            database_url="postgresql://unused@127.0.0.1/unused",
            jwt_private_key_file=tmp_path / "jwt.pem",
            **settings,  # type: ignore[arg-type]
        )
    )


def refused(tokens: TokenService, token: str) -> str:
    with pytest.raises(Problem) as problem:
        tokens.verify(token)
    assert problem.value.args[0] == "INVALID_TOKEN"
    return problem.value.detail


def test_a_remembered_token_still_expires(tmp_path: Path) -> None:
    tokens = service(tmp_path, jwt_access_ttl_seconds=1)
    token = tokens.issue(PLAYER)["access_token"]
    assert tokens.verify(token)["sub"] == PLAYER["id"]
    assert tokens.verify(token)["sub"] == PLAYER["id"]  # remembered
    time.sleep(2.1)  # exp has whole seconds: past it for sure
    assert "expired" in refused(tokens, token)


def test_a_key_rotated_out_ends_its_remembered_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(KeyRing, "RELOAD_SECONDS", 0.0)
    tokens = service(tmp_path)
    token = tokens.issue(PLAYER)["access_token"]
    assert tokens.verify(token)["role"] == "app_user"
    rotate_key_file(tmp_path / "jwt.pem")
    time.sleep(0.02)  # a later modification time for the reload to see
    assert tokens.verify(token)["role"] == "app_user"  # the previous key still counts
    rotate_key_file(tmp_path / "jwt.pem")
    assert refused(tokens, token) == "Unknown signing key"


def test_a_forgery_of_a_remembered_token_is_not_believed(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    token = tokens.issue(PLAYER)["access_token"]
    tokens.verify(token)
    head, body, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for _ in range(2):  # refused again: a failure is not remembered either
        refused(tokens, f"{head}.{body}.{flipped}")
    other = service(tmp_path / "elsewhere").issue(PLAYER)["access_token"]
    assert refused(tokens, other) == "Unknown signing key"


def test_the_memory_is_bounded_and_forgets_the_oldest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TokenService, "VERIFIED_MAX", 3)
    tokens = service(tmp_path)
    issued = [
        tokens.issue({**PLAYER, "id": f"00000000-0000-4000-8000-00000000000{i}"})["access_token"]
        for i in range(1, 5)
    ]
    for token in issued:
        tokens.verify(token)
    assert list(tokens._verified) == issued[1:]
    # Forgotten is not refused: it is checked in full again.
    assert tokens.verify(issued[0])["sub"].endswith("1")
    assert list(tokens._verified) == [*issued[2:], issued[0]]
