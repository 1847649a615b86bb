-- An admin's correction: a new transfer with the adjustments account, up
-- or down, never below zero, audited with who and why. A refusal is kept
-- under its key like a success, so a retried command gives the same answer.
create or replace function crypto.adjust_points(
    p_email text, p_amount bigint, p_reason text, p_key text
) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_user crypto.users;
    v_adjustments bigint := crypto.system_account('adjustments');
    v_account bigint;
    v_transfer crypto.ledger_transfers;
begin
    if p_amount is null or p_amount = 0 or coalesce(btrim(p_reason), '') = ''
        or p_key is null or length(p_key) not between 1 and 150 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'An adjustment has a non-zero amount, a reason and a key';
    end if;
    select u.* into v_user from crypto.users as u where u.id = crypto.user_by_email(p_email);
    v_account := crypto.user_account(v_user.id);

    v_transfer := crypto.ledger_transfer(
        'adjust:' || p_key,
        case when p_amount > 0 then v_adjustments else v_account end,
        case when p_amount > 0 then v_account else v_adjustments end,
        abs(p_amount), 'adjustment', btrim(p_reason)
    );
    if v_transfer.refusal is not null then
        return crypto.problem(v_transfer.refusal,
            format('%s has fewer than %s points', v_user.email, abs(p_amount)));
    end if;
    -- A retry finds the audit row of the first call and adds none.
    if not exists (
        select from crypto.audit_logs as l where l.action = 'points.adjust' and l.subject = 'adjust:' || p_key
    ) then
        perform crypto.audit(crypto.current_actor(), 'points.adjust', 'adjust:' || p_key, jsonb_build_object(
            'user_id', v_user.id, 'amount', p_amount, 'reason', btrim(p_reason), 'transfer_id', v_transfer.id
        ));
    end if;
    -- The balance right after this transfer, as stored: a retry answers the same.
    return jsonb_build_object(
        'transfer_id', v_transfer.id, 'email', v_user.email, 'amount', p_amount,
        'balance_after', (
            select e.balance_after from crypto.ledger_entries as e
            where e.transfer_id = v_transfer.id and e.account_id = v_account and e.created_at = v_transfer.created_at
        )
    );
end
$$;

grant execute on function crypto.adjust_points(text, bigint, text, text) to oxp_operator, app_admin;

-- `oxp points adjust` without --key: a key derived from the adjustment and
-- the day (KST, by the database clock), so the same command run twice the
-- same day pays once, and the same correction tomorrow is a new one.
create or replace function crypto.adjustment_key(p_email text, p_amount bigint, p_reason text) returns jsonb
language sql stable security definer
set search_path = crypto, pg_temp
as $$
    select jsonb_build_object(
        'key', format('%s:%s', d.day, left(encode(sha256(convert_to(
            json_build_array(lower(btrim(p_email)), p_amount, btrim(p_reason), d.day)::text, 'UTF8'
        )), 'hex'), 32)),
        'day', d.day
    )
    from (select (crypto.now() at time zone 'Asia/Seoul')::date as day) as d
$$;

grant execute on function crypto.adjustment_key(text, bigint, text) to oxp_operator, app_admin;
