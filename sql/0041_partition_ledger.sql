-- migrate: atomic with the repeatable pass
-- The ledger (ledger_transfers, ledger_entries) becomes range-partitioned
-- by month of created_at, kept by pg_partman like predictions (sql/0038),
-- converted in place: every row is copied with its id, and the entries'
-- identity resumes after the largest one (a transfer's id comes from its
-- key, sql/0040). Money tables: partition_maintenance makes their months
-- ahead and never drops one (a month would only ever be detached to cold
-- storage once a verified backup holds it: README).
--
-- A unique constraint (and a foreign key's target) of a partitioned table
-- must hold the partition key:
--   * ledger_transfers' primary key is (id, created_at). Its id comes from
--     its key's identity (sql/0040), and its foreign key names a key; two
--     months holding one id (only a writer past crypto.ledger_transfer
--     could) is integrity_violations' `transfer_key` (a third index on the
--     keys, on every transfer, would make it a constraint).
--   * ledger_entries' primary key is (id, created_at); only the identity
--     makes ids unique (`generated always`). An entry is written with its
--     transfer's created_at (crypto.ledger_transfer, ledger_credit_many),
--     so an entry and its transfer share a month. Its foreign key names
--     the transfer's key, like every other name of a transfer: a foreign
--     key to the partitioned transfers cost 35 us an entry (PostgreSQL 15
--     plans the check against the parent and locks every month), 35 s of
--     a settlement's 1M award entries. That an entry's transfer exists in
--     its month is integrity_violations' `transfer_entries`.
set local timezone = 'UTC';
-- Every transfer writes both tables: give up after 2 s waiting for a lock
-- (run migrate again). The copy holds both tables: run it outside a
-- session's settlement and the rush (README "Deploy order").
set local lock_timeout = '2s';

-- Views that read the ledger are bound to the tables; plpgsql/views_audit.sql
-- makes them again (create or replace) in the repeatable pass after this.
drop view if exists audit.account_balances;
drop view if exists audit.user_points_history;
drop view if exists audit.daily_settlements;
-- So are the functions whose signature names the transfers' row type: the
-- repeatable pass makes them again, on the new table's type, in this
-- file's transaction (ATOMIC, first line): callers wait, never miss them.
drop function if exists crypto.ledger_transfer(text, bigint, bigint, bigint, text, text);
drop function if exists crypto.raise_refusal(crypto.ledger_transfers);
drop function if exists crypto.ledger_transfer_by_id(bigint);
drop function if exists crypto.ledger_transfer_by_key(text);

alter table crypto.ledger_entries rename to ledger_entries_unpartitioned;
alter sequence crypto.ledger_entries_id_seq rename to ledger_entries_unpartitioned_id_seq;
alter table crypto.ledger_entries_unpartitioned rename constraint ledger_entries_pkey
to ledger_entries_unpartitioned_pkey;
alter index crypto.ledger_entries_by_account rename to ledger_entries_unpartitioned_by_account;
alter table crypto.ledger_entries_unpartitioned drop constraint ledger_entries_transfer_id_fkey;

alter table crypto.ledger_transfers rename to ledger_transfers_unpartitioned;
alter table crypto.ledger_transfers_unpartitioned rename constraint ledger_transfers_pkey
to ledger_transfers_unpartitioned_pkey;
alter table crypto.ledger_transfers_unpartitioned rename constraint ledger_transfers_idempotency_key_key
to ledger_transfers_unpartitioned_idempotency_key_key;
alter index crypto.ledger_transfers_by_time_not_awards rename to ledger_transfers_unpartitioned_by_time_not_awards;
alter table crypto.ledger_transfers_unpartitioned drop constraint ledger_transfers_key_fkey;

create table crypto.ledger_transfers (
    id bigint not null,
    idempotency_key text not null,
    debit_account_id bigint not null,
    credit_account_id bigint not null,
    amount bigint not null,
    reason text not null,
    memo text,
    created_at timestamptz not null,
    refusal text
) partition by range (created_at);
-- A day's metrics read the day's transfers other than awards by time.
create index ledger_transfers_by_time_not_awards on crypto.ledger_transfers (created_at)
where reason <> 'settlement_award';

create table crypto.ledger_entries (
    id bigint generated always as identity,
    transfer_id bigint not null,
    account_id bigint not null,
    amount bigint not null,
    balance_after bigint,
    created_at timestamptz not null
) partition by range (created_at);
-- A player's ledger page, newest first, and their balance chain.
create index ledger_entries_by_account on crypto.ledger_entries (account_id, id);

-- The constraints, named as they were: the old tables' go first (their
-- names are taken until then, and PostgreSQL would pick others).
alter table crypto.ledger_transfers_unpartitioned
drop constraint ledger_transfers_amount_check,
drop constraint ledger_transfers_check,
drop constraint ledger_transfers_idempotency_key_check,
drop constraint ledger_transfers_reason_check,
drop constraint ledger_transfers_refusal_check,
drop constraint ledger_transfers_debit_account_id_fkey,
drop constraint ledger_transfers_credit_account_id_fkey;
alter table crypto.ledger_entries_unpartitioned
drop constraint ledger_entries_amount_check,
drop constraint ledger_entries_balance_after_check,
drop constraint ledger_entries_account_id_fkey;
alter table crypto.ledger_transfers
add constraint ledger_transfers_pkey primary key (id, created_at),
add constraint ledger_transfers_key_fkey foreign key (id) references crypto.ledger_transfer_keys (transfer_id),
add constraint ledger_transfers_idempotency_key_check check (length(idempotency_key) between 3 and 200),
add constraint ledger_transfers_debit_account_id_fkey
foreign key (debit_account_id) references crypto.ledger_accounts,
add constraint ledger_transfers_credit_account_id_fkey
foreign key (credit_account_id) references crypto.ledger_accounts,
add constraint ledger_transfers_amount_check check (amount > 0),
add constraint ledger_transfers_reason_check check (reason ~ '^[a-z_]+$'),
add constraint ledger_transfers_refusal_check check (refusal ~ '^OX[0-9]{3}$'),
add constraint ledger_transfers_check check (debit_account_id <> credit_account_id);
alter table crypto.ledger_entries
add constraint ledger_entries_pkey primary key (id, created_at),
add constraint ledger_entries_account_id_fkey foreign key (account_id) references crypto.ledger_accounts,
add constraint ledger_entries_amount_check check (amount <> 0),
add constraint ledger_entries_balance_after_check check (balance_after >= 0);

-- Months from the oldest transfer's (or this one), four ahead, and the
-- month of every transfer there is. No default partition: a transfer row
-- there could never move out while its entries point at it (a foreign key
-- to a partitioned table is checked in the partition the row left), and a
-- transfer is written at crypto.now(), whose month maintenance (and
-- crypto.clock_set, for a clock moved by hand) makes ahead.
do $parents$
declare
    v_parent text;
begin
    foreach v_parent in array array['crypto.ledger_transfers', 'crypto.ledger_entries'] loop
        perform partman.create_parent(
            p_parent_table => v_parent, p_control => 'created_at', p_type => 'native',
            p_interval => '1 month', p_premake => 4, p_jobmon => false,
            p_start_partition => to_char(
                date_trunc('month', least(now(), (select min(t.created_at) from crypto.ledger_transfers_unpartitioned as t))),
                'YYYY-MM-DD'
            )
        );
        -- Never dropped: no retention (partition_maintenance leaves money
        -- tables out of its retention list).
        update partman.part_config set retention = null, infinite_time_partitions = true, ignore_default_data = true
        where parent_table = v_parent;
        perform partman.create_partition_time(
            v_parent,
            array(select distinct date_trunc('month', t.created_at) from crypto.ledger_transfers_unpartitioned as t),
            false
        );
        execute format('drop table %s_default', v_parent);
    end loop;
end
$parents$;

insert into crypto.ledger_transfers (
    id, idempotency_key, debit_account_id, credit_account_id, amount, reason, memo, created_at, refusal
)
select
    t.id,
    t.idempotency_key,
    t.debit_account_id,
    t.credit_account_id,
    t.amount,
    t.reason,
    t.memo,
    t.created_at,
    t.refusal
from crypto.ledger_transfers_unpartitioned as t;

insert into crypto.ledger_entries (id, transfer_id, account_id, amount, balance_after, created_at)
overriding system value
select
    e.id,
    e.transfer_id,
    e.account_id,
    e.amount,
    e.balance_after,
    e.created_at
from crypto.ledger_entries_unpartitioned as e;
select setval(
    pg_get_serial_sequence('crypto.ledger_entries', 'id'),
    greatest((select max(e.id) from crypto.ledger_entries_unpartitioned as e), 1),
    (select count(*) > 0 from crypto.ledger_entries_unpartitioned)
);

do $check$
begin
    if (select count(*) from crypto.ledger_transfers) <> (select count(*) from crypto.ledger_transfers_unpartitioned)
        or (select count(*) from crypto.ledger_entries) <> (select count(*) from crypto.ledger_entries_unpartitioned)
        or exists (
            select t.id, t.idempotency_key, t.debit_account_id, t.credit_account_id, t.amount, t.reason, t.memo,
                t.created_at, t.refusal
            from crypto.ledger_transfers_unpartitioned as t
            except
            select n.id, n.idempotency_key, n.debit_account_id, n.credit_account_id, n.amount, n.reason, n.memo,
                n.created_at, n.refusal
            from crypto.ledger_transfers as n
        )
        or exists (
            select e.id, e.transfer_id, e.account_id, e.amount, e.balance_after, e.created_at
            from crypto.ledger_entries_unpartitioned as e
            except
            select n.id, n.transfer_id, n.account_id, n.amount, n.balance_after, n.created_at
            from crypto.ledger_entries as n
        ) then
        raise exception 'partitioning the ledger lost rows';
    end if;
end
$check$;
-- Added once the rows are in (it checks each).
alter table crypto.ledger_entries add constraint ledger_entries_transfer_id_fkey
foreign key (transfer_id) references crypto.ledger_transfer_keys (transfer_id);

-- The old tables' append-only guards refuse TRUNCATE, and DROP is not one.
drop table crypto.ledger_entries_unpartitioned;
drop table crypto.ledger_transfers_unpartitioned;
-- PostgreSQL 15's autovacuum never analyzes a partitioned parent, whose
-- statistics plan the joins through it (partition_maintenance analyzes the
-- money tables again when it makes a month).
analyze crypto.ledger_transfers;
analyze crypto.ledger_entries;
analyze crypto.ledger_transfer_keys;

-- The grants and policy of sql/0003 and sql/0016 on the new parents;
-- partitions get none (every role reads through the parent, whose policy
-- applies).
grant select on crypto.ledger_transfers to auditor, oxp_service;
grant select on crypto.ledger_entries to app_user, auditor, oxp_service;
alter table crypto.ledger_transfers enable row level security;
alter table crypto.ledger_entries enable row level security;
create policy "Ledger entries are visible to the account owner" on crypto.ledger_entries
for select to app_user using (
    account_id in (
        select a.id from crypto.ledger_accounts as a
        where a.user_id = (select crypto.auth_uid())
    )
);
alter table crypto.ledger_transfers owner to oxp_owner;
alter table crypto.ledger_entries owner to oxp_owner;
-- The append-only guards (plpgsql/append_only.sql, re-applied after this)
-- on the parents now, and on each partition: row triggers are cloned to
-- partitions, a TRUNCATE trigger is not, and a partition can be truncated
-- by its own name (crypto.partition_guard does it for every later month).
do $guards$
declare
    v_parent text;
    v_part regclass;
begin
    foreach v_parent in array array['ledger_transfers', 'ledger_entries'] loop
        execute format(
            'create trigger %1$s_append_only before update or delete on crypto.%1$I '
            'for each row execute function crypto.tg_append_only__refuse()', v_parent);
        execute format(
            'create trigger %1$s_no_truncate before truncate on crypto.%1$I '
            'for each statement execute function crypto.tg_append_only__refuse()', v_parent);
        for v_part in
            select i.inhrelid::regclass from pg_inherits as i where i.inhparent = format('crypto.%I', v_parent)::regclass
        loop
            execute format(
                'create trigger no_truncate before truncate on %s '
                'for each statement execute function crypto.tg_append_only__refuse()', v_part);
            execute format('alter table %s enable row level security', v_part);
            execute format('alter table %s owner to oxp_owner', v_part);
        end loop;
    end loop;
end
$guards$;
