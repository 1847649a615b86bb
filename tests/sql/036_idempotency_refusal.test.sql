-- crypto.idempotency_refusal: which refusals an Idempotency-Key remembers is
-- data (crypto.error_codes.remembered_by_idempotency_key), the same for
-- api.submit_prediction, api.redeem_reward and api.click_ad.
begin;
select plan(16);

select results_eq(
    $$ select sqlstate::text from crypto.error_codes where remembered_by_idempotency_key order by sqlstate $$,
    $$ values ('OX004'), ('OX101'), ('OX102'), ('OX103'), ('OX104'), ('OX201'), ('OX202'), ('OX203'), ('OX204') $$,
    'a key remembers exactly the refusals of the request itself: not found, session, universe, limits, points, stock'
);

-- Every remembered refusal is stored and replayed as the same problem.
select is(
    (select count(*)::int from crypto.error_codes as e
        where e.remembered_by_idempotency_key
        and crypto.idempotency_refusal('test:scope', 'k-' || e.sqlstate, 'h', e.sqlstate, 'why ' || e.sqlstate)
        is distinct from crypto.problem(e.sqlstate, 'why ' || e.sqlstate)),
    0, 'each remembered refusal is answered as its problem'
);
select is(
    (select count(*)::int from crypto.error_codes as e
        where e.remembered_by_idempotency_key
        and crypto.idempotency_replay('test:scope', 'k-' || e.sqlstate, 'h')
        is distinct from crypto.problem(e.sqlstate, 'why ' || e.sqlstate)),
    0, '... and each replays to a retry with the same key'
);

-- A refusal the key does not remember stores nothing: a retry is decided again.
select is(
    (select count(*)::int from crypto.error_codes as e
        where not e.remembered_by_idempotency_key
        and crypto.idempotency_refusal('test:scope', 'n-' || e.sqlstate, 'h', e.sqlstate, 'no') is not null),
    0, 'no other code is stored (validation, retry, timeout, ...)'
);
select is(
    (select count(*)::int from crypto.idempotent_requests where scope = 'test:scope' and key like 'n-%'),
    0, '... nothing is kept for them'
);
select is(
    crypto.idempotency_refusal('test:scope', null, 'h', 'OX104', 'no key'), null,
    'without a key nothing is stored'
);

-- The routes go by the table.
select tests.load_calendar();
select tests.open_session('2026-11-24');
select tests.create_user('keys@example.com') as uid \gset
insert into crypto.ads (id, title, reward_kind, reward_points) values ('pts', '20 points', 'POINTS', 20);
select crypto.upsert_reward('MUG', 'A mug', 300, 3);
select tests.authenticate_as(:'uid');

select is(
    api.submit_prediction('ZZZZ', 'UP', 'p-1')::jsonb, crypto.problem('OX102', 'ZZZZ is not in the universe of 2026-11-24'),
    'submit_prediction answers a remembered refusal (SYMBOL_NOT_IN_UNIVERSE) as a problem'
);
select is(
    api.submit_prediction('ZZZZ', 'UP', 'p-1')::jsonb #>> '{problem,sqlstate}', 'OX102', '... and replays it'
);
select throws_ok(
    $$ select api.submit_prediction('AAPL', 'SIDEWAYS', 'p-2') $$, 'OX000', 'VALIDATION_FAILED',
    'a refusal the key does not remember is raised'
);
select throws_ok(
    $$ select api.submit_prediction('AAPL', 'SIDEWAYS', 'p-2') $$, 'OX000', 'VALIDATION_FAILED',
    '... and raised again on a retry with the same key, not replayed'
);
select is(
    api.redeem_reward('MUG', 'r-1')::jsonb #>> '{problem,sqlstate}', 'OX201',
    'redeem_reward remembers INSUFFICIENT_POINTS'
);
select tests.clear_authentication();
select crypto.ledger_transfer('test:grant', crypto.system_account('issuance'), crypto.user_account(:'uid'), 500, 'adjustment');
select tests.authenticate_as(:'uid');
select is(
    api.redeem_reward('MUG', 'r-1')::jsonb #>> '{problem,sqlstate}', 'OX201',
    '... and a retry with the key gets it though the points are there now'
);
select is(
    api.redeem_reward('MUG', 'r-2')::jsonb ->> 'status', 'REQUESTED', 'a new key redeems'
);
select is(
    api.click_ad('nope', 'a-1')::jsonb #>> '{problem,sqlstate}', 'OX004', 'click_ad remembers NOT_FOUND'
);
select is(
    api.click_ad('nope', 'a-1')::jsonb #>> '{problem,sqlstate}', 'OX004', '... and replays it'
);
select tests.clear_authentication();
select is(
    (select array_agg(scope || ' ' || key order by scope, key) from crypto.idempotent_requests where scope <> 'test:scope'),
    array['ad:' || :'uid' || ' a-1', 'prediction:' || :'uid' || ' p-1', 'redeem:' || :'uid' || ' r-1',
        'redeem:' || :'uid' || ' r-2'],
    'the keys stored: the remembered refusals and the success, not the VALIDATION_FAILED'
);

select * from finish();
rollback;
