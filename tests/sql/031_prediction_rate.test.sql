-- The per-user prediction rate (SPEC §5) is a rule of crypto.place_prediction,
-- checked under the player's lock where an accepted prediction is counted.
begin;
select plan(25);

select tests.load_calendar();
select tests.open_session('2026-11-24');
update crypto.settings set value = '10' where key = 'predictions.base_limit';
update crypto.settings set value = '2' where key = 'ratelimit.predictions_per_minute';
select tests.create_user('fast@example.com') as uid \gset
select tests.create_user('calm@example.com') as other \gset
select crypto.clock_set('2026-11-24 09:00:10+09');
select tests.authenticate_as(:'uid');

select lives_ok($$ select api.submit_prediction('AAPL', 'UP') $$, 'the first prediction of the minute');
select is(
    current_setting('oxp.rate_limit_answer')::jsonb -> 'tightest' ->> 'remaining', '1',
    'the call leaves its limit''s answer for the shim: one more fits this minute'
);
select throws_ok(
    $$ select api.submit_prediction('ZZZZ', 'UP') $$, 'OX102', 'SYMBOL_NOT_IN_UNIVERSE',
    'a mistake is refused by its own rule ...'
);
select lives_ok($$ select api.submit_prediction('MSFT', 'UP') $$, '... and costs none of the budget');
select is(
    api.submit_prediction('NVDA', 'UP')::jsonb -> 'problem',
    jsonb_build_object('sqlstate', 'OX005', 'detail', 'Too many predictions; retry in 80 s'),
    'the third in a minute is refused, returned (not raised) with an exact Retry-After (at 09:01:30 the first minute weighs 2 x 30/60 = 1)'
);
select is(
    (current_setting('oxp.rate_limit_answer')::jsonb ->> 'allowed')::boolean, false,
    'and the answer it leaves says so'
);
select is(
    (select count(*)::int from crypto.predictions where user_id = :'uid'), 2,
    'the refused prediction is not stored'
);
select is(
    (select predictions_made from crypto.user_daily_limits where user_id = :'uid'), 2,
    '... nor counted against the daily limit'
);
select is(
    api.submit_prediction('NVDA', 'UP', 'key-1')::jsonb #>> '{problem,sqlstate}', 'OX005',
    'under an Idempotency-Key it is refused too ...'
);

select tests.clear_authentication();
select crypto.clock_set('2026-11-24 09:01:30+09');
select tests.authenticate_as(:'uid');
select is(
    api.submit_prediction('NVDA', 'UP', 'key-1')::jsonb ->> 'symbol', 'NVDA',
    '... and the key does not remember it: its retry after Retry-After is accepted'
);

select tests.clear_authentication();
select tests.authenticate_as(:'other');
select lives_ok($$ select api.submit_prediction('NVDA', 'UP') $$, 'another player has a budget of their own');

select tests.clear_authentication();
-- The windows are kept on the player's daily-limits row (sql/0039): the
-- latest minute counted in and the counts of it and the two before it.
select is(
    (select (rate_minute).at from crypto.user_daily_limits where user_id = :'uid'),
    '2026-11-24 09:01:00+09'::timestamptz, 'the row keeps the latest minute counted in'
);
select is(
    (select (rate_minute).hits from crypto.user_daily_limits where user_id = :'uid'),
    array[0, 2, 1], '... and the counts of the two minutes before it and of it'
);
select is(
    (select (rate_hour).hits from crypto.user_daily_limits where user_id = :'uid'),
    array[0, 0, 3], 'the hour counts every accepted prediction of it, the refused ones not'
);

-- How the windows move (crypto.rate_window_count).
select is(
    crypto.rate_window_count(null, '2026-11-24 09:00:10+09', 60)::text,
    row('2026-11-24 09:00:00+09'::timestamptz, array[0, 0, 1])::crypto.rate_window::text,
    'the session''s first prediction starts the windows'
);
select is(
    crypto.rate_window_count(
        row('2026-11-24 09:01:00+09', array[0, 2, 1])::crypto.rate_window, '2026-11-24 09:03:05+09', 60
    )::text,
    row('2026-11-24 09:03:00+09'::timestamptz, array[1, 0, 1])::crypto.rate_window::text,
    'a later window moves them on, keeping the two minutes before it'
);
-- A submission that began at 09:02:00.01 (so counted in the 09:02 minute)
-- may commit before one that began at 09:01:59.99 takes the lock.
select is(
    crypto.rate_window_count(
        row('2026-11-24 09:02:00+09', array[0, 1, 1])::crypto.rate_window, '2026-11-24 09:01:59.99+09', 60
    )::text,
    row('2026-11-24 09:02:00+09'::timestamptz, array[0, 2, 1])::crypto.rate_window::text,
    'the one that began earlier is counted in its own minute, behind the latest'
);
select is(
    crypto.rate_window_count(
        row('2026-11-24 09:05:00+09', array[1, 1, 1])::crypto.rate_window, '2026-11-24 09:01:00+09', 60
    )::text,
    row('2026-11-24 09:01:00+09'::timestamptz, array[0, 0, 1])::crypto.rate_window::text,
    'a clock moved back past what is kept starts them over (outside production)'
);

-- What a check reads (crypto.prediction_rate, at 09:01:30, 2 a minute).
create function pg_temp.limits(p_minute text) returns crypto.user_daily_limits
language sql as $$
    select jsonb_populate_record(null::crypto.user_daily_limits, jsonb_build_object('rate_minute', p_minute::jsonb))
$$;
select is(
    (crypto.prediction_rate(pg_temp.limits('{"at": "2026-11-24 09:03:00+09", "hits": [1, 0, 1]}'), crypto.now())
     ->> 'allowed')::boolean, true,
    'a count two windows ahead (only a clock moved back leaves one) is not this window''s'
);
select is(
    (crypto.prediction_rate(pg_temp.limits('{"at": "2026-11-24 09:02:00+09", "hits": [0, 1, 1]}'), crypto.now())
     ->> 'allowed')::boolean, false,
    'a count in the next window is counted in this one: the later-begun submission that counted first is seen'
);
-- At 09:03:00 the 09:01 minute is gone and 09:02 weighs 1 + 1 of the retry
-- = 2; at 09:02:30 it would still be 1 x 30/60 + 1 + 1 = 2.5.
select is(
    (crypto.prediction_rate(pg_temp.limits('{"at": "2026-11-24 09:02:00+09", "hits": [0, 1, 1]}'), crypto.now())
     ->> 'retry_after')::int, 90,
    'and Retry-After waits for the next window to slide in, not only for this one to end'
);
-- Two in the 09:00 minute: at 09:01:29 it weighs 2 x 31/60 > 1, at 09:01:30 exactly 1.
select is(
    (crypto.prediction_rate(pg_temp.limits('{"at": "2026-11-24 09:00:00+09", "hits": [0, 0, 2]}'),
        '2026-11-24 09:01:29+09') ->> 'retry_after')::int, 1,
    'one second before Retry-After it is still refused, for one second'
);
select is(
    crypto.prediction_rate(pg_temp.limits('{"at": "2026-11-24 09:00:00+09", "hits": [0, 0, 2]}'),
        '2026-11-24 09:01:30+09')::jsonb - 'tightest',
    '{"allowed": true, "retry_after": 0}'::jsonb,
    'at Retry-After it is allowed ...'
);
select is(
    (crypto.prediction_rate(pg_temp.limits('{"at": "2026-11-24 09:00:00+09", "hits": [0, 0, 2]}'),
        '2026-11-24 09:01:30+09') -> 'tightest' ->> 'remaining')::int, 0,
    '... and none more after it'
);
select is(
    (select count(*)::int from crypto.rate_limits where bucket like 'predictions:%'), 0,
    'nothing of a prediction''s rate is written to crypto.rate_limits'
);

select * from finish();
rollback;
