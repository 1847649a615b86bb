-- Settles a finished trading day and pays the winners, once. The day's
-- advisory lock makes concurrent runs queue; the second finds SETTLED.
-- change = (close_D - close_prev) / close_prev in exact numeric; at least
-- +threshold is UP, at most -threshold is DOWN, anything else is VOID.
create or replace function crypto.settlement_outcome_at(p_change numeric, p_threshold numeric)
returns crypto.settlement_outcome
language sql immutable
as $$
    select case
        when p_change is null then 'VOID'
        when p_change >= p_threshold then 'UP'
        when p_change <= -p_threshold then 'DOWN'
        else 'VOID'
    end::crypto.settlement_outcome
$$;

-- By today's threshold (settlement.threshold).
create or replace function crypto.settlement_outcome(p_change numeric) returns crypto.settlement_outcome
language sql stable
set search_path = crypto, pg_temp
as $$ select crypto.settlement_outcome_at(p_change, (crypto.setting('settlement.threshold') #>> '{}')::numeric) $$;

-- The one definition of a win: the choice matches the decided direction.
-- Stable, as the enum-to-text cast is: declared immutable it would not be
-- inlined, and joins on it would call it once per row.
create or replace function crypto.prediction_won(
    p_choice crypto.prediction_choice, p_settled crypto.settlement_outcome
) returns boolean
language sql stable
as $$ select p_choice::text = p_settled::text $$;

-- A view calls functions with the reader's rights: the auditor reads
-- audit.daily_settlements (plpgsql/views_audit.sql), which calls these two.
grant execute on function crypto.prediction_won(crypto.prediction_choice, crypto.settlement_outcome) to auditor;

-- A prediction's outcome, derived from its symbol's settlement, never stored.
create or replace function crypto.prediction_outcome(
    p_choice crypto.prediction_choice, p_settled crypto.settlement_outcome
) returns text
language sql stable
as $$
    select case
        when p_settled is null then 'PENDING'
        when p_settled = 'VOID' then 'VOID'
        when crypto.prediction_won(p_choice, p_settled) then 'WON'
        else 'LOST'
    end
$$;

grant execute on function crypto.prediction_outcome(crypto.prediction_choice, crypto.settlement_outcome) to auditor;

-- One settlement or correction of a day at a time: concurrent runs queue
-- on the day's lock (taken in day order when a correction spans days).
create or replace function crypto.lock_settlement_day(p_day date) returns void
language sql volatile
set search_path = crypto, pg_temp
as $$ select pg_advisory_xact_lock(hashtext('crypto.settle_session'), p_day - date '2000-01-01') $$;

create or replace function crypto.settle_session(p_day date, p_void_missing boolean default false)
returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
-- Refusal details name days as ISO text whatever the caller's DateStyle (keys
-- and audit subjects do anyway: crypto.award_key, crypto.iso_day).
set datestyle = 'ISO, YMD'
-- A day's winners are sorted and aggregated in memory, not on disk.
set work_mem = '128MB'
as $$
declare
    v_phase crypto.session_phase;
    v_prev date := crypto.prev_trading_day(p_day);
    v_missing text[];
    v_points bigint := crypto.setting_int('points.per_win');
    v_threshold numeric := (crypto.setting('settlement.threshold') #>> '{}')::numeric;
    v_issuance bigint := crypto.system_account('issuance');
    v_paid integer;
    v_close_at timestamptz;
begin
    perform crypto.lock_settlement_day(p_day);
    v_phase := (crypto.require_session(p_day)).phase;
    if v_phase = 'SETTLED' then
        return crypto.settlement_summary(p_day) || jsonb_build_object('already_settled', true);
    end if;
    if v_phase = 'OPEN' then
        raise exception using errcode = 'OX106', message = 'INVALID_TRANSITION',
            detail = format('Session %s is still open', p_day);
    end if;
    -- Closed to predictions is not closed in New York: until the calendar
    -- close, the day's result does not exist, whatever prices were loaded.
    select c.close_at into v_close_at from crypto.trading_calendar as c where c.trading_day = p_day;
    if crypto.now() < v_close_at then
        raise exception using errcode = 'OX110', message = 'MARKET_NOT_CLOSED',
            detail = format('%s has not closed yet: New York closes it at %s (KST); it settles after that',
                p_day, crypto.kst(v_close_at));
    end if;

    -- The same list the tick and the EOD fetch go by.
    select array_agg(distinct m ->> 'symbol') into v_missing
    from jsonb_array_elements(crypto.eod_fetch_plan(p_day) -> 'missing') as m;
    if v_missing is not null and not p_void_missing then
        raise exception using errcode = 'OX107', message = 'PRICES_MISSING',
            detail = format('No close for %s on %s or %s', array_to_string(v_missing, ', '), p_day, v_prev);
    end if;

    perform crypto.begin_settling(p_day);
    -- The terms of this day, kept for any later correction of it.
    update crypto.session_control
    set points_per_win = v_points, settlement_threshold = v_threshold
    where trading_day = p_day;

    insert into crypto.settlements
        (trading_day, symbol, prev_trading_day, close_prev, close_today, change, outcome,
         source, fetched_at, settled_at)
    select
        p_day, u.symbol, v_prev, p0.close, p1.close, c.change, crypto.settlement_outcome_at(c.change, v_threshold),
        p1.source, p1.fetched_at, crypto.now()
    from crypto.active_universe as u
    left join crypto.eod_prices as p1 on p1.trading_day = p_day and p1.symbol = u.symbol
    left join crypto.eod_prices as p0 on p0.trading_day = v_prev and p0.symbol = u.symbol
    cross join lateral (select (p1.close - p0.close) / p0.close as change) as c
    where u.trading_day = p_day;

    -- Every winner paid in one set-based ledger call, keyed by prediction,
    -- in prediction order: consecutive keys land on neighbouring index
    -- pages instead of all over the key index, which at a million awards
    -- is the difference between cache hits and misses. The arrays are
    -- aggregated from one ordered row source, so they line up.
    select crypto.ledger_credit_many(
        v_issuance, 'settlement_award',
        coalesce(array_agg(w.key), '{}'),
        coalesce(array_agg(w.account), '{}'),
        coalesce(array_agg(v_points), '{}')
    )
    into v_paid
    from (
        select crypto.award_key(p_day, p.id) as key, a.id as account
        from crypto.predictions as p
        join crypto.settlements as s on s.trading_day = p.trading_day and s.symbol = p.symbol
        join crypto.ledger_accounts as a on a.user_id = p.user_id
        where p.trading_day = p_day and crypto.prediction_won(p.choice, s.outcome)
        order by p.id
    ) as w;

    perform crypto.finish_settling(p_day);
    perform crypto.audit(crypto.current_actor(), 'settlement.awarded', crypto.iso_day(p_day),
        jsonb_build_object('winners', v_paid, 'points', v_paid * v_points, 'voided', coalesce(v_missing, '{}')));
    return crypto.settlement_summary(p_day) || jsonb_build_object('already_settled', false);
end
$$;

grant execute on function crypto.settle_session(date, boolean) to oxp_operator, app_admin;

create or replace function crypto.settlement_summary(p_day date) returns jsonb
language sql stable
set search_path = crypto, pg_temp
as $$
    select jsonb_build_object(
        'trading_day', p_day,
        'symbols', (select count(*) from crypto.settlements as s where s.trading_day = p_day),
        'void_symbols', (
            select count(*) from crypto.current_settlements as s where s.trading_day = p_day and s.outcome = 'VOID'
        ),
        'winners', (
            select count(*) from crypto.predictions as p
            join crypto.current_settlements as s on s.trading_day = p.trading_day and s.symbol = p.symbol
            where p.trading_day = p_day and crypto.prediction_won(p.choice, s.outcome)
        )
    )
$$;
