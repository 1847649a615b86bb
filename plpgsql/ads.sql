-- Ads. A click pays nothing: it records an impression, whose id the app
-- gives the ad SDK (custom_data, with the user's id as user_id). The ad
-- network's signed server-side verification (SSV) callback, checked by the
-- API, is what rewards: one prediction slot (SLOT) or points (POINTS) for
-- the session the ad was shown in, within per-session caps. Both kinds wait
-- for the callback: a slot is one more chance to win points, so a slot for
-- a click would be farmable too.

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

grant execute on function api.ads() to anon, app_user, app_admin;

-- The click: an impression for the session taking predictions. Refused up
-- front when the session's reward cap is already reached (an ad that could
-- not pay is not shown); the cap that counts is checked again at payment.
-- The user's daily-limit row is the lock, as for predictions and payments.
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
    v_shown bigint;
    v_impression crypto.ad_impressions;
    v_state text;
    v_detail text;
    v_refusal jsonb;
begin
    perform crypto.require_idempotency_key(p_idempotency_key, 'An ad view', 150);
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

        v_limits := crypto.lock_daily_limits(v_uid, v_day);

        if v_ad.reward_kind = 'SLOT'
            and v_limits.slot_unlocks >= crypto.setting_int('ads.max_slot_unlocks') then
            raise exception using errcode = 'OX204', message = 'AD_LIMIT_REACHED',
                detail = format('%s slot unlocks used for %s', v_limits.slot_unlocks, v_day);
        end if;
        if v_ad.reward_kind = 'POINTS'
            and v_limits.point_rewards >= crypto.setting_int('ads.max_point_rewards') then
            raise exception using errcode = 'OX204', message = 'AD_LIMIT_REACHED',
                detail = format('%s ad point rewards used for %s', v_limits.point_rewards, v_day);
        end if;
        -- Impressions cost nothing to make: bounded so they cannot grow without end.
        select count(*) into v_shown
        from crypto.ad_impressions as i
        where i.user_id = v_uid and i.trading_day = v_day;
        if v_shown >= crypto.setting_int('ads.max_impressions') then
            raise exception using errcode = 'OX204', message = 'AD_LIMIT_REACHED',
                detail = format('%s ads shown for %s', v_shown, v_day);
        end if;

        insert into crypto.ad_impressions (user_id, ad_id, trading_day, idempotency_key, created_at)
        values (v_uid, v_ad.id, v_day, p_idempotency_key, crypto.now())
        returning * into v_impression;
    exception when others then
        -- A refusal the key remembers is stored; any other error goes on.
        get stacked diagnostics v_state = returned_sqlstate, v_detail = pg_exception_detail;
        v_refusal := crypto.idempotency_refusal(v_scope, p_idempotency_key, v_request, v_state, v_detail);
        if v_refusal is null then
            raise;
        end if;
        return v_refusal::json;
    end;

    return crypto.idempotency_store(v_scope, p_idempotency_key, v_request, jsonb_build_object(
        'impression_id', v_impression.id, 'ad_id', v_impression.ad_id,
        'trading_day', v_impression.trading_day, 'reward_kind', v_ad.reward_kind,
        'reward_points', v_ad.reward_points,
        -- What the app sets as the SDK's server-side verification options.
        'ssv', jsonb_build_object('user_id', v_uid, 'custom_data', v_impression.id),
        'created_at', crypto.kst(v_impression.created_at)
    ))::json;
end
$$;

grant execute on function api.click_ad(text, text) to app_user, app_admin;

-- The answer to a verified callback, the same on every replay.
create or replace function crypto.ad_unlock_json(p_unlock crypto.ad_unlocks) returns json
language sql stable
set search_path = crypto, pg_temp
as $$
    select json_build_object(
        'transaction_id', p_unlock.transaction_id, 'impression_id', p_unlock.impression_id,
        'ad_id', p_unlock.ad_id, 'trading_day', p_unlock.trading_day,
        'reward_kind', p_unlock.reward_kind,
        'points', coalesce((crypto.ledger_transfer_by_id(p_unlock.transfer_id)).amount, 0),
        'created_at', crypto.kst(p_unlock.created_at)
    )
$$;

-- The network's verified callback pays. Only the API calls it, as
-- ad_network, after checking the signature with the network's published
-- key; p_callback is the rest of what the network sent, kept as evidence.
-- A transaction id pays once: a replay answers what the first call did and
-- pays nothing. Refusals raise (nothing is written, nothing paid).
-- Lock order: the impression, then the user's daily-limit row (as in
-- click_ad and submit_prediction), then the ledger.
create or replace function api.ad_ssv_reward(
    p_transaction_id text, p_impression_id text, p_user_id text,
    p_rewarded_at timestamptz, p_callback jsonb
) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_unlock crypto.ad_unlocks;
    v_impression crypto.ad_impressions;
    v_ad crypto.ads;
    v_limits crypto.user_daily_limits;
    v_transfer crypto.ledger_transfers;
    v_max_age bigint := crypto.setting_int('ads.ssv_max_age_seconds');
begin
    if p_transaction_id is null or p_transaction_id !~ '^[A-Za-z0-9_\-]{1,128}$' then
        raise exception using errcode = 'OX162', message = 'AD_SSV_MALFORMED',
            detail = 'transaction_id must be 1 to 128 letters, digits, - or _';
    end if;

    -- A replay first: the network may retry a callback we answered, however late.
    select u.* into v_unlock from crypto.ad_unlocks as u where u.transaction_id = p_transaction_id;
    if v_unlock.id is not null then
        return crypto.ad_unlock_json(v_unlock);
    end if;

    if p_rewarded_at is null
        or p_rewarded_at < crypto.now() - make_interval(secs => v_max_age)
        or p_rewarded_at > crypto.now() + interval '5 minutes' then
        raise exception using errcode = 'OX163', message = 'AD_SSV_STALE',
            detail = format('The callback is from %s; the clock says %s',
                crypto.kst(p_rewarded_at), crypto.kst(crypto.now()));
    end if;

    if p_impression_id !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
        raise exception using errcode = 'OX164', message = 'AD_IMPRESSION_UNKNOWN',
            detail = 'custom_data does not name an ad impression';
    end if;
    select i.* into v_impression from crypto.ad_impressions as i
    where i.id = p_impression_id::uuid
    for update;
    if v_impression.id is null then
        raise exception using errcode = 'OX164', message = 'AD_IMPRESSION_UNKNOWN',
            detail = format('No ad impression %s', p_impression_id);
    end if;
    if p_user_id is distinct from v_impression.user_id::text then
        raise exception using errcode = 'OX165', message = 'AD_SSV_USER_MISMATCH',
            detail = format('Impression %s was not shown to user %s', v_impression.id, left(p_user_id, 40));
    end if;

    -- A disabled account earns nothing, whatever it was shown before.
    if exists (select from crypto.users as u where u.id = v_impression.user_id and u.disabled_at is not null) then
        raise exception using errcode = 'OX003', message = 'FORBIDDEN',
            detail = 'The account is disabled';
    end if;

    -- Under the impression's lock: the same transaction, racing, paid meanwhile.
    select u.* into v_unlock from crypto.ad_unlocks as u where u.transaction_id = p_transaction_id;
    if v_unlock.id is not null then
        return crypto.ad_unlock_json(v_unlock);
    end if;
    select u.* into v_unlock from crypto.ad_unlocks as u where u.impression_id = v_impression.id;
    if v_unlock.id is not null then
        raise exception using errcode = 'OX166', message = 'AD_IMPRESSION_REWARDED',
            detail = format('Impression %s was rewarded by transaction %s',
                v_impression.id, v_unlock.transaction_id);
    end if;

    -- The catalogue's reward, even if the ad was retired since it was shown.
    select a.* into strict v_ad from crypto.ads as a where a.id = v_impression.ad_id;

    v_limits := crypto.lock_daily_limits(v_impression.user_id, v_impression.trading_day);

    if v_ad.reward_kind = 'SLOT' then
        if v_limits.slot_unlocks >= crypto.setting_int('ads.max_slot_unlocks') then
            raise exception using errcode = 'OX204', message = 'AD_LIMIT_REACHED',
                detail = format('%s slot unlocks used for %s', v_limits.slot_unlocks, v_limits.trading_day);
        end if;
        update crypto.user_daily_limits as l set slot_unlocks = l.slot_unlocks + 1
        where l.user_id = v_limits.user_id and l.trading_day = v_limits.trading_day;
    else
        if v_limits.point_rewards >= crypto.setting_int('ads.max_point_rewards') then
            raise exception using errcode = 'OX204', message = 'AD_LIMIT_REACHED',
                detail = format('%s ad point rewards used for %s', v_limits.point_rewards, v_limits.trading_day);
        end if;
        v_transfer := crypto.ledger_transfer(
            'ad:ssv:' || p_transaction_id,
            crypto.system_account('ads'), crypto.user_account(v_impression.user_id),
            v_ad.reward_points, 'ad_reward', v_ad.id
        );
        update crypto.user_daily_limits as l set point_rewards = l.point_rewards + 1
        where l.user_id = v_limits.user_id and l.trading_day = v_limits.trading_day;
    end if;

    insert into crypto.ad_unlocks (
        user_id, ad_id, trading_day, reward_kind, transfer_id, idempotency_key, created_at,
        impression_id, transaction_id, callback
    )
    values (
        v_impression.user_id, v_ad.id, v_impression.trading_day, v_ad.reward_kind, v_transfer.id,
        'ssv:' || p_transaction_id, crypto.now(),
        v_impression.id, p_transaction_id,
        coalesce(p_callback, '{}') || jsonb_build_object('rewarded_at', p_rewarded_at)
    )
    returning * into v_unlock;

    return crypto.ad_unlock_json(v_unlock);
end
$$;

-- Only the role the API takes for the network's callback; no player, admin or service.
grant execute on function api.ad_ssv_reward(text, text, text, timestamptz, jsonb) to ad_network;
