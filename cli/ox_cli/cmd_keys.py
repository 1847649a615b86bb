from __future__ import annotations

from typing import Annotated

import typer

from ox_sidecar.config import get_settings
from ox_sidecar.tokens import rotate_key_file

from .common import console, fail

app = typer.Typer(no_args_is_help=True, help="Token signing keys")


@app.command("rotate")
def rotate(
    admin: Annotated[bool, typer.Option("--admin", help="The admin tokens' key")] = False,
) -> None:
    """A new signing key; the old one stays valid (and in the JWKS) until the
    next rotation, so tokens it signed live out their 15 minutes."""
    settings = get_settings()
    if (settings.jwt_admin_private_key if admin else settings.jwt_private_key) is not None:
        name = "JWT_ADMIN" if admin else "JWT"
        raise fail(
            f"keys come from the environment here: set {name}_PREVIOUS_PRIVATE_KEY to the current"
            f" key and {name}_PRIVATE_KEY to a new one, then restart the API"
        )
    kid = rotate_key_file(settings.admin_key_file if admin else settings.jwt_private_key_file)
    console.print(f"new {'admin' if admin else 'user'} signing key {kid}; API processes pick it up")
