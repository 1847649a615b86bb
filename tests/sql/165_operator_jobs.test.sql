begin;
select plan(15);

select crypto.enqueue_job('eod.fetch', '{"trading_day": "2026-11-24"}', 'eod.fetch:2026-11-24', 1) as fetch \gset
select crypto.enqueue_job('reward.issue', '{"redemption_id": 7}', 'reward.issue:7') as issue \gset
-- The fetch fails its one attempt and is dead.
select (crypto.claim_job(array['eod.fetch'])).id;
select crypto.fail_job(:fetch, 1, 'DNS failure');

select is(crypto.jobs_list('dead') #>> '{0,last_error}', 'DNS failure', 'a dead job with its last error');
select is((select count(*)::int from jsonb_array_elements(crypto.jobs_list()) as j where j ->> 'kind' <> 'alert.deliver'), 2,
    'every job');
select is((select array_agg(j ->> 'kind') from jsonb_array_elements(crypto.jobs_list()) as j where j ->> 'kind' = 'alert.deliver'),
    array['alert.deliver'], '... and the delivery of the alert the failed fetch opened');
select throws_ok($$ select crypto.jobs_list('lost') $$, 'OX000', 'VALIDATION_FAILED', 'an unknown status');

select is(crypto.job_retry(:fetch) ->> 'status', 'queued', 'a dead job is retried');
select is((select (max_attempts, run_after = crypto.now()) from crypto.jobs where id = :fetch), (2, true),
    '... now, with one more attempt');
select is((select (crypto.claim_job(array['eod.fetch'])).id), :fetch::bigint, '... and a worker takes it');
select throws_ok(format('select crypto.job_retry(%s)', :fetch), 'OX122', 'JOB_STATE_CONFLICT',
    'a running job is the worker''s');
select throws_ok('select crypto.job_retry(999999)', 'OX004', 'NOT_FOUND', 'an unknown job');

select crypto.fail_job(:fetch, 2, 'again');
select is(crypto.job_cancel(:fetch, 'closes loaded by hand') ->> 'status', 'cancelled', 'a dead job is cancelled');
select is((select (crypto.claim_job(array['eod.fetch'])).id), null, '... and never claimed again');
select throws_ok(format('select crypto.job_cancel(%s, %L)', :issue, 'x'), 'OX122', 'JOB_STATE_CONFLICT',
    'a vendor call is cancelled through its redemption');
select throws_ok(format('select crypto.job_cancel(%s, %L)', :fetch, ' '), 'OX000', 'VALIDATION_FAILED',
    'a cancel needs a reason');
select results_eq(
    $$ select action, details ->> 'kind' from crypto.audit_logs where action like 'job.%' order by id $$,
    $$ values ('job.retry', 'eod.fetch'), ('job.cancel', 'eod.fetch') $$,
    'retries and cancels are audited'
);
select is_empty(
    $$ select r, f from unnest(array['anon', 'app_user', 'auditor', 'authenticator']) as r
       cross join unnest(array['crypto.job_retry(bigint)', 'crypto.job_cancel(bigint, text)']) as f
       where has_function_privilege(r, f, 'execute') $$,
    'anon, players and the auditor cannot retry or cancel'
);

select * from finish();
rollback;
