begin;
select plan(9);

-- A worker of the release before 0031 calls complete_job(id) and
-- fail_job(id, error) during a rolling deploy (sql/0035): they work for the
-- job its session holds ...
select crypto.enqueue_job('reward.issue', '{"redemption_id": 8}', 'reward.issue:8') as job \gset
select is((crypto.claim_job(array['reward.issue'])).claimed_pid, pg_backend_pid(),
    'a claim records the backend that took the attempt');
select is(crypto.fail_job(:job, 'vendor down')::text, 'queued', 'the old fail_job requeues the job its session holds');
select is((select (attempts, last_error) from crypto.jobs where id = :job), (1, 'vendor down'::text),
    '... through the current fail_job (its back-off and error)');
update crypto.jobs set run_after = crypto.now() where id = :job;
select is((crypto.claim_job(array['reward.issue'])).attempts, 2, 'the retry is attempt 2');
select crypto.complete_job(:job);
select is((select status from crypto.jobs where id = :job), 'done'::crypto.job_status,
    'the old complete_job completes the job its session holds');

-- ... and nothing for one another worker retook. Worker A (this session)
-- claims; its lease runs out and worker B, another backend, retakes the job
-- (in this one session: B's claim, then B's pid as B's backend writes it).
select crypto.enqueue_job('reward.issue', '{"redemption_id": 9}', 'reward.issue:9') as job2 \gset
select crypto.claim_job(array['reward.issue']);
update crypto.jobs set locked_at = clock_timestamp() - interval '11 minutes' where id = :job2;
select crypto.claim_job(array['reward.issue']);
update crypto.jobs set claimed_pid = pg_backend_pid() + 1 where id = :job2;
select is(crypto.fail_job(:job2, 'timed out'), null, 'A''s old fail_job of a retaken job is ignored');
select crypto.complete_job(:job2);
select is((select (status, attempts, last_error) from crypto.jobs where id = :job2),
    ('running'::crypto.job_status, 2, null::text), '... as is its old complete_job: B still holds attempt 2');

-- A job claimed before the migration (no pid) is left to its lease.
update crypto.jobs set claimed_pid = null where id = :job2;
select crypto.complete_job(:job2);
select is((select status from crypto.jobs where id = :job2), 'running'::crypto.job_status,
    'a claim without a pid is not completed by the old signature');

-- Nobody else calls them.
set local role app_admin;
select throws_ok(format('select crypto.complete_job(%s)', :job2), '42501', null,
    'app_admin cannot call the old complete_job');
reset role;

select * from finish();
rollback;
