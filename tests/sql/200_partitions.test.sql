begin;
select plan(36);

-- The log tables are partitioned parents, kept by pg_partman.
select has_extension('pg_partman', 'pg_partman is installed');
select is(
    (select array_agg(c.relname::text order by c.relname) from pg_class as c
     where c.relnamespace = 'crypto'::regnamespace and c.relkind = 'p'),
    array['audit_logs', 'eod_fetch_logs', 'rate_limits'],
    'audit_logs, eod_fetch_logs and rate_limits are partitioned (the money tables are not)'
);
select is(
    (select array_agg(p.parent_table || ' ' || p.partition_interval order by p.parent_table) from partman.part_config as p),
    array['crypto.audit_logs 1 mon', 'crypto.eod_fetch_logs 1 mon', 'crypto.rate_limits 1 day'],
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
    'crypto.audit_logs_default', 'a row before the first month lands in the default partition'
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
       where i.inhparent in ('crypto.audit_logs'::regclass, 'crypto.eod_fetch_logs'::regclass,
           'crypto.rate_limits'::regclass)
         and has_table_privilege(r.rolname, c.oid, p.privilege) $$,
    'no API, service, operator or auditor role has any privilege on a partition'
);
select is_empty(
    $$ select i.inhrelid::regclass from pg_inherits as i join pg_class as c on c.oid = i.inhrelid
       where i.inhparent in ('crypto.audit_logs'::regclass, 'crypto.eod_fetch_logs'::regclass,
           'crypto.rate_limits'::regclass)
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

-- A partition that cannot be made (a row of its range already in the
-- default partition) fails only its table, and opens an alert until a run is clean.
update partman.part_config set premake = 10 where parent_table = 'crypto.rate_limits';
insert into crypto.rate_limits (bucket, window_start, hits) values ('test:ahead', now() + interval '6 days', 1);
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
delete from crypto.rate_limits where bucket = 'test:ahead';
set local role oxp_service;
select crypto.partition_maintenance() as report \gset
reset role;
select is(:'report'::jsonb -> 'errors', '[]'::jsonb, 'once the row is gone the partitions are made');
select is(
    (select count(*)::int from crypto.alerts where rule = 'partition_maintenance_failing' and resolved_at is null),
    0, 'and the alert clears'
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

-- Retention: 500 days on, the price-fetch logs of this month (400 days kept)
-- and yesterday's rate-limit windows are dropped; the audit log never is.
select count(*) as audit_parts from pg_inherits where inhparent = 'crypto.audit_logs'::regclass \gset
insert into crypto.eod_fetch_logs (trading_day, provider, started_at, status)
values (crypto.now()::date, 'test', crypto.now(), 'succeeded');
select pg_temp.holder('crypto.eod_fetch_logs', crypto.now()) as eod_part \gset
select crypto.clock_set(now() + interval '500 days');
set local role oxp_service;
select crypto.partition_maintenance() as report \gset
reset role;
select ok(
    (:'report'::jsonb -> 'dropped') ? :'eod_part', 'an eod_fetch_logs month past its retention is dropped'
);
select is(
    (select count(*)::int from crypto.eod_fetch_logs where provider = 'test'), 0, 'with its rows'
);
select is(
    (select count(*) from pg_inherits where inhparent = 'crypto.audit_logs'::regclass) >= :audit_parts,
    true, 'no audit_logs partition is ever dropped'
);
select is(crypto.audit_verify() ->> 'ok', 'true', 'and the chain is whole');

select * from finish();
rollback;
