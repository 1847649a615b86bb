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
    -- Only the operator schedules; the worker's role runs the jobs and
    -- cannot add one. The owner of the definer functions reads the job list
    -- (api.admin_health).
    grant usage on schema cron to oxp_operator, oxp_owner;
    grant select on cron.job, cron.job_run_details to oxp_owner;
    grant execute on function cron.schedule(text, text, text), cron.unschedule(name) to oxp_operator;
    revoke execute on function cron.schedule(text, text, text), cron.unschedule(name) from oxp_service;
    revoke usage on schema cron from oxp_service;
    -- Jobs run as the service role, which is also who owns them: pg_cron
    -- upserts a named job per (name, owner), and the migrator (a superuser)
    -- may schedule for another role.
    -- The day of SPEC 2, in UTC (KST is UTC+9 all year). Each named job runs
    -- what is due at that moment and records its run under its name.
    perform cron.schedule_in_database(
        'oxp-open-session', '0 21 * * *', $$select crypto.schedule_tick('open_session')$$, current_database(), 'oxp_service'
    );
    perform cron.schedule_in_database(
        'oxp-eod-fetch', '15 21 * * *', $$select crypto.schedule_tick('eod_fetch')$$, current_database(), 'oxp_service'
    );
    perform cron.schedule_in_database(
        'oxp-settle', '30 21 * * *', $$select crypto.schedule_tick('settle')$$, current_database(), 'oxp_service'
    );
    -- NYSE open - 5 min is 13:25 UTC in New York summer time, 14:25 in winter.
    perform cron.schedule_in_database(
        'oxp-cutoff', '25 13,14 * * 1-5', $$select crypto.schedule_tick('cutoff')$$, current_database(), 'oxp_service'
    );
    -- Every minute: the catch-up after downtime, and what fixed lines cannot
    -- know (a summer close is 05:00 KST, an early close 03:00 KST).
    perform cron.schedule_in_database(
        'oxp-schedule-tick', '* * * * *', 'select crypto.schedule_tick()', current_database(), 'oxp_service'
    );
    -- 09:00 KST daily: the calendar must reach 60 days ahead.
    perform cron.schedule_in_database(
        'oxp-calendar-runway', '0 0 * * *', 'select crypto.check_calendar_runway()', current_database(), 'oxp_service'
    );
    -- Links the audit rows committed since the last run into the hash chain.
    perform cron.schedule_in_database(
        'oxp-audit-seal', '* * * * *', 'select crypto.audit_seal()', current_database(), 'oxp_service'
    );
    -- Rate-limit windows older than two hours are never read again.
    perform cron.schedule_in_database(
        'oxp-rate-limit-cleanup', '7 * * * *', 'select crypto.rate_limit_cleanup()', current_database(), 'oxp_service'
    );
    -- Expired sign-in states, refresh families, links, idempotent requests.
    perform cron.schedule_in_database(
        'oxp-expire-auth', '17 * * * *', 'select crypto.expire_auth_rows()', current_database(), 'oxp_service'
    );
    -- 07:00 KST daily, after the day's settlement: every ledger, stock and
    -- settlement invariant; a violation leaves an alert row.
    perform cron.schedule_in_database(
        'oxp-integrity-check', '0 22 * * *', 'select crypto.run_integrity_check()', current_database(), 'oxp_service'
    );
    -- Business metrics: the open session's running figures, and the rows
    -- of days whose books changed (a settlement, a correction).
    perform cron.schedule_in_database(
        'oxp-metrics-rollup', '*/10 * * * *', 'select crypto.rollup_metrics()', current_database(), 'oxp_service'
    );
    -- The alert rules that watch state (dead jobs, the queue, the worker,
    -- participation); the checks above open theirs as they run.
    perform cron.schedule_in_database(
        'oxp-evaluate-alerts', '* * * * *', 'select crypto.evaluate_alerts()', current_database(), 'oxp_service'
    );
    -- Backups (the worker runs pgBackRest): full on Sunday, differential on
    -- the other days, at 07:30 KST, after the 07:00 integrity check and
    -- between the settlement and the day's play; the restore drill on
    -- Sunday at 09:00 KST, once Sunday's full backup is in.
    perform cron.schedule_in_database(
        'oxp-backup-full', '30 22 * * 6', $$select crypto.enqueue_backup('full')$$, current_database(), 'oxp_service'
    );
    perform cron.schedule_in_database(
        'oxp-backup-diff', '30 22 * * 0-5', $$select crypto.enqueue_backup('diff')$$, current_database(), 'oxp_service'
    );
    perform cron.schedule_in_database(
        'oxp-restore-drill', '0 0 * * 0', $$select crypto.enqueue_backup('verify')$$, current_database(), 'oxp_service'
    );
    perform cron.schedule_in_database(
        'oxp-wal-archive-check', '* * * * *', 'select crypto.check_wal_archive()', current_database(), 'oxp_service'
    );
end
$cron$;
