from __future__ import annotations

from typing import Annotated

import typer

from .common import AsJson, call, cell, emit, fail, say, service_connection

app = typer.Typer(no_args_is_help=True, help="Game tunables in crypto.settings")


@app.command("show")
def show(
    key: Annotated[str | None, typer.Argument(help="One setting; default all")] = None,
    as_json: AsJson = False,
) -> None:
    """Every setting (or KEY): value, rule, last change.

    The rule is what `oxp settings set` accepts for the key.
    """
    with service_connection() as conn:
        settings = call(conn, "select crypto.settings_list()")
    if key is not None:
        settings = [s for s in settings if s["key"] == key.strip().lower()]
        if not settings:
            raise fail("UNKNOWN_SETTING", f"No setting {key} (oxp settings show lists them)")
        emit(settings[0], as_json, ["key", "value", "rule", "description", "updated_at"])
        return
    emit(settings, as_json, ["key", "value", "rule"])


@app.command("set", context_settings={"ignore_unknown_options": True})  # VALUE may be negative
def set_(
    key: Annotated[str, typer.Argument(help="The setting, e.g. points.per_win")],
    value: Annotated[str, typer.Argument(help="The new value, checked against the key's rule")],
    as_json: AsJson = False,
) -> None:
    """Change a setting (checked against its rule, audited with the old value)."""
    with service_connection() as conn:
        result = call(conn, "select crypto.setting_set(%s, %s)", key, value)
    if result["changed"]:
        message = f"{result['key']}: {cell(result['previous'])} -> {cell(result['value'])}"
    else:
        message = f"{result['key']} is {cell(result['value'])} already; nothing changed"
    say(message, as_json, **result)
