begin;
select plan(17);

select tests.load_calendar();

select throws_ok(
    $$ select crypto.open_session('2026-11-26') $$, 'OX108', 'NOT_A_TRADING_DAY', 'Thanksgiving has no session'
);
select crypto.clock_set('2026-11-23 22:00Z');
select is((crypto.open_session('2026-11-24')).phase::text, 'OPEN', 'a session opens');
select is((crypto.open_session('2026-11-24')).phase::text, 'OPEN', 'opening it again changes nothing');
select is(
    (select count(*)::int from crypto.active_universe where trading_day = '2026-11-24'), 10,
    'the first session gets the ten default symbols'
);
select throws_ok(
    $$ select crypto.open_session('2026-11-25') $$, 'OX106', 'INVALID_TRANSITION', 'only one session is open'
);
select throws_ok(
    $$ select crypto.finish_settling('2026-11-24') $$, 'OX106', 'INVALID_TRANSITION', 'OPEN cannot jump to SETTLED'
);
select is((crypto.close_session('2026-11-24')).phase::text, 'CLOSED', 'OPEN -> CLOSED');
select is((crypto.close_session('2026-11-24')).phase::text, 'CLOSED', 'closing again changes nothing');

select crypto.set_universe('2026-11-25', array['AAPL', 'MSFT']);
select is((crypto.open_session('2026-11-25')).phase::text, 'OPEN', 'the next session opens');
select is(
    (select array_agg(symbol::text order by position) from crypto.active_universe where trading_day = '2026-11-25'),
    array['AAPL', 'MSFT'], 'an admin-set universe wins over the copy'
);
select crypto.close_session('2026-11-25');

-- The tick. Friday's session (after Thanksgiving) opens at 06:00 KST on
-- Thursday, when New York has closed Wednesday; Monday's opens on Saturday.
select crypto.clock_set('2026-11-26 05:59:59+09');
select crypto.schedule_tick();
select is(
    (select count(*)::int from crypto.session_control where trading_day = '2026-11-27'), 0,
    'before Thursday 06:00 KST Friday''s session does not exist'
);
select crypto.clock_set('2026-11-26 06:00:00+09');
select crypto.schedule_tick();
select is(
    (select phase::text from crypto.session_control where trading_day = '2026-11-27'), 'OPEN',
    'at 06:00 KST Thursday Friday''s session opens'
);
select crypto.clock_set('2026-11-28 06:00:00+09');
select crypto.schedule_tick();
select results_eq(
    $$ select trading_day, phase::text from crypto.session_control where trading_day >= '2026-11-27' order by 1 $$,
    $$ values ('2026-11-27'::date, 'SETTLING'), ('2026-11-30'::date, 'OPEN') $$,
    'a tick after Friday''s early close closes it and asks for its prices; Monday opens'
);
select is(
    (select array_agg(symbol::text order by position) from crypto.active_universe where trading_day = '2026-11-30'),
    array['AAPL', 'MSFT'], 'a new session copies the previous universe'
);

-- The cutoff follows New York: 23:25 KST in winter, 22:25 KST in summer.
select is(
    crypto.kst((select cutoff_at from crypto.trading_calendar where trading_day = '2026-11-30')),
    '2026-11-30T23:25:00+09:00', 'winter cutoff is 23:25 KST'
);
select is(
    crypto.kst((select cutoff_at from crypto.trading_calendar where trading_day = '2026-03-09')),
    '2026-03-09T22:25:00+09:00', 'summer-time cutoff is 22:25 KST'
);
select is(
    (select status::text from crypto.job_runs order by id desc limit 1), 'succeeded', 'each tick is recorded'
);

select * from finish();
rollback;
