-- An admin ends an UNKNOWN redemption with the vendor's answer: ISSUED with
-- its reference, or FAILED refunded exactly once. Nobody else may.
begin;
select plan(18);

select tests.create_user('v@example.com') as v \gset
select crypto.upsert_reward('PEN', 'A pen', 50, 5);
-- A grant (test:grant) is an unexplained transfer to the integrity check: left out below.
select crypto.ledger_transfer('test:grant', crypto.system_account('issuance'), crypto.user_account(:'v'), 200, 'adjustment');
select tests.authenticate_as(:'v');
select (api.redeem_reward('PEN', 'a')::jsonb ->> 'id')::bigint as a \gset
select (api.redeem_reward('PEN', 'b')::jsonb ->> 'id')::bigint as b \gset
select (api.redeem_reward('PEN', 'c')::jsonb ->> 'id')::bigint as c \gset
select tests.clear_authentication();
select crypto.redemption_unknown(:a, 'ReadTimeout');
select crypto.redemption_unknown(:b, 'ReadTimeout');

select throws_ok(format('select crypto.resolve_redemption(%s, %L)', :a, 'ISSUED'), 'OX000', 'VALIDATION_FAILED',
    'ISSUED needs the vendor''s reference');
select throws_ok(format('select crypto.resolve_redemption(%s, %L, %L)', :a, 'FAILED', 'x'), 'OX000',
    'VALIDATION_FAILED', 'FAILED takes no reference');
select throws_ok(format('select crypto.resolve_redemption(%s, %L)', :a, 'MAYBE'), 'OX000', 'VALIDATION_FAILED',
    'the outcome is ISSUED or FAILED');
select throws_ok($$ select crypto.resolve_redemption(999999, 'FAILED') $$, 'OX004', 'NOT_FOUND',
    'an unknown redemption id');
select throws_ok(format('select crypto.resolve_redemption(%s, %L)', :c, 'FAILED'), 'OX151', 'REDEMPTION_NOT_UNKNOWN',
    'a REQUESTED redemption is cancelled, not resolved');

-- A worker is asking the vendor now: its answer decides.
update crypto.jobs set status = 'running', locked_at = clock_timestamp() where dedupe_key = 'reward.issue:' || :a;
select throws_ok(format('select crypto.resolve_redemption(%s, %L)', :a, 'FAILED'), 'OX205', 'REDEMPTION_FINAL',
    'no resolve while a worker asks the vendor');
update crypto.jobs set status = 'queued', locked_at = null where dedupe_key = 'reward.issue:' || :a;

select is(crypto.resolve_redemption(:a, 'FAILED', null, 'vendor support: never issued') ->> 'status', 'FAILED',
    'resolved as not issued');
select is((select balance from crypto.ledger_accounts where user_id = :'v'), 100::bigint, 'the points come back');
select is(crypto.resolve_redemption(:a, 'FAILED') ->> 'status', 'FAILED', 'resolving again answers the same');
select is((select balance from crypto.ledger_accounts where user_id = :'v'), 100::bigint, '... and refunds nothing more');
select is(
    (select count(*)::int from crypto.ledger_transfers where idempotency_key = 'refund:redemption:' || :a), 1,
    'one refund transfer'
);
select is((select status::text from crypto.jobs where dedupe_key = 'reward.issue:' || :a), 'done',
    'the vendor call is not retried after a resolve');
select throws_ok(format('select crypto.resolve_redemption(%s, %L, %L)', :a, 'ISSUED', 'REF-1'), 'OX205',
    'REDEMPTION_FINAL', 'a resolved redemption does not change its answer');

select is(crypto.resolve_redemption(:b, 'ISSUED', 'VND-REF-000000000042') ->> 'vendor_ref', '****0042',
    'resolved as issued; the answer masks the reference');
select results_eq(
    $$ select reserved, issued from crypto.rewards_inventory where sku = 'PEN' $$,
    $$ values (1, 1) $$, 'the unit is issued; c is still reserved'
);
select is(
    (select count(*)::int from crypto.audit_logs where action = 'reward.resolved' and subject in (:a::text, :b::text)
        and details::text not like '%VND-REF%'), 2,
    'each resolve is audited, the reference hashed'
);
select is((select count(*)::int from crypto.integrity_violations() where check_name <> 'unexplained_transfer'), 0, 'the ledger and inventory agree');

-- Who may resolve: the operator (CLI) and admins, not players, anon or the auditor.
select is_empty(
    $$ select r from unnest(array['anon', 'app_user', 'auditor', 'authenticator']) as r
       where has_function_privilege(r, 'crypto.resolve_redemption(bigint, text, text, text)', 'execute') $$,
    'players, anon and the auditor cannot resolve a redemption'
);

select * from finish();
rollback;
