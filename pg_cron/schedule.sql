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
    -- Every minute: what is due at the clock (cutoffs move with DST and
    -- early closes, so a fixed daily line would be wrong half the year).
    perform cron.schedule('oxp-schedule-tick', '* * * * *', 'select crypto.schedule_tick()');
    -- 09:00 KST daily: the calendar must reach 60 days ahead.
    perform cron.schedule('oxp-calendar-runway', '0 0 * * *', 'select crypto.check_calendar_runway()');
    reset role;
end
$cron$;
