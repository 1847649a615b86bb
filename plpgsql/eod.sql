-- Raw (unadjusted) official closes. A close that a settlement already used
-- is history: loading it again with another value is refused.
create or replace function crypto.load_eod_price(
    p_day date, p_symbol text, p_close numeric, p_source text, p_fetched_at timestamptz default null
) returns boolean
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_symbol text := upper(btrim(p_symbol));
    v_old numeric;
begin
    if p_close is null or p_close <= 0 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = format('close of %s on %s must be positive', v_symbol, p_day);
    end if;
    select e.close into v_old from crypto.eod_prices as e
    where e.trading_day = p_day and e.symbol = v_symbol
    for update;
    if v_old = p_close then
        return false;
    end if;
    if v_old is not null and exists (
        select from crypto.settlements as s
        where s.symbol = v_symbol and p_day in (s.trading_day, s.prev_trading_day) and s.outcome <> 'VOID'
    ) then
        raise exception using errcode = 'OX109', message = 'PRICE_ALREADY_SETTLED',
            detail = format('The close of %s on %s was used by a settlement', v_symbol, p_day);
    end if;
    insert into crypto.eod_prices (trading_day, symbol, close, source, fetched_at)
    values (p_day, v_symbol, p_close, p_source, coalesce(p_fetched_at, crypto.now()))
    on conflict (trading_day, symbol) do update
    set close = excluded.close, source = excluded.source, fetched_at = excluded.fetched_at;
    return true;
end
$$;

grant execute on function crypto.load_eod_price(date, text, numeric, text, timestamptz) to oxp_service, app_admin;

-- What a fetch for a trading day must bring: the day's and the previous
-- trading day's closes for every symbol of the day's universe, and whether
-- they are final yet (after the calendar close, early closes included).
create or replace function crypto.eod_fetch_plan(p_day date) returns jsonb
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
declare
    v_cal crypto.trading_calendar;
    v_prev date := crypto.prev_trading_day(p_day);
begin
    select * into v_cal from crypto.trading_calendar as c where c.trading_day = p_day;
    if not found then
        raise exception using errcode = 'OX108', message = 'NOT_A_TRADING_DAY',
            detail = format('%s is not a trading day in the calendar', p_day);
    end if;
    return jsonb_build_object(
        'trading_day', p_day,
        'previous_trading_day', v_prev,
        'final', crypto.now() >= v_cal.close_at,
        'missing', coalesce((
            select jsonb_agg(jsonb_build_object('trading_day', d.day, 'symbol', u.symbol) order by d.day, u.position)
            from crypto.active_universe as u
            cross join (values (v_prev), (p_day)) as d (day)
            where u.trading_day = p_day and d.day is not null and not exists (
                select from crypto.eod_prices as e where e.trading_day = d.day and e.symbol = u.symbol
            )
        ), '[]'::jsonb)
    );
end
$$;

create or replace function crypto.log_eod_fetch(
    p_day date, p_provider text, p_started_at timestamptz, p_status crypto.run_status,
    p_rows integer, p_error text
) returns bigint
language sql volatile security definer
set search_path = crypto, pg_temp
as $$
    insert into crypto.eod_fetch_logs (trading_day, provider, started_at, finished_at, status, rows, error)
    values (p_day, p_provider, p_started_at, clock_timestamp(), p_status, p_rows, left(p_error, 2000))
    returning id
$$;

grant execute on function crypto.eod_fetch_plan(date) to oxp_service, app_admin;
grant execute on function crypto.log_eod_fetch(date, text, timestamptz, crypto.run_status, integer, text)
to oxp_service;
