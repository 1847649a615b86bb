begin;
select plan(4);

select results_eq(
    $$ select jobname::text collate "default", schedule, command from cron.job where jobname like 'oxp-%' order by jobname $$,
    $$ values
        ('oxp-archive', '45 21 * * *', 'select crypto.enqueue_archive()'),
        ('oxp-audit-seal', '* * * * *', 'select crypto.audit_seal()'),
        ('oxp-backup-diff', '30 22 * * 0-5', 'select crypto.enqueue_backup(''diff'')'),
        ('oxp-backup-full', '30 22 * * 6', 'select crypto.enqueue_backup(''full'')'),
        ('oxp-calendar-runway', '0 0 * * *', 'select crypto.check_calendar_runway()'),
        ('oxp-cold-storage', '15 1 * * *', 'select crypto.enqueue_cold_storage()'),
        ('oxp-cutoff', '25 13,14 * * 1-5', 'select crypto.schedule_tick(''cutoff'')'),
        ('oxp-eod-fetch', '15 21 * * *', 'select crypto.schedule_tick(''eod_fetch'')'),
        ('oxp-evaluate-alerts', '* * * * *', 'select crypto.evaluate_alerts()'),
        ('oxp-expire-auth', '17 * * * *', 'select crypto.expire_auth_rows()'),
        ('oxp-integrity-check', '0 22 * * *', 'select crypto.run_integrity_check()'),
        ('oxp-metrics-rollup', '*/10 * * * *', 'select crypto.rollup_metrics()'),
        ('oxp-open-session', '0 21 * * *', 'select crypto.schedule_tick(''open_session'')'),
        ('oxp-partitions', '37 * * * *', 'select crypto.partition_maintenance()'),
        ('oxp-rate-limit-cleanup', '7 * * * *', 'select crypto.rate_limit_cleanup()'),
        ('oxp-restore-drill', '0 0 * * 0', 'select crypto.enqueue_backup(''verify'')'),
        ('oxp-schedule-tick', '* * * * *', 'select crypto.schedule_tick()'),
        ('oxp-settle', '30 21 * * *', 'select crypto.schedule_tick(''settle'')'),
        ('oxp-wal-archive-check', '* * * * *', 'select crypto.check_wal_archive()')
    $$,
    'the KST day as UTC cron lines: 06:00, 06:15, 06:30, 06:45 archive, the cutoff, 07:00, 07:30 backups, 09:00, 10:15 cold storage, and the minute catch-up'
);
select is(
    (select count(*)::int from cron.job where jobname like 'oxp-%' and (username <> 'oxp_service' or not active
        or database <> current_database())),
    0, 'every job runs active, in this database, as the service role'
);

select tests.load_calendar();
select crypto.clock_set('2026-11-24 06:00:00+09');
select crypto.schedule_tick('open_session');
select is(
    (select job from crypto.job_runs order by id desc limit 1), 'open_session', 'a named job records its run'
);
select is(
    (select phase::text from crypto.session_control where trading_day = '2026-11-24'), 'OPEN',
    'and does what is due'
);

select * from finish();
rollback;
