-- The operator's hand on the work queue (oxp jobs list | retry | cancel).

create or replace function crypto.job_json(p_job crypto.jobs) returns jsonb
language sql stable
set search_path = crypto, pg_temp
as $$
    select jsonb_build_object(
        'id', p_job.id, 'kind', p_job.kind, 'status', p_job.status, 'payload', p_job.payload,
        'attempts', p_job.attempts, 'max_attempts', p_job.max_attempts,
        'run_after', crypto.kst(p_job.run_after), 'created_at', crypto.kst(p_job.created_at),
        'finished_at', crypto.kst(p_job.finished_at), 'last_error', p_job.last_error
    )
$$;

grant execute on function crypto.job_json(crypto.jobs) to oxp_service, app_admin, auditor;

-- Newest first, of one STATUS or all.
create or replace function crypto.jobs_list(p_status text default null, p_limit integer default 50) returns jsonb
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
begin
    if p_status is not null and p_status not in (select unnest(enum_range(null::crypto.job_status))::text) then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = format('status is one of %s, not %s',
                array_to_string(enum_range(null::crypto.job_status), ', '), left(p_status, 40));
    end if;
    if p_limit is null or p_limit not between 1 and 1000 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'limit must be between 1 and 1000';
    end if;
    return coalesce((
        select jsonb_agg(crypto.job_json(j) order by j.id desc)
        from (
            select x.* from crypto.jobs as x
            where p_status is null or x.status::text = p_status
            order by x.id desc limit p_limit
        ) as j
    ), '[]');
end
$$;

grant execute on function crypto.jobs_list(text, integer) to oxp_operator, auditor;

-- The job row locked, or NOT_FOUND naming the id.
create or replace function crypto.lock_job(p_id bigint) returns crypto.jobs
language plpgsql volatile
set search_path = crypto, pg_temp
as $$
declare
    v_job crypto.jobs;
begin
    -- NOWAIT: a worker holding the row is running the job right now.
    begin
        select j.* into v_job from crypto.jobs as j where j.id = p_id for update nowait;
    exception when lock_not_available then
        raise exception using errcode = 'OX122', message = 'JOB_STATE_CONFLICT',
            detail = format('Job %s is being changed by a worker; try again shortly', p_id);
    end;
    if v_job.id is null then
        raise exception using errcode = 'OX004', message = 'NOT_FOUND', detail = format('No job %s', p_id);
    end if;
    return v_job;
end
$$;

-- Run it again now: a dead, cancelled or waiting (backing-off) job is
-- queued to run at once, with one more attempt if it had used them all.
-- A running job is the worker's; a done job has nothing left to do.
create or replace function crypto.job_retry(p_id bigint) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_job crypto.jobs := crypto.lock_job(p_id);
    v_from crypto.job_status := v_job.status;
begin
    if v_job.status in ('running', 'done') then
        raise exception using errcode = 'OX122', message = 'JOB_STATE_CONFLICT',
            detail = format('Job %s (%s) is %s; only a queued, dead or cancelled job is retried',
                p_id, v_job.kind, v_job.status);
    end if;
    update crypto.jobs as j
    set status = 'queued', run_after = crypto.now(), finished_at = null,
        max_attempts = greatest(j.max_attempts, j.attempts + 1)
    where j.id = p_id
    returning j.* into v_job;
    perform pg_notify('oxp_jobs', v_job.kind);
    perform crypto.audit(crypto.current_actor(), 'job.retry', p_id::text,
        jsonb_build_object('kind', v_job.kind, 'from', v_from, 'last_error', v_job.last_error));
    return crypto.job_json(v_job);
end
$$;

grant execute on function crypto.job_retry(bigint) to oxp_operator, app_admin;

-- Never run it again. A vendor call belongs to its redemption: cancelling
-- the job alone would leave the points debited and the unit reserved, so
-- that is refused in favour of `oxp rewards cancel`.
create or replace function crypto.job_cancel(p_id bigint, p_reason text) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_job crypto.jobs;
begin
    if coalesce(btrim(p_reason), '') = '' then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'A cancel needs a reason';
    end if;
    v_job := crypto.lock_job(p_id);
    if v_job.status = 'cancelled' then
        return crypto.job_json(v_job);
    end if;
    if v_job.kind = 'reward.issue' then
        raise exception using errcode = 'OX122', message = 'JOB_STATE_CONFLICT',
            detail = format('Job %s issues redemption %s: cancel the redemption instead (oxp rewards cancel %s)',
                p_id, v_job.payload ->> 'redemption_id', v_job.payload ->> 'redemption_id');
    end if;
    if v_job.status not in ('queued', 'dead') then
        raise exception using errcode = 'OX122', message = 'JOB_STATE_CONFLICT',
            detail = format('Job %s (%s) is %s; only a queued or dead job is cancelled', p_id, v_job.kind, v_job.status);
    end if;
    update crypto.jobs as j set status = 'cancelled', finished_at = crypto.now(), locked_at = null
    where j.id = p_id
    returning j.* into v_job;
    perform crypto.audit(crypto.current_actor(), 'job.cancel', p_id::text,
        jsonb_build_object('kind', v_job.kind, 'reason', btrim(p_reason)));
    return crypto.job_json(v_job);
end
$$;

grant execute on function crypto.job_cancel(bigint, text) to oxp_operator, app_admin;

comment on function crypto.jobs_list(text, integer) is
'Queue jobs newest first with attempts and the last error (oxp jobs list).';
comment on function crypto.job_retry(bigint) is
'Queues a dead, cancelled or waiting job to run now; audited as job.retry.';
comment on function crypto.job_cancel(bigint, text) is
'Cancels a queued or dead job (never a vendor call: cancel its redemption); audited as job.cancel.';
