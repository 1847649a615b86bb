begin;
select plan(52);

-- The log tables are partitioned parents, kept by pg_partman.
select has_extension('pg_partman', 'pg_partman is installed');
select is(
    (select array_agg(c.relname::text order by c.relname) from pg_class as c
     where c.relnamespace = 'crypto'::regnamespace and c.relkind = 'p'),
    array['audit_logs', 'eod_fetch_logs', 'ledger_entries', 'ledger_transfers', 'predictions', 'rate_limits'],
    'the logs, the predictions and the ledger are partitioned'
);
select is(
    (select array_agg(p.parent_table || ' ' || p.partition_interval order by p.parent_table) from partman.part_config as p),
    array[
        'crypto.audit_logs 1 mon', 'crypto.eod_fetch_logs 1 mon', 'crypto.ledger_entries 1 mon',
        'crypto.ledger_transfers 1 mon', 'crypto.predictions 1 mon', 'crypto.rate_limits 1 day'
    ],
    'by month, and the rate-limit windows by day'
);

-- Partitions exist ahead, after the hourly maintenance as the worker's role.
set local role oxp_service;
select lives_ok('select crypto.partition_maintenance()', 'the worker''s role runs the maintenance');
select is(current_setting('search_path'), '"$user", public', 'and keeps its search_path (pg_partman''s would leak)');
reset role;
select is_empty(
    $$ select r.rolname, p.oid::regprocedure from pg_proc as p
       cross join (values ('anon'), ('app_user'), ('app_admin'), ('auth_service'), ('ad_network'),
           ('oxp_service'), ('oxp_operator'), ('auditor')) as r (rolname)
       where p.pronamespace = 'partman'::regnamespace and has_function_privilege(r.rolname, p.oid, 'execute') $$,
    'no role but the owner runs a pg_partman function itself'
);
select is_empty(
    $$ select r.rolname, c.oid::regclass from pg_class as c
       cross join (values ('anon'), ('app_user'), ('app_admin'), ('auth_service'), ('ad_network'),
           ('oxp_service'), ('oxp_operator'), ('auditor')) as r (rolname)
       where c.relnamespace = 'partman'::regnamespace and c.relkind in ('r', 'p')
         and has_table_privilege(r.rolname, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE') $$,
    'nor reads or changes its configuration (part_config) or templates'
);
create function pg_temp.holder(p_parent text, p_at timestamptz) returns text
language sql as $$
    select c.relname::text from pg_inherits as i join pg_class as c on c.oid = i.inhrelid
    where i.inhparent = p_parent::regclass and pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
        and (partman.show_partition_info(format('crypto.%I', c.relname), p_parent_table => p_parent)).child_start_time
        <= p_at
        and (partman.show_partition_info(format('crypto.%I', c.relname), p_parent_table => p_parent)).child_end_time
        > p_at
$$;
select isnt(pg_temp.holder('crypto.audit_logs', now() + interval '3 months'), null, 'audit_logs: 3 months ahead');
select isnt(
    pg_temp.holder('crypto.eod_fetch_logs', now() + interval '3 months'), null, 'eod_fetch_logs: 3 months ahead'
);
select isnt(pg_temp.holder('crypto.rate_limits', now() + interval '3 days'), null, 'rate_limits: 3 days ahead');

-- Rows route to their partition; out of every range, to the default one
-- (a row ahead of the premade months there would stop pg_partman making
-- them: tested below with the rate-limit windows).
select crypto.audit('test', 'test.route', 'now', '{}') as now_id \gset
select is(
    (select tableoid::regclass::text from crypto.audit_logs where id = :now_id),
    'crypto.' || pg_temp.holder('crypto.audit_logs', crypto.now()),
    'an audit row lands in its month''s partition'
);
select crypto.clock_set('2020-06-01 12:00:00+00');
select crypto.audit('test', 'test.route', 'far', '{}') as far_id \gset
select is(
    (select tableoid::regclass::text from crypto.audit_logs where id = :far_id),
    'crypto.audit_logs_p2020_06', 'a shifted clock makes its month''s partition before writing: not the default one'
);
select crypto.clock_reset();
insert into crypto.rate_limits (bucket, window_start, hits) values ('test:now', crypto.now(), 1);
select is(
    (select tableoid::regclass::text from crypto.rate_limits where bucket = 'test:now'),
    'crypto.' || pg_temp.holder('crypto.rate_limits', crypto.now()),
    'a rate-limit window lands in its day''s partition'
);

-- The audit chain is one chain across partitions.
select is(crypto.audit_seal() >= 2, true, 'rows of two partitions are sealed');
select is(
    (select count(distinct tableoid)::int from crypto.audit_logs where id in (:now_id, :far_id) and seq is not null),
    2, 'in two partitions'
);
select is(crypto.audit_verify() ->> 'ok', 'true', 'and audit_verify walks the chain through both');

-- Guards fire on the parent and on a partition named directly.
select pg_temp.holder('crypto.audit_logs', crypto.now()) as part \gset
select throws_ok('truncate crypto.audit_logs', 'OX003', 'FORBIDDEN', 'TRUNCATE of the audit log is refused');
select throws_ok(
    format('truncate crypto.%I', :'part'), 'OX003', 'FORBIDDEN', 'and of one of its partitions'
);
select throws_ok(
    format('update crypto.%I set actor = %L where id = %s', :'part', 'forged', :now_id),
    'OX003', 'FORBIDDEN', 'UPDATE of a partition is refused'
);
select throws_ok(
    format('delete from crypto.%I where id = %s', :'part', :now_id),
    'OX003', 'FORBIDDEN', 'DELETE from a partition is refused'
);
select throws_ok(
    'truncate crypto.audit_logs_default', 'OX003', 'FORBIDDEN', 'TRUNCATE of the default partition is refused'
);

-- No side door: a partition grants nothing; every role reads through the parent.
select is_empty(
    $$ select r.rolname, c.relname, p.privilege
       from pg_inherits as i join pg_class as c on c.oid = i.inhrelid
       cross join (values ('anon'), ('authenticator'), ('app_user'), ('app_admin'), ('auth_service'),
           ('ad_network'), ('oxp_service'), ('oxp_operator'), ('auditor')) as r (rolname)
       cross join (values ('SELECT'), ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE')) as p (privilege)
       where i.inhparent in (select t::regclass from unnest(crypto.partitioned_tables()) as t)
         and has_table_privilege(r.rolname, c.oid, p.privilege) $$,
    'no API, service, operator or auditor role has any privilege on a partition'
);
select is_empty(
    $$ select i.inhrelid::regclass from pg_inherits as i join pg_class as c on c.oid = i.inhrelid
       where i.inhparent in (select t::regclass from unnest(crypto.partitioned_tables()) as t)
         and (c.relowner <> 'oxp_owner'::regrole or not c.relrowsecurity) $$,
    'every partition is oxp_owner''s, with row security on'
);
select is_empty(
    $$ select i.inhrelid::regclass from pg_inherits as i join pg_class as c on c.oid = i.inhrelid
       where i.inhparent = 'crypto.rate_limits'::regclass and c.relpersistence <> 'u' $$,
    'rate-limit partitions are unlogged, as the table was'
);
set local role app_user;
select throws_ok('select crypto.partition_maintenance()', '42501', null, 'app_user cannot run the maintenance');
reset role;
set local role auditor;
select throws_ok('select crypto.partition_maintenance()', '42501', null, 'nor can the auditor');
reset role;

-- A clock shifted 8 months ahead (beyond the premade months): the audit
-- row of that month has its partition, maintenance stays clean, the chain whole.
select crypto.clock_set(now() + interval '8 months');
select crypto.audit('test', 'test.route', 'shifted', '{}') as shifted_id \gset
select is(
    (select tableoid::regclass::text from crypto.audit_logs where id = :shifted_id),
    'crypto.audit_logs_p' || to_char(now() at time zone 'UTC' + interval '8 months', 'YYYY_MM'),
    'an audit row 8 months ahead lands in its month''s partition, not the default one'
);
set local role oxp_service;
select crypto.partition_maintenance() as report \gset
reset role;
select is(:'report'::jsonb -> 'errors', '[]'::jsonb, 'maintenance after the shift has no failure');
select is(
    (select count(*)::int from crypto.alerts where rule = 'partition_maintenance_failing' and resolved_at is null),
    0, 'and opens no alert'
);
select is(crypto.audit_verify() ->> 'ok', 'true', 'the chain is whole after the shift');
select crypto.clock_reset();

-- Rows written into the default partition ahead of the premade days and
-- months (rate limits of a clock shifted > 4 days, a price-fetch log)
-- move into their own partitions before pg_partman extends the table.
update partman.part_config set premake = 10 where parent_table = 'crypto.rate_limits';
insert into crypto.rate_limits (bucket, window_start, hits) values ('test:ahead', now() + interval '6 days', 1);
insert into crypto.eod_fetch_logs (trading_day, provider, started_at, status)
values ((now() + interval '16 months')::date, 'test:ahead', now(), 'succeeded');
select is(
    (select count(*)::int from crypto.rate_limits_default) + (select count(*)::int from crypto.eod_fetch_logs_default),
    2, 'both rows wait in the default partitions'
);
set local role oxp_service;
select crypto.partition_maintenance() as report \gset
reset role;
select is(:'report'::jsonb -> 'errors', '[]'::jsonb, 'the maintenance moves them and extends both tables');
select is(
    (select tableoid::regclass::text from crypto.rate_limits where bucket = 'test:ahead'),
    'crypto.rate_limits_p' || to_char(now() at time zone 'UTC' + interval '6 days', 'YYYY_MM_DD'),
    'the rate-limit window is in its day''s partition'
);
select is(
    (select tableoid::regclass::text from crypto.eod_fetch_logs where provider = 'test:ahead'),
    'crypto.eod_fetch_logs_p' || to_char(now() at time zone 'UTC' + interval '16 months', 'YYYY_MM'),
    'the price-fetch log is in its month''s partition'
);
select is(
    pg_temp.holder('crypto.rate_limits', now() + interval '10 days') is not null,
    true, 'and pg_partman premade the days after it'
);
update partman.part_config set premake = 4 where parent_table = 'crypto.rate_limits';
delete from crypto.eod_fetch_logs where provider = 'test:ahead';

-- An audit row beyond the premade months stays in the default partition
-- (it never moves): ignore_default_data, pg_partman makes the other months.
update partman.part_config set premake = 20 where parent_table = 'crypto.audit_logs';
insert into crypto.audit_logs (at, actor, action, subject) values (now() + interval '14 months', 'test', 'test.ahead', null);
set local role oxp_service;
select crypto.partition_maintenance() as report \gset
reset role;
select is(:'report'::jsonb -> 'errors', '[]'::jsonb, 'a stray audit row in the default partition fails nothing');
select isnt(
    pg_temp.holder('crypto.audit_logs', now() + interval '18 months'), null, 'and the months after it are made'
);
update partman.part_config set premake = 4 where parent_table = 'crypto.audit_logs';

-- A partition that cannot be made (here a foreign partition overlapping the
-- fourth day ahead) fails only its table, and opens an alert until a run is clean.
select pg_temp.holder('crypto.rate_limits', now() + interval '4 days') as day4 \gset
select format('drop table crypto.%I', :'day4') \gexec
create table crypto.rate_limits_blocker partition of crypto.rate_limits
for values from (date_trunc('day', now() + interval '4 days') + interval '1 hour')
to (date_trunc('day', now() + interval '4 days') + interval '2 hours');
alter table crypto.rate_limits_blocker owner to oxp_owner;
alter table crypto.rate_limits_blocker enable row level security;
set local role oxp_service;
select crypto.partition_maintenance() as report \gset
reset role;
select is(
    (select array_agg(e ->> 'table') from jsonb_array_elements(:'report'::jsonb -> 'errors') as e),
    array['crypto.rate_limits'], 'the maintenance names the table it could not extend'
);
select is(
    (select count(*)::int from crypto.alerts where rule = 'partition_maintenance_failing' and resolved_at is null),
    1, 'and opens partition_maintenance_failing'
);
drop table crypto.rate_limits_blocker;
set local role oxp_service;
select crypto.partition_maintenance() as report \gset
reset role;
select is(:'report'::jsonb -> 'errors', '[]'::jsonb, 'once the overlap is gone the partitions are made');
select is(
    (select count(*)::int from crypto.alerts where rule = 'partition_maintenance_failing' and resolved_at is null),
    0, 'and the alert clears'
);

-- Pinned: partition bounds in UTC, pg_partman's schema not writable.
select ok(
    (select 'TimeZone=UTC' = any(p.proconfig) from pg_proc as p
     where p.oid = 'crypto.partition_maintenance(text)'::regprocedure),
    'the maintenance runs in UTC whatever the session''s time zone'
);
select ok(
    not has_schema_privilege('oxp_owner', 'partman', 'CREATE'), 'oxp_owner cannot create objects in partman'
);

-- The retention settings refuse what would drop rows still read.
select throws_ok(
    $$ select crypto.setting_set('retention.eod_fetch_logs_days', '7') $$, 'OX000', 'VALIDATION_FAILED',
    'eod_fetch_logs keeps at least a month'
);
select throws_ok(
    $$ select crypto.setting_set('retention.rate_limits_days', '0') $$, 'OX000', 'VALIDATION_FAILED',
    'rate_limits keeps at least a day'
);

-- Retention: a price-fetch month 500 days old (400 kept) is not dropped
-- here but by its archive (204_partition_archives), and is due there; with
-- the clock shifted 500 days ahead, this month's logs are not due (the
-- cutoff is on the earlier of the wall clock and crypto.now()); the audit
-- log keeps every partition.
select array_agg(c.relname::text order by c.relname) as audit_parts
from pg_inherits as i join pg_class as c on c.oid = i.inhrelid
where i.inhparent = 'crypto.audit_logs'::regclass \gset
insert into crypto.eod_fetch_logs (trading_day, provider, started_at, status)
values ((now() - interval '500 days')::date, 'test:old', now(), 'succeeded'),
(now()::date, 'test:now', now(), 'succeeded');
select pg_temp.holder('crypto.eod_fetch_logs', now()) as eod_part \gset
select crypto.clock_set(now() + interval '500 days');
set local role oxp_service;
select crypto.partition_maintenance() as report \gset
reset role;
select ok(
    not (:'report'::jsonb -> 'dropped') ? ('eod_fetch_logs_p' || to_char(now() at time zone 'UTC' - interval '500 days', 'YYYY_MM')),
    'an eod_fetch_logs month past its retention is not dropped by maintenance'
);
select is(
    (select count(*)::int from crypto.eod_fetch_logs where provider = 'test:old'), 1, 'its rows wait for the archive'
);
select ok(
    ('eod_fetch_logs_p' || to_char(now() at time zone 'UTC' - interval '500 days', 'YYYY_MM'))
    in (select d.partition from crypto.partitions_to_archive() as d),
    'and the archive has it due'
);
select ok(
    :'eod_part' not in (select d.partition from crypto.partitions_to_archive() as d),
    'a clock 500 days ahead does not make this month due'
);
select is(
    (select count(*)::int from crypto.eod_fetch_logs where provider = 'test:now'), 1, 'nor drop its rows'
);
select is_empty(
    format(
        'select unnest(%L::text []) except select c.relname::text from pg_inherits as i '
        'join pg_class as c on c.oid = i.inhrelid where i.inhparent = %L::regclass',
        :'audit_parts', 'crypto.audit_logs'
    ),
    'no audit_logs partition is ever dropped'
);
select is(crypto.audit_verify() ->> 'ok', 'true', 'and the chain is whole');

select * from finish();
rollback;
