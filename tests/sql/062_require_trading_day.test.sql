-- crypto.require_trading_day: the one NOT_A_TRADING_DAY refusal, used by
-- opening a session, setting a universe, the price fetch plan and metrics.
begin;
select plan(8);

select tests.load_calendar();

select is((crypto.require_trading_day('2026-11-27')).early_close, true, 'a trading day''s calendar row is returned');
select throws_ok($$ select crypto.require_trading_day('2026-11-26') $$, 'OX108', 'NOT_A_TRADING_DAY',
    'Thanksgiving is not a trading day');
select throws_ok($$ select crypto.require_trading_day(null) $$, 'OX108', 'NOT_A_TRADING_DAY', 'nor is no day');

set local datestyle = 'SQL, DMY';
select is(tests.error_detail($$ select crypto.require_trading_day('2026-11-28') $$),
    '2026-11-28 is not a trading day in the calendar', 'the detail names the day in ISO whatever the DateStyle');
reset datestyle;

select throws_ok($$ select crypto.open_session('2026-11-26') $$, 'OX108', 'NOT_A_TRADING_DAY', 'open_session');
select throws_ok($$ select crypto.set_universe('2026-11-26', array['AAPL']) $$, 'OX108', 'NOT_A_TRADING_DAY',
    'set_universe');
select throws_ok($$ select crypto.eod_fetch_plan('2026-11-26') $$, 'OX108', 'NOT_A_TRADING_DAY', 'eod_fetch_plan');
select throws_ok($$ select crypto.compute_daily_metrics('2026-11-26') $$, 'OX108', 'NOT_A_TRADING_DAY',
    'compute_daily_metrics');

select * from finish();
rollback;
