-- The per-user prediction rate (SPEC §5) is a rule of crypto.place_prediction,
-- checked under the player's lock where an accepted prediction is counted.
begin;
select plan(14);

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

-- A submission that began at 09:02:00.01 (so counted in the 09:02 minute)
-- may commit before one that began at 09:01:59.99 takes the lock: the later
-- one's count is seen, or the player would get 3 in a minute.
select tests.clear_authentication();
insert into crypto.rate_limits (bucket, window_start, shard, hits)
values ('predictions:minute:' || :'other', '2026-11-24 09:03:00+09', 0, 1);
select is((crypto.prediction_rate(:'other') ->> 'allowed')::boolean, true,
    'a count two windows ahead (only a clock moved back leaves one) is not this window''s');
insert into crypto.rate_limits (bucket, window_start, shard, hits)
values ('predictions:minute:' || :'other', '2026-11-24 09:02:00+09', 0, 1);
select is((crypto.prediction_rate(:'other') ->> 'allowed')::boolean, false,
    'a count in the next window is counted in this one');
-- At 09:03:00 the 09:01 minute is gone and 09:02 weighs 1 + 1 of the retry
-- = 2; at 09:02:30 it would still be 1 x 30/60 + 1 + 1 = 2.5.
select is((crypto.prediction_rate(:'other') ->> 'retry_after')::int, 90,
    'and Retry-After waits for the next window to slide in, not only for this one to end');

select * from finish();
rollback;
