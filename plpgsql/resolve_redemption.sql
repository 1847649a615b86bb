-- An admin ends a redemption the vendor never answered for (UNKNOWN), with
-- what the vendor says when asked another way: it was ISSUED (with its
-- reference) or it was not (FAILED: the points come back, once). One
-- transaction: the redemption row, then its vendor call's job row, are
-- locked before anything moves, so neither a worker nor a second resolve
-- can act in between.
create or replace function crypto.resolve_redemption(
    p_id bigint, p_outcome text, p_vendor_ref text default null, p_note text default null
) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_redemption crypto.rewards_redemptions;
    v_job crypto.job_status;
begin
    if p_outcome is null or p_outcome not in ('ISSUED', 'FAILED')
        or (p_outcome = 'ISSUED' and (p_vendor_ref is null or btrim(p_vendor_ref) = '' or length(p_vendor_ref) > 200))
        or (p_outcome = 'FAILED' and p_vendor_ref is not null) then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'A redemption is resolved as ISSUED with the vendor''s reference (1 to 200 characters), '
                'or as FAILED without one';
    end if;
    v_redemption := crypto.redemption_for_update(p_id);
    if v_redemption.status::text = p_outcome then
        -- The same answer again (a retried command, or the worker got there
        -- first): nothing more moves.
        return crypto.redemption_json_masked(v_redemption);
    elsif v_redemption.status = 'REQUESTED' and v_redemption.sent_at is null then
        raise exception using errcode = 'OX151', message = 'REDEMPTION_NOT_UNKNOWN',
            detail = format('Redemption %s has no unanswered vendor call; cancel it instead (oxp rewards cancel %s)',
                p_id, p_id);
    elsif v_redemption.status not in ('REQUESTED', 'UNKNOWN') then
        -- (REQUESTED here has a call that may have reached the vendor and
        -- was never answered: as good as UNKNOWN, and resolved alike.)
        raise exception using errcode = 'OX205', message = 'REDEMPTION_FINAL',
            detail = format('Redemption %s is %s', p_id, v_redemption.status);
    end if;

    -- A worker claims with SKIP LOCKED: with this row locked it cannot take
    -- the vendor call, and finds it done afterwards. One that holds it now
    -- is asking the vendor, whose answer is about to settle this.
    select j.status into v_job from crypto.jobs as j
    where j.dedupe_key = 'reward.issue:' || p_id
    for update;
    if v_job = 'running' then
        raise exception using errcode = 'OX205', message = 'REDEMPTION_FINAL',
            detail = format('Redemption %s is with the vendor now; try again shortly', p_id);
    end if;

    if p_outcome = 'ISSUED' then
        perform crypto.redemption_issued(p_id, p_vendor_ref);
    else
        perform crypto.redemption_release(p_id, 'FAILED',
            coalesce(nullif(btrim(p_note), ''), 'resolved by an admin: the vendor did not issue it'));
    end if;
    update crypto.jobs as j set status = 'done', finished_at = crypto.now(), locked_at = null
    where j.dedupe_key = 'reward.issue:' || p_id and j.status in ('queued', 'dead');
    -- A later call's refusal called for this resolve (crypto.redemption_refused).
    perform crypto.alert_clear('redemption_unresolved', p_id::text);
    perform crypto.audit(crypto.current_actor(), 'reward.resolved', p_id::text,
        jsonb_build_object('outcome', p_outcome, 'note', left(p_note, 500),
            'vendor_ref_sha256', crypto.secret_digest(p_vendor_ref)));
    select r.* into v_redemption from crypto.rewards_redemptions as r where r.id = p_id;
    return crypto.redemption_json_masked(v_redemption);
end
$$;

grant execute on function crypto.resolve_redemption(bigint, text, text, text) to oxp_operator;

comment on function crypto.resolve_redemption(bigint, text, text, text) is
'Ends an UNKNOWN redemption with the vendor''s answer: ISSUED (with its reference) or FAILED (refunded once); '
'refused while a worker asks the vendor (oxp rewards resolve).';
