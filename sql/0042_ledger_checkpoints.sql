-- migrate: atomic with the repeatable pass
-- The nightly integrity check becomes incremental (issue 14 item 6): it
-- re-reads only the ledger written since its last clean run (less a day's
-- overlap), continuing each player's balance chain from the point it last
-- verified, and reads everything again once a week (crypto.run_integrity_check).
--
-- A player's entries are written under their account's row lock, so their
-- ids follow the balance chain, and an entry is visible only once every
-- earlier one of the account is: what a clean run verified up to an entry
-- stays verified. The checkpoint is that entry and the balance after it.
set local lock_timeout = '2s';

create table crypto.ledger_checkpoints (
    account_id bigint primary key references crypto.ledger_accounts,
    entry_id bigint not null,
    balance bigint not null check (balance >= 0),
    checked_at timestamptz not null
);
comment on table crypto.ledger_checkpoints is
'Per player account, the last ledger entry a clean integrity run verified and the balance after it: the next '
'run continues the balance chain from there. Written only by crypto.run_integrity_check, in the statement that '
'found nothing.';

create table crypto.ledger_verifications (
    id bigint generated always as identity primary key,
    started_at timestamptz not null,
    since timestamptz not null,
    violations integer not null check (violations >= 0),
    accounts_advanced integer not null check (accounts_advanced >= 0),
    seconds numeric not null
);
comment on table crypto.ledger_verifications is
'One row per integrity run: from when it read the ledger (-infinity for a full run), what it found, how many '
'players'' checkpoints it moved on. The next run reads from the latest clean run''s start less a day. Append-only.';

grant select on crypto.ledger_checkpoints, crypto.ledger_verifications to auditor, oxp_service;
alter table crypto.ledger_checkpoints enable row level security;
alter table crypto.ledger_verifications enable row level security;
alter table crypto.ledger_checkpoints owner to oxp_owner;
alter table crypto.ledger_verifications owner to oxp_owner;
