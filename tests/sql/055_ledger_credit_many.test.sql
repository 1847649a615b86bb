begin;
select plan(10);

select tests.create_user('a@example.com') as a \gset
select tests.create_user('b@example.com') as b \gset
select crypto.system_account('issuance') as issuance \gset
select crypto.user_account(:'a') as acct_a \gset
select crypto.user_account(:'b') as acct_b \gset
select crypto.ledger_transfer('seed', :issuance, :acct_a, 50, 'adjustment');

select is(
    crypto.ledger_credit_many(:issuance, 'award', array['key:1', 'key:2', 'key:3'], array[:acct_a, :acct_b, :acct_a], array[100, 100, 25]::bigint[]),
    3, 'three credits in one call'
);
select is((select balance from crypto.ledger_accounts where id = :acct_a), 175::bigint, 'balances add up (50 + 100 + 25)');
select results_eq(
    format('select amount, balance_after from crypto.ledger_entries where account_id = %s order by id', :acct_a),
    $$ values (50::bigint, 50::bigint), (100::bigint, 150::bigint), (25::bigint, 175::bigint) $$,
    'each entry carries the running balance after it, in entry order'
);
select is((select sum(amount)::bigint from crypto.ledger_entries), 0::bigint, 'the ledger still sums to zero');

select is(
    crypto.ledger_credit_many(:issuance, 'award', array['key:1', 'key:2', 'key:3'], array[:acct_a, :acct_b, :acct_a], array[100, 100, 25]::bigint[]),
    0, 'the same batch again moves nothing'
);
select is((select balance from crypto.ledger_accounts where id = :acct_a), 175::bigint, '... the balance is unchanged');
select throws_ok(
    format($$ select crypto.ledger_credit_many(%s, 'award', array['key:1'], array[%s], array[101]::bigint[]) $$, :issuance, :acct_a),
    'OX007', 'IDEMPOTENCY_KEY_REUSED', 'a key reused for another amount is refused'
);
select throws_ok(
    format($$ select crypto.ledger_credit_many(%s, 'award', array['key:x'], array[%s], array[1]::bigint[]) $$, :acct_b, :acct_a),
    'OX000', 'VALIDATION_FAILED', 'batch credits come from a system account'
);
select throws_ok(
    format($$ select crypto.ledger_credit_many(%s, 'award', array['key:y', 'key:y'], array[%s, %s], array[1, 1]::bigint[]) $$,
        :issuance, :acct_a, :acct_b),
    'OX000', 'VALIDATION_FAILED', 'keys are unique within a batch'
);
select throws_ok(
    format($$ select crypto.ledger_credit_many(%s, 'award', array['key:z'], array[%s], array[0]::bigint[]) $$, :issuance, :acct_a),
    'OX000', 'VALIDATION_FAILED', 'amounts are positive'
);

select * from finish();
rollback;
