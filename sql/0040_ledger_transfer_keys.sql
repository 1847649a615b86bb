-- migrate: atomic with the repeatable pass
-- A transfer's idempotency key gets its own, unpartitioned table, the first
-- of two steps to partitioning the ledger by month (sql/0041). A unique key
-- of a partitioned table must hold its partition key, but a key must stay
-- unique for all time: a retry a year later (a settlement re-run, an award
-- key) must find its transfer and move nothing. So the key is claimed here
-- first, and this table hands out the transfer's id (its identity moves
-- here from ledger_transfers.id). It keeps created_at so that a lookup by
-- key or by id finds the transfer in its one month.
--
-- The tables that name a transfer by id (redemptions' debit and refund, ad
-- unlocks, correction transfers) point here: a foreign key to a partitioned
-- table would need the transfer's created_at in each of them. Every
-- transfer has its key (its foreign key below); that every key has its
-- transfer is crypto.integrity_violations' `transfer_key` check, as both are
-- written by the same statement of crypto.ledger_transfer /
-- ledger_credit_many and neither is ever updated or deleted.
--
-- Applied without partitioning anything, so it is independent of
-- pg_partman (tests/python/test_partitions.py applies it before 0034).
--
-- ATOMIC (first line): this file, 0041 and the repeatable pass commit
-- together. The transfers' id loses its identity here, which the previous
-- release's ledger_transfer relies on: callers wait on the locks below,
-- then find the new bodies.
set local timezone = 'UTC';
-- Give up after 2 s waiting for a lock (run migrate again) rather than
-- queue a settlement behind a long transaction.
set local lock_timeout = '2s';
-- No transfer, redemption, ad reward or correction is written from here
-- to the commit: the keys copied below are every transfer's, and the
-- foreign keys added below hold for every row.
lock table crypto.ledger_transfers, crypto.rewards_redemptions, crypto.ad_unlocks, crypto.correction_transfers
in share row exclusive mode;

create table crypto.ledger_transfer_keys (
    transfer_id bigint generated always as identity primary key,
    idempotency_key text not null unique check (length(idempotency_key) between 3 and 200),
    created_at timestamptz not null
);
comment on table crypto.ledger_transfer_keys is
'One row per ledger transfer, refused ones included, written in the same statement: the idempotency key, unique '
'for all time, and the transfer''s id (handed out here) and time, by which its row is found in its month of '
'crypto.ledger_transfers. Append-only.';

-- Every transfer there is, refusals included, with its id and time.
insert into crypto.ledger_transfer_keys (transfer_id, idempotency_key, created_at)
overriding system value
select
    t.id,
    t.idempotency_key,
    t.created_at
from crypto.ledger_transfers as t
order by t.id;
select setval(
    pg_get_serial_sequence('crypto.ledger_transfer_keys', 'transfer_id'),
    greatest((select max(t.id) from crypto.ledger_transfers as t), 1),
    (select count(*) > 0 from crypto.ledger_transfers)
);

-- The transfer's id now comes from its key.
alter table crypto.ledger_transfers alter column id drop identity;
alter table crypto.ledger_transfers
add constraint ledger_transfers_key_fkey foreign key (id) references crypto.ledger_transfer_keys (transfer_id);

alter table crypto.rewards_redemptions drop constraint rewards_redemptions_debit_transfer_id_fkey;
alter table crypto.rewards_redemptions drop constraint rewards_redemptions_refund_transfer_id_fkey;
alter table crypto.ad_unlocks drop constraint ad_unlocks_transfer_id_fkey;
alter table crypto.correction_transfers drop constraint correction_transfers_transfer_id_fkey;
alter table crypto.rewards_redemptions
add constraint rewards_redemptions_debit_transfer_id_fkey
foreign key (debit_transfer_id) references crypto.ledger_transfer_keys (transfer_id);
alter table crypto.rewards_redemptions
add constraint rewards_redemptions_refund_transfer_id_fkey
foreign key (refund_transfer_id) references crypto.ledger_transfer_keys (transfer_id);
alter table crypto.ad_unlocks
add constraint ad_unlocks_transfer_id_fkey
foreign key (transfer_id) references crypto.ledger_transfer_keys (transfer_id);
alter table crypto.correction_transfers
add constraint correction_transfers_transfer_id_fkey
foreign key (transfer_id) references crypto.ledger_transfer_keys (transfer_id);

grant select on crypto.ledger_transfer_keys to auditor, oxp_service;
alter table crypto.ledger_transfer_keys enable row level security;
alter table crypto.ledger_transfer_keys owner to oxp_owner;
