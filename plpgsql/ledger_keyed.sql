-- Every transfer is its key's, and every entry its transfer's key's: the
-- rules the foreign keys to crypto.ledger_transfer_keys held (sql/0044),
-- checked once for each statement's rows rather than once a row. A key is
-- written in the same statement as its transfer and entries, by
-- crypto.ledger_transfer and ledger_credit_many, and never changes
-- (append-only), so its existence when the statement ends is for good.
--
-- They fire on writes through the parent tables, which is every writer
-- there is. A row written to a month by its partition's name (only the
-- owner can) is not checked here; crypto.integrity_violations'
-- transfer_key and transfer_entries checks read every row however it came.

-- One probe of the keys' primary key a row (a lateral subquery with a limit
-- is never turned into a hash of every key ever issued).
create or replace function crypto.tg_ledger_transfers__keyed() returns trigger
language plpgsql
set search_path = crypto, pg_temp
as $$
declare
    v_id bigint;
begin
    select n.id into v_id
    from new_rows as n
    left join lateral (
        select true as keyed from crypto.ledger_transfer_keys as k
        where k.transfer_id = n.id and k.idempotency_key = n.idempotency_key and k.created_at = n.created_at
        limit 1
    ) as k on true
    where k.keyed is null
    limit 1;
    if found then
        raise exception using errcode = '23503', constraint = 'ledger_transfers_keyed',
            message = 'a transfer without its key',
            detail = format('transfer %s has no key of its id, key and time in ledger_transfer_keys', v_id);
    end if;
    return null;
end
$$;

-- An entry's transfer is one of the statement's (a transfer is written with
-- its entries) or an earlier one, probed once per transfer, not per entry.
create or replace function crypto.tg_ledger_entries__keyed() returns trigger
language plpgsql
set search_path = crypto, pg_temp
as $$
declare
    v_id bigint;
begin
    select n.transfer_id into v_id
    from (select distinct e.transfer_id, e.created_at from new_rows as e) as n
    left join lateral (
        select true as keyed from crypto.ledger_transfer_keys as k
        where k.transfer_id = n.transfer_id and k.created_at = n.created_at
        limit 1
    ) as k on true
    where k.keyed is null
    limit 1;
    if found then
        raise exception using errcode = '23503', constraint = 'ledger_entries_keyed',
            message = 'an entry without its transfer''s key',
            detail = format('entries of transfer %s have no key of that id and time in ledger_transfer_keys', v_id);
    end if;
    return null;
end
$$;

create or replace trigger ledger_transfers_keyed
after insert on crypto.ledger_transfers
referencing new table as new_rows
for each statement execute function crypto.tg_ledger_transfers__keyed();
create or replace trigger ledger_entries_keyed
after insert on crypto.ledger_entries
referencing new table as new_rows
for each statement execute function crypto.tg_ledger_entries__keyed();
