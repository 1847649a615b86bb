begin;
select plan(6);

select tests.load_calendar();
select tests.create_user('s@example.com') as u \gset
select tests.open_session('2026-11-24');
select crypto.set_universe('2026-11-24', array['AAPL', 'MSFT', 'NVDA', 'TSLA']);
select tests.authenticate_as(:'u');
select api.submit_prediction('AAPL', 'DOWN');
select api.submit_prediction('MSFT', 'UP');
select api.submit_prediction('NVDA', 'UP');
select tests.clear_authentication();
select crypto.clock_set('2026-11-24 22:00Z');
select crypto.close_session('2026-11-24');
select crypto.load_eod_price(d::date, s, c, 'test')
from (values
    ('2026-11-23', 'AAPL', 100), ('2026-11-24', 'AAPL', 101),
    ('2026-11-23', 'MSFT', 100), ('2026-11-24', 'MSFT', 101),
    ('2026-11-23', 'NVDA', 100), ('2026-11-24', 'NVDA', 100),
    ('2026-11-23', 'TSLA', 100), ('2026-11-24', 'TSLA', 100)
) as v (d, s, c);
select crypto.settle_session('2026-11-24');
select crypto.rollup_metrics();  -- as pg_cron would: the streaks' rollup
select crypto.clock_set('2026-11-25 06:00:00+09');
select crypto.open_session('2026-11-25');
select tests.authenticate_as(:'u');
select api.submit_prediction('TSLA', 'UP');

select api.user_stats()::jsonb as s \gset
select results_eq(
    format($$ select %L::jsonb ->> 'predictions', %L::jsonb ->> 'won', %L::jsonb ->> 'lost', %L::jsonb ->> 'void',
        %L::jsonb ->> 'pending' $$, :'s', :'s', :'s', :'s', :'s'),
    $$ values ('4', '1', '1', '1', '1') $$,
    'made, won, lost, void and pending'
);
select is((:'s'::jsonb ->> 'balance')::int, 100, 'the balance');
select is((:'s'::jsonb ->> 'win_rate')::numeric, 0.5, 'the win rate counts decided predictions only');
select is((:'s'::jsonb ->> 'current_streak')::int, 1, 'the streak: the latest decided one won, the one before lost');
select is(:'s'::jsonb #> '{recent_settlements,0}',
    '{"trading_day": "2026-11-24", "predictions": 3, "won": 1, "lost": 1, "void": 1, "points": 100}'::jsonb,
    'recent settlements per day, with the points paid');
select tests.clear_authentication();
select throws_ok('select api.user_stats()', 'OX001', 'INVALID_TOKEN', 'stats need a signed-in user');

select * from finish();
rollback;
