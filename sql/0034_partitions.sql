-- Partitions (issue 14, item 6): the log tables become range-partitioned
-- parents managed by pg_partman, converted in place (every row is copied,
-- ids kept, the identity resumes after the largest one).
--   audit_logs      by month of `at`         kept forever (hash chain; the
--                                             proof points.adjust ran once)
--   eod_fetch_logs  by month of trading_day  old months dropped after
--                                             retention.eod_fetch_logs_days
--   rate_limits     by day of window_start   days older than
--                                             retention.rate_limits_days dropped
-- The money tables (predictions, ledger_*) stay whole: see the README.
-- Partitions get no privileges of their own (pg_partman's inherit_privileges
-- is off): every role reads through the parent, whose grants are checked.
-- Partition bounds in UTC whatever the server's time zone (as
-- crypto.partition_ensure and crypto.partition_maintenance make them).
set local timezone = 'UTC';
create schema if not exists partman;
create extension if not exists pg_partman with schema partman;
-- crypto.partition_maintenance (SECURITY DEFINER, oxp_owner) runs
-- pg_partman's maintenance, which creates the new partitions as oxp_owner.
grant usage on schema partman to oxp_owner;
grant select, insert, update, delete on all tables in schema partman to oxp_owner;
grant execute on all functions in schema partman to oxp_owner;
grant execute on all procedures in schema partman to oxp_owner;

-- 1. audit_logs. A unique constraint of a partitioned table must hold its
-- partition key: the primary key is (id, at); seq and hash are no longer
-- unique across months. Only crypto.audit_seal assigns them, under its
-- advisory lock, and crypto.audit_verify names a repeated seq or a forked
-- hash as a break of the chain.
alter table crypto.audit_logs rename to audit_logs_unpartitioned;
alter table crypto.audit_logs_unpartitioned rename constraint audit_logs_pkey to audit_logs_unpartitioned_pkey;
alter table crypto.audit_logs_unpartitioned rename constraint audit_logs_hash_key to audit_logs_unpartitioned_hash_key;
alter table crypto.audit_logs_unpartitioned rename constraint audit_logs_seq_key to audit_logs_unpartitioned_seq_key;
alter index crypto.audit_logs_by_subject rename to audit_logs_unpartitioned_by_subject;
alter index crypto.audit_logs_pending rename to audit_logs_unpartitioned_pending;

create table crypto.audit_logs (
    id bigint generated always as identity,
    at timestamptz not null,
    actor text not null,
    action text not null check (action ~ '^[a-z_.]+$'),
    subject text,
    details jsonb not null default '{}',
    prev_hash bytea,
    hash bytea,
    txid xid8 not null default pg_current_xact_id(),
    seq bigint,
    constraint audit_logs_sealed_whole check ((seq is null) = (hash is null)),
    primary key (id, at)
) partition by range (at);
create index audit_logs_by_subject on crypto.audit_logs (action, subject);
create index audit_logs_pending on crypto.audit_logs (id) where seq is null;
create index audit_logs_seq on crypto.audit_logs (seq);

-- 2. eod_fetch_logs: the primary key is (id, trading_day).
alter table crypto.eod_fetch_logs rename to eod_fetch_logs_unpartitioned;
alter table crypto.eod_fetch_logs_unpartitioned rename constraint eod_fetch_logs_pkey
to eod_fetch_logs_unpartitioned_pkey;

create table crypto.eod_fetch_logs (
    id bigint generated always as identity,
    trading_day date not null,
    provider text not null,
    started_at timestamptz not null,
    finished_at timestamptz,
    status crypto.run_status not null,
    rows integer not null default 0 check (rows >= 0),
    error text,
    primary key (id, trading_day)
) partition by range (trading_day);

-- 3. rate_limits: the key already holds window_start. A partitioned parent
-- cannot be UNLOGGED; its partitions are, through pg_partman's template.
alter table crypto.rate_limits rename to rate_limits_unpartitioned;
alter table crypto.rate_limits_unpartitioned rename constraint rate_limits_pkey to rate_limits_unpartitioned_pkey;

create table crypto.rate_limits (
    bucket text not null,
    window_start timestamptz not null,
    hits integer not null check (hits >= 0),
    primary key (bucket, window_start)
) partition by range (window_start);
create unlogged table partman.template_crypto_rate_limits (like crypto.rate_limits);

-- Partitions from the oldest row's month on (yesterday for the rate-limit
-- windows), four ahead; rows out of every range land in the default one.
select partman.create_parent(
    p_parent_table => 'crypto.audit_logs', p_control => 'at', p_type => 'native', p_interval => '1 month',
    p_premake => 4, p_jobmon => false,
    p_start_partition => to_char(
        date_trunc('month', least(now(), (select min(a.at) from crypto.audit_logs_unpartitioned as a))),
        'YYYY-MM-DD HH24:MI:SSOF'
    )
);
select partman.create_parent(
    p_parent_table => 'crypto.eod_fetch_logs', p_control => 'trading_day', p_type => 'native',
    p_interval => '1 month', p_premake => 4, p_jobmon => false,
    p_start_partition => to_char(
        date_trunc('month', least(now(), (select min(e.trading_day) from crypto.eod_fetch_logs_unpartitioned as e))),
        'YYYY-MM-DD'
    )
);
select partman.create_parent(
    p_parent_table => 'crypto.rate_limits', p_control => 'window_start', p_type => 'native',
    p_interval => '1 day', p_premake => 4, p_jobmon => false,
    p_template_table => 'partman.template_crypto_rate_limits',
    -- Only two hours of windows are ever read: older ones (a shifted test
    -- clock's) wait in the default partition for rate_limit_cleanup.
    p_start_partition => to_char(date_trunc('day', now() - interval '1 day'), 'YYYY-MM-DD HH24:MI:SSOF')
);
-- Retention is crypto.partition_maintenance's (on crypto.now()), not
-- pg_partman's (on the wall clock); its own maintenance only creates ahead.
-- ignore_default_data: a row left in the default partition (an audit row
-- of a shifted clock's month, which can never move) must not make pg_partman
-- try to create its month and fail every run after.
update partman.part_config set retention = null, infinite_time_partitions = true, ignore_default_data = true
where parent_table in ('crypto.audit_logs', 'crypto.eod_fetch_logs', 'crypto.rate_limits');

insert into crypto.audit_logs (id, at, actor, action, subject, details, prev_hash, hash, txid, seq)
overriding system value
select
    a.id,
    a.at,
    a.actor,
    a.action,
    a.subject,
    a.details,
    a.prev_hash,
    a.hash,
    a.txid,
    a.seq
from crypto.audit_logs_unpartitioned as a;
select setval(
    pg_get_serial_sequence('crypto.audit_logs', 'id'),
    greatest((select max(a.id) from crypto.audit_logs_unpartitioned as a), 1),
    (select count(*) > 0 from crypto.audit_logs_unpartitioned)
);
insert into crypto.eod_fetch_logs (id, trading_day, provider, started_at, finished_at, status, rows, error)
overriding system value
select
    e.id,
    e.trading_day,
    e.provider,
    e.started_at,
    e.finished_at,
    e.status,
    e.rows,
    e.error
from crypto.eod_fetch_logs_unpartitioned as e;
select setval(
    pg_get_serial_sequence('crypto.eod_fetch_logs', 'id'),
    greatest((select max(e.id) from crypto.eod_fetch_logs_unpartitioned as e), 1),
    (select count(*) > 0 from crypto.eod_fetch_logs_unpartitioned)
);
insert into crypto.rate_limits (bucket, window_start, hits)
select
    r.bucket,
    r.window_start,
    r.hits
from crypto.rate_limits_unpartitioned as r;

-- The old tables' rows must all have arrived before they go.
do $check$
begin
    if (select count(*) from crypto.audit_logs) <> (select count(*) from crypto.audit_logs_unpartitioned)
        or (select count(*) from crypto.eod_fetch_logs)
        <> (select count(*) from crypto.eod_fetch_logs_unpartitioned)
        or (select coalesce(sum(r.hits), 0) from crypto.rate_limits as r)
        <> (select coalesce(sum(r.hits), 0) from crypto.rate_limits_unpartitioned as r) then
        raise exception 'partitioning lost rows';
    end if;
end
$check$;
-- The append-only guards stop the owner too: dropped with their table.
drop table crypto.audit_logs_unpartitioned;
drop table crypto.eod_fetch_logs_unpartitioned;
drop table crypto.rate_limits_unpartitioned;

-- The grants of 0003 on the new parents (reads for the worker and the
-- auditor); partitions get none. Row security as on every crypto table.
grant select on crypto.audit_logs, crypto.eod_fetch_logs, crypto.rate_limits to oxp_service, auditor;
alter table crypto.audit_logs enable row level security;
alter table crypto.eod_fetch_logs enable row level security;
alter table crypto.rate_limits enable row level security;
-- plpgsql/zz_owner.sql passes over a partitioned table (it depends on itself
-- in pg_depend); the partitions are handed over below.
alter table crypto.audit_logs owner to oxp_owner;
alter table crypto.eod_fetch_logs owner to oxp_owner;
alter table crypto.rate_limits owner to oxp_owner;

-- The guards in this migration's own transaction, not only in the
-- repeatable pass after it (plpgsql/append_only.sql and
-- plpgsql/partitions.sql redo the same, create or replace): the audit log
-- is append-only, each partition refuses TRUNCATE by its own name, and
-- every partition is oxp_owner's with row security on.
create or replace function crypto.tg_append_only__refuse() returns trigger
language plpgsql
set search_path = crypto, pg_temp
as $$
begin
    raise exception using errcode = 'OX003', message = 'FORBIDDEN',
        detail = format('%s is append-only: %s refused', tg_table_name, tg_op);
end
$$;
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
do $guards$
declare
    v_part record;
begin
    for v_part in
        select
            i.inhrelid::regclass as rel,
            i.inhparent = 'crypto.audit_logs'::regclass as audit
        from pg_inherits as i
        where i.inhparent in ('crypto.audit_logs'::regclass, 'crypto.eod_fetch_logs'::regclass, 'crypto.rate_limits'::regclass)
    loop
        if v_part.audit then
            execute format(
                'create or replace trigger no_truncate before truncate on %s '
                'for each statement execute function crypto.tg_append_only__refuse()', v_part.rel);
        end if;
        execute format('alter table %s enable row level security', v_part.rel);
        execute format('alter table %s owner to oxp_owner', v_part.rel);
    end loop;
end
$guards$;
