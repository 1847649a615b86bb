-- migrate: atomic with the repeatable pass
-- The price-fetch log's months past their retention are archived, not just
-- dropped (issue 14 item 6): the worker writes a month's rows to a file in
-- the archive (ARCHIVE_DIR: cold storage, outside the database and its
-- backups' retention), reads the file back, and only then, in the
-- transaction that read the rows under a lock, records the file here and
-- drops the month (crypto.partition_archived). A month is never dropped
-- without its file, and a file is never recorded for rows that changed.
-- Atomic with the repeatable pass: the table never exists without its
-- append-only guard (plpgsql/append_only.sql), and the pass after the atomic
-- run before it (0041, 0042) already names it.
set local lock_timeout = '2s';

create table crypto.partition_archives (
    id bigint generated always as identity primary key,
    parent text not null check (parent ~ '^crypto\.[a-z_]+$'),
    partition text not null check (partition ~ '^[a-z_]+_p[0-9_]+$'),
    range_from timestamptz not null,
    range_to timestamptz not null,
    rows bigint not null check (rows >= 0),
    sha256 text not null check (sha256 ~ '^[0-9a-f]{64}$'),
    location text not null unique check (length(location) between 1 and 1000),
    archived_at timestamptz not null,
    check (range_from < range_to)
);
comment on table crypto.partition_archives is
'One row per log partition written to the archive and dropped: the file (location), its rows and the SHA-256 of '
'its uncompressed content (JSON lines in id order). Written only by crypto.partition_archived, in the transaction '
'that drops the partition. A month made again by a late row is archived again, in a file of its own.';

alter table crypto.partition_archives enable row level security;
grant select on crypto.partition_archives to auditor, oxp_operator;
