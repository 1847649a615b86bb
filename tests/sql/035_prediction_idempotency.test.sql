begin;
select plan(6);

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
select throws_ok(
    $$ select api.submit_prediction('AAPL', 'UP', 'key-2') $$, 'OX103', 'PREDICTION_EXISTS',
    'a new key for the same prediction is a new request'
);

select tests.clear_authentication();
select tests.create_user('other@example.com') as other \gset
select tests.authenticate_as(:'other');
select lives_ok(
    $$ select api.submit_prediction('MSFT', 'UP', 'key-1') $$, 'keys belong to their user'
);

select * from finish();
rollback;
