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
