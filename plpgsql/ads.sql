-- Ads: a completed view grants one prediction slot (SLOT) or points (POINTS)
-- for the session taking predictions, within per-session caps. The user's
-- daily-limit row is the lock, as for predictions, so two clicks at once
-- cannot both take the last unlock.

create or replace function api.ads() returns json
language sql stable security definer
set search_path = crypto, pg_temp
as $$
    select json_build_object('items', coalesce(json_agg(json_build_object(
        'id', a.id, 'title', a.title, 'reward_kind', a.reward_kind, 'reward_points', a.reward_points
    ) order by a.id), '[]'))
    from crypto.ads as a
    where a.active
$$;

create or replace function api.click_ad(p_ad_id text, p_idempotency_key text) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_uid uuid := crypto.require_user();
    v_scope text := 'ad:' || v_uid;
    v_request text := md5(coalesce(p_ad_id, ''));
    v_replay jsonb;
    v_ad crypto.ads;
    v_day date;
    v_limits crypto.user_daily_limits;
    v_transfer crypto.ledger_transfers;
    v_unlock crypto.ad_unlocks;
    v_state text;
    v_detail text;
begin
    if p_idempotency_key is null or length(p_idempotency_key) > 150 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'An ad reward needs an Idempotency-Key header of 1 to 150 characters';
    end if;
    v_replay := crypto.idempotency_replay(v_scope, p_idempotency_key, v_request);
    if v_replay is not null then
        return v_replay::json;
    end if;

    begin
        select a.* into v_ad from crypto.ads as a where a.id = p_ad_id and a.active;
        if v_ad.id is null then
            raise exception using errcode = 'OX004', message = 'NOT_FOUND',
                detail = format('No active ad %s', left(p_ad_id, 40));
        end if;

        -- The session predictions go to: a slot after its cutoff would unlock nothing.
        v_day := crypto.accepting_session();

        insert into crypto.user_daily_limits as l (user_id, trading_day)
        values (v_uid, v_day)
        on conflict (user_id, trading_day) do update set user_id = l.user_id
        returning * into v_limits;

        if v_ad.reward_kind = 'SLOT' then
            if v_limits.slot_unlocks >= crypto.setting_int('ads.max_slot_unlocks') then
                raise exception using errcode = 'OX204', message = 'AD_LIMIT_REACHED',
                    detail = format('%s slot unlocks used for %s', v_limits.slot_unlocks, v_day);
            end if;
            update crypto.user_daily_limits as l set slot_unlocks = l.slot_unlocks + 1
            where l.user_id = v_uid and l.trading_day = v_day
            returning * into v_limits;
        else
            if v_limits.point_rewards >= crypto.setting_int('ads.max_point_rewards') then
                raise exception using errcode = 'OX204', message = 'AD_LIMIT_REACHED',
                    detail = format('%s ad point rewards used for %s', v_limits.point_rewards, v_day);
            end if;
            v_transfer := crypto.ledger_transfer(
                'ad:' || v_uid || ':' || p_idempotency_key,
                crypto.system_account('ads'), crypto.user_account(v_uid),
                v_ad.reward_points, 'ad_reward', v_ad.id
            );
            update crypto.user_daily_limits as l set point_rewards = l.point_rewards + 1
            where l.user_id = v_uid and l.trading_day = v_day
            returning * into v_limits;
        end if;

        insert into crypto.ad_unlocks (user_id, ad_id, trading_day, reward_kind, transfer_id, idempotency_key, created_at)
        values (v_uid, v_ad.id, v_day, v_ad.reward_kind, v_transfer.id, p_idempotency_key, crypto.now())
        returning * into v_unlock;
    exception when sqlstate 'OX004' or sqlstate 'OX101' or sqlstate 'OX204' then
        get stacked diagnostics v_state = returned_sqlstate, v_detail = pg_exception_detail;
        return crypto.idempotency_store(v_scope, p_idempotency_key, v_request,
            crypto.problem(v_state, v_detail))::json;
    end;

    return crypto.idempotency_store(v_scope, p_idempotency_key, v_request, jsonb_build_object(
        'id', v_unlock.id, 'ad_id', v_unlock.ad_id, 'trading_day', v_unlock.trading_day,
        'reward_kind', v_unlock.reward_kind, 'points', coalesce(v_transfer.amount, 0),
        'slot_unlocks', v_limits.slot_unlocks, 'point_rewards', v_limits.point_rewards,
        'prediction_limit', crypto.prediction_limit(v_limits.slot_unlocks),
        'created_at', crypto.kst(v_unlock.created_at)
    ))::json;
end
$$;

grant execute on function api.ads() to anon, app_user, app_admin;
grant execute on function api.click_ad(text, text) to app_user, app_admin;
