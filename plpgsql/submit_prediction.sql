-- One prediction per player, trading day and symbol (the key of
-- crypto.predictions): the refusal, from the two places that find a repeat.
create or replace function crypto.prediction_exists(p_symbol text, p_day date) returns void
language plpgsql volatile
set search_path = crypto, pg_temp
as $$
begin
    raise exception using errcode = 'OX103', message = 'PREDICTION_EXISTS',
        detail = format('You already predicted %s for %s', p_symbol, p_day);
end
$$;

-- Every rule of a prediction, checked and written in one transaction; the
-- database clock decides, not the phase having been advanced on time.
create or replace function crypto.place_prediction(p_uid uuid, p_symbol text, p_choice text)
returns jsonb
language plpgsql volatile
set search_path = crypto, pg_temp
as $$
declare
    v_uid uuid := p_uid;
    v_now timestamptz := crypto.now();
    v_symbol text := upper(btrim(p_symbol));
    v_day date;
    v_limits crypto.user_daily_limits;
    v_limit bigint;
    v_prediction crypto.predictions;
    v_rate json;
begin
    if p_choice is null or p_choice not in ('UP', 'DOWN') then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'choice must be UP or DOWN';
    end if;

    v_day := crypto.accepting_session();

    if not exists (
        select from crypto.active_universe as u where u.trading_day = v_day and u.symbol = v_symbol
    ) then
        raise exception using errcode = 'OX102', message = 'SYMBOL_NOT_IN_UNIVERSE',
            detail = format('%s is not in the universe of %s', left(p_symbol, 20), v_day);
    end if;

    -- The user's row for the session is the lock that serialises their
    -- concurrent submissions, so no limit can be overrun by a race.
    v_limits := crypto.lock_daily_limits(v_uid, v_day);

    -- The per-user rate (SPEC §5: 5 a minute, 30 an hour), checked here,
    -- under the lock, where an accepted prediction is counted: exact, and
    -- not a statement of the request's own. Its answer is left for the
    -- shim (oxp.rate_limit_answer: RateLimit-* headers, db._answer). A
    -- refusal is returned, not raised: an Idempotency-Key must not
    -- remember it (api.submit_prediction). What it commits: the lock's row
    -- (an update, so a WAL record, as any refused request's count; the
    -- per-IP limit bounds how often), the IP's count and the activity mark.
    -- The windows are on the locked row: the check reads no other table.
    v_rate := crypto.prediction_rate(v_limits, v_now);
    perform set_config('oxp.rate_limit_answer', v_rate::text, true);
    if not (v_rate ->> 'allowed')::boolean then
        return crypto.problem('OX005', format('Too many predictions; retry in %s s', v_rate ->> 'retry_after'));
    end if;

    -- A second prediction of a symbol is found by the insert's own key
    -- (below), not by a query before it: predictions is partitioned by
    -- month (sql/0038), and a cached plan that reads it locks every month's
    -- partition in every prediction, where the insert locks only its own.
    -- At the limit the query runs (rarely), so that a repeat is still told
    -- it is a repeat.
    v_limit := crypto.prediction_limit(v_limits.slot_unlocks);
    if v_limits.predictions_made >= v_limit then
        if exists (
            select from crypto.predictions as p
            where p.user_id = v_uid and p.trading_day = v_day and p.symbol = v_symbol
        ) then
            perform crypto.prediction_exists(v_symbol, v_day);
        end if;
        raise exception using errcode = 'OX104', message = 'DAILY_LIMIT_REACHED',
            detail = format('%s of %s predictions used for %s', v_limits.predictions_made, v_limit, v_day);
    end if;

    insert into crypto.predictions (user_id, trading_day, symbol, choice, created_at)
    values (v_uid, v_day, v_symbol, p_choice::crypto.prediction_choice, v_now)
    on conflict (user_id, trading_day, symbol) do nothing
    returning * into v_prediction;
    if v_prediction.id is null then
        perform crypto.prediction_exists(v_symbol, v_day);
    end if;
    -- Only an accepted prediction uses the per-user rate limit, counted on
    -- the row that holds the daily limit (sql/0039).
    update crypto.user_daily_limits as l
    set predictions_made = l.predictions_made + 1,
        rate_minute = crypto.rate_window_count(l.rate_minute, v_now, 60),
        rate_hour = crypto.rate_window_count(l.rate_hour, v_now, 3600)
    where l.user_id = v_uid and l.trading_day = v_day;

    return jsonb_build_object(
        'id', v_prediction.id,
        'trading_day', v_prediction.trading_day,
        'symbol', v_prediction.symbol,
        'choice', v_prediction.choice,
        'created_at', crypto.kst(v_prediction.created_at),
        'predictions_left', v_limit - v_limits.predictions_made - 1
    );
end
$$;

-- POST /v1/predictions/{symbol}. With an Idempotency-Key, the key keeps its
-- first answer, a refusal included: a retry gets the same answer even if
-- the reason has gone since (a later ad unlock, say).
create or replace function api.submit_prediction(
    p_symbol text, p_choice text, p_idempotency_key text default null
) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_uid uuid := crypto.require_user();
    v_scope text := 'prediction:' || v_uid;
    v_request text := md5(upper(btrim(p_symbol)) || ':' || coalesce(p_choice, ''));
    v_replay jsonb;
    v_state text;
    v_detail text;
    v_refusal jsonb;
    v_answer jsonb;
begin
    if p_idempotency_key is null then
        -- No key, no subtransaction: the common path stays as cheap as it was.
        return crypto.place_prediction(v_uid, p_symbol, p_choice)::json;
    end if;
    v_replay := crypto.idempotency_replay(v_scope, p_idempotency_key, v_request);
    if v_replay is not null then
        return v_replay::json;
    end if;
    begin
        v_answer := crypto.place_prediction(v_uid, p_symbol, p_choice);
        if v_answer ? 'problem' then
            return v_answer::json;  -- over the prediction rate: a retry may succeed later
        end if;
        return crypto.idempotency_store(v_scope, p_idempotency_key, v_request, v_answer)::json;
    exception when others then
        -- A refusal the key remembers is stored; any other error goes on.
        get stacked diagnostics v_state = returned_sqlstate, v_detail = pg_exception_detail;
        v_refusal := crypto.idempotency_refusal(v_scope, p_idempotency_key, v_request, v_state, v_detail);
        if v_refusal is null then
            raise;
        end if;
        return v_refusal::json;
    end;
end
$$;

grant execute on function api.submit_prediction(text, text, text) to app_user, app_admin;

-- The daily limit: the base plus each ad slot unlock, unlocks capped.
create or replace function crypto.prediction_limit(p_slot_unlocks integer) returns bigint
language sql stable
set search_path = crypto, pg_temp
as $$
    select crypto.setting_int('predictions.base_limit')
        + least(p_slot_unlocks, crypto.setting_int('ads.max_slot_unlocks'))
$$;
