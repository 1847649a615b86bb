-- The work queue the sidecar worker drains (what SQL cannot do itself:
-- fetch prices, call a vendor). Claims skip locked rows, so two workers
-- never take one job; failures back off exponentially, then go dead.
create or replace function crypto.enqueue_job(
    p_kind text, p_payload jsonb, p_dedupe_key text default null, p_max_attempts integer default 8
) returns bigint
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_id bigint;
begin
    insert into crypto.jobs (kind, payload, dedupe_key, max_attempts, run_after, created_at)
    values (p_kind, coalesce(p_payload, '{}'), p_dedupe_key, p_max_attempts, crypto.now(), crypto.now())
    on conflict (dedupe_key) do nothing
    returning id into v_id;
    if v_id is not null then
        perform pg_notify('oxp_jobs', p_kind);
    end if;
    return v_id;
end
$$;

grant execute on function crypto.enqueue_job(text, jsonb, text, integer) to oxp_operator, app_admin;

create or replace function crypto.claim_job(p_kinds text[]) returns crypto.jobs
language sql volatile security definer
set search_path = crypto, pg_temp
as $$
    update crypto.jobs as j
    -- claimed_pid: the backend holding the claim. It fences complete_job,
    -- fail_job, the pre-0031 shims (sql/0035) and, staying after they go, a
    -- vendor call (crypto.redemption_sending, redemption_claim_check).
    set status = 'running', attempts = j.attempts + 1, locked_at = clock_timestamp(),
        lease_until = null, claimed_pid = pg_backend_pid()
    where j.id = (
        select q.id from crypto.jobs as q
        where q.kind = any(p_kinds) and (
            (q.status = 'queued' and q.run_after <= crypto.now())
            -- A worker that died mid-job (killed during a vendor call or a
            -- price fetch) loses it after the lease (jobs.lease_seconds).
            -- A backup may run for pgBackRest's hour (backups.py), so its
            -- lease is at least two: a second worker would only fail on the
            -- repository's lock and raise a false backup_failed.
            or (q.status = 'running'
                and q.locked_at < clock_timestamp() - greatest(
                    crypto.setting_interval('jobs.lease_seconds'),
                    case when q.kind like 'backup.%' then interval '2 hours' else interval '0' end
                )
                -- A vendor call stretches its claim over the call itself
                -- (crypto.redemption_sending): a lease shorter than the
                -- call's timeouts cannot let a second worker in meanwhile.
                and (q.lease_until is null or q.lease_until < clock_timestamp()))
        )
        order by q.run_after, q.id
        for update skip locked
        limit 1
    )
    returning j.*
$$;

grant execute on function crypto.claim_job(text[]) to oxp_service;

-- p_attempts is the claim's fencing token (the attempts claim_job returned):
-- a worker that outlived its lease, whose job another worker retook, finds
-- the token moved on and changes nothing, so it can neither mark the new
-- attempt done nor put it back in the queue (where a redemption could be
-- cancelled and refunded while the new attempt is issuing its voucher).
-- The claiming backend (jobs.claimed_pid) is the other half of the fence:
-- another session of oxp_service (an operator's, or a script's) that reads
-- the token cannot requeue or finish a live attempt either (the worker
-- claims, runs and ends a job on one connection).
create or replace function crypto.complete_job(p_id bigint, p_attempts integer) returns void
language sql volatile security definer
set search_path = crypto, pg_temp
as $$
    update crypto.jobs set status = 'done', finished_at = crypto.now(), locked_at = null
    where id = p_id and status = 'running' and attempts = p_attempts and claimed_pid = pg_backend_pid()
$$;

grant execute on function crypto.complete_job(bigint, integer) to oxp_service;

-- A reward.issue job that goes dead after a call that may have reached the
-- vendor leaves its redemption UNKNOWN, with a critical alert
-- (crypto.redemption_call_dead): no worker asks again, and no cancel may
-- refund it. Its redemption row is locked before the job (the lock order
-- of rewards.sql, as cancel and resolve take them).
create or replace function crypto.fail_job(p_id bigint, p_attempts integer, p_error text) returns crypto.job_status
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_job crypto.jobs;
    v_redemption crypto.rewards_redemptions;
begin
    select j.* into v_job from crypto.jobs as j where j.id = p_id;
    if v_job.kind = 'reward.issue' then
        select r.* into v_redemption from crypto.rewards_redemptions as r
        where r.id = (v_job.payload ->> 'redemption_id')::bigint
        for update;
    end if;
    update crypto.jobs as j
    set
        status = case when j.attempts >= j.max_attempts then 'dead' else 'queued' end::crypto.job_status,
        run_after = crypto.now() + make_interval(secs => least(
            30 * 2 ^ (j.attempts - 1),
            -- A price fetch keeps trying often until its day's deadline.
            case when j.kind = 'eod.fetch' then crypto.setting_int('eod.retry_max_seconds') else 3600 end
        )),
        last_error = left(p_error, 2000),
        locked_at = null,
        finished_at = case when j.attempts >= j.max_attempts then crypto.now() end
    where j.id = p_id and j.status = 'running' and j.attempts = p_attempts
        and j.claimed_pid = pg_backend_pid()
    returning j.* into v_job;
    if not found then
        return null;  -- this attempt lost its claim: the job is another's
    end if;

    -- A price fetch that fails is worth a look from its first failure, long
    -- before its day would be VOID.
    if v_job.kind = 'eod.fetch' and v_job.attempts = 1 then
        insert into crypto.system_health (at, check_name, status, details)
        values (crypto.now(), 'eod_fetch', 'alert', jsonb_build_object(
            'trading_day', v_job.payload ->> 'trading_day', 'error', v_job.last_error,
            'deadline', crypto.kst(crypto.eod_deadline((v_job.payload ->> 'trading_day')::date))
        ));
    end if;

    if v_job.status = 'dead' and v_redemption.status in ('REQUESTED', 'UNKNOWN')
        and (v_redemption.sent_at is not null or v_redemption.status = 'UNKNOWN') then
        perform crypto.redemption_call_dead(v_redemption.id, v_job.id, p_error);
    end if;
    return v_job.status;
end
$$;

grant execute on function crypto.fail_job(bigint, integer, text) to oxp_service;

-- sql/0035 said the column goes with the shims; it stays (re-applied here,
-- so every database says so).
comment on column crypto.jobs.claimed_pid is
'The backend that claimed the current attempt: with (id, attempts) the claim''s fence for complete_job, fail_job, '
'a vendor call (crypto.redemption_sending, crypto.redemption_claim_check), and the pre-0031 complete_job/fail_job '
'shims (drop those in the release after 0035; keep this column).';

-- What only the worker holding a running job of this kind may do (its
-- claim: crypto.claim_job records the session): OX265 for anyone else,
-- an operator's session or a worker whose claim another attempt retook.
create or replace function crypto.require_job_claim(p_kind text, p_what text) returns void
language plpgsql stable
set search_path = crypto, pg_temp
as $$
begin
    if not exists (
        select from crypto.jobs as j
        where j.kind = p_kind and j.status = 'running' and j.claimed_pid = pg_backend_pid()
    ) then
        raise exception using errcode = 'OX265', message = 'JOB_LEASE_LOST',
            detail = format('Only a worker holding a %s job %s', p_kind, p_what);
    end if;
end
$$;
