-- Business metrics (issue 11, item 2): one day's row counted from the
-- books, recomputed when they change, and read only by who may.
begin;
select plan(16);

select tests.load_calendar();
select tests.open_session('2026-11-24');  -- the clock: 22:25 KST on 24 Nov
select tests.create_user('winner@example.com') as winner \gset
select tests.create_user('loser@example.com') as loser \gset
select tests.create_user('idle@example.com') as idle \gset
select tests.create_user('later@example.com') as later \gset
insert into crypto.ads (id, title, reward_kind, reward_points) values ('promo', 'Promo', 'POINTS', 20);
select tests.authenticate_as(:'winner');
select api.submit_prediction('AAPL', 'UP');
select api.submit_prediction('MSFT', 'UP');
select api.submit_prediction('NVDA', 'DOWN');
select api.click_ad('promo', 'click-1');
select tests.authenticate_as(:'loser');
select api.submit_prediction('AAPL', 'DOWN');
select tests.clear_authentication();
-- Signed-in requests (the rate limiter notes them): twice for one user is one.
select api.rate_limit('198.51.100.7', :'idle', '{}');
select api.rate_limit('198.51.100.7', :'idle', '{}');
select api.rate_limit('198.51.100.8', :'winner', '{}');
select api.rate_limit('198.51.100.9', null, '{}');
select crypto.adjust_points('idle@example.com', 70, 'goodwill', 'm1');
select crypto.adjust_points('idle@example.com', -20, 'typo', 'm2');
-- Refused (not enough points): remembered under its key, but nothing moved.
select crypto.adjust_points('idle@example.com', -1000, 'too much', 'm3');

select is(
    (select row(active_users, participants, predictions, unsettled, points_adjustments)::text
     from crypto.compute_daily_metrics('2026-11-24')),
    '(3,2,4,4,50)',
    'before the close: 3 active (2 predicted, 1 only signed in), 4 predictions unsettled, 50 adjusted'
);

-- 07:00 KST on the 25th: a sign-in then belongs to the 25th.
select crypto.clock_set('2026-11-24 22:00Z');
select api.rate_limit('198.51.100.10', :'later', '{}');
select crypto.close_session('2026-11-24');
select crypto.load_eod_price(d::date, s, c, 'test')
from (values
    ('2026-11-23', 'AAPL', 10), ('2026-11-24', 'AAPL', 11),
    ('2026-11-23', 'MSFT', 10), ('2026-11-24', 'MSFT', 10.0005)
) as v (d, s, c);
select crypto.settle_session('2026-11-24', true);

select is(crypto.rollup_metrics(), 1, 'the rollup recomputes the settled day');
select results_eq(
    $$ select ad_clicks, ad_rewards from crypto.daily_metrics where trading_day = '2026-11-24' $$,
    $$ values ('{"POINTS": 1}'::jsonb, '{}'::jsonb) $$,
    'an ad shown is counted; unverified by the network, it rewarded nothing'
);
select is(crypto.rollup_metrics(), 0, '... once: nothing changed since');
select results_eq(
    $$ select active_users, wins, losses, voids, unsettled, points_settlement, points_outstanding
       from crypto.daily_metrics where trading_day = '2026-11-24' $$,
    $$ values (3, 1, 1, 2, 0, 100::bigint, 150::bigint) $$,
    'after settlement: a win, a loss, two VOIDs (inside the threshold, no close); 100 paid; 150 held by players'
);
select is(
    (crypto.daily_metrics_range('2026-11-01', '2026-11-30') #> '{items,0}')
    - array['computed_at', 'redemptions', 'ad_clicks', 'ad_rewards'],
    '{"trading_day": "2026-11-24", "active_users": 3, "participants": 2, "participation_rate": 0.6667,
      "predictions": 4, "wins": 1, "losses": 1, "voids": 2, "unsettled": 0,
      "win_rate": 0.5000, "loss_rate": 0.5000, "void_rate": 0.5000,
      "points_issued": {"settlement": 100, "ads": 0, "adjustments": 50},
      "points_spent": {"redemptions": 0, "refunds": 0}, "points_outstanding": 150}'::jsonb,
    'the row as people read it, with its rates'
);

-- The winner spends the 100 first; then a correction turns AAPL down: the
-- loser is paid 100, and the winner's 100 cannot be taken back (written off).
select crypto.clock_set('2026-11-24 23:00Z');
select crypto.adjust_points('winner@example.com', -100, 'spent elsewhere', 'm4');
select crypto.correct_settlement('2026-11-24', '[{"trading_day": "2026-11-24", "symbol": "AAPL", "close": 9}]',
    'the vendor sent a wrong close');
select is(crypto.rollup_metrics(), 1, 'a correction makes the rollup recompute its day');
select results_eq(
    $$ select wins, losses, points_settlement, points_adjustments from crypto.daily_metrics
       where trading_day = '2026-11-24' $$,
    $$ values (1, 1, 200::bigint, 50::bigint) $$,
    'the corrected outcomes count; 200 paid in all (the winner''s 100 written off, the loser''s 100); '
    'the winner''s spending after the day''s KST date is not the day''s'
);
select is((select count(*)::int from crypto.alerts where rule = 'settlement_payout'), 0,
    'one win at 100 plus 100 written off is what was paid: no payout alert');
select is(
    (select (crypto.compute_daily_metrics('2026-11-24')).points_settlement), 200::bigint,
    'recomputing any day gives the same figures'
);

select throws_ok($$ select crypto.compute_daily_metrics('2026-11-26') $$, 'OX108', 'NOT_A_TRADING_DAY',
    'Thanksgiving has no row');
select throws_ok($$ select crypto.daily_metrics_range('2026-11-30', '2026-11-01') $$, 'OX000', 'VALIDATION_FAILED',
    'a range backwards is refused');

-- Who may not.
set local role app_user;
select throws_ok($$ select crypto.daily_metrics_range('2026-11-01', '2026-11-30') $$, '42501', null,
    'a player reads no metrics');
select throws_ok($$ select crypto.rollup_metrics() $$, '42501', null, '... and runs no rollup');
reset role;
set local role anon;
select throws_ok($$ select crypto.compute_daily_metrics('2026-11-24') $$, '42501', null, 'anon computes nothing');
reset role;
set local role auditor;
select is((select count(*)::int from crypto.daily_metrics), 1, 'the auditor reads the rows');
reset role;

select * from finish();
rollback;
