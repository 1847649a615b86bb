-- The deploy window (README "Deploy order"): a worker of the release before
-- 0031 still calls crypto.complete_job(bigint) and crypto.fail_job(bigint,
-- text) until it is rolled. They are back for one release as shims fenced on
-- the claiming session: claim_job now records the backend that took the
-- attempt (jobs.claimed_pid), and the old signatures act only on a job that
-- this very session holds. An old worker claims, works and completes on one
-- autocommit connection (worker.run_once), and a live backend's pid belongs
-- to no other live backend, so a job another worker retook (its claim wrote
-- that worker's pid) is never completed or requeued by the worker that lost
-- it. A job claimed before this migration has no pid: the old worker's
-- answer changes nothing and the job is retaken after its lease, which is
-- what a lost attempt already does (safety over speed).
-- Remove in the release after: drop both functions and the column.
alter table crypto.jobs add column claimed_pid integer;
comment on column crypto.jobs.claimed_pid is
'The backend that claimed the current attempt: the fence of the pre-0031 complete_job/fail_job shims. '
'Remove in the release after 0035.';

create function crypto.complete_job(p_id bigint) returns void
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_attempts integer;
begin
    select j.attempts into v_attempts
    from crypto.jobs as j
    where j.id = p_id and j.status = 'running' and j.claimed_pid = pg_backend_pid();
    -- The attempt fence of the current signature covers a retake between
    -- this read and the update.
    if found then
        perform crypto.complete_job(p_id, v_attempts);
    end if;
end
$$;

revoke execute on function crypto.complete_job(bigint) from public;
grant execute on function crypto.complete_job(bigint) to oxp_service;

create function crypto.fail_job(p_id bigint, p_error text) returns crypto.job_status
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_attempts integer;
begin
    select j.attempts into v_attempts
    from crypto.jobs as j
    where j.id = p_id and j.status = 'running' and j.claimed_pid = pg_backend_pid();
    if not found then
        return null;
    end if;
    return crypto.fail_job(p_id, v_attempts, p_error);
end
$$;

revoke execute on function crypto.fail_job(bigint, text) from public;
grant execute on function crypto.fail_job(bigint, text) to oxp_service;

-- The replica's honest lag (db.REPLICA_LAG): the worker commits a write here
-- every few seconds, so the primary is never idle for longer, and a replica
-- whose last replayed commit is older than that is behind (or its link is
-- dead), whatever its receiver says.
create table crypto.replica_heartbeat (
    id boolean primary key default true check (id),
    beat_at timestamptz not null
);
-- Like every crypto table: only its owner's definer function writes it.
alter table crypto.replica_heartbeat enable row level security;
grant select on crypto.replica_heartbeat to auditor;

-- The compose replica's login (docker-compose.yml `db-replica`): streams
-- the WAL and nothing else. It reads no table and executes no function of
-- ours; its password comes from REPLICATION_PASSWORD (role_passwords).
do $replicator$
begin
    if not exists (select from pg_roles where rolname = 'oxp_replicator') then
        create role oxp_replicator with login replication noinherit;
    end if;
end
$replicator$;
