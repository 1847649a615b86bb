-- crypto.iso_day / crypto.eod_fetch_key: a day inside a key, an audit
-- subject or an alert subject is ISO text whatever the caller's DateStyle,
-- so what one session writes another finds (no `set datestyle` needed).
begin;
select plan(8);

set local datestyle = 'SQL, DMY';
select is('2026-11-24'::date::text, '24/11/2026', 'under this DateStyle a day cast to text is not ISO');
select is(crypto.iso_day('2026-11-24'), '2026-11-24', 'crypto.iso_day is');
select is(crypto.iso_day(null), null, 'no day, no text');
select is(crypto.eod_fetch_key('2026-11-24'), 'eod.fetch:2026-11-24', 'the fetch job''s key names the day in ISO');

-- The tick, the session moves and the fetch read all write and find ISO.
select tests.load_calendar();
select crypto.clock_set('2026-11-24 09:00:00+09');
select crypto.schedule_tick();
select crypto.clock_set('2026-11-25 06:15:00+09');
select crypto.schedule_tick();
select is(
    (select dedupe_key from crypto.jobs where kind = 'eod.fetch'), 'eod.fetch:2026-11-24',
    'the tick enqueues the day''s fetch under its ISO key'
);
select crypto.schedule_tick();
select is((select count(*)::int from crypto.jobs where kind = 'eod.fetch'), 1, '... and a second tick finds it');
select is(
    (crypto.eod_day('2026-11-24') #>> '{fetch_job,id}')::bigint, (select id from crypto.jobs where kind = 'eod.fetch'),
    'oxp eod show finds the job by the same key'
);
select results_eq(
    $$ select distinct subject from crypto.audit_logs where action like 'session.%' order by 1 $$,
    $$ values ('2026-11-24') $$,
    'session moves are audited under the ISO day'
);

select * from finish();
rollback;
