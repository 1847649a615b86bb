-- migrate: atomic with the repeatable pass
-- A day's awards paid three foreign-key checks a transfer: the transfer's
-- to its key and each of its two entries' to the same key, each one
-- query and one row lock of the key (issue 14: 500,000 awards spent 6 to
-- 8 s of a 1M-prediction day's settlement in the transfers' check alone,
-- README "Benchmarks"). They become one check a statement over the rows it
-- wrote (crypto.tg_ledger_transfers__keyed, tg_ledger_entries__keyed in
-- plpgsql/ledger_keyed.sql), which also checks what a foreign key could
-- not: the transfer's key and time are its key's, an entry's time its
-- transfer's. The key's row lock guarded nothing: keys are append-only.
-- Atomic with the repeatable pass: the ledger is never without either
-- check. The lock below holds writers off until both are in place: every
-- table whose foreign key goes, in the order writers take them (the key
-- first, then its transfer and entries), all at once, so the drops that
-- follow never wait with a lock held (dropping a foreign key locks the
-- referenced keys exclusively too).
set local lock_timeout = '2s';
lock table crypto.ledger_transfer_keys, crypto.ledger_transfers, crypto.ledger_entries in access exclusive mode;
alter table crypto.ledger_transfers drop constraint ledger_transfers_key_fkey;
alter table crypto.ledger_entries drop constraint ledger_entries_transfer_id_fkey;
