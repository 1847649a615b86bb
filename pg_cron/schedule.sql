-- pg_cron runs in UTC and only in the database named by cron.database_name;
-- elsewhere (a test database cloned from a template) there is nothing to do.
-- cron.schedule upserts by name, so re-applying changes nothing.
do $cron$
begin
    if current_setting('cron.database_name', true) is distinct from current_database() then
        raise notice 'pg_cron belongs to database %, not %: no jobs installed',
            current_setting('cron.database_name', true), current_database();
        return;
    end if;
    create extension if not exists pg_cron;
    grant usage on schema cron to oxp_service;
    grant execute on function cron.schedule(text, text, text), cron.unschedule(name) to oxp_service;
    -- Jobs run as the service role, which is also who owns them: pg_cron
    -- upserts a named job per (name, owner).
    set local role oxp_service;
    -- The day of SPEC 2, in UTC (KST is UTC+9 all year). Each named job runs
    -- what is due at that moment and records its run under its name.
    perform cron.schedule('oxp-open-session', '0 21 * * *', $$select crypto.schedule_tick('open_session')$$);
    perform cron.schedule('oxp-eod-fetch', '15 21 * * *', $$select crypto.schedule_tick('eod_fetch')$$);
    perform cron.schedule('oxp-settle', '30 21 * * *', $$select crypto.schedule_tick('settle')$$);
    -- NYSE open - 5 min is 13:25 UTC in New York summer time, 14:25 in winter.
    perform cron.schedule('oxp-cutoff', '25 13,14 * * 1-5', $$select crypto.schedule_tick('cutoff')$$);
    -- Every minute: the catch-up after downtime, and what fixed lines cannot
    -- know (a summer close is 05:00 KST, an early close 03:00 KST).
    perform cron.schedule('oxp-schedule-tick', '* * * * *', 'select crypto.schedule_tick()');
    -- 09:00 KST daily: the calendar must reach 60 days ahead.
    perform cron.schedule('oxp-calendar-runway', '0 0 * * *', 'select crypto.check_calendar_runway()');
    -- Links the audit rows committed since the last run into the hash chain.
    perform cron.schedule('oxp-audit-seal', '* * * * *', 'select crypto.audit_seal()');
    -- Rate-limit windows older than two hours are never read again.
    perform cron.schedule('oxp-rate-limit-cleanup', '7 * * * *', 'select crypto.rate_limit_cleanup()');
    -- Expired sign-in states, refresh families, links, idempotent requests.
    perform cron.schedule('oxp-expire-auth', '17 * * * *', 'select crypto.expire_auth_rows()');
    -- 07:00 KST daily, after the day's settlement: every ledger, stock and
    -- settlement invariant; a violation leaves an alert row.
    perform cron.schedule('oxp-integrity-check', '0 22 * * *', 'select crypto.run_integrity_check()');
    -- Business metrics: the open session's running figures, and the rows
    -- of days whose books changed (a settlement, a correction).
    perform cron.schedule('oxp-metrics-rollup', '*/10 * * * *', 'select crypto.rollup_metrics()');
    -- The alert rules that watch state (dead jobs, the queue, the worker,
    -- participation); the checks above open theirs as they run.
    perform cron.schedule('oxp-evaluate-alerts', '* * * * *', 'select crypto.evaluate_alerts()');
    -- Backups (the worker runs pgBackRest): full on Sunday, differential on
    -- the other days, at 07:30 KST, after the 07:00 integrity check and
    -- between the settlement and the day's play; the restore drill on
    -- Sunday at 09:00 KST, once Sunday's full backup is in.
    perform cron.schedule('oxp-backup-full', '30 22 * * 6', $$select crypto.enqueue_backup('full')$$);
    perform cron.schedule('oxp-backup-diff', '30 22 * * 0-5', $$select crypto.enqueue_backup('diff')$$);
    perform cron.schedule('oxp-restore-drill', '0 0 * * 0', $$select crypto.enqueue_backup('verify')$$);
    perform cron.schedule('oxp-wal-archive-check', '* * * * *', 'select crypto.check_wal_archive()');
    reset role;
end
$cron$;
