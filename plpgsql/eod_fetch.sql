-- Whether an eod.fetch job still has work: not once its day is SETTLED.
-- A day settled by hand (`oxp session settle --void-missing`) or from closes
-- loaded by hand must not keep a job retrying for up to eight attempts,
-- calling the provider and logging failures for a question already closed.
create or replace function crypto.eod_fetch_needed(p_day date) returns boolean
language sql stable security definer
set search_path = crypto, pg_temp
as $$
    select not exists (
        select from crypto.session_control as s where s.trading_day = p_day and s.phase = 'SETTLED'
    )
$$;

grant execute on function crypto.eod_fetch_needed(date) to oxp_service, app_admin;
