-- crypto.schedule_tick runs each step in a subtransaction of its own: a
-- settlement that fails does not undo the same tick's close and open, the
-- failure is recorded in job_runs and raised as an alert row, and the next
-- tick retries it.
begin;
select plan(7);

select tests.load_calendar();
select crypto.clock_set('2026-11-24 09:00:00+09');
select crypto.schedule_tick();

-- Every close of Monday and Tuesday is in by 06:15 KST Wednesday.
select crypto.clock_set('2026-11-25 06:15:00+09');
select crypto.load_eod_prices(jsonb_agg(jsonb_build_object('trading_day', d, 'symbol', s, 'close', 100)), 'test')
from unnest(array['2026-11-23', '2026-11-24']) as d
cross join unnest(array['AAPL', 'MSFT', 'GOOGL', 'AMZN', 'NVDA', 'META', 'TSLA', 'AVGO', 'NFLX', 'AMD']) as s;

-- A settlement that fails (here: a trigger that refuses its rows).
create function pg_temp.refuse() returns trigger language plpgsql as $$
begin
    raise exception 'settlement store unavailable';
end
$$;
create trigger refuse_settlements before insert on crypto.settlements
for each row execute function pg_temp.refuse();

select is(
    (crypto.schedule_tick() -> 'failed' -> 0 ->> 'step'), 'settle',
    'one tick: the settlement step fails'
);
select results_eq(
    $$ select trading_day::text, phase::text from crypto.session_control order by 1 $$,
    $$ values ('2026-11-24', 'CLOSED'), ('2026-11-25', 'OPEN') $$,
    'but its close of Tuesday and opening of Wednesday stand'
);
select results_eq(
    $$ select status::text, error like '%settlement store unavailable%' from crypto.job_runs
       where job = 'schedule_tick' order by id desc limit 1 $$,
    $$ values ('failed', true) $$,
    'the run is recorded as failed, with the error'
);
select is(
    (select details -> 'failed' -> 0 ->> 'trading_day' from crypto.system_health
     where check_name = 'schedule_tick' and status = 'alert'),
    '2026-11-24', 'and an alert names the day'
);

select crypto.schedule_tick();
select is(
    (select count(*)::int from crypto.system_health where check_name = 'schedule_tick'), 1,
    'the same failure a minute later is recorded in its run but alerts once'
);

drop trigger refuse_settlements on crypto.settlements;
select is(crypto.schedule_tick() -> 'done', '[{"settled": "2026-11-24"}]', 'the next tick retries and settles');
select is(
    (select status::text from crypto.job_runs where job = 'schedule_tick' order by id desc limit 1), 'succeeded',
    'and records its success'
);

select * from finish();
rollback;
