-- Health checks record a row in crypto.system_health; `alert` rows are
-- what an operator is paged for (GET /admin/health shows the latest).

-- The calendar must reach 60 days ahead, or sessions would stop opening.
create or replace function crypto.check_calendar_runway() returns crypto.health_status
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_last date := (select max(c.trading_day) from crypto.trading_calendar as c);
    v_days integer := coalesce(v_last - (crypto.now() at time zone 'America/New_York')::date, -1);
    v_status crypto.health_status := (case when v_days < 60 then 'alert' else 'ok' end)::crypto.health_status;
begin
    insert into crypto.system_health (at, check_name, status, details)
    values (crypto.now(), 'calendar_runway', v_status,
        jsonb_build_object('last_trading_day', v_last, 'days_left', v_days,
            'action', case when v_status = 'alert' then 'run: oxp calendar sync' end));
    return v_status;
end
$$;

grant execute on function crypto.check_calendar_runway() to oxp_service, app_admin;
