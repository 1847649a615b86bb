begin;
select plan(4);

select tests.load_calendar();  -- ends on 30 November 2026
select crypto.clock_set('2026-09-30 12:00:00+09');
select is(crypto.check_calendar_runway()::text, 'ok', 'two months of calendar ahead is healthy');
select crypto.clock_set('2026-10-03 12:00:00+09');
select is(crypto.check_calendar_runway()::text, 'alert', 'less than 60 days left raises an alert');
select is(
    (select details ->> 'days_left' from crypto.system_health order by id desc limit 1), '59',
    'the alert counts days from New York''s date (still 2 October there)'
);
select results_eq(
    $$ select schedule, command from cron.job where jobname = 'oxp-calendar-runway' $$,
    $$ values ('0 0 * * *'::text, 'select crypto.check_calendar_runway()'::text) $$,
    'pg_cron checks it daily at 09:00 KST (00:00 UTC)'
);

select * from finish();
rollback;
