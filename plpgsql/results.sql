-- What a day's settlement decided: per symbol for everyone, per prediction
-- for its owner (crypto.prediction_outcome, beside the settlement rule).
create or replace function api.my_predictions(p_day date default null) returns json
language plpgsql stable security definer
set search_path = crypto, pg_temp
-- Settlement keys embed the day as text: ISO, whatever the session's DateStyle.
set datestyle = 'ISO, YMD'
as $$
declare
    v_uid uuid := crypto.require_user();
    v_day date := coalesce(p_day, (crypto.current_session()).trading_day);
begin
    return json_build_object(
        'trading_day', v_day,
        'items', coalesce((
            select json_agg(json_build_object(
                'id', p.id, 'symbol', p.symbol, 'choice', p.choice,
                'created_at', crypto.kst(p.created_at),
                'outcome', crypto.prediction_outcome(p.choice, s.outcome),
                'points', coalesce(t.amount, 0)
            ) order by p.id)
            from crypto.predictions as p
            left join crypto.settlements as s on s.trading_day = p.trading_day and s.symbol = p.symbol
            left join crypto.ledger_transfers as t
                on t.idempotency_key = format('settlement:%s:%s', p.trading_day, p.id)
            where p.user_id = v_uid and p.trading_day = v_day
        ), '[]')
    );
end
$$;

create or replace function api.settlements(p_day date) returns json
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
declare
    v_phase crypto.session_phase;
begin
    select s.phase into v_phase from crypto.session_control as s where s.trading_day = p_day;
    if v_phase is null then
        raise exception using errcode = 'OX105', message = 'NO_SESSION',
            detail = format('No session for %s', p_day);
    end if;
    return json_build_object(
        'trading_day', p_day,
        'phase', v_phase,
        'symbols', coalesce((
            select json_agg(json_build_object(
                'symbol', s.symbol, 'previous_trading_day', s.prev_trading_day,
                'close_previous', s.close_prev, 'close', s.close_today, 'change', s.change,
                'outcome', s.outcome, 'source', s.source, 'fetched_at', crypto.kst(s.fetched_at),
                'settled_at', crypto.kst(s.settled_at)
            ) order by s.symbol)
            from crypto.settlements as s where s.trading_day = p_day
        ), '[]')
    );
end
$$;

grant execute on function api.my_predictions(date) to app_user, app_admin;
grant execute on function api.settlements(date) to anon, app_user, app_admin;
