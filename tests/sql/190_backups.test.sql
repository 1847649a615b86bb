-- Scheduled backups and the WAL archive check (issue 12): jobs for the
-- worker, each run recorded, failures alerted and cleared, and who may not.
begin;
select plan(14);

select crypto.clock_set('2026-11-28 22:30Z');

-- pg_cron's call: one job per kind and hour, whatever catches up twice.
select isnt(crypto.enqueue_backup('full'), null, 'a full backup is enqueued for the worker');
select is(crypto.enqueue_backup('full'), null, 'enqueued again within the hour: nothing new');
select results_eq(
    $$ select kind, payload ->> 'type', max_attempts from crypto.jobs where kind like 'backup.%' $$,
    $$ values ('backup.full', 'full', 3) $$,
    'the job names the kind'
);
select throws_ok($$ select crypto.enqueue_backup('everything') $$, 'OX000', 'VALIDATION_FAILED',
    'an unknown kind is refused');
select is((select count(*)::int from crypto.jobs where kind like 'backup.%'), 1, '... and enqueues nothing');

-- The worker reports: recorded in job_runs; a failure opens an alert, a success clears it.
select crypto.record_backup('diff', clock_timestamp(), false, '{"repo": "local"}', 'disk full');
select results_eq(
    $$ select job, status::text, error from crypto.job_runs where job like 'backup.%' $$,
    $$ values ('backup.diff', 'failed', 'disk full') $$,
    'a failed backup is recorded'
);
select results_eq(
    $$ select rule, subject, severity::text, details ->> 'error' from crypto.alerts
       where rule = 'backup_failed' and resolved_at is null $$,
    $$ values ('backup_failed', 'diff', 'critical', 'disk full') $$,
    '... and opens a critical alert for that kind'
);
select crypto.record_backup('full', clock_timestamp(), true, '{}', null);
select is((select count(*)::int from crypto.alerts where rule = 'backup_failed' and resolved_at is null), 1,
    'a full backup succeeding leaves the differential''s alert open');
select crypto.record_backup('diff', clock_timestamp(), true, '{}', null);
select results_eq(
    $$ select resolution from crypto.alerts where rule = 'backup_failed' $$,
    $$ values ('cleared') $$,
    'the next differential succeeding clears it'
);
select throws_ok($$ select crypto.record_backup('full', null, true, '{}', null) $$, 'OX000', 'VALIDATION_FAILED',
    'a report without a start is refused');

-- This cluster archives nothing: the check says so and opens nothing.
select is(crypto.check_wal_archive() ->> 'failing', 'false', 'no archive failure where archiving is off');
select is((select count(*)::int from crypto.alerts where rule = 'wal_archive_failing'), 0, '... and no alert');

-- Who may not: players, admins through the API, anon.
set local role app_user;
select throws_ok($$ select crypto.enqueue_backup('full') $$, '42501', null, 'a player cannot enqueue a backup');
reset role;
set local role anon;
select throws_ok($$ select crypto.record_backup('full', now(), true, '{}', null) $$, '42501', null,
    'anon cannot report a backup');
reset role;

select * from finish();
rollback;
