-- A vendor call marks its redemption before it leaves
-- (crypto.redemption_sending). From then on no cancel refunds it, nor a
-- refusal of a later call (the first call may have made a voucher); only
-- the vendor's answer for the first call, or an admin's resolve, ends it.
-- A voucher that comes for a redemption already final is kept (orphan
-- voucher) with a critical alert. The mark stretches the job's claim over
-- the call, so a short jobs.lease_seconds lets no second worker in.
begin;
select plan(78);

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
-- now(): this transaction's start, before the mark was made (clock_timestamp() runs on, and made this flaky).
select ok((select lease_until >= now() + interval '40 seconds' from crypto.jobs where id = :ja),
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
select throws_ok(format('select crypto.redemption_refused(%s, %s, 1, 2, %L)', :a, :ja, 'stale'), 'OX265',
    'JOB_LEASE_LOST', 'a refusal told by an attempt that no longer holds the job is refused');
select is(crypto.redemption_refused(:a, :ja, 2, 2, 'duplicate request') ->> 'status', 'UNKNOWN',
    'a later call refused: UNKNOWN, not a refund');
select is(pg_temp.balance(), 900::bigint, '... the points stay spent');
select is(crypto.redemption_refused(:a, :ja, 2, 1, 'out of stock') ->> 'status', 'UNKNOWN',
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
select is(crypto.redemption_refused(:b, :jb, 1, 1, 'out of stock') ->> 'status', 'FAILED',
    'the refusal of the first and only call fails it');
select is(pg_temp.balance(), 1000::bigint, '... refunded');

-- C: a call that never reached the vendor takes its mark back.
select tests.authenticate_as(:'w');
select (api.redeem_reward('CUP', 'c')::jsonb ->> 'id')::bigint as c \gset
select tests.clear_authentication();
select (crypto.claim_job(array['reward.issue'])).id as jc \gset
select crypto.redemption_sending(:c, :jc, 1, 30);
select throws_ok(format('select crypto.redemption_not_sent(%s, %s, 2, 1, %L)', :c, :jc, 'ConnectError'), 'OX265',
    'JOB_LEASE_LOST', 'only the attempt holding the job takes its mark back');
select crypto.redemption_not_sent(:c, :jc, 1, 1, 'ConnectError');
select is((select sent_at from crypto.rewards_redemptions where id = :c), null, 'not sent: no mark');
select is((select details ->> 'mark_cleared' from crypto.audit_logs where action = 'reward.not_sent'
    and subject = :c::text), 'true', '... audited');
select crypto.fail_job(:jc, 1, 'ConnectError');
select is(crypto.cancel_redemption(:c, 'changed my mind') ->> 'status', 'CANCELLED', 'then a cancel refunds it');

-- F: call 1 and call 2 overlap; call 2 is refused (UNKNOWN, an alert), then call 1's voucher comes: ISSUED.
select tests.authenticate_as(:'w');
select (api.redeem_reward('CUP', 'f')::jsonb ->> 'id')::bigint as f \gset
select tests.clear_authentication();
select (crypto.claim_job(array['reward.issue'])).id as jf \gset
select crypto.redemption_sending(:f, :jf, 1, 30);
select crypto.redemption_sending(:f, :jf, 1, 30);
select is(crypto.redemption_refused(:f, :jf, 1, 2, 'duplicate request') ->> 'status', 'UNKNOWN',
    'call 2 refused after call 1 began: UNKNOWN');
select is(crypto.redemption_issued(:f, 'VND-F-0123456789') ->> 'status', 'ISSUED', 'call 1''s voucher issues it');
select is((select count(*)::int from crypto.alerts where rule = 'redemption_unresolved' and subject = :f::text
    and resolved_at is null), 0, '... and clears the alert: nothing is left to resolve');

-- G: an UNKNOWN redemption without a mark (a row from before the mark existed).
select tests.authenticate_as(:'w');
select (api.redeem_reward('CUP', 'g')::jsonb ->> 'id')::bigint as g \gset
select tests.clear_authentication();
select crypto.redemption_unknown(:g, 'ReadTimeout');
select id as jg from crypto.jobs where dedupe_key = 'reward.issue:' || :g \gset
set local role oxp_operator;
select throws_ok(format('select crypto.redemption_refused(%s, %s, 0, 1, %L)', :g, :jg, 'by hand'), 'OX265',
    'JOB_LEASE_LOST', 'the operator (a member of oxp_service) cannot refuse a call it does not hold');
select throws_ok(format('select crypto.redemption_not_sent(%s, %s, 0, 1, %L)', :g, :jg, 'by hand'), 'OX265',
    'JOB_LEASE_LOST', '... nor take a mark back');
reset role;
select is(crypto.redemption_failed(:g, 'out of stock') ->> 'status', 'UNKNOWN',
    'a refusal of an UNKNOWN redemption without a mark is no refund');
select is((select (crypto.claim_job(array['reward.issue'])).id), :jg::bigint, 'the worker asks again');
select is(crypto.redemption_sending(:g, :jg, 1, 30) ->> 'call', '1', '... its first marked call');
select crypto.redemption_not_sent(:g, :jg, 1, 1, 'ConnectError');
select isnt((select sent_at from crypto.rewards_redemptions where id = :g), null,
    'an UNKNOWN redemption keeps its mark whatever a call says');
select is(crypto.redemption_refused(:g, :jg, 1, 1, 'out of stock') ->> 'status', 'UNKNOWN',
    'the refusal of its only marked call refunds nothing: the unanswered call before it may have made one');
select is(pg_temp.balance(), 800::bigint, 'the points of F and G stay spent');

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
select throws_ok(format('select crypto.cancel_redemption(%s, null)', :d), 'OX205', 'REDEMPTION_FINAL',
    'an issued redemption with a mark is final, not unknown');
select is(crypto.redemption_issued(:d, 'VND-OTHER-0123456789') ->> 'orphan_voucher', 'true',
    'a second, different voucher for an issued redemption is kept too');

-- H: the right (job, attempt) from another backend: the claim is also the session that took it.
-- E's job waits: the next claim takes this one's.
update crypto.jobs set run_after = crypto.now() + interval '1 day' where kind = 'reward.issue' and status = 'queued';
select tests.authenticate_as(:'w');
select (api.redeem_reward('CUP', 'h')::jsonb ->> 'id')::bigint as h \gset
select tests.clear_authentication();
select (crypto.claim_job(array['reward.issue'])).id as jh \gset
update crypto.jobs set claimed_pid = pg_backend_pid() + 1 where id = :jh;
select throws_ok(format('select crypto.redemption_sending(%s, %s, 1, 30)', :h, :jh), 'OX265', 'JOB_LEASE_LOST',
    'the right token from a backend that did not claim the job calls nobody');
select is((select sent_at from crypto.rewards_redemptions where id = :h), null, '... and marks nothing');
update crypto.jobs set claimed_pid = pg_backend_pid() where id = :jh;
select is(crypto.redemption_sending(:h, :jh, 1, 30) ->> 'call', '1', 'the claiming backend marks its call');
update crypto.jobs set claimed_pid = pg_backend_pid() + 1 where id = :jh;
select throws_ok(format('select crypto.redemption_not_sent(%s, %s, 1, 1, %L)', :h, :jh, 'by hand'), 'OX265',
    'JOB_LEASE_LOST', 'another backend (an operator reading crypto.jobs) cannot take a live call''s mark back');
select throws_ok(format('select crypto.redemption_refused(%s, %s, 1, 1, %L)', :h, :jh, 'by hand'), 'OX265',
    'JOB_LEASE_LOST', '... nor refund it by a refusal');
select isnt((select sent_at from crypto.rewards_redemptions where id = :h), null, '... the mark stands');
update crypto.jobs set claimed_pid = pg_backend_pid() where id = :jh;

-- H goes on: its job dies (its attempts used up by 4xx answers) with the mark standing.
select ok(tests.error_detail(format('select crypto.cancel_redemption(%s, null)', :h)) like '%the worker asks the vendor again; or, resolve%',
    'while the job lives, OX150 says the worker asks again');
update crypto.jobs set max_attempts = 1 where id = :jh;
select is(crypto.fail_job(:jh, 1, 'VendorRetryLater: vendor answered 429')::text, 'dead', 'the job goes dead');
select is((select status::text from crypto.rewards_redemptions where id = :h), 'UNKNOWN',
    'a dead vendor call with its mark standing leaves the redemption UNKNOWN, not REQUESTED forever');
select is((select details ->> 'action' like format('%%oxp rewards resolve %s --issued REF | --failed%%', :h)
    from crypto.alerts where rule = 'redemption_unresolved' and subject = :h::text and severity = 'critical'
    and resolved_at is null), true, '... a critical alert names oxp rewards resolve');
select ok(tests.error_detail(format('select crypto.cancel_redemption(%s, null)', :h))
    like '%no worker asks the vendor again (its job is dead)%', 'OX150 no longer says the worker asks again');
select is((select details ->> 'action' like 'no worker asks the vendor again%' from crypto.system_health
    where check_name = 'reward_vendor' and (details ->> 'redemption_id')::bigint = :h), true,
    'the reward_vendor alert says so too');
select crypto.evaluate_alerts();
select is((select details ->> 'action' like format('oxp jobs retry %s (asks the vendor again), or end redemption %s: '
    'oxp rewards resolve %s%%', :jh, :h, :h) from crypto.alerts where rule = 'job_dead' and subject = :jh::text
    and resolved_at is null), true, 'the job_dead alert of a reward job names resolve, not a job cancel');
select is(pg_temp.balance(), 500::bigint, 'no point moves while nobody knows');
select is(crypto.resolve_redemption(:h, 'FAILED', null, 'vendor support: none') ->> 'status', 'FAILED',
    'an admin resolves it');
select is((select count(*)::int from crypto.alerts where rule = 'redemption_unresolved' and subject = :h::text
    and resolved_at is null), 0, '... which clears the alert');
select is(pg_temp.balance(), 600::bigint, '... refunded once');

-- I: a dead vendor call whose mark was taken back (no call left): REQUESTED, cancellable, no critical alert.
-- E's job waits: the next claim takes this one's.
update crypto.jobs set run_after = crypto.now() + interval '1 day' where kind = 'reward.issue' and status = 'queued';
select tests.authenticate_as(:'w');
select (api.redeem_reward('CUP', 'i')::jsonb ->> 'id')::bigint as i \gset
select tests.clear_authentication();
select (crypto.claim_job(array['reward.issue'])).id as ji \gset
update crypto.jobs set max_attempts = 1 where id = :ji;
select is(crypto.fail_job(:ji, 1, 'VendorUnavailable: vendor unreachable')::text, 'dead', 'a never-sent call dies');
select is((select status::text from crypto.rewards_redemptions where id = :i), 'REQUESTED', '... still REQUESTED');
select is((select count(*)::int from crypto.alerts where rule = 'redemption_unresolved' and subject = :i::text), 0,
    '... nothing to resolve');
select is(crypto.cancel_redemption(:i, 'vendor down') ->> 'status', 'CANCELLED', '... a cancel refunds it');

-- The orphan vouchers' references: the operator reads them (it resolves the alert); nobody else.
select ok(has_table_privilege('oxp_operator', 'crypto.orphan_vouchers', 'select'), 'the operator reads orphan vouchers');
set local role oxp_operator;
select is((select vendor_ref from crypto.orphan_vouchers where redemption_id = :a), 'VND-LATE-0123456789',
    '... with their reference');
reset role;
select is_empty(
    $$ select r.rolname from pg_roles as r
       where r.rolname in ('oxp_service', 'auditor', 'anon', 'app_user', 'app_admin', 'auth_service', 'ad_network',
           'authenticator', 'admin_authenticator')
         and has_column_privilege(r.rolname, 'crypto.orphan_vouchers', 'vendor_ref', 'select') $$,
    'no one else reads a voucher reference (the auditor, the worker neither)');
select is_empty(
    $$ select r.rolname from pg_roles as r
       where r.rolname in ('anon', 'app_user', 'app_admin', 'auth_service', 'ad_network')
         and has_any_column_privilege(r.rolname, 'crypto.orphan_vouchers', 'select') $$,
    'players, admins and the API read nothing of it');
set local role auditor;
select throws_ok('select vendor_ref from crypto.orphan_vouchers', '42501', null, 'the auditor is refused the reference');
reset role;

select is((select count(*)::int from crypto.integrity_violations() where check_name <> 'unexplained_transfer'), 0,
    'the ledger and inventory agree');

-- Only the worker marks, refuses and takes back calls.
select is_empty(
    $$ select r.rolname, f from pg_roles as r
       cross join (values ('crypto.redemption_sending(bigint, bigint, integer, numeric)'),
           ('crypto.redemption_refused(bigint, bigint, integer, integer, text)'),
           ('crypto.redemption_not_sent(bigint, bigint, integer, integer, text)'),
           ('crypto.redemption_refusal(bigint, integer, text)'),
           ('crypto.redemption_claim_check(bigint, bigint, integer)')) as p (f)
       where r.rolname in ('anon', 'app_user', 'app_admin', 'auth_service', 'ad_network', 'auditor',
           'authenticator', 'admin_authenticator')
         and has_function_privilege(r.rolname, f, 'execute') $$,
    'no player, admin, anon or auditor may mark or answer a vendor call (the operator acts as the service)'
);

select * from finish();
rollback;
