-- A vendor call marks its redemption before it leaves
-- (crypto.redemption_sending). From then on no cancel refunds it, nor a
-- refusal of a later call (the first call may have made a voucher); only
-- the vendor's answer for the first call, or an admin's resolve, ends it.
-- A voucher that comes for a redemption already final is kept (orphan
-- voucher) with a critical alert. The mark stretches the job's claim over
-- the call, so a short jobs.lease_seconds lets no second worker in.
begin;
select plan(37);

select tests.create_user('w@example.com') as w \gset
select crypto.upsert_reward('CUP', 'A cup', 100, 9);
-- A grant (test:grant) is an unexplained transfer to the integrity check: left out below.
select crypto.ledger_transfer('test:grant', crypto.system_account('issuance'), crypto.user_account(:'w'), 1000, 'adjustment');
create temporary table balance_of as select :'w'::uuid as user_id;
create function pg_temp.balance() returns bigint language sql as $$
    select a.balance from crypto.ledger_accounts as a join balance_of as b using (user_id) $$;

-- A: killed after the vendor made a voucher; the retake is refused.
select tests.authenticate_as(:'w');
select (api.redeem_reward('CUP', 'a')::jsonb ->> 'id')::bigint as a \gset
select tests.clear_authentication();
select (crypto.claim_job(array['reward.issue'])).id as ja \gset
select throws_ok(format('select crypto.redemption_sending(%s, %s, 2, 30)', :a, :ja), 'OX265', 'JOB_LEASE_LOST',
    'an attempt that does not hold the job calls nobody');
select throws_ok(format('select crypto.redemption_sending(%s, %s, 1, 0)', :a, :ja), 'OX000', 'VALIDATION_FAILED',
    'a call lasts more than 0 s');
select is(crypto.redemption_sending(:a, :ja, 1, 30) ->> 'call', '1', 'the first call is marked');
select is((select sent_call from crypto.rewards_redemptions where id = :a), 1, 'sent by call 1');
select ok((select lease_until >= clock_timestamp() + interval '39 seconds' from crypto.jobs where id = :ja),
    'the claim is stretched over the call and a margin');

-- The worker dies; even a lease of one second does not free its job while the call may run.
select crypto.setting_set('jobs.lease_seconds', '1');
update crypto.jobs set locked_at = clock_timestamp() - interval '1 hour' where id = :ja;
select is((crypto.claim_job(array['reward.issue'])).id, null, 'no second worker takes a live vendor call');
select is((select attempts from crypto.jobs where id = :ja), 1, '... the job is still the first attempt''s');

select throws_ok(format('select crypto.cancel_redemption(%s, null)', :a), 'OX150', 'REDEMPTION_UNKNOWN',
    'a running call: no cancel');
-- The call's time is over: the job is taken again.
update crypto.jobs set lease_until = clock_timestamp() - interval '1 second' where id = :ja;
select is((crypto.claim_job(array['reward.issue'])).attempts, 2, 'the call''s time over, the job is retaken');
select throws_ok(format('select crypto.redemption_sending(%s, %s, 1, 30)', :a, :ja), 'OX265', 'JOB_LEASE_LOST',
    'the first attempt, were it alive, may no longer call');
select is(crypto.redemption_sending(:a, :ja, 2, 30) ->> 'call', '2', 'the second call is marked');
select is(crypto.redemption_refused(:a, 2, 'duplicate request') ->> 'status', 'UNKNOWN',
    'a later call refused: UNKNOWN, not a refund');
select is(pg_temp.balance(), 900::bigint, '... the points stay spent');
select is(crypto.redemption_refused(:a, 1, 'out of stock') ->> 'status', 'UNKNOWN',
    'a refusal of call 1, with call 2 begun since, refunds nothing either');
select is((select severity::text from crypto.alerts where rule = 'redemption_unresolved' and subject = :a::text
    and resolved_at is null), 'critical', 'a critical alert asks an admin to resolve it');
-- The second attempt ends; the job is back in the queue: still no cancel.
select crypto.fail_job(:ja, 2, 'refused');
select throws_ok(format('select crypto.cancel_redemption(%s, null)', :a), 'OX150', 'REDEMPTION_UNKNOWN',
    'a queued retry after a call that may have reached the vendor: no cancel');
select is(pg_temp.balance(), 900::bigint, '... and no refund');
-- The admin asks the vendor another way: it never made one.
select is(crypto.resolve_redemption(:a, 'FAILED', null, 'vendor support: none') ->> 'status', 'FAILED',
    'an admin''s resolve ends it');
select is(pg_temp.balance(), 1000::bigint, 'refunded');
select is((select count(*)::int from crypto.ledger_transfers where idempotency_key = 'refund:redemption:' || :a), 1,
    'once');
select is((select count(*)::int from crypto.alerts where rule = 'redemption_unresolved' and subject = :a::text
    and resolved_at is null), 0, 'the resolve clears the alert');

-- The vendor's answer to call 1 arrives after all: kept, alerted, nothing moves.
select is(crypto.redemption_issued(:a, 'VND-LATE-0123456789') ->> 'orphan_voucher', 'true',
    'a voucher for a refunded redemption is not dropped');
select lives_ok(format('select crypto.redemption_issued(%s, %L)', :a, 'VND-LATE-0123456789'), 'told again');
select results_eq(format('select vendor_ref, redemption_status::text from crypto.orphan_vouchers where redemption_id = %s', :a),
    $$ values ('VND-LATE-0123456789', 'FAILED') $$, 'stored once, with the state it found');
select is((select severity::text from crypto.alerts where rule = 'orphan_voucher' and subject = :a::text
    and resolved_at is null), 'critical', 'a critical alert to void it');
select is((select status::text from crypto.rewards_redemptions where id = :a), 'FAILED', 'the redemption stays as it is');
select is(pg_temp.balance(), 1000::bigint, 'no point moves');

-- B: the only call refused: a refund.
select crypto.setting_set('jobs.lease_seconds', '600');
select tests.authenticate_as(:'w');
select (api.redeem_reward('CUP', 'b')::jsonb ->> 'id')::bigint as b \gset
select tests.clear_authentication();
select (crypto.claim_job(array['reward.issue'])).id as jb \gset
select crypto.redemption_sending(:b, :jb, 1, 30);
select is(crypto.redemption_refused(:b, 1, 'out of stock') ->> 'status', 'FAILED',
    'the refusal of the first and only call fails it');
select is(pg_temp.balance(), 1000::bigint, '... refunded');

-- C: a call that never reached the vendor takes its mark back.
select tests.authenticate_as(:'w');
select (api.redeem_reward('CUP', 'c')::jsonb ->> 'id')::bigint as c \gset
select tests.clear_authentication();
select (crypto.claim_job(array['reward.issue'])).id as jc \gset
select crypto.redemption_sending(:c, :jc, 1, 30);
select crypto.redemption_not_sent(:c, 1, 'ConnectError');
select is((select sent_at from crypto.rewards_redemptions where id = :c), null, 'not sent: no mark');
select crypto.fail_job(:jc, 1, 'ConnectError');
select is(crypto.cancel_redemption(:c, 'changed my mind') ->> 'status', 'CANCELLED', 'then a cancel refunds it');

-- D: a REQUESTED redemption whose call may have reached the vendor is resolved like an UNKNOWN one.
select tests.authenticate_as(:'w');
select (api.redeem_reward('CUP', 'd')::jsonb ->> 'id')::bigint as d \gset
select (api.redeem_reward('CUP', 'e')::jsonb ->> 'id')::bigint as e \gset
select tests.clear_authentication();
select (crypto.claim_job(array['reward.issue'])).id as jd \gset
select crypto.redemption_sending(:d, :jd, 1, 30);
select throws_ok(format('select crypto.resolve_redemption(%s, %L, %L)', :d, 'ISSUED', 'VND-D-0123456789'), 'OX205',
    'REDEMPTION_FINAL', 'no resolve while the call may run');
select crypto.fail_job(:jd, 1, 'killed');
select is(crypto.resolve_redemption(:d, 'ISSUED', 'VND-D-0123456789') ->> 'status', 'ISSUED',
    'resolved with the vendor''s voucher');
select throws_ok(format('select crypto.resolve_redemption(%s, %L)', :e, 'FAILED'), 'OX151', 'REDEMPTION_NOT_UNKNOWN',
    'one never sent is cancelled, not resolved');
select is(crypto.redemption_issued(:d, 'VND-OTHER-0123456789') ->> 'orphan_voucher', 'true',
    'a second, different voucher for an issued redemption is kept too');

select is((select count(*)::int from crypto.integrity_violations() where check_name <> 'unexplained_transfer'), 0,
    'the ledger and inventory agree');

-- Only the worker marks, refuses and takes back calls.
select is_empty(
    $$ select r.rolname, f from pg_roles as r
       cross join (values ('crypto.redemption_sending(bigint, bigint, integer, numeric)'),
           ('crypto.redemption_refused(bigint, integer, text)'),
           ('crypto.redemption_not_sent(bigint, integer, text)')) as p (f)
       where r.rolname in ('anon', 'app_user', 'app_admin', 'auth_service', 'ad_network', 'auditor',
           'authenticator', 'admin_authenticator')
         and has_function_privilege(r.rolname, f, 'execute') $$,
    'no player, admin, anon or auditor may mark or answer a vendor call (the operator acts as the service)'
);

select * from finish();
rollback;
