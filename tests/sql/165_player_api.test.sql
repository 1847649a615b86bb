begin;
select plan(26);

-- With no trading day ahead at all, the refusal ends where it should (not
-- "the session for  opens at ").
select is(tests.error_detail('select api.session_today()'), 'No session has opened yet',
    'no calendar ahead: no half sentence about the next session');

select tests.load_calendar();
select tests.create_user('p@example.com') as uid \gset

-- Before any session: the refusal says when the first one opens.
select crypto.clock_set('2026-03-04 12:00Z');
select tests.authenticate_as(:'uid');
select is(
    api.submit_prediction('AAPL', 'UP', 'k0') -> 'problem' ->> 'detail',
    'No session is open for predictions; the session for 2026-03-05 opens at 2026-03-05T06:00:00+09:00',
    'no session yet: the detail says when the next one opens'
);
select throws_ok($$ select api.session_today() $$, 'OX105', 'NO_SESSION', 'no session has opened yet');
select tests.clear_authentication();

select tests.open_session('2026-11-24');
select tests.authenticate_as(:'uid');
select api.submit_prediction('AAPL', 'UP');
select results_eq(
    $$ select t ->> 'cutoff_at', t ->> 'cutoff_at_new_york', t ->> 'market_open_at_new_york',
              (t ->> 'points_per_win')::int, t ->> 'next_session'
       from api.session_today() as t $$,
    $$ values ('2026-11-24T23:25:00+09:00', '2026-11-24T09:25:00-05:00', '2026-11-24T09:30:00-05:00', 100, null::text) $$,
    'session/today: KST and New York times side by side, points per win'
);
select is(
    (api.session_today() -> 'player')::jsonb,
    '{"predictions_used": 1, "predictions_limit": 3, "predictions_left": 2, "ad_slot_unlocks_left": 7, "ad_point_rewards_left": 5}'::jsonb,
    'a signed-in player sees what is left of their day'
);
select tests.clear_authentication();
set local role anon;
select is(api.session_today() ->> 'player', null, 'anon gets no player part');
reset role;

-- The issue's reproduction: after the cutoff, once the tick closed the
-- session, the detail read "Predictions for  closed at ".
select crypto.clock_set('2026-11-24 14:30Z');
select crypto.close_session('2026-11-24');
select tests.authenticate_as(:'uid');
select is(
    api.submit_prediction('MSFT', 'UP', 'k1') -> 'problem' ->> 'detail',
    'Predictions for 2026-11-24 closed at 2026-11-24T23:25:00+09:00; the session for 2026-11-25 opens at 2026-11-25T06:00:00+09:00',
    'after the cutoff the detail names the session, its cutoff and the next opening'
);
select throws_like($$ select api.submit_prediction('MSFT', 'UP') $$, 'SESSION_CLOSED', 'raised without a key');
select is(
    api.session_today() -> 'next_session' ->> 'opens_at', '2026-11-25T06:00:00+09:00',
    'between sessions, session/today says when the next opens'
);
select is(
    api.session_today() -> 'next_session' ->> 'trading_day', '2026-11-25', 'and which trading day it is'
);
select tests.clear_authentication();

-- A second day, so history spans two sessions.
select crypto.clock_set('2026-11-25 12:00Z');
select crypto.open_session('2026-11-25');
select tests.authenticate_as(:'uid');
select api.submit_prediction(s, 'DOWN') from unnest(array['MSFT', 'NVDA']) as s;
select results_eq(
    $$ select i ->> 'trading_day', i ->> 'symbol' from json_array_elements(api.my_predictions(null, null, 2) -> 'items') as i $$,
    $$ values ('2026-11-25', 'NVDA'), ('2026-11-25', 'MSFT') $$,
    'history, newest first, a page of 2'
);
select is(
    (api.my_predictions(null, (api.my_predictions(null, null, 2) ->> 'next_cursor')::bigint, 2) -> 'items' -> 0 ->> 'symbol'),
    'AAPL', 'the next page goes back to the earlier session'
);
select is(
    api.my_predictions(null, (api.my_predictions(null, null, 2) ->> 'next_cursor')::bigint, 2) ->> 'next_cursor',
    null, 'the last page has no next cursor'
);
select is(
    json_array_length(api.my_predictions('2026-11-24') -> 'items'), 1, '?trading_day= still filters one day'
);
select throws_ok($$ select api.my_predictions(null, null, 101) $$, 'OX000', 'VALIDATION_FAILED',
    'a page has at most 100 items');
select tests.clear_authentication();

-- Only accepted predictions count toward the per-user rate limit.
select is(
    (select crypto.rate_window_hits(rate_hour, crypto.now(), 3600) from crypto.user_daily_limits
     where user_id = :'uid' and trading_day = '2026-11-25'),
    array[0, 2, 0], 'the two accepted predictions of this hour count, the refused ones do not'
);

-- Settled: both closes, the change in percent, and why a VOID is VOID.
select crypto.clock_set('2026-11-25 22:00Z');
select crypto.close_session('2026-11-25');
select crypto.load_eod_price(d::date, s, c, 'test')
from (values ('2026-11-24', 'MSFT', 400), ('2026-11-25', 'MSFT', 396.5)) as v (d, s, c);
select crypto.settle_session('2026-11-25', true);
select tests.authenticate_as(:'uid');
select results_eq(
    $$ select i ->> 'symbol', i ->> 'outcome', i ->> 'close_previous', i ->> 'close', i ->> 'change_percent', i ->> 'void_reason'
       from json_array_elements(api.my_predictions('2026-11-25') -> 'items') as i $$,
    $$ values ('NVDA', 'VOID', null, null, null, 'missing_price'),
              ('MSFT', 'WON', '400.000000', '396.500000', '-0.8750', null) $$,
    'a result gives both closes, the change in percent and the VOID reason'
);
select tests.clear_authentication();
select results_eq(
    $$ select s ->> 'change_percent', s ->> 'void_reason'
       from json_array_elements(api.settlements('2026-11-25') -> 'symbols') as s where s ->> 'symbol' in ('MSFT', 'AAPL')
       order by s ->> 'symbol' $$,
    $$ values (null, 'missing_price'), ('-0.8750', null) $$,
    'public settlements say the same'
);

-- The fetch job has nothing to do once its day is settled.
select is(crypto.eod_fetch_needed('2026-11-25'), false, 'no fetch for a settled day');
select is(crypto.eod_fetch_needed('2026-11-27'), true, 'a day not settled still needs its closes');

-- Who may not: a player reaches these only through the API functions.
select tests.authenticate_as(:'uid');
select throws_ok($$ select crypto.rate_window_count(null, crypto.now(), 60) $$, '42501', null,
    'a player cannot call the prediction rate''s counter');
select throws_ok($$ select crypto.eod_fetch_needed('2026-11-25') $$, '42501', null,
    'a player cannot ask the fetch question');
select throws_ok($$ select crypto.next_session_day() $$, '42501', null,
    'a player reads the next session through api.session_today only');
select throws_ok($$ select * from crypto.known_symbols $$, '42501', null, 'a player cannot read the symbol list');
select tests.clear_authentication();
set local role anon;
select throws_ok($$ select crypto.new_york(now()) $$, '42501', null, 'anon cannot run crypto helpers');
select throws_ok($$ select crypto.void_reason('VOID', null, null) $$, '42501', null,
    'anon cannot run the VOID-reason helper either');
reset role;

select * from finish();
rollback;
