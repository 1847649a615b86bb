begin;
select plan(9);

select tests.load_calendar();
select tests.open_session('2026-11-24');
select tests.create_user('retry@example.com') as uid \gset
select tests.authenticate_as(:'uid');

select api.submit_prediction('AAPL', 'UP', 'key-1')::jsonb as first \gset
select is(
    api.submit_prediction('aapl', 'UP', 'key-1')::jsonb, :'first'::jsonb,
    'a retry with the same key returns the first response'
);
select is(
    (select count(*)::int from crypto.predictions where user_id = :'uid'), 1, '... and stores nothing new'
);
select is(
    (select predictions_made from crypto.user_daily_limits where user_id = :'uid'), 1, '... nor counts twice'
);
select throws_ok(
    $$ select api.submit_prediction('AAPL', 'DOWN', 'key-1') $$, 'OX007', 'IDEMPOTENCY_KEY_REUSED',
    'the same key with another request is refused'
);
select is(
    api.submit_prediction('AAPL', 'UP', 'key-2')::jsonb #>> '{problem,sqlstate}', 'OX103',
    'a new key for the same prediction is a new request, refused as PREDICTION_EXISTS'
);
select throws_ok(
    $$ select api.submit_prediction('AAPL', 'UP') $$, 'OX103', 'PREDICTION_EXISTS',
    'without a key the refusal is raised as before'
);

-- A refusal is the key's answer too: an ad unlock later does not change it.
select api.submit_prediction('MSFT', 'UP', 'key-3');
select api.submit_prediction('NVDA', 'UP', 'key-4');
select is(
    api.submit_prediction('TSLA', 'UP', 'key-5')::jsonb #>> '{problem,sqlstate}', 'OX104', 'the daily limit'
);
select tests.clear_authentication();
update crypto.user_daily_limits set slot_unlocks = 1 where user_id = :'uid';
select tests.authenticate_as(:'uid');
select is(
    api.submit_prediction('TSLA', 'UP', 'key-5')::jsonb #>> '{problem,sqlstate}', 'OX104',
    'a retry with the same key keeps the first answer'
);

select tests.clear_authentication();
select tests.create_user('other@example.com') as other \gset
select tests.authenticate_as(:'other');
select lives_ok(
    $$ select api.submit_prediction('MSFT', 'UP', 'key-1') $$, 'keys belong to their user'
);

select * from finish();
rollback;
