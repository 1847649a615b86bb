-- Ledger, settlements and the audit log are history: corrections are new
-- rows. Grants already keep API roles out; this also stops the owner.
create or replace function crypto.tg_append_only__refuse() returns trigger
language plpgsql
set search_path = crypto, pg_temp
as $$
begin
    raise exception using errcode = 'OX003', message = 'FORBIDDEN',
        detail = format('%s is append-only: %s refused', tg_table_name, tg_op);
end
$$;

-- An audit row changes once: when it is sealed into the chain, its content
-- untouched. Nothing else is ever allowed.
create or replace function crypto.tg_audit_logs__seal_only() returns trigger
language plpgsql
set search_path = crypto, pg_temp
as $$
begin
    if tg_op = 'UPDATE' and old.seq is null and new.seq is not null
        and (new.id, new.at, new.actor, new.action, new.subject, new.details, new.txid)
        is not distinct from (old.id, old.at, old.actor, old.action, old.subject, old.details, old.txid) then
        return new;
    end if;
    raise exception using errcode = 'OX003', message = 'FORBIDDEN',
        detail = format('audit_logs is append-only: %s refused', tg_op);
end
$$;

create or replace trigger audit_logs_append_only
before update or delete on crypto.audit_logs
for each row execute function crypto.tg_audit_logs__seal_only();
create or replace trigger audit_logs_no_truncate
before truncate on crypto.audit_logs
for each statement execute function crypto.tg_append_only__refuse();

-- Every other history table: no UPDATE, DELETE or TRUNCATE at all. The
-- ledger and the settlements; corrections too (a correction of a
-- correction is a new one). A new append-only table goes in this list.
do $append_only$
declare
    t text;
begin
    foreach t in array array[
        'ledger_transfers', 'ledger_entries', 'ledger_transfer_keys', 'ledger_verifications', 'settlements',
        'settlement_corrections', 'eod_price_corrections', 'settlement_revisions', 'correction_transfers',
        'partition_archives'
    ] loop
        execute format(
            'create or replace trigger %1$s_append_only before update or delete on crypto.%1$I '
            'for each row execute function crypto.tg_append_only__refuse()', t);
        execute format(
            'create or replace trigger %1$s_no_truncate before truncate on crypto.%1$I '
            'for each statement execute function crypto.tg_append_only__refuse()', t);
    end loop;
end
$append_only$;
