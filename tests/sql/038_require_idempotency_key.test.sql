-- crypto.require_idempotency_key: a route that spends or pays (redeem,
-- ad click, admin adjustment) refuses a request without a usable key.
begin;
select plan(7);

select is(crypto.require_idempotency_key('k-1', 'Redeeming', 150), 'k-1', 'a key within bounds is accepted');
select is(crypto.require_idempotency_key(repeat('k', 150), 'Redeeming', 150), repeat('k', 150), '... up to p_max');
select throws_ok($$ select crypto.require_idempotency_key(null, 'Redeeming', 150) $$, 'OX000',
    'VALIDATION_FAILED', 'no key is refused');
select throws_ok($$ select crypto.require_idempotency_key('', 'Redeeming', 150) $$, 'OX000',
    'VALIDATION_FAILED', 'an empty key is refused');
select throws_ok($$ select crypto.require_idempotency_key(repeat('k', 101), 'An adjustment', 100) $$, 'OX000',
    'VALIDATION_FAILED', 'a key over p_max is refused');

select is(tests.error_detail($$ select crypto.require_idempotency_key(null, 'Redeeming', 150) $$),
    'Redeeming needs an Idempotency-Key header of 1 to 150 characters', 'the detail names the act and the bounds');

-- The routes refuse before doing anything.
select tests.create_user('nokey@example.com') as uid \gset
select tests.authenticate_as(:'uid');
select is(tests.error_detail($$ select api.click_ad('pts', null) $$),
    'An ad view needs an Idempotency-Key header of 1 to 150 characters', 'api.click_ad uses it');

select * from finish();
rollback;
