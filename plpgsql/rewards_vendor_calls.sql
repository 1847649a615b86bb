-- Calls to the reward vendor, as the redemption sees them. A worker may be
-- killed (or lose its lease) after the vendor made a voucher and before it
-- was recorded; the job is then taken again. So, before each call, the
-- worker commits a mark that the call may reach the vendor
-- (crypto.redemption_sending). Once a call may have reached the vendor, the
-- redemption is refunded only when the vendor's answer says it made
-- nothing: a refusal of the first call that may have reached it, with no
-- other call begun since (its number is the call's token); or an admin's
-- resolve (crypto.resolve_redemption), with the vendor's answer asked
-- another way. A cancel is refused (crypto.redemption_release), and a
-- refusal of a later call (a vendor may say "duplicate" or "out of stock"
-- to a call after the one that made the voucher) leaves it UNKNOWN for an
-- admin. Lock order as in rewards.sql: the redemption row, then its job.

-- A voucher for a redemption that is final without it: stored (the only
-- record of a voucher that exists), audited by its digest, and a critical
-- alert, so a person voids it at the vendor or gives it to the user.
create or replace function crypto.orphan_voucher(
    p_redemption crypto.rewards_redemptions, p_vendor_ref text
) returns void
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    insert into crypto.orphan_vouchers (redemption_id, vendor_ref, redemption_status, received_at)
    values (p_redemption.id, p_vendor_ref, p_redemption.status, crypto.now())
    on conflict (redemption_id, vendor_ref) do nothing;
    if not found then
        return;  -- told once already (a retried answer)
    end if;
    perform crypto.audit(crypto.current_actor(), 'reward.orphan_voucher', p_redemption.id::text,
        jsonb_build_object('sku', p_redemption.sku, 'status', p_redemption.status,
            'vendor_ref_sha256', crypto.secret_digest(p_vendor_ref)));
    perform crypto.alert_open('orphan_voucher', p_redemption.id::text, 'critical', jsonb_build_object(
        'redemption_id', p_redemption.id, 'status', p_redemption.status,
        'vendor_ref', crypto.mask_secret(p_vendor_ref),
        'action', format('the vendor made a voucher for redemption %s, which is %s: void it at the vendor '
            '(crypto.orphan_vouchers holds the reference, which oxp_operator reads), then resolve this alert', p_redemption.id,
            p_redemption.status)));
end
$$;

-- What an admin waiting on the vendor for a redemption is told (OX150,
-- the reward_vendor alert): a worker asks again while its job is queued
-- (or backing off) or running; a dead job asks nobody.
create or replace function crypto.redemption_wait_advice(p_id bigint) returns text
language sql stable security definer
set search_path = crypto, pg_temp
as $$
    select case when exists (
        select from crypto.jobs as j
        where j.dedupe_key = 'reward.issue:' || p_id and j.status in ('queued', 'running')
    ) then 'the worker asks the vendor again; or,'
    else 'no worker asks the vendor again (its job is dead): ask the vendor, then' end
$$;

-- Before a vendor call: the mark that it may reach the vendor, committed
-- before the request leaves. Only the worker holding the job's claim may
-- make it (p_job_id, p_attempts: the claim's fencing token): a worker that
-- lost its lease calls nobody. The claim is stretched over the call
-- (p_call_seconds: the worker's longest vendor call, its timeouts summed,
-- plus 10 s to record the answer), so no second worker takes a live call
-- whatever jobs.lease_seconds says. Null when there is nothing to send.
create or replace function crypto.redemption_sending(
    p_id bigint, p_job_id bigint, p_attempts integer, p_call_seconds numeric
) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_redemption crypto.rewards_redemptions;
begin
    if p_call_seconds is null or p_call_seconds <= 0 or p_call_seconds > 3600 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'A vendor call lasts more than 0 and at most 3600 seconds';
    end if;
    v_redemption := crypto.redemption_for_update(p_id);
    if v_redemption.status not in ('REQUESTED', 'UNKNOWN') then
        return null;  -- cancelled or resolved meanwhile, or finished by an earlier attempt
    end if;
    -- The claim is (job id, attempt) and the backend that took it
    -- (claim_job writes jobs.claimed_pid): oxp_operator, a member of
    -- oxp_service, can read the token from crypto.jobs, but not be the
    -- worker's session. The worker claims and calls on one direct
    -- connection (worker.run_once; never PgBouncer, whose transaction mode
    -- would change the backend between statements).
    update crypto.jobs as j
    set lease_until = clock_timestamp() + make_interval(secs => p_call_seconds + 10)
    where j.id = p_job_id and j.dedupe_key = 'reward.issue:' || p_id
        and j.status = 'running' and j.attempts = p_attempts and j.claimed_pid = pg_backend_pid();
    if not found then
        raise exception using errcode = 'OX265', message = 'JOB_LEASE_LOST',
            detail = format('Job %s attempt %s no longer holds redemption %s''s vendor call', p_job_id,
                p_attempts, p_id);
    end if;
    update crypto.rewards_redemptions as r
    set vendor_calls = r.vendor_calls + 1,
        sent_at = coalesce(r.sent_at, crypto.now()),
        sent_call = coalesce(r.sent_call, r.vendor_calls + 1)
    where r.id = p_id
    returning r.* into v_redemption;
    return crypto.redemption_json(v_redemption)
        || jsonb_build_object('user_id', v_redemption.user_id, 'call', v_redemption.vendor_calls);
end
$$;

grant execute on function crypto.redemption_sending(bigint, bigint, integer, numeric) to oxp_service;

-- The worker's claim on a redemption's vendor call, checked and locked
-- (after the redemption row: the lock order). Only the attempt that holds
-- the running job, on the backend that claimed it (jobs.claimed_pid, as in
-- crypto.redemption_sending), may say how its call ended: oxp_operator is
-- a member of oxp_service and reads crypto.jobs, and without this could
-- refund during a live call, or take a mark back, by hand.
create or replace function crypto.redemption_claim_check(p_id bigint, p_job_id bigint, p_attempts integer)
returns void
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    perform from crypto.jobs as j
    where j.id = p_job_id and j.dedupe_key = 'reward.issue:' || p_id
        and j.status = 'running' and j.attempts = p_attempts and j.claimed_pid = pg_backend_pid()
    for update;
    if not found then
        raise exception using errcode = 'OX265', message = 'JOB_LEASE_LOST',
            detail = format('Job %s attempt %s does not hold redemption %s''s vendor call', p_job_id,
                p_attempts, p_id);
    end if;
end
$$;

-- The call never left (no connection was made: the only failure the
-- worker reports here): its mark is taken back when it is the only one
-- standing, on a REQUESTED redemption. An UNKNOWN one keeps its mark
-- whatever (an earlier call's answer never came; a row from before the
-- mark existed may carry none). A worker killed before saying so leaves
-- the mark: the safe side. Audited: it reopens the way to a refund.
create or replace function crypto.redemption_not_sent(
    p_id bigint, p_job_id bigint, p_attempts integer, p_call integer, p_error text
) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_redemption crypto.rewards_redemptions;
    v_cleared boolean := false;
begin
    v_redemption := crypto.redemption_for_update(p_id);
    perform crypto.redemption_claim_check(p_id, p_job_id, p_attempts);
    if v_redemption.status = 'REQUESTED' and v_redemption.sent_call = p_call
        and v_redemption.vendor_calls = p_call then
        update crypto.rewards_redemptions as r
        set sent_at = null, sent_call = null, error = left(p_error, 500), updated_at = crypto.now()
        where r.id = p_id
        returning r.* into v_redemption;
        v_cleared := true;
    end if;
    perform crypto.audit(crypto.current_actor(), 'reward.not_sent', p_id::text, jsonb_build_object(
        'job_id', p_job_id, 'attempts', p_attempts, 'call', p_call, 'mark_cleared', v_cleared,
        'status', v_redemption.status, 'error', left(p_error, 500)));
    return crypto.redemption_json(v_redemption);
end
$$;

grant execute on function crypto.redemption_not_sent(bigint, bigint, integer, integer, text) to oxp_service;

-- A refusal of call p_call (null: a refusal told without its call). A
-- refund only when nothing the vendor may have made is left behind: a
-- REQUESTED redemption with no mark, or whose only marked call is this
-- one, with no other begun since. Else an earlier call may have made a
-- voucher this refusal knows nothing about: UNKNOWN, and a critical alert
-- for an admin's resolve. An UNKNOWN redemption is never refunded here,
-- mark or not (an UNKNOWN row from before the mark existed has none, and
-- its unanswered call may have made one). Not granted: the worker's way
-- in is crypto.redemption_refused, which checks its claim.
create or replace function crypto.redemption_refusal(p_id bigint, p_call integer, p_error text) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_redemption crypto.rewards_redemptions;
begin
    v_redemption := crypto.redemption_for_update(p_id);
    if v_redemption.status not in ('REQUESTED', 'UNKNOWN') then
        return crypto.redemption_json(v_redemption);  -- a late refusal changes nothing final
    end if;
    if v_redemption.status = 'REQUESTED' and (v_redemption.sent_at is null
        or (v_redemption.sent_call = p_call and v_redemption.vendor_calls = p_call)) then
        return crypto.redemption_release(p_id, 'FAILED', p_error);
    end if;
    perform crypto.redemption_unknown(p_id, left(format(
        'refused by the vendor (%s) after an earlier call that may have made a voucher', p_error), 500));
    perform crypto.alert_open('redemption_unresolved', p_id::text, 'critical', jsonb_build_object(
        'redemption_id', p_id, 'error', left(p_error, 500),
        'action', format('ask the vendor whether it made a voucher for redemption %s, then: '
            'oxp rewards resolve %s --issued REF | --failed', p_id, p_id)));
    select r.* into v_redemption from crypto.rewards_redemptions as r where r.id = p_id;
    return crypto.redemption_json(v_redemption);
end
$$;

-- The vendor refused call p_call, told by the attempt that made it (its
-- claim: p_job_id, p_attempts, checked as crypto.redemption_sending does).
create or replace function crypto.redemption_refused(
    p_id bigint, p_job_id bigint, p_attempts integer, p_call integer, p_error text
) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    perform crypto.redemption_for_update(p_id);  -- the lock (redemption, then job) and NOT_FOUND
    perform crypto.redemption_claim_check(p_id, p_job_id, p_attempts);
    return crypto.redemption_refusal(p_id, p_call, p_error);
end
$$;

grant execute on function crypto.redemption_refused(bigint, bigint, integer, integer, text) to oxp_service;

-- A refusal told without the call's number: refunded only if no call may
-- have reached the vendor (a REQUESTED redemption without a mark).
create or replace function crypto.redemption_failed(p_id bigint, p_error text) returns jsonb
language sql volatile security definer
set search_path = crypto, pg_temp
as $$ select crypto.redemption_refusal(p_id, null, p_error) $$;

grant execute on function crypto.redemption_failed(bigint, text) to oxp_service;

-- A vendor call's job went dead (crypto.fail_job: its attempts used up,
-- e.g. a vendor that keeps answering 4xx) after a call that may have
-- reached the vendor: no worker asks again, and no cancel may refund it.
-- UNKNOWN (crypto.redemption_unknown), and a critical alert naming the way
-- out, so the points are not held forever unseen. Called by fail_job, with
-- the redemption row locked first (the lock order); not granted.
create or replace function crypto.redemption_call_dead(p_id bigint, p_job_id bigint, p_error text)
returns void
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    perform crypto.redemption_unknown(p_id, left(format(
        'the worker gave up (job %s is dead) after a call that may have reached the vendor: %s',
        p_job_id, p_error), 500));
    perform crypto.alert_open('redemption_unresolved', p_id::text, 'critical', jsonb_build_object(
        'redemption_id', p_id, 'job', p_job_id, 'error', left(p_error, 500),
        'action', format('no worker asks the vendor again (job %s is dead): ask the vendor whether it made '
            'a voucher for redemption %s, then: oxp rewards resolve %s --issued REF | --failed '
            '(or oxp jobs retry %s to ask it again)', p_job_id, p_id, p_id, p_job_id)));
end
$$;
