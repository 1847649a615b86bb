-- The rules a close must pass before it is stored, in one place: loads one
-- at a time (the fetch), a file (`oxp eod load`) and corrections all ask it.
-- A close exists only for a trading day that New York has closed: a close
-- "loaded" earlier is a guess, and a settlement that read it would pay on a
-- day that has not happened. A close that a settlement read is history:
-- only a correction (crypto.correct_settlement) may replace it.
create or replace function crypto.eod_price_problem(
    p_day date, p_symbol text, p_close numeric, p_correcting boolean default false,
    out sqlstate text, out detail text
)
language plpgsql stable
set search_path = crypto, pg_temp
as $$
declare
    v_symbol text := upper(btrim(p_symbol));
    v_cal crypto.trading_calendar;
    v_old numeric;
    v_read_by date;
begin
    if p_day is null or v_symbol is null or v_symbol !~ '^[A-Z][A-Z0-9.\-]{0,9}$' then
        sqlstate := 'OX000';
        detail := format('%s is not a ticker symbol', coalesce(p_symbol, 'NULL'));
        return;
    end if;
    -- Closes are stored to six places: judge the value that would be stored.
    if p_close is null or round(p_close, 6) <= 0 or p_close >= 1e14 then
        sqlstate := 'OX000';
        detail := format('The close of %s on %s must be a positive number below 10^14 (six decimal places)',
            v_symbol, p_day);
        return;
    end if;
    select * into v_cal from crypto.trading_calendar as c where c.trading_day = p_day;
    if v_cal.trading_day is null then
        sqlstate := 'OX108';
        detail := format('%s is not a trading day: the NYSE has no session that day, so %s has no close',
            p_day, v_symbol);
        return;
    end if;
    if crypto.now() < v_cal.close_at then
        sqlstate := 'OX110';
        detail := format('%s has not closed yet: New York closes it at %s (KST), so %s has no close',
            p_day, crypto.kst(v_cal.close_at), v_symbol);
        return;
    end if;
    if p_correcting then
        return;
    end if;
    -- A missing close may arrive late (the next day's fetch asks for it):
    -- no settlement read a value, and each keeps the closes it used. A close
    -- on record that a settlement read, VOID or not, never changes here.
    select e.close into v_old from crypto.eod_prices as e where e.trading_day = p_day and e.symbol = v_symbol;
    if v_old <> round(p_close, 6) then
        select s.trading_day into v_read_by from crypto.settlements as s
        where s.symbol = v_symbol and p_day in (s.trading_day, s.prev_trading_day)
        order by s.trading_day limit 1;
        if v_read_by is not null then
            sqlstate := 'OX109';
            detail := format(
                'The close of %s on %s (%s) was read by the settlement of %s; '
                'change it with a correction (oxp session correct), which keeps both',
                v_symbol, p_day, v_old, v_read_by);
        end if;
    end if;
end
$$;

-- One close, as the fetch stores it. Loading the same value again is a
-- no-op (false); any refusal is raised with the rule's code.
create or replace function crypto.load_eod_price(
    p_day date, p_symbol text, p_close numeric, p_source text, p_fetched_at timestamptz default null
) returns boolean
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_symbol text := upper(btrim(p_symbol));
    v_problem record;
begin
    -- The two sessions that read this close (its day's and the next's) do
    -- not settle while we decide, nor we while they settle.
    perform crypto.lock_settlement_day(p_day);
    perform crypto.lock_settlement_day(crypto.next_trading_day(p_day));
    v_problem := crypto.eod_price_problem(p_day, v_symbol, p_close);
    if v_problem.sqlstate is not null then
        raise exception using errcode = v_problem.sqlstate, message = crypto.error_code(v_problem.sqlstate),
            detail = v_problem.detail;
    end if;
    if exists (
        select from crypto.eod_prices as e
        where e.trading_day = p_day and e.symbol = v_symbol and e.close = round(p_close, 6)
    ) then
        return false;
    end if;
    insert into crypto.eod_prices (trading_day, symbol, close, source, fetched_at)
    values (p_day, v_symbol, p_close, p_source, coalesce(p_fetched_at, crypto.now()))
    on conflict (trading_day, symbol) do update
    set close = excluded.close, source = excluded.source, fetched_at = excluded.fetched_at;
    return true;
end
$$;

grant execute on function crypto.load_eod_price(date, text, numeric, text, timestamptz) to oxp_service, app_admin;

-- Every refused row of a batch of closes ([{line, trading_day, symbol,
-- close}, ...]), none of which is stored: an operator sees the whole list
-- at once. A symbol and day given twice in one batch is refused too (which
-- of the two would be the close?).
create or replace function crypto.eod_prices_problems(p_rows jsonb, p_correcting boolean default false)
returns table (line integer, trading_day date, symbol text, sqlstate text, code text, detail text)
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
begin
    if jsonb_typeof(p_rows) is distinct from 'array' then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'Closes come as a JSON array of {trading_day, symbol, close}';
    end if;
    return query
    with rows as (
        select
            case when r.value ->> 'line' ~ '^\d{1,9}$' then (r.value ->> 'line')::integer
                else r.n::integer end as line,
            crypto.try_date(r.value ->> 'trading_day') as trading_day,
            upper(btrim(r.value ->> 'symbol')) as symbol,
            crypto.try_numeric(r.value ->> 'close') as close,
            r.value ->> 'trading_day' as day_text,
            r.value ->> 'close' as close_text
        from jsonb_array_elements(p_rows) with ordinality as r (value, n)
    ),

    checked as (
        select
            r.line, r.trading_day, r.symbol,
            case
                when r.trading_day is null then 'OX000'
                when r.close is null then 'OX000'
                when p.sqlstate is not null then p.sqlstate
                when count(*) over (partition by r.trading_day, r.symbol) > 1 then 'OX000'
            end as sqlstate,
            case
                when r.trading_day is null
                    then format('%s is not a date (YYYY-MM-DD)', coalesce(r.day_text, 'a missing trading_day'))
                when r.close is null
                    then format('%s is not a number', coalesce(r.close_text, 'a missing close'))
                when p.sqlstate is not null then p.detail
                when count(*) over (partition by r.trading_day, r.symbol) > 1
                    then format('%s on %s is given %s times', r.symbol, r.trading_day,
                        count(*) over (partition by r.trading_day, r.symbol))
            end as detail
        from rows as r
        left join lateral crypto.eod_price_problem(r.trading_day, r.symbol, r.close, p_correcting) as p
            on r.trading_day is not null and r.close is not null
    )

    select c.line, c.trading_day, c.symbol, c.sqlstate, crypto.error_code(c.sqlstate), c.detail
    from checked as c
    where c.sqlstate is not null
    order by c.line;
end
$$;

grant execute on function crypto.eod_prices_problems(jsonb, boolean) to oxp_operator, app_admin;

-- A whole file of closes, all or nothing: any refused row refuses the
-- batch, naming every refused row (the first one's rule sets the code).
create or replace function crypto.load_eod_prices(p_rows jsonb, p_source text) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_problems text;
    v_first text;
    v_count integer;
    v_changed integer := 0;
    v_row record;
begin
    if coalesce(btrim(p_source), '') = '' then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'Closes need a source (where they came from)';
    end if;
    select string_agg(format('line %s: %s', p.line, p.detail), E'\n' order by p.line),
        (array_agg(p.sqlstate order by p.line))[1], count(distinct p.line)
    into v_problems, v_first, v_count
    from crypto.eod_prices_problems(p_rows) as p;
    if v_count > 0 then
        raise exception using errcode = v_first, message = crypto.error_code(v_first),
            detail = format(E'%s of %s rows refused, none loaded:\n%s',
                v_count, jsonb_array_length(p_rows), v_problems);
    end if;
    for v_row in
        select (r ->> 'trading_day')::date as trading_day, r ->> 'symbol' as symbol, (r ->> 'close')::numeric as close
        from jsonb_array_elements(p_rows) as r
        order by 1, 2
    loop
        if crypto.load_eod_price(v_row.trading_day, v_row.symbol, v_row.close, p_source) then
            v_changed := v_changed + 1;
        end if;
    end loop;
    return jsonb_build_object('read', jsonb_array_length(p_rows), 'changed', v_changed);
end
$$;

grant execute on function crypto.load_eod_prices(jsonb, text) to oxp_operator, app_admin;

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
    v_cal := crypto.require_trading_day(p_day);
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

grant execute on function crypto.eod_fetch_plan(date) to oxp_service, app_admin;

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

grant execute on function crypto.log_eod_fetch(date, text, timestamptz, crypto.run_status, integer, text)
to oxp_service;
