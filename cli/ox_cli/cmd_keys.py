from __future__ import annotations

import time
from typing import Annotated

import typer

from ox_sidecar.config import get_settings
from ox_sidecar.tokens import previous_file, rotate_key_file

from .common import AsJson, fail, say

app = typer.Typer(no_args_is_help=True, help="Token signing keys")


@app.command("rotate")
def rotate(
    admin: Annotated[bool, typer.Option("--admin", help="The admin tokens' key")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Rotate even within the access-token lifetime of the last"
            " rotation (signs out everyone whose token the retired key signed)",
        ),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """A new signing key; the old one stays valid until the next.

    The old key stays in the JWKS, so tokens it signed live out their
    lifetime. A second rotation within that lifetime would retire it early
    and sign everyone out: it is refused without --force.
    """
    settings = get_settings()
    name = "JWT_ADMIN" if admin else "JWT"
    if (settings.jwt_admin_private_key if admin else settings.jwt_private_key) is not None:
        raise fail(
            "VALIDATION_FAILED",
            f"keys come from the environment here: set {name}_PREVIOUS_PRIVATE_KEY to the"
            f" current key and {name}_PRIVATE_KEY to a new one, then restart the API",
        )
    current = settings.admin_key_file if admin else settings.jwt_private_key_file
    # The current file was written by the last rotation; a previous key
    # exists only after one. Retiring it while its tokens live logs them out.
    if previous_file(current).exists() and current.exists() and not force:
        age = time.time() - current.stat().st_mtime
        wait = settings.jwt_access_ttl_seconds - age
        if wait > 0:
            raise fail(
                "KEY_ROTATED_RECENTLY",
                f"the {'admin' if admin else 'user'} key was rotated {age:.0f} s ago; rotating"
                f" again before {wait:.0f} s pass retires a key whose tokens are still valid"
                " (every holder is signed out): wait, or pass --force",
            )
    kid = rotate_key_file(current)
    say(
        f"new {'admin' if admin else 'user'} signing key {kid}; API processes pick it up",
        as_json,
        kid=kid,
        audience="admin" if admin else "user",
    )
