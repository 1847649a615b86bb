-- What a day's settlement decided: per symbol for everyone, per prediction
-- for its owner (crypto.prediction_outcome, beside the settlement rule).

-- Why a symbol is VOID: both closes are there but the change stayed inside
-- the threshold ('threshold'), or a close never came ('missing_price').
create or replace function crypto.void_reason(
    p_outcome crypto.settlement_outcome, p_close_prev numeric, p_close_today numeric
) returns text
language sql immutable
as $$
    select case
        when p_outcome is distinct from 'VOID' then null
        when p_close_prev is null or p_close_today is null then 'missing_price'
        else 'threshold'
    end
$$;

grant execute on function crypto.void_reason(crypto.settlement_outcome, numeric, numeric)
to oxp_service, app_admin, auditor;

-- The change in percent as a decimal string for people, 4 places,
-- truncated toward zero (not rounded): a change inside the threshold never
-- reads as reaching it (0.00995 % shows 0.0099, not 0.0100).
create or replace function crypto.change_percent(p_change numeric) returns text
language sql immutable
as $$ select trunc(p_change * 100, 4)::text $$;

grant execute on function crypto.change_percent(numeric) to oxp_service, app_admin, auditor;

-- GET /v1/predictions: the caller's predictions, newest first, in cursor
-- pages (crypto.page_limit / crypto.page, as the ledger): every day, or
-- one trading day (the New York date) with p_day.
create or replace function api.my_predictions(
    p_day date default null, p_cursor bigint default null, p_limit integer default 20
) returns json
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
    select
        json_agg(json_build_object(
            'id', p.id, 'trading_day', p.trading_day, 'symbol', p.symbol, 'choice', p.choice,
            'created_at', crypto.kst(p.created_at),
            'outcome', crypto.prediction_outcome(p.choice, s.outcome),
            'points', crypto.prediction_award(p.id, p.trading_day),
            'corrected', s.correction_id is not null,
            -- An award a correction reversed after it was spent: the player
            -- keeps it (written off by the house).
            'kept_after_correction',
            crypto.prediction_points(p.id, p.trading_day) - crypto.prediction_award(p.id, p.trading_day),
            'close_previous', s.close_prev, 'close', s.close_today,
            'change_percent', crypto.change_percent(s.change),
            'void_reason', crypto.void_reason(s.outcome, s.close_prev, s.close_today)
        ) order by p.id desc),
        min(p.id), count(*)
    into v_items, v_last, v_count
    from (
        select p.* from crypto.predictions as p
        where
            p.user_id = v_uid
            and (p_day is null or p.trading_day = p_day)
            and (p_cursor is null or p.id < p_cursor)
        order by p.id desc
        limit p_limit
    ) as p
    left join crypto.current_settlements as s on s.trading_day = p.trading_day and s.symbol = p.symbol;
    return (jsonb_build_object('trading_day', p_day)
        || crypto.page(v_items, v_last, v_count, p_limit)::jsonb)::json;
end
$$;

grant execute on function api.my_predictions(date, bigint, integer) to app_user, app_admin;

create or replace function api.settlements(p_day date) returns json
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
declare
    v_phase crypto.session_phase;
begin
    v_phase := (crypto.require_session(p_day)).phase;
    return json_build_object(
        'trading_day', p_day,
        'phase', v_phase,
        'symbols', coalesce((
            select json_agg(json_build_object(
                'symbol', s.symbol, 'previous_trading_day', s.prev_trading_day,
                'close_previous', s.close_prev, 'close', s.close_today, 'change', s.change,
                'change_percent', crypto.change_percent(s.change),
                'outcome', s.outcome,
                'void_reason', crypto.void_reason(s.outcome, s.close_prev, s.close_today),
                'source', s.source, 'fetched_at', crypto.kst(s.fetched_at),
                'settled_at', crypto.kst(s.settled_at),
                'correction_id', s.correction_id,
                'original', case when s.correction_id is not null then json_build_object(
                    'close_previous', o.close_prev, 'close', o.close_today, 'change', o.change, 'outcome', o.outcome
                ) end
            ) order by s.symbol)
            from crypto.current_settlements as s
            join crypto.settlements as o on o.trading_day = s.trading_day and o.symbol = s.symbol
            where s.trading_day = p_day
        ), '[]'),
        -- A correction is part of the public record: when, why, what changed.
        'corrections', coalesce((
            select json_agg(json_build_object(
                'id', c.id, 'corrected_at', crypto.kst(c.created_at), 'reason', c.reason,
                'closes', (
                    select json_agg(json_build_object(
                        'trading_day', k.trading_day, 'symbol', k.symbol, 'old_close', k.old_close,
                        'new_close', k.new_close
                    ) order by k.trading_day, k.symbol)
                    from crypto.eod_price_corrections as k where k.correction_id = c.id
                ),
                'outcomes', (
                    select json_agg(json_build_object(
                        'symbol', r.symbol, 'from', r.previous_outcome, 'to', r.outcome
                    ) order by r.symbol)
                    from crypto.settlement_revisions as r where r.correction_id = c.id and r.trading_day = p_day
                )
            ) order by c.id)
            from crypto.settlement_corrections as c
            where exists (
                select from crypto.settlement_revisions as r where r.correction_id = c.id and r.trading_day = p_day
            )
        ), '[]')
    );
end
$$;

grant execute on function api.settlements(date) to anon, app_user, app_admin;
