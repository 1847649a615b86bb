begin;
select plan(14);

select tests.load_calendar();
select tests.open_session('2026-11-24');
select tests.create_user('p@example.com') as uid \gset
select crypto.clock_set('2026-11-24 14:24:59Z');
select tests.authenticate_as(:'uid');
select is(
    (api.submit_prediction('aapl', 'UP')::jsonb) ->> 'symbol', 'AAPL',
    'one second before the cutoff a prediction is accepted (symbol case does not matter)'
);
select is(
    (select choice::text from crypto.predictions where user_id = :'uid' and symbol = 'AAPL'), 'UP',
    'the prediction is stored with its choice'
);
select throws_ok(
    $$ select api.submit_prediction('AAPL', 'DOWN') $$, 'OX103', 'PREDICTION_EXISTS',
    'a second prediction on the same symbol is refused'
);
select throws_ok(
    $$ select api.submit_prediction('IBM', 'UP') $$, 'OX102', 'SYMBOL_NOT_IN_UNIVERSE',
    'a symbol outside the universe is refused'
);
select throws_ok(
    $$ select api.submit_prediction('MSFT', 'SIDEWAYS') $$, 'OX000', 'VALIDATION_FAILED',
    'a choice other than UP or DOWN is refused'
);
select throws_ok(
    $$ select api.submit_prediction('MSFT', null) $$, 'OX000', 'VALIDATION_FAILED', 'a missing choice is refused'
);

select lives_ok($$ select api.submit_prediction('MSFT', 'DOWN') $$, 'second prediction');
select lives_ok($$ select api.submit_prediction('NVDA', 'UP') $$, 'third prediction');
select throws_ok(
    $$ select api.submit_prediction('TSLA', 'UP') $$, 'OX104', 'DAILY_LIMIT_REACHED',
    'the fourth prediction passes the base daily limit of 3'
);
select throws_ok(
    $$ select api.submit_prediction('AAPL', 'UP') $$, 'OX103', 'PREDICTION_EXISTS',
    'at the limit, a repeat is still told it is a repeat'
);
select is(
    (select predictions_made from crypto.user_daily_limits where user_id = :'uid'), 3,
    'the refused ones did not count'
);

select tests.clear_authentication();
update crypto.user_daily_limits set slot_unlocks = 1 where user_id = :'uid';
select tests.authenticate_as(:'uid');
select lives_ok($$ select api.submit_prediction('TSLA', 'UP') $$, 'an ad slot unlock raises the limit by one');

-- The submission reads the clock itself: a session nobody closed is still
-- closed for predictions at the cutoff.
select tests.clear_authentication();
select crypto.clock_set('2026-11-24 14:25:00Z');
select tests.authenticate_as(:'uid');
select throws_ok(
    $$ select api.submit_prediction('AMD', 'UP') $$, 'OX101', 'SESSION_CLOSED',
    'at the cutoff a prediction is refused even while the phase is still OPEN'
);

select tests.clear_authentication();
select throws_ok(
    $$ select api.submit_prediction('AMD', 'UP') $$, 'OX001', 'INVALID_TOKEN',
    'no caller, no prediction'
);

select * from finish();
rollback;
