begin;
select plan(21);

select tests.create_user('r@example.com') as r \gset
select crypto.upsert_reward('MUG', 'A mug', 300, 3);
select crypto.upsert_reward('OLD', 'Retired', 10, 5, false);
select crypto.ledger_transfer('test:grant', crypto.system_account('issuance'), crypto.user_account(:'r'), 700, 'adjustment');
select tests.authenticate_as(:'r');

select is((select json_array_length(api.rewards() -> 'items')), 1, 'only active rewards are listed');

select api.redeem_reward('MUG', 'k1')::jsonb as first \gset
select is(:'first'::jsonb ->> 'status', 'REQUESTED', 'a redemption starts REQUESTED');
select is((select balance from crypto.ledger_accounts where user_id = :'r'), 400::bigint, 'the cost is debited');
select is((select reserved from crypto.rewards_inventory where sku = 'MUG'), 1, 'and one unit reserved, together');
select tests.clear_authentication();
select is(
    (select count(*)::int from crypto.jobs where kind = 'reward.issue'), 1, 'the vendor call is queued for the worker'
);
select tests.authenticate_as(:'r');
select is(api.redeem_reward('MUG', 'k1')::jsonb, :'first'::jsonb, 'the same key returns the first response');
select is((select balance from crypto.ledger_accounts where user_id = :'r'), 400::bigint, '... and spends nothing');
select throws_ok($$ select api.redeem_reward('OLD', 'k1') $$, 'OX007', 'IDEMPOTENCY_KEY_REUSED',
    'the same key for another reward is refused');
select throws_ok($$ select api.redeem_reward('MUG', null) $$, 'OX000', 'VALIDATION_FAILED',
    'spending needs an Idempotency-Key');

select is(api.redeem_reward('OLD', 'k2')::jsonb #>> '{problem,sqlstate}', 'OX203', 'an inactive reward: REWARD_INACTIVE');
select is(api.redeem_reward('NOPE', 'k3')::jsonb #>> '{problem,sqlstate}', 'OX004', 'an unknown reward: NOT_FOUND');
select api.redeem_reward('MUG', 'k4');
select is(api.redeem_reward('MUG', 'k5')::jsonb #>> '{problem,sqlstate}', 'OX201',
    'not enough points: INSUFFICIENT_POINTS');
select tests.clear_authentication();
select crypto.ledger_transfer('test:grant2', crypto.system_account('issuance'), crypto.user_account(:'r'), 1000, 'adjustment');
select tests.authenticate_as(:'r');
select is(api.redeem_reward('MUG', 'k5')::jsonb #>> '{problem,sqlstate}', 'OX201',
    'a refusal is remembered under its key');
select api.redeem_reward('MUG', 'k6');
select is(api.redeem_reward('MUG', 'k7')::jsonb #>> '{problem,sqlstate}', 'OX202', 'no unit left: OUT_OF_STOCK');
select is((select balance from crypto.ledger_accounts where user_id = :'r'), 800::bigint,
    'refusals spend nothing');
select tests.clear_authentication();

-- The worker's outcomes.
select crypto.redemption_issued((:'first'::jsonb ->> 'id')::bigint, 'vendor-1');
select results_eq(
    $$ select reserved, issued from crypto.rewards_inventory where sku = 'MUG' $$,
    $$ values (2, 1) $$, 'ISSUED moves the unit from reserved to issued'
);
select id as second from crypto.rewards_redemptions where idempotency_key = 'k4' \gset
select crypto.redemption_failed(:second, 'vendor said no');
select is((select balance from crypto.ledger_accounts where user_id = :'r'), 1100::bigint, 'FAILED refunds the cost');
select is((select reserved from crypto.rewards_inventory where sku = 'MUG'), 1, '... and releases the unit');
select crypto.redemption_failed(:second, 'vendor said no');
select is((select balance from crypto.ledger_accounts where user_id = :'r'), 1100::bigint, 'a repeated failure refunds once');
select throws_ok(format('select crypto.cancel_redemption(%s, null)', :'first'::jsonb ->> 'id'), 'OX205',
    'REDEMPTION_FINAL', 'an issued redemption cannot be cancelled');
select throws_ok($$ select crypto.upsert_reward('MUG', 'A mug', 300, 0) $$, 'OX000', 'VALIDATION_FAILED',
    'stock cannot fall below what is issued');

select * from finish();
rollback;
