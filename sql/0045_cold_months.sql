-- The ledger's old months go to cold storage (issue 14 item 6): a month
-- past retention.ledger_hot_months is frozen (no row may join it), its
-- rows counted and digested, and, once a restore drill found exactly those
-- rows in a restored backup, copied into the tablespace oxp_cold (cheaper
-- disk) and swapped in for the original, still attached: the books never
-- lose a row, and every query reads the month as before
-- (plpgsql/cold_storage.sql, the worker's partition.cold job). One row per
-- month on its way, written only by those functions.
create table crypto.cold_months (
    partition text primary key check (partition ~ '^ledger_(transfers|entries)_p[0-9]{4}_[0-9]{2}$'),
    parent text not null check (parent in ('crypto.ledger_transfers', 'crypto.ledger_entries')),
    range_from timestamptz not null,
    range_to timestamptz not null,
    frozen_at timestamptz not null,
    rows bigint check (rows >= 0),
    digest text check (digest ~ '^[0-9a-f]{64}$'),
    backed_up_at timestamptz,
    backup text,
    copied_at timestamptz,
    moved_at timestamptz,
    check (range_from < range_to),
    check ((rows is null) = (digest is null)),
    check (backed_up_at is null or digest is not null),
    check (moved_at is null or backed_up_at is not null)
);
comment on table crypto.cold_months is
'The ledger''s months on their way to cold storage (the tablespace oxp_cold): when the month was frozen (no row '
'may join it from then on), its rows and their digest, when a restore drill found exactly those rows in a '
'restored backup (backed_up_at, backup), and when the copy was made and swapped in (moved_at). Written only by '
'crypto.cold_step and crypto.cold_backed_up.';

alter table crypto.cold_months enable row level security;
grant select on crypto.cold_months to auditor, oxp_operator;
