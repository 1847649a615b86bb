-- Rewards: a redemption debits the points and reserves one unit in one
-- transaction; the worker asks the vendor, then the redemption is ISSUED
-- (reserved -> issued) or FAILED (refund, unit released); an admin may
-- CANCEL one that is not issued (refund, unit released). A vendor call
-- with no answer (a timeout, a connection lost after sending) leaves it
-- UNKNOWN: still reserved and paid for, asked again by the worker, never
-- cancelled; the vendor's answer or an admin (crypto.resolve_redemption)
-- ends it.
--
-- Lock order, everywhere: the redemption row, then the user's ledger account
-- (inside crypto.ledger_transfer), then the inventory row. A new redemption
-- holds no redemption row anyone waits for, so no cycle can form.

create or replace function crypto.reward_json(p_reward crypto.rewards_inventory) returns jsonb
language sql immutable
as $$
    select jsonb_build_object(
        'sku', p_reward.sku, 'name', p_reward.name, 'cost_points', p_reward.cost_points,
        'stock', p_reward.stock, 'available', p_reward.stock - p_reward.reserved - p_reward.issued,
        'reserved', p_reward.reserved, 'issued', p_reward.issued, 'active', p_reward.active
    )
$$;

grant execute on function crypto.reward_json(crypto.rewards_inventory) to oxp_service, app_admin, auditor;

create or replace function crypto.redemption_json(p_redemption crypto.rewards_redemptions) returns jsonb
language sql stable
set search_path = crypto, pg_temp
as $$
    select jsonb_build_object(
        'id', p_redemption.id, 'sku', p_redemption.sku, 'cost_points', p_redemption.cost_points,
        'status', p_redemption.status, 'vendor_ref', p_redemption.vendor_ref, 'error', p_redemption.error,
        'created_at', crypto.kst(p_redemption.created_at), 'updated_at', crypto.kst(p_redemption.updated_at)
    )
$$;

grant execute on function crypto.redemption_json(crypto.rewards_redemptions) to oxp_service, app_admin, auditor;

-- The redemption, locked for the rest of the transaction (every change of
-- a redemption starts here, so two of them never interleave), or NOT_FOUND.
create or replace function crypto.redemption_for_update(p_id bigint) returns crypto.rewards_redemptions
language plpgsql volatile
set search_path = crypto, pg_temp
as $$
declare
    v_redemption crypto.rewards_redemptions;
begin
    select r.* into v_redemption from crypto.rewards_redemptions as r where r.id = p_id for update;
    if v_redemption.id is null then
        raise exception using errcode = 'OX004', message = 'NOT_FOUND', detail = format('No redemption %s', p_id);
    end if;
    return v_redemption;
end
$$;

-- The vendor's reference is the voucher, a secret of the user's: operators
-- and the auditor see its last 4 characters (when it is long enough that
-- these give nothing away), and the audit log its SHA-256.
create or replace function crypto.mask_secret(p_secret text) returns text
language sql immutable
set search_path = crypto, pg_temp
as $$
    select case
        when p_secret is null then null
        when length(p_secret) >= 12 then '****' || right(p_secret, 4)
        else '****'
    end
$$;

grant execute on function crypto.mask_secret(text) to oxp_service, app_admin, auditor;

create or replace function crypto.secret_digest(p_secret text) returns text
language sql immutable
set search_path = crypto, pg_temp
as $$ select encode(sha256(convert_to(p_secret, 'UTF8')), 'hex') $$;

grant execute on function crypto.secret_digest(text) to oxp_service, app_admin, auditor;

create or replace function crypto.redemption_json_masked(p_redemption crypto.rewards_redemptions) returns jsonb
language sql stable
set search_path = crypto, pg_temp
as $$
    select crypto.redemption_json(p_redemption)
        || jsonb_build_object('vendor_ref', crypto.mask_secret(p_redemption.vendor_ref))
$$;

grant execute on function crypto.redemption_json_masked(crypto.rewards_redemptions) to oxp_service, app_admin, auditor;

create or replace function api.rewards() returns json
language sql stable security definer
set search_path = crypto, pg_temp
as $$
    select json_build_object('items', coalesce(json_agg(crypto.reward_json(r) order by r.cost_points, r.sku), '[]'))
    from crypto.rewards_inventory as r
    where r.active
$$;

grant execute on function api.rewards() to anon, app_user, app_admin;

-- The redemption rule: debit and reserve together, or neither. Refusals
-- (unknown or inactive SKU, not enough points, no unit left) are stored
-- under the Idempotency-Key like a success, so a retry gets the same answer.
create or replace function api.redeem_reward(p_sku text, p_idempotency_key text) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_uid uuid := crypto.require_user();
    v_scope text := 'redeem:' || v_uid;
    v_request text := md5(coalesce(p_sku, ''));
    v_replay jsonb;
    v_reward crypto.rewards_inventory;
    v_transfer crypto.ledger_transfers;
    v_redemption crypto.rewards_redemptions;
    v_state text;
    v_detail text;
    v_refusal jsonb;
begin
    perform crypto.require_idempotency_key(p_idempotency_key, 'Redeeming', 150);
    v_replay := crypto.idempotency_replay(v_scope, p_idempotency_key, v_request);
    if v_replay is not null then
        return v_replay::json;
    end if;

    begin
        select r.* into v_reward from crypto.rewards_inventory as r where r.sku = p_sku;
        if v_reward.sku is null then
            raise exception using errcode = 'OX004', message = 'NOT_FOUND',
                detail = format('No reward %s', left(p_sku, 40));
        elsif not v_reward.active then
            raise exception using errcode = 'OX203', message = 'REWARD_INACTIVE',
                detail = format('%s is not available', v_reward.sku);
        elsif v_reward.reserved + v_reward.issued >= v_reward.stock then
            -- Said first, as it is the answer more points would not change;
            -- the reserving UPDATE below is what decides under a race.
            raise exception using errcode = 'OX202', message = 'OUT_OF_STOCK',
                detail = format('No unit of %s is left', v_reward.sku);
        end if;

        v_transfer := crypto.ledger_transfer(
            'redeem:' || v_uid || ':' || p_idempotency_key,
            crypto.user_account(v_uid), crypto.system_account('redemptions'),
            v_reward.cost_points, 'redemption', v_reward.sku
        );
        perform crypto.raise_refusal(v_transfer);

        -- Reserve at the price that was debited; a price changed meanwhile
        -- undoes the whole attempt, which the client may simply retry.
        update crypto.rewards_inventory as r set reserved = r.reserved + 1
        where r.sku = v_reward.sku and r.active and r.reserved + r.issued < r.stock
        returning r.* into v_reward;
        if v_reward.sku is null then
            raise exception using errcode = 'OX202', message = 'OUT_OF_STOCK',
                detail = format('No unit of %s is left', p_sku);
        elsif v_reward.cost_points <> v_transfer.amount then
            raise exception using errcode = '40001', message = 'RETRY',
                detail = format('The price of %s changed; try again', v_reward.sku);
        end if;

        insert into crypto.rewards_redemptions
            (user_id, sku, cost_points, status, idempotency_key, debit_transfer_id, created_at, updated_at)
        values (v_uid, v_reward.sku, v_transfer.amount, 'REQUESTED', p_idempotency_key, v_transfer.id,
            crypto.now(), crypto.now())
        returning * into v_redemption;
        perform crypto.enqueue_job('reward.issue', jsonb_build_object('redemption_id', v_redemption.id),
            'reward.issue:' || v_redemption.id);
    exception when others then
        -- Everything above is undone; a refusal the key remembers is
        -- stored, any other error goes on.
        get stacked diagnostics v_state = returned_sqlstate, v_detail = pg_exception_detail;
        v_refusal := crypto.idempotency_refusal(v_scope, p_idempotency_key, v_request, v_state, v_detail);
        if v_refusal is null then
            raise;
        end if;
        return v_refusal::json;
    end;
    return crypto.idempotency_store(v_scope, p_idempotency_key, v_request,
        crypto.redemption_json(v_redemption))::json;
end
$$;

grant execute on function api.redeem_reward(text, text) to app_user, app_admin;

create or replace function api.my_redemptions(p_cursor bigint default null, p_limit integer default 20)
returns json
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
declare
    v_uid uuid := crypto.require_user();
    v_items json;
    v_last bigint;
    v_count integer;
begin
    perform crypto.page_limit(p_limit);
    select json_agg(crypto.redemption_json(r) order by r.id desc), min(r.id), count(*)
    into v_items, v_last, v_count
    from (
        select r.* from crypto.rewards_redemptions as r
        where r.user_id = v_uid and (p_cursor is null or r.id < p_cursor)
        order by r.id desc
        limit p_limit
    ) as r;
    return crypto.page(v_items, v_last, v_count, p_limit);
end
$$;

grant execute on function api.my_redemptions(bigint, integer) to app_user, app_admin;

-- The vendor call got no answer after the request may have reached the
-- vendor: it may have issued the voucher. Nothing moves (points stay
-- spent, the unit reserved); the redemption says so until the vendor's
-- answer or an admin ends it. A final redemption stays as it is.
create or replace function crypto.redemption_unknown(p_id bigint, p_error text) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_redemption crypto.rewards_redemptions;
begin
    v_redemption := crypto.redemption_for_update(p_id);
    if v_redemption.status not in ('REQUESTED', 'UNKNOWN') then
        return crypto.redemption_json(v_redemption);
    elsif v_redemption.status = 'UNKNOWN' then
        -- Asked again, still no answer: the latest error, audited and
        -- alerted once already.
        update crypto.rewards_redemptions as r set error = left(p_error, 500), updated_at = crypto.now()
        where r.id = p_id
        returning * into v_redemption;
        return crypto.redemption_json(v_redemption);
    end if;
    update crypto.rewards_redemptions as r
    set status = 'UNKNOWN', error = left(p_error, 500), updated_at = crypto.now()
    where r.id = p_id
    returning * into v_redemption;
    perform crypto.audit(crypto.current_actor(), 'reward.unknown', p_id::text,
        jsonb_build_object('sku', v_redemption.sku, 'error', left(p_error, 500)));
    -- Worth a look: a vendor that stops answering leaves players waiting,
    -- and only its answer or an admin ends the wait.
    insert into crypto.system_health (at, check_name, status, details)
    values (crypto.now(), 'reward_vendor', 'alert', jsonb_build_object(
        'redemption_id', p_id, 'error', left(p_error, 500),
        'action', format('%s with its answer: oxp rewards resolve %s --issued REF | --failed',
            crypto.redemption_wait_advice(p_id), p_id)));
    return crypto.redemption_json(v_redemption);
end
$$;

grant execute on function crypto.redemption_unknown(bigint, text) to oxp_service;

create or replace function crypto.redemption_issued(p_id bigint, p_vendor_ref text) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_redemption crypto.rewards_redemptions;
begin
    if p_vendor_ref is null or btrim(p_vendor_ref) = '' or length(p_vendor_ref) > 200 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'An issued redemption has the vendor''s reference (1 to 200 characters)';
    end if;
    v_redemption := crypto.redemption_for_update(p_id);
    if v_redemption.status = 'ISSUED' and v_redemption.vendor_ref = p_vendor_ref then
        return crypto.redemption_json(v_redemption);
    elsif v_redemption.status not in ('REQUESTED', 'UNKNOWN') then
        -- A voucher for a redemption final without it (refunded, or issued
        -- with another voucher): raising here would lose the only record
        -- of a voucher that exists. Kept, and a person is called.
        perform crypto.orphan_voucher(v_redemption, p_vendor_ref);
        return crypto.redemption_json(v_redemption) || jsonb_build_object('orphan_voucher', true);
    end if;
    update crypto.rewards_inventory as r set reserved = r.reserved - 1, issued = r.issued + 1
    where r.sku = v_redemption.sku;
    update crypto.rewards_redemptions as r
    set status = 'ISSUED', vendor_ref = p_vendor_ref, error = null, updated_at = crypto.now()
    where r.id = p_id
    returning * into v_redemption;
    -- The voucher itself never goes into the log (the auditor reads it):
    -- its digest is enough to match a voucher someone shows.
    perform crypto.audit(crypto.current_actor(), 'reward.issued', p_id::text,
        jsonb_build_object('sku', v_redemption.sku, 'vendor_ref_sha256', crypto.secret_digest(p_vendor_ref)));
    -- An earlier call's voucher answers what a later call's refusal asked
    -- an admin to resolve (crypto.redemption_refused): the alert is done.
    perform crypto.alert_clear('redemption_unresolved', p_id::text);
    return crypto.redemption_json(v_redemption);
end
$$;

grant execute on function crypto.redemption_issued(bigint, text) to oxp_service;

-- FAILED (the vendor refused) and CANCELLED (an admin) both give back
-- exactly what was taken: the amount of the debit transfer, once.
create or replace function crypto.redemption_release(
    p_id bigint, p_status crypto.redemption_status, p_error text
) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_redemption crypto.rewards_redemptions;
    v_debit crypto.ledger_transfers;
    v_refund crypto.ledger_transfers;
    v_job crypto.job_status;
begin
    if p_status not in ('FAILED', 'CANCELLED') then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'A redemption is released as FAILED or CANCELLED';
    end if;
    v_redemption := crypto.redemption_for_update(p_id);
    if v_redemption.status = p_status then
        return crypto.redemption_json(v_redemption);
    elsif v_redemption.status not in ('REQUESTED', 'UNKNOWN') then
        -- Final first: an issued or failed redemption keeps its mark, and
        -- is final, not waiting for the vendor.
        raise exception using errcode = 'OX205', message = 'REDEMPTION_FINAL',
            detail = format('Redemption %s is %s', p_id, v_redemption.status);
    elsif p_status = 'CANCELLED' and (v_redemption.status = 'UNKNOWN' or v_redemption.sent_at is not null) then
        -- UNKNOWN, or a call that may have reached the vendor was begun
        -- (crypto.redemption_sending) and its worker never said how it
        -- ended (killed, or its lease ran out after the vendor made it):
        -- The vendor may have issued it: a refund now could pay twice.
        raise exception using errcode = 'OX150', message = 'REDEMPTION_UNKNOWN',
            detail = format('The vendor has not said whether it issued redemption %s; %s resolve it with its '
                'answer (oxp rewards resolve %s --issued REF | --failed)', p_id,
                crypto.redemption_wait_advice(p_id), p_id);
    end if;
    -- The vendor call's job row, locked whatever its state: a worker claims
    -- with SKIP LOCKED, so it cannot take the job while this runs, and finds
    -- it done afterwards. If a worker holds it already, the vendor may be
    -- issuing the reward right now, and a cancel would refund a reward the
    -- user then also gets.
    select j.status into v_job from crypto.jobs as j
    where j.dedupe_key = 'reward.issue:' || p_id
    for update;
    if p_status = 'CANCELLED' and v_job = 'running' then
        raise exception using errcode = 'OX205', message = 'REDEMPTION_FINAL',
            detail = format('Redemption %s is with the vendor now; try again shortly', p_id);
    end if;

    v_debit := crypto.ledger_transfer_by_id(v_redemption.debit_transfer_id);
    v_refund := crypto.ledger_transfer(
        'refund:redemption:' || p_id, v_debit.credit_account_id, v_debit.debit_account_id,
        v_debit.amount, 'refund', v_redemption.sku
    );
    perform crypto.raise_refusal(v_refund);
    update crypto.rewards_inventory as r set reserved = r.reserved - 1 where r.sku = v_redemption.sku;
    update crypto.rewards_redemptions as r
    set status = p_status, refund_transfer_id = v_refund.id, error = left(p_error, 500), updated_at = crypto.now()
    where r.id = p_id
    returning * into v_redemption;
    -- A queued vendor call for a cancelled redemption has nothing to do.
    update crypto.jobs as j set status = 'done', finished_at = crypto.now()
    where j.dedupe_key = 'reward.issue:' || p_id and j.status = 'queued';
    perform crypto.audit(crypto.current_actor(), 'reward.' || lower(p_status::text), p_id::text,
        jsonb_build_object('sku', v_redemption.sku, 'refund_transfer_id', v_refund.id, 'error', p_error));
    -- Final: nothing is left for an admin to resolve (crypto.redemption_refused).
    perform crypto.alert_clear('redemption_unresolved', p_id::text);
    return crypto.redemption_json(v_redemption);
end
$$;

-- crypto.redemption_failed, the vendor's refusal, is in
-- rewards_vendor_calls.sql: which refusal may refund depends on the calls.

create or replace function crypto.cancel_redemption(p_id bigint, p_reason text) returns jsonb
language sql volatile security definer
set search_path = crypto, pg_temp
as $$ select crypto.redemption_release(p_id, 'CANCELLED', coalesce(p_reason, 'cancelled by an admin')) $$;

grant execute on function crypto.cancel_redemption(bigint, text) to oxp_operator, app_admin;

-- Adds a SKU or changes one; stock can never fall below what is already
-- reserved or issued (the table's CHECK says so too).
create or replace function crypto.upsert_reward(
    p_sku text, p_name text, p_cost bigint, p_stock integer, p_active boolean default true
) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_reward crypto.rewards_inventory;
begin
    if p_sku is null or p_sku !~ '^[A-Za-z0-9_\-]{1,40}$' or coalesce(btrim(p_name), '') = ''
        or p_cost is null or p_cost <= 0 or p_stock is null or p_stock < 0 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'A reward has a SKU (letters, digits, _ or -), a name, a positive cost and a stock >= 0';
    end if;
    select r.* into v_reward from crypto.rewards_inventory as r where r.sku = p_sku for update;
    if v_reward.sku is not null and p_stock < v_reward.reserved + v_reward.issued then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = format('%s has %s units reserved or issued; stock cannot be %s',
                p_sku, v_reward.reserved + v_reward.issued, p_stock);
    end if;
    insert into crypto.rewards_inventory as r (sku, name, cost_points, stock, active)
    values (p_sku, btrim(p_name), p_cost, p_stock, coalesce(p_active, true))
    on conflict (sku) do update
        set name = excluded.name, cost_points = excluded.cost_points,
            stock = excluded.stock, active = excluded.active
    returning * into v_reward;
    perform crypto.audit(crypto.current_actor(), 'reward.upsert', p_sku, crypto.reward_json(v_reward));
    return crypto.reward_json(v_reward);
end
$$;

grant execute on function crypto.upsert_reward(text, text, bigint, integer, boolean) to oxp_operator, app_admin;
