-- The calendar's row of a trading day (New York date), or NOT_A_TRADING_DAY:
-- every rule that takes a day from a caller (opening a session, setting a
-- universe, a day's prices, its metrics) refuses a day the NYSE does not trade
-- with the same code and words.
create or replace function crypto.require_trading_day(p_day date) returns crypto.trading_calendar
language plpgsql stable
set search_path = crypto, pg_temp
as $$
declare
    v_cal crypto.trading_calendar;
begin
    select * into v_cal from crypto.trading_calendar as c where c.trading_day = p_day;
    if not found then
        raise exception using errcode = 'OX108', message = 'NOT_A_TRADING_DAY',
            detail = format('%s is not a trading day in the calendar', coalesce(to_char(p_day, 'YYYY-MM-DD'), 'null'));
    end if;
    return v_cal;
end
$$;
