begin;
select plan(3);

select results_eq(
    $$ select schedule, command, username::text from cron.job where jobname = 'oxp-schedule-tick' $$,
    $$ values ('* * * * *'::text, 'select crypto.schedule_tick()'::text, 'oxp_service') $$,
    'the schedule tick runs every minute (UTC), as the service role'
);
select is(
    (select database::text from cron.job where jobname = 'oxp-schedule-tick'), current_database()::text,
    'in this database'
);
select is(
    (select active from cron.job where jobname = 'oxp-schedule-tick'), true, 'and is active'
);

select * from finish();
rollback;
