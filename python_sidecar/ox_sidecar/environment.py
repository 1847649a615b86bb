"""One rule for every process: run only against a database of your own ENV.

A database says which world it is (`api.environment()`, written by the
migrator). A process started without ENV defaults to development, whose keys
and rules are public; against a production database it would sign tokens
with the wrong key, shift clocks, or turn the database back into development
on the next migrate. So the migrator, the API, the worker and `oxp` refuse
to run when the two disagree, and say which one to change."""

from __future__ import annotations

import psycopg


class EnvironmentMismatch(Exception):
    pass


def of_database(conn: psycopg.Connection) -> str | None:
    """What the database says it is; None before its first migration. Its
    owner reads the table (a database from before api.environment() too);
    other logins ask api.environment(), which anon and the service may call."""
    for query in (
        "select value #>> '{}' from crypto.settings where key = 'environment'",
        "select api.environment()",
    ):
        try:
            with conn.transaction():
                found = conn.execute(query).fetchone()
            return found[0] if found else None
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            return None  # not migrated yet
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedFunction):
            continue
    return None


def refusal(database_env: str | None, env: str, env_given: bool = True) -> str | None:
    """Why a process with this ENV must not run against that database; None
    if it may. A database not migrated yet (None) says nothing."""
    if database_env is None or database_env == env:
        return None
    ours = f"ENV={env}" if env_given else "ENV is unset (development)"
    if database_env == "production":
        return f"the database is production but {ours}: set ENV=production"
    return (
        f"{ours} but the database is {database_env}: "
        "migrate it with ENV=production first (oxp db migrate)"
    )


def check(database_env: str | None, env: str, env_given: bool = True) -> None:
    reason = refusal(database_env, env, env_given)
    if reason is not None:
        raise EnvironmentMismatch(reason)


def check_connection(conn: psycopg.Connection, env: str, env_given: bool) -> None:
    check(of_database(conn), env, env_given)
