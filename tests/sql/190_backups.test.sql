-- Scheduled backups and the WAL archive check (issue 12): jobs for the
-- worker, each run recorded, failures alerted and cleared, and who may not.
begin;
select plan(23);

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

-- Late backups (evaluated with the other alert rules). Scheduled from a
-- first job on 2026-11-28 (above); nothing has succeeded since the runs
-- recorded above, stamped with the real time: forget those, keep one full
-- backup that succeeded on 2026-11-28.
delete from crypto.job_runs where job like 'backup.%';
delete from crypto.alerts where rule like 'backup%';
insert into crypto.job_runs (job, started_at, finished_at, status)
values ('backup.full', '2026-11-28 22:30Z', '2026-11-28 22:40Z', 'succeeded');
select is(crypto.check_backup_late() ->> 'late_any', 'false', 'a day after a full backup: not late');
select crypto.clock_set('2026-12-01 22:41Z');
select crypto.evaluate_alerts();
select results_eq(
    $$ select subject, severity::text from crypto.alerts where rule = 'backup_late' and resolved_at is null $$,
    $$ values ('any', 'critical') $$,
    'no backup for over backups.late_any_days (2): evaluate_alerts opens backup_late for any'
);
insert into crypto.job_runs (job, started_at, finished_at, status)
values ('backup.diff', '2026-12-01 22:30Z', '2026-12-01 22:35Z', 'failed');
select crypto.evaluate_alerts();
select is((select count(*)::int from crypto.alerts where rule = 'backup_late' and resolved_at is null), 1,
    'a failed differential does not count as a backup');
insert into crypto.job_runs (job, started_at, finished_at, status)
values ('backup.diff', '2026-12-01 22:50Z', '2026-12-01 22:55Z', 'succeeded');
select crypto.evaluate_alerts();
select results_eq(
    $$ select subject, resolution from crypto.alerts where rule = 'backup_late' $$,
    $$ values ('any', 'cleared') $$,
    'a differential succeeding clears it'
);
select crypto.clock_set('2026-12-06 22:00Z');
insert into crypto.job_runs (job, started_at, finished_at, status)
values ('backup.diff', '2026-12-06 21:30Z', '2026-12-06 21:50Z', 'succeeded');
select crypto.evaluate_alerts();
select is((select count(*)::int from crypto.alerts where rule = 'backup_late' and resolved_at is null), 0,
    'within eight days of the full backup and two of a differential: nothing late');
select crypto.clock_set('2026-12-06 23:00Z');
select crypto.evaluate_alerts();
select results_eq(
    $$ select subject from crypto.alerts where rule = 'backup_late' and resolved_at is null $$,
    $$ values ('full') $$,
    'no full backup for over backups.late_full_days (8), differentials or not: backup_late for full'
);
select is(crypto.setting_set('backups.late_full_days', '14') ->> 'value', '14', 'the window is a setting');
select crypto.evaluate_alerts();
select is((select count(*)::int from crypto.alerts where rule = 'backup_late' and resolved_at is null), 0,
    '... and a longer one clears it');

-- Never scheduled (no backup job ever): nothing to be late.
delete from crypto.job_runs where job like 'backup.%';
delete from crypto.jobs where kind like 'backup.%';
select is(crypto.check_backup_late() ->> 'scheduled', 'false', 'without scheduled backups there is nothing late');

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
