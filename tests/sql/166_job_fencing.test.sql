begin;
select plan(13);

-- Worker A claims a vendor call; its lease runs out while the call hangs and
-- worker B retakes the job (attempt 2).
select crypto.enqueue_job('reward.issue', '{"redemption_id": 7}', 'reward.issue:7') as job \gset
select is((crypto.claim_job(array['reward.issue'])).attempts, 1, 'worker A holds attempt 1');
update crypto.jobs set locked_at = clock_timestamp() - interval '11 minutes' where id = :job;
select is((crypto.claim_job(array['reward.issue'])).attempts, 2, 'after the lease, worker B retakes it as attempt 2');

-- A's late answers change nothing: B's attempt is neither requeued (where the
-- redemption could be cancelled and refunded) nor marked done.
select is(crypto.fail_job(:job, 1, 'timed out'), null, 'A''s failure of the lost attempt is ignored');
select crypto.complete_job(:job, 1);
select is((select (status, attempts, last_error) from crypto.jobs where id = :job),
    ('running'::crypto.job_status, 2, null::text), '... as is A''s completion: B still holds the job');

-- Another session holding B's token (an operator's, a script's) cannot end
-- B's live attempt: the claiming backend is the fence's other half.
update crypto.jobs set claimed_pid = pg_backend_pid() + 1 where id = :job;
select is(crypto.fail_job(:job, 2, 'requeued by hand'), null, 'another backend cannot requeue a live attempt');
select crypto.complete_job(:job, 2);
select is((select (status, attempts, last_error) from crypto.jobs where id = :job),
    ('running'::crypto.job_status, 2, null::text), '... nor complete it');
update crypto.jobs set claimed_pid = pg_backend_pid() where id = :job;  -- B's own session again

select is(crypto.fail_job(:job, 2, 'vendor down')::text, 'queued', 'B''s own failure requeues it');
update crypto.jobs set run_after = crypto.now() where id = :job;  -- its back-off over
select is((crypto.claim_job(array['reward.issue'])).attempts, 3, 'the retry is attempt 3');
select crypto.complete_job(:job, 3);
select is((select status from crypto.jobs where id = :job), 'done'::crypto.job_status,
    'the attempt that holds it completes it');
select is((select claimed_pid from crypto.jobs where id = :job), pg_backend_pid(),
    'claim_job recorded the claiming backend');

-- A backup may take pgBackRest's hour: its lease is at least two hours, a
-- price fetch's the setting.
update crypto.jobs set run_after = crypto.now() + interval '1 day' where id = :job;
select crypto.enqueue_job('backup.full', '{}', 'backup.full:test') as backup \gset
select crypto.enqueue_job('eod.fetch', '{"trading_day": "2026-11-24"}', 'eod.fetch:test') as fetch \gset
select crypto.claim_job(array['backup.full']);
select crypto.claim_job(array['eod.fetch']);
update crypto.jobs set locked_at = clock_timestamp() - interval '90 minutes' where id in (:backup, :fetch);
select is((crypto.claim_job(array['backup.full'])).id, null, 'a backup running for 90 minutes is not retaken');
select is((crypto.claim_job(array['eod.fetch'])).id, :fetch::bigint, 'a fetch stuck for 90 minutes is');
update crypto.jobs set locked_at = clock_timestamp() - interval '121 minutes' where id = :backup;
select is((crypto.claim_job(array['backup.full'])).id, :backup::bigint, '... and a backup after two hours');

select * from finish();
rollback;
