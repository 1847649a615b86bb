-- pg_cron runs in UTC and only in the database named by cron.database_name;
-- elsewhere (a test database cloned from a template) there is nothing to do.
-- cron.schedule upserts by name, so re-applying changes nothing.
do $cron$
declare
    v_job record;
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
    for v_job in
        select * from (values
        -- The day of SPEC 2, in UTC (KST is UTC+9 all year). Each named job runs
        -- what is due at that moment and records its run under its name.
        ('oxp-open-session', '0 21 * * *', $$select crypto.schedule_tick('open_session')$$),
        ('oxp-eod-fetch', '15 21 * * *', $$select crypto.schedule_tick('eod_fetch')$$),
        ('oxp-settle', '30 21 * * *', $$select crypto.schedule_tick('settle')$$),
        -- NYSE open - 5 min is 13:25 UTC in New York summer time, 14:25 in winter.
        ('oxp-cutoff', '25 13,14 * * 1-5', $$select crypto.schedule_tick('cutoff')$$),
        -- Every minute: the catch-up after downtime, and what fixed lines cannot
        -- know (a summer close is 05:00 KST, an early close 03:00 KST).
        ('oxp-schedule-tick', '* * * * *', $$select crypto.schedule_tick()$$),
        -- 09:00 KST daily: the calendar must reach 60 days ahead.
        ('oxp-calendar-runway', '0 0 * * *', $$select crypto.check_calendar_runway()$$),
        -- Links the audit rows committed since the last run into the hash chain.
        ('oxp-audit-seal', '* * * * *', $$select crypto.audit_seal()$$),
        -- Rate-limit windows older than two hours are never read again.
        ('oxp-rate-limit-cleanup', '7 * * * *', $$select crypto.rate_limit_cleanup()$$),
        -- Partitions made ahead, old rate-limit days dropped after their
        -- retention setting.
        ('oxp-partitions', '37 * * * *', $$select crypto.partition_maintenance()$$),
        -- Price-fetch log months past their retention: the worker writes
        -- each to the archive, then drops it (06:45 KST).
        ('oxp-archive', '45 21 * * *', $$select crypto.enqueue_archive()$$),
        -- The ledger's months past retention.ledger_hot_months, to the
        -- tablespace oxp_cold where it exists (10:15 KST, between the
        -- settlement's work and the cutoff rush).
        ('oxp-cold-storage', '15 1 * * *', $$select crypto.enqueue_cold_storage()$$),
        -- Expired sign-in states, refresh families, links, idempotent requests.
        ('oxp-expire-auth', '17 * * * *', $$select crypto.expire_auth_rows()$$),
        -- 07:00 KST daily, after the day's settlement: every ledger, stock and
        -- settlement invariant; a violation leaves an alert row.
        ('oxp-integrity-check', '0 22 * * *', $$select crypto.run_integrity_check()$$),
        -- Business metrics: the open session's running figures, and the rows
        -- of days whose books changed (a settlement, a correction).
        ('oxp-metrics-rollup', '*/10 * * * *', $$select crypto.rollup_metrics()$$),
        -- The alert rules that watch state (dead jobs, the queue, the worker,
        -- participation); the checks above open theirs as they run.
        ('oxp-evaluate-alerts', '* * * * *', $$select crypto.evaluate_alerts()$$),
        -- Backups (the worker runs pgBackRest): full on Sunday, differential on
        -- the other days, at 07:30 KST, after the 07:00 integrity check and
        -- between the settlement and the day's play; the restore drill on
        -- Sunday at 09:00 KST, once Sunday's full backup is in.
        ('oxp-backup-full', '30 22 * * 6', $$select crypto.enqueue_backup('full')$$),
        ('oxp-backup-diff', '30 22 * * 0-5', $$select crypto.enqueue_backup('diff')$$),
        ('oxp-restore-drill', '0 0 * * 0', $$select crypto.enqueue_backup('verify')$$),
        ('oxp-wal-archive-check', '* * * * *', $$select crypto.check_wal_archive()$$)
        ) as j (name, schedule, command)
    loop
        perform cron.schedule_in_database(
            v_job.name, v_job.schedule, v_job.command, current_database(), 'oxp_service'
        );
    end loop;
end
$cron$;
