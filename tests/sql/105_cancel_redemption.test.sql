begin;
select plan(6);

select tests.create_user('c@example.com') as c \gset
select crypto.upsert_reward('CAP', 'A cap', 100, 1);
select crypto.ledger_transfer('test:grant', crypto.system_account('issuance'), crypto.user_account(:'c'), 100, 'adjustment');
select tests.authenticate_as(:'c');
select (api.redeem_reward('CAP', 'k1')::jsonb ->> 'id')::bigint as id \gset
select tests.clear_authentication();

-- A worker holds the vendor call: cancelling now could refund a reward the user also gets.
update crypto.jobs set status = 'running', locked_at = clock_timestamp() where dedupe_key = 'reward.issue:' || :id;
select throws_ok(format('select crypto.cancel_redemption(%s, null)', :id), 'OX205', 'REDEMPTION_FINAL',
    'no cancel while the vendor call runs');
update crypto.jobs set status = 'queued', locked_at = null where dedupe_key = 'reward.issue:' || :id;

select is(crypto.cancel_redemption(:id, 'user asked') ->> 'status', 'CANCELLED', 'an unissued redemption can be cancelled');
select is((select balance from crypto.ledger_accounts where user_id = :'c'), 100::bigint, 'the cost comes back');
select is((select reserved from crypto.rewards_inventory where sku = 'CAP'), 0, 'the unit is free again');
select is((select status::text from crypto.jobs where dedupe_key = 'reward.issue:' || :id), 'done',
    'the queued vendor call has nothing left to do');
select is(
    (select count(*)::int from crypto.audit_logs where action = 'reward.cancelled' and subject = :id::text), 1,
    'the cancel is audited'
);

select * from finish();
rollback;
