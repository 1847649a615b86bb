-- The NYSE calendar as exchange_calendars gives it (the sidecar reads the
-- library; SQL keeps the rows). The cutoff is the open minus a setting,
-- so it follows New York's DST and never a fixed KST hour.
create or replace function crypto.sync_calendar(p_days jsonb) returns integer
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_rows integer;
    v_cutoff interval := crypto.setting_interval('calendar.cutoff_minutes');
begin
    insert into crypto.trading_calendar (trading_day, open_at, close_at, cutoff_at, early_close, synced_at)
    select d.trading_day, d.open_at, d.close_at, d.open_at - v_cutoff, d.early_close, now()
    from jsonb_to_recordset(p_days)
        as d (trading_day date, open_at timestamptz, close_at timestamptz, early_close boolean)
    on conflict (trading_day) do update
    set open_at = excluded.open_at, close_at = excluded.close_at, cutoff_at = excluded.cutoff_at,
        early_close = excluded.early_close, synced_at = excluded.synced_at
    where (trading_calendar.open_at, trading_calendar.close_at, trading_calendar.early_close)
        is distinct from (excluded.open_at, excluded.close_at, excluded.early_close);
    get diagnostics v_rows = row_count;
    return v_rows;
end
$$;

grant execute on function crypto.sync_calendar(jsonb) to oxp_operator;
