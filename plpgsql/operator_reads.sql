-- What an operator and the auditor read about sessions, closes and
-- redemptions (oxp session list, oxp eod show, oxp rewards redemptions).
-- SECURITY DEFINER for the owner-only helpers they share; read-only, and
-- EXECUTE is the gate.

-- Why a symbol settled VOID (crypto.void_reason), with what an operator
-- needs next: which day's close is missing, or the change inside the
-- threshold. Null for UP and DOWN. Of the settlement players see.
create or replace function crypto.settlement_void_reason(p_settlement crypto.current_settlements) returns jsonb
language sql stable
as $$
    select case crypto.void_reason(p_settlement.outcome, p_settlement.close_prev, p_settlement.close_today)
        when 'missing_price' then jsonb_build_object(
            'symbol', p_settlement.symbol, 'reason', 'missing_price',
            'missing', to_jsonb(array_remove(array[
                case when p_settlement.close_prev is null then p_settlement.prev_trading_day end,
                case when p_settlement.close_today is null then p_settlement.trading_day end
            ], null))
        )
        when 'threshold' then jsonb_build_object(
            'symbol', p_settlement.symbol, 'reason', 'threshold', 'change', p_settlement.change
        )
    end
$$;

grant execute on function crypto.settlement_void_reason(crypto.current_settlements) to oxp_service, app_admin, auditor;

-- Sessions newest first, between FROM and TO (either may be null), at
-- most LIMIT: phase, times, counts, and each VOID with its reason.
create or replace function crypto.sessions_list(
    p_from date default null, p_to date default null, p_limit integer default 30
) returns jsonb
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
begin
    if p_limit is null or p_limit not between 1 and 1000 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'limit must be between 1 and 1000';
    end if;
    if p_from > p_to then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = format('from (%s) is after to (%s)', p_from, p_to);
    end if;
    return coalesce((
        select jsonb_agg(jsonb_build_object(
            'trading_day', s.trading_day, 'phase', s.phase,
            'cutoff_at', crypto.kst(c.cutoff_at), 'close_at', crypto.kst(c.close_at),
            'opened_at', crypto.kst(s.opened_at), 'closed_at', crypto.kst(s.closed_at),
            'settled_at', crypto.kst(s.settled_at),
            'symbols', (select count(*) from crypto.active_universe as u where u.trading_day = s.trading_day),
            'predictions', p.predictions, 'players', p.players,
            'winners', (
                select count(*) from crypto.predictions as w
                join crypto.current_settlements as x on x.trading_day = w.trading_day and x.symbol = w.symbol
                where w.trading_day = s.trading_day and crypto.prediction_won(w.choice, x.outcome)
            ),
            'voids', coalesce((
                select jsonb_agg(crypto.settlement_void_reason(x) order by x.symbol)
                from crypto.current_settlements as x where x.trading_day = s.trading_day and x.outcome = 'VOID'
            ), '[]')
        ) order by s.trading_day desc)
        from (
            select y.* from crypto.session_control as y
            where (p_from is null or y.trading_day >= p_from) and (p_to is null or y.trading_day <= p_to)
            order by y.trading_day desc
            limit p_limit
        ) as s
        join crypto.trading_calendar as c on c.trading_day = s.trading_day
        cross join lateral (
            select count(*) as predictions, count(distinct q.user_id) as players
            from crypto.predictions as q where q.trading_day = s.trading_day
        ) as p
    ), '[]');
end
$$;

grant execute on function crypto.sessions_list(date, date, integer) to oxp_operator, auditor;

-- A day's closes as stored (source, when fetched), one row per symbol of
-- its universe (or per stored close when it has none), and, from the fetch
-- plan (crypto.eod_fetch_plan, the one that the tick and the fetch go by),
-- whether they are final and what is still missing; the fetch job, and
-- every fetch attempt.
create or replace function crypto.eod_day(p_day date) returns jsonb
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
declare
    -- Refuses a day that is not a trading day (NOT_A_TRADING_DAY).
    v_plan jsonb := crypto.eod_fetch_plan(p_day);
    v_prev date := (v_plan ->> 'previous_trading_day')::date;
begin
    return v_plan || jsonb_build_object(
        'close_at', (select crypto.kst(c.close_at) from crypto.trading_calendar as c where c.trading_day = p_day),
        'closes', coalesce((
            select jsonb_agg(jsonb_build_object(
                'symbol', k.symbol, 'close', e.close, 'source', e.source,
                'fetched_at', crypto.kst(e.fetched_at),
                'previous_close', pe.close
            ) order by k.position nulls last, k.symbol)
            from (
                select u.symbol::text as symbol, u.position from crypto.active_universe as u
                where u.trading_day = p_day
                union
                select x.symbol::text, null from crypto.eod_prices as x
                where x.trading_day = p_day
                    and not exists (select from crypto.active_universe as u where u.trading_day = p_day)
            ) as k
            left join crypto.eod_prices as e on e.trading_day = p_day and e.symbol = k.symbol
            left join crypto.eod_prices as pe on pe.trading_day = v_prev and pe.symbol = k.symbol
        ), '[]'),
        'fetch_job', (
            select jsonb_build_object('id', j.id, 'status', j.status, 'attempts', j.attempts,
                'max_attempts', j.max_attempts, 'last_error', j.last_error)
            from crypto.jobs as j where j.dedupe_key = crypto.eod_fetch_key(p_day)
        ),
        'attempts', coalesce((
            select jsonb_agg(jsonb_build_object(
                'id', l.id, 'provider', l.provider, 'status', l.status, 'rows', l.rows, 'error', l.error,
                'started_at', crypto.kst(l.started_at), 'finished_at', crypto.kst(l.finished_at)
            ) order by l.id)
            from crypto.eod_fetch_logs as l where l.trading_day = p_day
        ), '[]')
    );
end
$$;

grant execute on function crypto.eod_day(date) to oxp_operator, auditor;

-- Redemptions newest first, of one STATUS or all, a page at a time, with
-- the user's email (the operator looks a player up by it).
create or replace function crypto.redemptions_list(
    p_status text default null, p_cursor bigint default null, p_limit integer default 50
) returns jsonb
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
declare
    v_items json;
    v_last bigint;
    v_count integer;
begin
    if p_status is not null and p_status not in (select unnest(enum_range(null::crypto.redemption_status))::text) then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = format('status is one of %s, not %s',
                array_to_string(enum_range(null::crypto.redemption_status), ', '), left(p_status, 40));
    end if;
    perform crypto.page_limit(p_limit);
    select
        json_agg((crypto.redemption_json_masked(r) || jsonb_build_object('email', u.email)) order by r.id desc),
        min(r.id), count(*)
    into v_items, v_last, v_count
    from (
        select x.* from crypto.rewards_redemptions as x
        where (p_status is null or x.status::text = p_status) and (p_cursor is null or x.id < p_cursor)
        order by x.id desc
        limit p_limit
    ) as r
    join crypto.users as u on u.id = r.user_id;
    return crypto.page(v_items, v_last, v_count, p_limit)::jsonb;
end
$$;

grant execute on function crypto.redemptions_list(text, bigint, integer) to oxp_operator, auditor;

comment on function crypto.settlement_void_reason(crypto.current_settlements) is
'Why a symbol settled VOID: missing_price (naming the day) or threshold (with the change).';
comment on function crypto.sessions_list(date, date, integer) is
'Sessions newest first with phase, counts and each VOID''s reason (oxp session list).';
comment on function crypto.eod_day(date) is
'A day''s closes, what settlement still misses, the fetch job and every fetch attempt (oxp eod show).';
comment on function crypto.redemptions_list(text, bigint, integer) is
'Redemptions newest first with the user''s email, by status, a page at a time (oxp rewards redemptions).';
