"""The log archive (sql/0043, plpgsql/partition_archive.sql, ox_sidecar/archive.py):
the worker writes a price-fetch log month past its retention to a file,
reads it back, and only then is the month recorded and dropped."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from ox_sidecar import archive
from ox_sidecar.config import clear_settings
from ox_sidecar.worker import run_once

OLD_ROWS = 2500  # more than a server-side cursor's batch


@pytest.fixture
def old_month(db: psycopg.Connection) -> str:
    """A month of fetch logs 500 days old (400 kept) and a row of today's."""
    db.execute(
        "select crypto.partition_ensure('crypto.eod_fetch_logs', now() - interval '500 days', 1)"
    )
    db.execute(
        "insert into crypto.eod_fetch_logs (trading_day, provider, started_at, status, rows, error)"
        " select (now() - interval '500 days')::date, 'old', now(), 'failed', g,"
        " case when g %% 7 = 0 then E'quote \" back\\\\slash \\n newline ☃' end"
        " from generate_series(1, %s) as g",
        (OLD_ROWS,),
    )
    db.execute(
        "insert into crypto.eod_fetch_logs (trading_day, provider, started_at, status)"
        " values (now()::date, 'now', now(), 'succeeded')"
    )
    row = db.execute(
        "select tableoid::regclass::text from crypto.eod_fetch_logs where provider = 'old' limit 1"
    ).fetchone()
    assert row is not None
    return str(row[0]).removeprefix("crypto.")


@pytest.fixture
def worker(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[psycopg.Connection]:
    monkeypatch.setenv("ARCHIVE_DIR", str(tmp_path / "archive"))
    clear_settings()
    with psycopg.connect(make_conninfo(db_url, user="oxp_service"), autocommit=True) as conn:
        yield conn
    clear_settings()


def rows_of(db: psycopg.Connection, provider: str) -> list[dict[str, object]]:
    return [
        r[0]
        for r in db.execute(
            "select to_jsonb(l) from crypto.eod_fetch_logs as l where provider = %s order by id",
            (provider,),
        )
    ]


def test_a_month_past_retention_is_written_read_back_recorded_then_dropped(
    db: psycopg.Connection, old_month: str, worker: psycopg.Connection, tmp_path: Path
) -> None:
    before = rows_of(db, "old")
    assert worker.execute("select crypto.enqueue_archive()").fetchone()[0] is not None  # type: ignore[index]
    assert run_once(worker, ["partition.archive"]) is True
    job = db.execute(
        "select status::text, last_error from crypto.jobs where kind = 'partition.archive'"
    ).fetchone()
    assert job == ("done", None)

    files = list((tmp_path / "archive" / "eod_fetch_logs").iterdir())
    assert [f.name.split(".")[0] for f in files] == [old_month]
    content = gzip.decompress(files[0].read_bytes())
    assert [
        json.loads(line) for line in content.splitlines()
    ] == before  # every row, every column, id order
    record = db.execute(
        "select rows, sha256, location from crypto.partition_archives where partition = %s",
        (old_month,),
    ).fetchone()
    assert record == (OLD_ROWS, hashlib.sha256(content).hexdigest(), str(files[0]))
    assert db.execute("select to_regclass(%s)", (f"crypto.{old_month}",)).fetchone() == (None,)
    assert rows_of(db, "old") == [] and len(rows_of(db, "now")) == 1
    # Nothing is due any more: no job tomorrow.
    assert worker.execute("select crypto.enqueue_archive()").fetchone() == (None,)

    # A late row for that month makes it again (maintenance moves it out of
    # the default partition): it is archived again, in a file of its own.
    db.execute(
        "insert into crypto.eod_fetch_logs (trading_day, provider, started_at, status)"
        " values ((now() - interval '500 days')::date, 'late', now(), 'succeeded')"
    )
    worker.execute("select crypto.partition_maintenance()")
    db.execute("select crypto.enqueue_job('partition.archive', '{}')")  # today's is done
    assert run_once(worker, ["partition.archive"]) is True
    again = sorted(f.name for f in (tmp_path / "archive" / "eod_fetch_logs").iterdir())
    assert len(again) == 2 and files[0].name in again
    second = tmp_path / "archive" / "eod_fetch_logs" / next(n for n in again if n != files[0].name)
    assert [
        json.loads(x)["provider"] for x in gzip.decompress(second.read_bytes()).splitlines()
    ] == ["late"]
    assert db.execute(
        "select count(*), count(distinct location) from crypto.partition_archives where partition = %s",
        (old_month,),
    ).fetchone() == (2, 2)


def test_a_file_that_cannot_be_written_or_read_back_drops_nothing(
    db: psycopg.Connection,
    old_month: str,
    worker: psycopg.Connection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An archive folder that is a file: nothing can be written.
    (tmp_path / "archive").write_text("not a folder")
    worker.execute("select crypto.enqueue_archive()")
    assert run_once(worker, ["partition.archive"]) is True
    job = db.execute(
        "select status::text, last_error from crypto.jobs where kind = 'partition.archive'"
    ).fetchone()
    assert (
        job is not None and job[0] == "queued" and "NotADirectoryError" in job[1]
    )  # retried later
    assert len(rows_of(db, "old")) == OLD_ROWS

    # A file that does not read back as written (a bad disk): removed, and
    # the month stays.
    (tmp_path / "archive").unlink()
    db.execute("update crypto.jobs set run_after = now() where kind = 'partition.archive'")
    monkeypatch.setattr(archive, "_read_back", lambda path: (OLD_ROWS, "0" * 64))
    assert run_once(worker, ["partition.archive"]) is True
    job = db.execute(
        "select status::text, last_error from crypto.jobs where kind = 'partition.archive'"
    ).fetchone()
    assert job is not None and job[0] == "queued" and "does not read back" in job[1]
    assert list((tmp_path / "archive" / "eod_fetch_logs").iterdir()) == []
    assert len(rows_of(db, "old")) == OLD_ROWS
    assert db.execute("select count(*) from crypto.partition_archives").fetchone() == (0,)
    assert db.execute("select to_regclass(%s)", (f"crypto.{old_month}",)).fetchone() != (None,)


def test_the_database_refuses_a_file_of_other_rows_and_the_file_goes(
    db: psycopg.Connection,
    old_month: str,
    worker: psycopg.Connection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A file that reads back as the worker wrote it, but not as the month's
    rows are (a bug in what was written): partition_archived computes the
    checksum itself and refuses; the file is removed, the month stays."""
    # The worker's own checksum (written, then read back) agrees with itself
    # but not with the rows: as if it had written other content.
    monkeypatch.setattr(archive, "sha256", lambda: hashlib.sha256(b"other content"))
    db.execute("select crypto.enqueue_job('partition.archive', '{}')")
    assert run_once(worker, ["partition.archive"]) is True
    job = db.execute(
        "select last_error from crypto.jobs where kind = 'partition.archive'"
    ).fetchone()
    assert job is not None and "ARCHIVE_MISMATCH" in job[0]
    assert list((tmp_path / "archive" / "eod_fetch_logs").iterdir()) == []
    assert len(rows_of(db, "old")) == OLD_ROWS


def test_production_needs_its_own_archive_folder(
    db: psycopg.Connection,
    old_month: str,
    worker: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ARCHIVE_DIR")
    monkeypatch.setenv("ENV", "production")
    monkeypatch.setenv("WORKER_DATABASE_URL", "postgresql://oxp_service@127.0.0.1/oxp")
    clear_settings()
    with pytest.raises(archive.ArchiveError, match="ARCHIVE_DIR"):
        archive.run_job(worker, {})
    assert len(rows_of(db, "old")) == OLD_ROWS


def test_without_hard_links_the_file_is_copied_and_a_failed_copy_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    partial, path = tmp_path / "m.jsonl.gz.partial", tmp_path / "m.jsonl.gz"
    partial.write_bytes(b"x" * 100_000)

    def no_links(src: object, dst: object) -> None:
        raise PermissionError("no hard links here")

    monkeypatch.setattr(archive.os, "link", no_links)
    archive._place(partial, path)
    assert path.read_bytes() == b"x" * 100_000
    with pytest.raises(FileExistsError):  # never over an archive
        archive._place(partial, path)
    assert path.read_bytes() == b"x" * 100_000

    def disk_full(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(archive.shutil, "copyfileobj", disk_full)
    other = tmp_path / "n.jsonl.gz"
    with pytest.raises(OSError, match="No space"):
        archive._place(partial, other)
    assert not other.exists()


def test_only_the_worker_reads_a_month_out_or_drops_it(db_url: str, old_month: str) -> None:
    for role in ("app_user", "app_admin", "auditor", "authenticator"):
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f"set role {role}")
            for call in (
                "select crypto.partition_archive_rows(%s)",
                "select crypto.partition_archived(%s, 1, repeat('a', 64), '/x')",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(call, (old_month,))
