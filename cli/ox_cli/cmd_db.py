from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer

from ox_sidecar import backups, replica
from ox_sidecar.backups import BackupError
from ox_sidecar.config import ROOT, get_owner_settings, get_settings
from ox_sidecar.environment import EnvironmentMismatch
from ox_sidecar.migrate import MigrationError, migrate, reset

from .common import AsJson, Yes, confirm, emit, fail, parse_time, say, to_json

app = typer.Typer(no_args_is_help=True, help="Migrations, backups and restore")


@app.command("migrate")
def migrate_cmd(as_json: AsJson = False) -> None:
    """Apply new versioned migrations, then re-apply every repeatable one."""
    settings = get_owner_settings()  # no JWT or TOTP key needed (compose's migrate step)
    try:
        report = migrate(settings.database_url, settings.env, environment_given=settings.env_given)
    except EnvironmentMismatch as exc:
        raise fail("ENVIRONMENT_MISMATCH", f"migrate is refused: {exc}") from exc
    except (MigrationError, psycopg.Error) as exc:
        raise fail("MIGRATION_FAILED", " ".join(str(exc).split())) from exc
    say(
        f"applied {len(report.applied)} versioned "
        f"({', '.join(report.applied) or 'none new'}), {len(report.repeatable)} repeatable",
        as_json,
        applied=report.applied,
        repeatable=len(report.repeatable),
    )


@app.command("reset")
def reset_cmd(yes: Yes = False, as_json: AsJson = False) -> None:
    """Drop everything and migrate from scratch (refused in production)."""
    settings = get_settings()
    confirm(
        "Drop every OX Predict table in this database?",
        yes,
        "reset drops every OX Predict table: pass --yes",
    )
    try:
        report = reset(settings.database_url, settings.env)
    except (MigrationError, psycopg.Error) as exc:
        raise fail("MIGRATION_FAILED", " ".join(str(exc).split())) from exc
    say(
        f"reset; applied {len(report.applied)} versioned migrations",
        as_json,
        applied=report.applied,
    )


# --- backups (pgBackRest) and logical dumps; README "Backups and restore" ---


def _backup_call(work: Callable[[], Any]) -> Any:
    try:
        return work()
    except BackupError as exc:
        raise fail(exc.code, exc.detail) from exc


@app.command("backup")
def backup_cmd(
    kind: Annotated[
        str, typer.Option("--type", help="full, diff (since the last full) or incr")
    ] = "full",
    as_json: AsJson = False,
) -> None:
    """Back up the cluster into the repository now (then expire by retention)."""
    settings = get_settings()
    done = _backup_call(lambda: backups.backup(settings, kind))
    say(
        f"backup {done['label']} ({done['type']}): {done['size_bytes']} bytes,"
        f" {done['repo_bytes']} in the repository, {done['seconds']} s",
        as_json,
        **done,
    )


@app.command("backups")
def backups_cmd(as_json: AsJson = False) -> None:
    """The backups in the repository, oldest first, and from when each restores."""
    settings = get_settings()
    rows = _backup_call(lambda: backups.backups(settings))
    emit(
        rows,
        as_json,
        [
            "label",
            "type",
            "started",
            "stopped",
            "size_bytes",
            "repo_bytes",
            "wal_start",
            "wal_stop",
            "restorable_from",
        ],
    )


@app.command("restore")
def restore_cmd(
    to: Annotated[
        str | None, typer.Option("--to", help="ISO 8601 time (no offset: Korea time)")
    ] = None,
    latest: Annotated[bool, typer.Option("--latest", help="Replay every archived WAL")] = False,
    yes: Yes = False,
    replaces_production: Annotated[
        bool, typer.Option("--i-know-this-replaces-production", help="Needed with ENV=production")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Point-in-time restore of the whole cluster: stop, restore, replay, promote, start."""
    settings = get_settings()
    if (to is None) == (not latest):
        raise fail("VALIDATION_FAILED", "give either --to TIME or --latest")
    target = parse_time(to) if to is not None else None
    if settings.env == "production" and not replaces_production:
        raise fail(
            "REPLACES_PRODUCTION",
            "ENV=production: this replaces the production database;"
            " add --i-know-this-replaces-production",
        )
    confirm(
        "Stop the database and replace it with the restored one?",
        yes,
        "restore stops and replaces the database: pass --yes",
    )
    done = _backup_call(lambda: backups.restore(settings, target))
    say(
        f"restored to {done['target']} in {done['seconds']} s; the database is up."
        " Take a backup (oxp db backup) once this state is to be kept.",
        as_json,
        **done,
    )


@app.command("verify-backup")
def verify_backup_cmd(as_json: AsJson = False) -> None:
    """Restore the latest backup into a throwaway cluster and check the books there."""
    settings = get_settings()
    done = _backup_call(lambda: backups.verify(settings))
    if as_json:
        typer.echo(to_json(done))
    else:
        say(
            f"backup {done['backup']}: {'ok' if done['ok'] else 'FAILED'};"
            f" {done['ledger_entries']} ledger entries, {len(done['violations'])} integrity"
            f" violations, audit {'verifies' if done['audit'].get('ok') else 'BROKEN'},"
            f" {done['seconds']} s",
            False,
        )
    if not done["ok"]:
        raise fail("BACKUP_FAILED", f"the restored backup does not verify: {to_json(done)}")


def _pg_tool(name: str) -> str:
    return str(get_settings().pg_bin_dir / name)


@app.command("dump")
def dump_cmd(
    file: Annotated[Path, typer.Argument(help="Where to write the dump")], as_json: AsJson = False
) -> None:
    """A logical dump (pg_dump -Fc) of the database, to move it between machines."""
    settings = get_settings()
    done = subprocess.run(  # noqa: S603 (an argument list, no shell)
        [_pg_tool("pg_dump"), "-Fc", "-d", settings.database_url, "-f", str(file)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise fail("BACKUP_FAILED", " ".join(done.stderr.split()))
    size = file.stat().st_size
    say(f"dumped to {file} ({size} bytes)", as_json, file=str(file), bytes=size)


# Run by psql after the dump, in its transaction: any invariant broken, or
# the audit chain, and the whole load is rolled back.
LOAD_CHECK = """
do $check$
declare
    v_broken text;
begin
    select string_agg(v.check_name || ' ' || v.subject, ', ') into v_broken
    from (select * from crypto.integrity_violations() limit 10) as v;
    if v_broken is not null then
        raise exception 'the dump breaks invariants (%), nothing was loaded', v_broken;
    end if;
    if not (crypto.audit_verify() ->> 'ok')::boolean then
        raise exception 'the dump''s audit chain does not verify, nothing was loaded';
    end if;
    -- What the source cluster's drills vouched for is not this cluster's
    -- backups, and its cold months are in the default tablespace here
    -- (--no-tablespaces): they move again, after a drill of this cluster.
    if to_regclass('crypto.cold_months') is not null then
        update crypto.cold_months
        set backed_up_at = null, backup = null, copied_at = null, moved_at = null;
    end if;
end
$check$;
"""


# --replace: what the database holds goes first, in the load's transaction,
# by schema and extension, not object by object as pg_restore --clean does:
# its drops of a partition's inherited constraints fail ("cannot drop
# inherited constraint"), so a partitioned database could not be replaced.
# Only the schemas and extensions the dump makes again, as --clean would
# (a pgbouncer schema or pg_stat_statements of the operator's stay);
# pg_cron, left out of the load, stays with its jobs. Waits 10 s at most
# for a session that reads them (an auditor's), rather than holding the
# locks taken so far while it waits.
TOC_NAMESPACE = re.compile(r"^\d+; \d+ \d+ (SCHEMA|EXTENSION) - ([A-Za-z_][A-Za-z0-9_$-]*)(?= |$)")
# pg_restore writes a large object's data in a transaction of its own
# (BEGIN; ... COMMIT;), which would commit the part of the load before it,
# unchecked. oxp makes none: a dump holding one is not oxp's to load.
TOC_LARGE_OBJECT = re.compile(r"^\d+; \d+ \d+ (BLOB|BLOBS|BLOB METADATA|LARGE OBJECT)\b")


def _replace_sql(listing: list[str]) -> str:
    found = [m.groups() for m in map(TOC_NAMESPACE.match, listing) if m]
    drops = [f'drop extension if exists "{n}" cascade;' for k, n in found if k == "EXTENSION"]
    drops += [
        f'drop schema if exists "{n}" cascade;' for k, n in found if k == "SCHEMA" and n != "public"
    ]
    # The dump's own header sets lock_timeout back to 0 after these.
    return "\n".join(["set local lock_timeout = '10s';", *drops, ""])


@app.command("load")
def load_cmd(
    file: Annotated[Path, typer.Argument(help="A dump of `oxp db dump`")],
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace what the database holds")
    ] = False,
    yes: Yes = False,
    as_json: AsJson = False,
) -> None:
    """Load a dump into the database; refused into a non-empty one unless --replace --yes."""
    settings = get_settings()
    if not file.is_file():
        raise fail("NOT_FOUND", f"no such file: {file}")
    try:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            tables = conn.execute(
                "select count(*) from pg_tables"
                " where schemaname not in ('pg_catalog', 'information_schema')"
            ).fetchone()[0]  # type: ignore[index]
    except psycopg.OperationalError as exc:
        raise fail("DATABASE_UNAVAILABLE", " ".join(str(exc).split())) from exc
    if tables and not (replace and yes):
        raise fail(
            "DATABASE_NOT_EMPTY",
            f"the database holds {tables} tables; pass --replace --yes to replace them",
        )
    # The roles are the cluster's, not the dump's: make sure they exist.
    roles = (ROOT / "sql" / "0001_roles.sql").read_text()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(roles.split("\ngrant ")[0])
    # pg_cron belongs to one database of a cluster (cron.database_name) and
    # its jobs to that cluster: left out here, `oxp db migrate` schedules them.
    listing = subprocess.run(  # noqa: S603 (an argument list, no shell)
        [_pg_tool("pg_restore"), "-l", str(file)], capture_output=True, text=True, check=False
    )
    if listing.returncode != 0:
        raise fail("VALIDATION_FAILED", f"not a dump of oxp db dump: {listing.stderr.strip()}")
    keep = [
        line for line in listing.stdout.splitlines() if not re.search(r"\bcron\b|pg_cron", line)
    ]
    if any(map(TOC_LARGE_OBJECT.match, keep)):
        raise fail(
            "VALIDATION_FAILED",
            "the dump holds large objects, which pg_restore commits apart from the rest"
            " of the load; oxp makes none, so this is not a dump of an oxp database",
        )
    handle, name = tempfile.mkstemp(suffix=".list")
    contents = Path(name)
    with os.fdopen(handle, "w") as out:
        out.write("\n".join(keep) + "\n")
    # As a script into psql, in one transaction with the invariants' check
    # after it: a dump that breaks one (edited, or cut from a damaged
    # database) is refused whole and the database keeps what it held. The
    # ledger's keys are checked by statement triggers (sql/0044), which a
    # restore does not fire, where the foreign keys before them were
    # validated; the check reads every row, as the nightly full one does.
    # The transaction is ours, not psql's --single-transaction (which
    # commits when its input ends, however it ends): COMMIT is sent only
    # after pg_restore wrote the whole script and the check. Input that ends
    # before it (pg_restore stopped, this process killed) ends psql with the
    # transaction open, and the server rolls it back.
    # Into the target's default tablespace: a cluster loaded into may have
    # no oxp_cold (the ledger's months moved there, README "Cold storage").
    script = [_pg_tool("pg_restore"), "--no-tablespaces", "-L", str(contents), "-f", "-", str(file)]
    cmd = [_pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", settings.database_url]
    cmd += ["-f", "-"]
    try:
        # Both tools' messages to files: a pipe left unread could fill and
        # stall the copy between them.
        with tempfile.TemporaryFile() as restore_errors, tempfile.TemporaryFile() as psql_errors:
            restore = subprocess.Popen(  # noqa: S603 (an argument list, no shell)
                script, stdout=subprocess.PIPE, stderr=restore_errors
            )
            psql = subprocess.Popen(  # noqa: S603 (an argument list, no shell)
                cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_errors
            )
            assert restore.stdout is not None and psql.stdin is not None
            try:
                psql.stdin.write(b"begin;\n")
                if tables:
                    psql.stdin.write(_replace_sql(keep).encode())
                shutil.copyfileobj(restore.stdout, psql.stdin, 1 << 20)
                if restore.wait() == 0:
                    psql.stdin.write((LOAD_CHECK + "commit;\n").encode())
                psql.stdin.close()
            except BrokenPipeError:  # psql stopped at an error: its messages say which
                restore.kill()
            except BaseException:
                restore.kill()
                psql.kill()
                raise
            restore.wait()
            psql.wait()
            said = b""
            for errors in (restore_errors, psql_errors):
                errors.seek(0)
                said += errors.read()
    finally:
        contents.unlink(missing_ok=True)
    if psql.returncode or restore.returncode:
        raise fail("RESTORE_FAILED", " ".join(said.decode(errors="replace").split())[-800:])
    say(
        f"loaded {file}; run `oxp db migrate` there to schedule the pg_cron jobs",
        as_json,
        file=str(file),
        replaced=bool(tables),
    )


# --- a streaming read replica on this machine; README "Read replica" ---

replica_app = typer.Typer(no_args_is_help=True, help="A streaming read replica on this machine")
app.add_typer(replica_app, name="replica")


@replica_app.command("init")
def replica_init_cmd(
    data: Annotated[
        Path | None, typer.Option("--dir", help="Its folder (REPLICA_DIR, .local/replica)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Its port (REPLICA_PORT, 54331)")] = None,
    as_json: AsJson = False,
) -> None:
    """pg_basebackup -R from DATABASE_URL's cluster into a new folder; start it as a hot standby."""
    settings = get_settings()
    try:
        done = replica.init(settings, data or settings.replica_dir, port or settings.replica_port)
    except BackupError as exc:
        raise fail(exc.code, exc.detail) from exc
    say(
        f"replica streaming from the primary in {done['data']} on port {done['port']};"
        f" for the API: DATABASE_REPLICA_URL={done['url']}",
        as_json,
        **done,
    )


@replica_app.command("status")
def replica_status_cmd(
    port: Annotated[
        int | None, typer.Option(help="The local replica's port (else DATABASE_REPLICA_URL)")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """The replica's state and its lag behind the primary, in bytes and seconds."""
    settings = get_settings()
    done = replica.status(settings, replica.replica_url(settings, port))
    if done["state"] == "down":
        raise fail("REPLICA_FAILED", f"the replica does not answer: {done['detail']}")
    say(
        f"replica {done['state']}: {done['lag_bytes']} bytes, {done['lag_seconds']} s behind"
        f" (reads fall back to the primary past {done['max_lag_seconds']} s)",
        as_json,
        **done,
    )


# --- cold storage of the ledger's old months; README "Cold storage" ---

cold_app = typer.Typer(no_args_is_help=True, help="The ledger's old months on cheaper disk")
app.add_typer(cold_app, name="cold-storage")


@cold_app.command("init")
def cold_init_cmd(
    path: Annotated[
        Path, typer.Argument(help="An empty folder on the cold disk, owned by PostgreSQL's user")
    ],
    as_json: AsJson = False,
) -> None:
    """Make the tablespace oxp_cold at PATH (a superuser's); old months then move there."""
    settings = get_settings()
    if not path.is_absolute():
        raise fail("VALIDATION_FAILED", f"{path} is not an absolute path")
    try:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            made = conn.execute(
                "select pg_tablespace_location(oid) from pg_catalog.pg_tablespace"
                " where spcname = 'oxp_cold'"
            ).fetchone()
            if made is not None:
                if made[0] != str(path):
                    raise fail("CONFLICT", f"oxp_cold exists already, at {made[0]}")
            else:
                # A standby replays CREATE TABLESPACE at the same path: on
                # this machine, the primary's folder (which replay empties).
                # `oxp db replica init` leaves a slot of its folder's name
                # (oxp_replica_*), so that a stopped one is seen here too.
                streaming, slots = conn.execute(
                    "select (select count(*) from pg_catalog.pg_stat_replication),"
                    " (select coalesce(string_agg(slot_name, ', ' order by slot_name), '')"
                    "  from pg_catalog.pg_replication_slots)"
                ).fetchone()  # type: ignore[misc]
                if streaming or slots or (settings.replica_dir / "PG_VERSION").exists():
                    raise fail(
                        "REPLICA_EXISTS",
                        f"a standby follows this cluster ({streaming} streaming;"
                        f" slots: {slots or 'none'}; {settings.replica_dir}):"
                        " stopped or not, it would replay oxp_cold's"
                        " creation at the same path. Remove it (and its slot:"
                        " select pg_drop_replication_slot(name)), make oxp_cold, then the"
                        " replicas again (README, Cold storage)",
                    )
                conn.execute(f"create tablespace oxp_cold location '{_quote(str(path))}'")
            conn.execute("grant create on tablespace oxp_cold to oxp_owner")
    except psycopg.OperationalError as exc:
        raise fail("DATABASE_UNAVAILABLE", " ".join(str(exc).split())) from exc
    except psycopg.errors.InsufficientPrivilege as exc:
        raise fail("FORBIDDEN", "making a tablespace takes a superuser's DATABASE_URL") from exc
    except psycopg.Error as exc:
        raise fail("VALIDATION_FAILED", " ".join(str(exc).split())) from exc
    say(
        f"oxp_cold at {path}: months older than retention.ledger_hot_months move there"
        " once a restore drill holds them; take a full backup now",
        as_json,
        tablespace="oxp_cold",
        location=str(path),
    )


def _quote(text: str) -> str:
    return text.replace("'", "''")


@cold_app.command("status")
def cold_status_cmd(as_json: AsJson = False) -> None:
    """The months due and the months moved, with their rows and backup."""
    settings = get_settings()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        due = conn.execute(
            "select coalesce(jsonb_agg(to_jsonb(d)), '[]') from crypto.cold_months_due() as d"
        ).fetchone()[0]  # type: ignore[index]
        months = conn.execute(
            "select coalesce(jsonb_agg(to_jsonb(m) order by m.partition), '[]')"
            " from crypto.cold_months as m"
        ).fetchone()[0]  # type: ignore[index]
    emit({"due": due, "months": months}, as_json)
