from __future__ import annotations

from typing import Annotated

import pyotp
import typer

from ox_sidecar.config import get_settings

from .common import AsJson, call, console, emit, service_connection

app = typer.Typer(no_args_is_help=True, help="Users and admins: look up, promote, demote")

Email = Annotated[str, typer.Argument(help="The user's email")]
LIST_COLUMNS = ["email", "role", "balance", "predictions", "created_at", "last_seen_at"]


def _print_totp(email: str, secret: str, as_json: bool, what: str) -> None:
    """The new secret, shown once: to be added to an authenticator app now."""
    uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name="OX Predict")
    if as_json:
        emit({"email": email, "totp_secret": secret, "otpauth_uri": uri}, True)
        return
    console.print(f"{email} {what}. TOTP secret (shown once): {secret}", markup=False)
    console.print(f"otpauth URI: {uri}", markup=False, soft_wrap=True)


# --- read -------------------------------------------------------------------


@app.command("list")
def list_(
    role: Annotated[str | None, typer.Option(help="Only this role: user or admin")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 100,
    as_json: AsJson = False,
) -> None:
    """Users with balance, role, sign-up time, last seen and predictions."""
    with service_connection() as conn:
        users = call(conn, "select crypto.users_list(%s, %s)", role, limit)
    emit(users, as_json, LIST_COLUMNS)


@app.command("show")
def show(
    email: Email,
    predictions: Annotated[int, typer.Option(help="How many recent predictions to list")] = 20,
    as_json: AsJson = False,
) -> None:
    """One user: balance, role, created, last seen, outcomes, recent predictions."""
    with service_connection() as conn:
        user = call(conn, "select crypto.user_detail(%s, %s)", email, predictions)
    if as_json:
        emit(user, True)
        return
    recent = user.pop("recent_predictions")
    emit(user, False, [*LIST_COLUMNS[:3], "created_at", "last_seen_at", "disabled_at"])
    console.print(
        "predictions: {} ({})".format(
            user["predictions"], ", ".join(f"{k} {v}" for k, v in user["outcomes"].items())
        ),
        markup=False,
    )
    console.print("recent predictions:")
    emit(recent, False, ["trading_day", "symbol", "choice", "outcome", "created_at"])


# --- change -----------------------------------------------------------------


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Argument(help="An existing user's email")],
    as_json: AsJson = False,
) -> None:
    """Make a user an admin; prints the TOTP secret once.

    Add the secret to an authenticator app now: it is not shown again.
    Refused for an admin (use reset-totp).
    """
    secret = pyotp.random_base32()
    with service_connection() as conn:
        key = get_settings().totp_key  # the secret is stored encrypted with it
        user = call(conn, "select crypto.make_admin(%s, %s, %s)", email, secret, key)
    _print_totp(user["email"], secret, as_json, "is an admin")


@app.command("demote")
def demote(email: Email, as_json: AsJson = False) -> None:
    """An admin back to a player; their sessions end.

    The TOTP secret is forgotten.
    """
    with service_connection() as conn:
        user = call(conn, "select crypto.demote_admin(%s)", email)
    if as_json:
        emit(user, True)
    else:
        console.print(f"{user['email']} is a player now; their sessions ended", markup=False)


@app.command("reset-totp")
def reset_totp(email: Email, as_json: AsJson = False) -> None:
    """A new TOTP secret for an admin (shown once).

    For a lost authenticator: the old secret and every session end.
    """
    secret = pyotp.random_base32()
    with service_connection() as conn:
        key = get_settings().totp_key
        user = call(conn, "select crypto.reset_totp(%s, %s, %s)", email, secret, key)
    _print_totp(user["email"], secret, as_json, "has a new second factor")


@app.command("verify")
def verify(
    email: Annotated[str, typer.Argument(help="The user's email")], as_json: AsJson = False
) -> None:
    """Mark a user's email as verified (you checked they own it); audited.

    A verified password account is linked, password kept, when its owner
    later signs in with Google.
    """
    with service_connection() as conn:
        user = call(conn, "select crypto.verify_email_by_operator(%s)", email)
    if as_json:
        emit(user, True)
    else:
        console.print(
            f"{user['email']}: email verified at {user['email_verified_at']}", markup=False
        )
