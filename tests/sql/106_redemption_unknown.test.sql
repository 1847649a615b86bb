-- A vendor call with no answer (timeout, connection lost after sending):
-- the redemption is UNKNOWN, not FAILED; nothing moves, a cancel is
-- refused, and the vendor's later answer ends it. The voucher (vendor_ref)
-- is kept from the auditor and from the audit log.
begin;
select plan(24);

select tests.create_user('u@example.com') as u \gset
select crypto.upsert_reward('BOX', 'A box', 100, 3);
-- A grant (test:grant) is an unexplained transfer to the integrity check: left out below.
select crypto.ledger_transfer('test:grant', crypto.system_account('issuance'), crypto.user_account(:'u'), 300, 'adjustment');
select tests.authenticate_as(:'u');
select (api.redeem_reward('BOX', 'k1')::jsonb ->> 'id')::bigint as id \gset
select (api.redeem_reward('BOX', 'k2')::jsonb ->> 'id')::bigint as id2 \gset
select tests.clear_authentication();

select is(crypto.redemption_unknown(:id, 'ReadTimeout') ->> 'status', 'UNKNOWN', 'no answer: UNKNOWN');
select results_eq(
    $$ select a.balance, i.reserved, i.issued from crypto.ledger_accounts as a, crypto.rewards_inventory as i
       where a.user_id = (select user_id from crypto.rewards_redemptions where idempotency_key = 'k1') and i.sku = 'BOX' $$,
    $$ values (100::bigint, 2, 0) $$, 'nothing moves: the points stay spent, the unit reserved'
);
select is(
    (select count(*)::int from crypto.audit_logs where action = 'reward.unknown' and subject = :id::text), 1,
    'the unanswered call is audited'
);
select is(
    (select count(*)::int from crypto.system_health where check_name = 'reward_vendor' and status = 'alert'
        and (details ->> 'redemption_id')::bigint = :id), 1,
    'an alert opens: the operator may need to resolve it'
);
select is(crypto.redemption_unknown(:id, 'ReadTimeout again') ->> 'status', 'UNKNOWN', 'asked again, still no answer');
select is((select count(*)::int from crypto.system_health where check_name = 'reward_vendor'), 1, '... alerted once');
select is((select status::text from crypto.jobs where dedupe_key = 'reward.issue:' || :id), 'queued',
    'the worker asks the vendor again');
select is((select count(*)::int from crypto.integrity_violations() where check_name <> 'unexplained_transfer'), 0, 'an UNKNOWN unit counts as reserved');

select throws_ok(format('select crypto.cancel_redemption(%s, null)', :id), 'OX150', 'REDEMPTION_UNKNOWN',
    'an UNKNOWN redemption cannot be cancelled: the vendor may have issued it');
select is((select balance from crypto.ledger_accounts where user_id = :'u'), 100::bigint, '... and nothing was refunded');

-- The vendor answers on a later try.
select crypto.redemption_issued(:id, 'VOUCHER-0123456789-SECRET') as issued \gset
select is(:'issued'::jsonb ->> 'status', 'ISSUED', 'a later answer issues it');
select is(:'issued'::jsonb ->> 'error', null, '... and the timeout is no longer its error');
select results_eq(
    $$ select reserved, issued from crypto.rewards_inventory where sku = 'BOX' $$,
    $$ values (1, 1) $$, 'the unit moves from reserved to issued'
);
select is(crypto.redemption_unknown(:id, 'late timeout') ->> 'status', 'ISSUED', 'a late timeout changes nothing final');
select is((select sent_at from crypto.rewards_redemptions where id = :id), null,
    'this one was made UNKNOWN without a mark (as a row from before the mark), and issued all the same');

-- The other one: no answer, then the vendor refuses: the unanswered call may
-- have made a voucher, so no refund until an admin resolves it; then once.
select crypto.redemption_unknown(:id2, 'ReadTimeout');
select is(crypto.redemption_failed(:id2, 'out of vouchers') ->> 'status', 'UNKNOWN',
    'a refusal after no answer is no refund');
select is(crypto.resolve_redemption(:id2, 'FAILED', null, 'vendor: none made') ->> 'status', 'FAILED',
    'an admin resolves it');
select is((select balance from crypto.ledger_accounts where user_id = :'u'), 200::bigint, 'the points come back');
select is((select count(*)::int from crypto.integrity_violations() where check_name <> 'unexplained_transfer'), 0, 'the ledger and inventory agree');

-- vendor_ref is the voucher: not in the audit log, not readable by the auditor.
select is(
    (select count(*)::int from crypto.audit_logs where details::text like '%VOUCHER-0123456789-SECRET%'), 0,
    'the audit log never holds the voucher in clear'
);
select is(
    (select details ->> 'vendor_ref_sha256' from crypto.audit_logs where action = 'reward.issued' and subject = :id::text),
    encode(sha256('VOUCHER-0123456789-SECRET'::bytea), 'hex'), '... only its SHA-256'
);
set local role auditor;
select throws_ok('select vendor_ref from crypto.rewards_redemptions', '42501', null,
    'the auditor cannot read vendor_ref');
select is(
    (crypto.redemptions_list(null, null, 10) #>> '{items,1,vendor_ref}'), '****CRET',
    'the operators'' list shows the voucher masked'
);
reset role;

-- Only the worker records an unanswered call.
select is_empty(
    $$ select r from unnest(array['anon', 'app_user', 'app_admin', 'auditor', 'authenticator']) as r
       where has_function_privilege(r, 'crypto.redemption_unknown(bigint, text)', 'execute') $$,
    'no player, admin, anon or auditor can mark a redemption UNKNOWN'
);

select * from finish();
rollback;
