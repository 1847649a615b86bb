from __future__ import annotations

from typing import Annotated

import pyotp
import typer

from ox_sidecar.config import get_settings

from .common import call, console, service_connection

app = typer.Typer(no_args_is_help=True, help="Users and admins")


@app.command("create-admin")
def create_admin(email: Annotated[str, typer.Argument(help="An existing user's email")]) -> None:
    """Make a user an admin. Prints the TOTP secret once: add it to an
    authenticator app now, it is not shown again."""
    secret = pyotp.random_base32()
    with service_connection() as conn:
        key = get_settings().totp_key  # the secret is stored encrypted with it
        user = call(conn, "select crypto.make_admin(%s, %s, %s)", email, secret, key)
    uri = pyotp.TOTP(secret).provisioning_uri(name=user["email"], issuer_name="OX Predict")
    console.print(f"{user['email']} is an admin. TOTP secret (shown once): {secret}")
    console.print(f"otpauth URI: {uri}", markup=False)


@app.command("verify")
def verify(email: Annotated[str, typer.Argument(help="The user's email")]) -> None:
    """Mark a user's email as verified (you checked they own it); audited.
    A verified password account is linked, password kept, when its owner
    later signs in with Google."""
    with service_connection() as conn:
        user = call(conn, "select crypto.verify_email_by_operator(%s)", email)
    console.print(f"{user['email']}: email verified at {user['email_verified_at']}", markup=False)
