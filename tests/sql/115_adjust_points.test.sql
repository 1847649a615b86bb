begin;
select plan(13);

select tests.create_user('adj@example.com') as u \gset
select is((crypto.adjust_points('ADJ@example.com', 250, 'goodwill', 'k1') ->> 'balance_after')::bigint, 250::bigint,
    'a positive adjustment credits the user');
select is((crypto.adjust_points('adj@example.com', -50, 'correction', 'k2') ->> 'balance_after')::bigint, 200::bigint,
    'a negative one debits');
select is(crypto.adjust_points('adj@example.com', -201, 'too much', 'k3') #>> '{problem,sqlstate}', 'OX201',
    'never below zero');
select is((crypto.adjust_points('adj@example.com', 250, 'goodwill', 'k1') ->> 'balance_after')::bigint, 250::bigint,
    'a retried adjustment answers as the first time');
select is((select balance from crypto.ledger_accounts where user_id = :'u'), 200::bigint, '... and applies once');
select throws_ok($$ select crypto.adjust_points('adj@example.com', 251, 'goodwill', 'k1') $$, 'OX007',
    'IDEMPOTENCY_KEY_REUSED', 'a key reused for another adjustment is refused');
select throws_ok($$ select crypto.adjust_points('nobody@example.com', 1, 'x', 'k4') $$, 'OX004', 'NOT_FOUND',
    'an unknown user');
select throws_ok($$ select crypto.adjust_points('adj@example.com', 1, ' ', 'k5') $$, 'OX000', 'VALIDATION_FAILED',
    'an adjustment needs a reason');
select results_eq(
    $$ select details ->> 'reason', (details ->> 'amount')::int from crypto.audit_logs
       where action = 'points.adjust'
           and details ->> 'user_id' = (select id::text from crypto.users where email = 'adj@example.com') order by id $$,
    $$ values ('goodwill', 250), ('correction', -50) $$,
    'each applied adjustment is audited once, with its reason'
);

-- oxp points adjust without --key: the same adjustment the same KST day has one key.
select crypto.clock_set('2026-11-24 09:00+09');
select is(crypto.adjustment_key(' ADJ@example.com', 5, 'fix '), crypto.adjustment_key('adj@example.com', 5, 'fix'),
    'the same adjustment the same day has the same key');
select isnt(crypto.adjustment_key('adj@example.com', 5, 'fix') ->> 'key',
    crypto.adjustment_key('adj@example.com', 6, 'fix') ->> 'key', 'another amount has another key');
select is(crypto.adjustment_key('adj@example.com', 5, 'fix') ->> 'day', '2026-11-24', 'the day is the KST date');
select crypto.adjustment_key('adj@example.com', 5, 'fix') ->> 'key' as monday_key \gset
-- 00:30 KST on the 25th is still the 24th in UTC and in New York: the KST day decides.
select crypto.clock_set('2026-11-25 00:30+09');
select isnt(crypto.adjustment_key('adj@example.com', 5, 'fix') ->> 'key', :'monday_key',
    'the next KST day, a new key');

select * from finish();
rollback;
