begin;
select plan(33);

-- The price-fetch log's months past their retention go to the archive
-- (sql/0043, plpgsql/partition_archive.sql): the worker reads a month under
-- a lock, writes and reads back its file, and in that transaction the file
-- is recorded and the month dropped, or nothing changes.
select crypto.partition_ensure(t, now() - interval '500 days', 1)
from unnest(array['crypto.eod_fetch_logs', 'crypto.audit_logs', 'crypto.predictions', 'crypto.ledger_entries']) as t;
insert into crypto.eod_fetch_logs (trading_day, provider, started_at, status, rows)
select (now() - interval '500 days')::date, 'test:old', now(), 'succeeded', g from generate_series(1, 3) as g;
insert into crypto.eod_fetch_logs (trading_day, provider, started_at, status)
values (now()::date, 'test:now', now(), 'succeeded');
select 'eod_fetch_logs_p' || to_char(now() at time zone 'UTC' - interval '500 days', 'YYYY_MM') as old_part,
    'eod_fetch_logs_p' || to_char(now() at time zone 'UTC', 'YYYY_MM') as now_part,
    'audit_logs_p' || to_char(now() at time zone 'UTC' - interval '500 days', 'YYYY_MM') as audit_part,
    'ledger_entries_p' || to_char(now() at time zone 'UTC' - interval '500 days', 'YYYY_MM') as money_part,
    repeat('ab', 32) as sha \gset
select (select tableoid::regclass::text from crypto.eod_fetch_logs where provider = 'test:old' limit 1)
    = 'crypto.' || :'old_part' as placed \gset
select ok(:'placed', 'the old rows are in their month''s partition');

select results_eq(
    $$ select d.parent, d.partition from crypto.partitions_to_archive() as d $$,
    format($$ values ('crypto.eod_fetch_logs', %L) $$, :'old_part'),
    'the month past its 400 days is due, alone (this month is not, nor any audit or money month)'
);
select ok(
    (select d.range_to <= now() - interval '400 days' and d.range_from = date_trunc('month', d.range_to - interval '1 day')
     from crypto.partitions_to_archive() as d),
    'with its month''s range, wholly before the retention'
);
select is(
    (select count(distinct x)::int from (select crypto.enqueue_archive() as x from generate_series(1, 2)) as s), 1,
    'a month due enqueues the day''s job, once'
);
select crypto.setting_set('retention.eod_fetch_logs_days', '36500');
select is_empty($$ select * from crypto.partitions_to_archive() $$, 'a longer retention makes nothing due');
select crypto.setting_set('retention.eod_fetch_logs_days', '400');

-- Who may: the worker (oxp_service, and the operator, its member); not a
-- player, an admin or the auditor, who may read the record.
set local role app_user;
select throws_ok(format($$ select crypto.partition_archive_rows(%L) $$, :'old_part'), '42501', null,
    'a player cannot read a month out');
select throws_ok(format($$ select crypto.partition_archived(%L, 3, %L, 'x') $$, :'old_part', :'sha'), '42501', null,
    'nor drop it');
set local role auditor;
select throws_ok(format($$ select crypto.partition_archived(%L, 3, %L, 'x') $$, :'old_part', :'sha'), '42501', null,
    'nor the auditor');
select lives_ok($$ select * from crypto.partition_archives $$, 'who reads the archive''s record');
reset role;
select ok(
    has_function_privilege('oxp_operator', 'crypto.partition_archived(text, bigint, text, text)', 'execute')
    and has_function_privilege('oxp_operator', 'crypto.partition_archive_rows(text)', 'execute'),
    'an operator may run the archive (a member of oxp_service), still only holding its job'
);

set local role oxp_service;
select throws_ok(format($$ select crypto.partition_archive_rows(%L) $$, :'now_part'), 'OX178', 'PARTITION_NOT_DUE',
    'this month is not read out');
select throws_ok(format($$ select crypto.partition_archive_rows(%L) $$, :'audit_part'), 'OX178',
    'PARTITION_NOT_DUE', 'nor an audit month as old');
select throws_ok(format($$ select crypto.partition_archive_rows(%L) $$, :'money_part'), 'OX178',
    'PARTITION_NOT_DUE', 'nor a ledger month as old');
select throws_ok(
    $$ select crypto.partition_archive_rows('ledger_entries_p2020_01; drop table crypto.users') $$, 'OX178',
    'PARTITION_NOT_DUE', 'nor a name that is no due partition'
);
reset role;
-- The worker's claim on a partition.archive job (crypto.claim_job sets it).
insert into crypto.jobs (kind, status, attempts, run_after, locked_at, claimed_pid, created_at)
values ('partition.archive', 'running', 1, now(), now(), pg_backend_pid() + 1, now())
returning id as job \gset
set local role oxp_service;
select throws_ok(
    format($$ select crypto.partition_archived(%L, 3, %L, '/archive/x.jsonl.gz') $$, :'old_part', :'sha'),
    'OX265', 'JOB_LEASE_LOST', 'nothing is archived but by the worker holding the job'
);
reset role;
update crypto.jobs set claimed_pid = pg_backend_pid() where id = :job;
set local role oxp_service;
select throws_ok(
    format($$ select crypto.partition_archived(%L, 3, %L, '/archive/x.jsonl.gz') $$, :'old_part', :'sha'),
    'OX179', 'ARCHIVE_MISMATCH', 'a month not read in this transaction is not dropped'
);
select set_config('oxp.archive_read', :'old_part', true) as forged \gset
select throws_ok(
    format($$ select crypto.partition_archived(%L, 3, %L, '/archive/x.jsonl.gz') $$, :'old_part', :'sha'),
    'OX179', 'ARCHIVE_MISMATCH', 'nor one said read but not locked'
);

-- The read: every row, as JSON, in id order; the month's writers held off.
select results_eq(
    format($$ select (r ->> 'rows')::int from crypto.partition_archive_rows(%L) as r $$, :'old_part'),
    $$ values (1), (2), (3) $$,
    'the month''s rows, in id order'
);
select encode(sha256(convert_to(string_agg(r::text || E'\n', '' order by (r ->> 'id')::bigint), 'UTF8')), 'hex')
    as real_sha
from crypto.partition_archive_rows(:'old_part') as r \gset
select ok(
    exists (
        select from pg_locks as l
        where l.pid = pg_backend_pid() and l.mode = 'ShareLock' and l.granted
            and l.relation = ('crypto.' || :'old_part')::regclass
    ),
    'its writers wait until the transaction ends'
);
select is(
    current_setting('idle_in_transaction_session_timeout'), '1min',
    'and no longer than a minute for a worker that stops answering'
);
select throws_ok(
    format($$ select crypto.partition_archived(%L, 2, %L, '/archive/x.jsonl.gz') $$, :'old_part', :'sha'),
    'OX179', 'ARCHIVE_MISMATCH', 'an archive of fewer rows than the month holds is refused'
);
select throws_ok(
    format($$ select crypto.partition_archived(%L, 3, %L, '/archive/x.jsonl.gz') $$, :'old_part', :'sha'),
    'OX179', 'ARCHIVE_MISMATCH', 'as is one of other content (its checksum)'
);
select throws_ok(
    format($$ select crypto.partition_archived(%L, 3, 'ABC', '/archive/x.jsonl.gz') $$, :'old_part'),
    'OX000', 'VALIDATION_FAILED', 'as is a checksum that is not SHA-256 hex'
);
select throws_ok(
    format($$ select crypto.partition_archived(%L, 3, %L, '') $$, :'old_part', :'sha'),
    'OX000', 'VALIDATION_FAILED', 'or no location'
);
select is(
    (select count(*)::int from crypto.eod_fetch_logs where provider = 'test:old'), 3, 'a refusal changes nothing'
);

select crypto.partition_archived(:'old_part', 3, :'real_sha', '/archive/eod_fetch_logs/x.jsonl.gz') as done \gset
select is(
    current_setting('idle_in_transaction_session_timeout'), '2s',
    'the parent, locked until the commit, for 2 s of a stalled worker at most'
);
reset role;
select is(
    (select (p.parent, p.rows, p.sha256, p.location, p.range_to > p.range_from)::text
     from crypto.partition_archives as p where p.partition = :'old_part'),
    ('crypto.eod_fetch_logs', 3, :'real_sha', '/archive/eod_fetch_logs/x.jsonl.gz', true)::text,
    'the file is recorded: rows, checksum, location, range'
);
select is(to_regclass('crypto.' || :'old_part'), null, 'and the month dropped');
select is(
    (select count(*)::int from crypto.eod_fetch_logs where provider in ('test:old', 'test:now')), 1,
    'with its rows only'
);
select is(
    (select a.details ->> 'sha256' from crypto.audit_logs as a
     where a.action = 'partition.archived' and a.subject = :'old_part'),
    :'real_sha', 'audited'
);
set local role oxp_service;
select throws_ok(
    format($$ select crypto.partition_archived(%L, 3, %L, '/archive/x.jsonl.gz') $$, :'old_part', :'sha'),
    'OX178', 'PARTITION_NOT_DUE', 'a month archived is not archived again'
);
reset role;
select throws_ok(
    $$ update crypto.partition_archives set rows = 0 $$, 'OX003', 'FORBIDDEN', 'the record is append-only'
);
select is(crypto.enqueue_archive(), null, 'no job once nothing is due');

select * from finish();
rollback;
