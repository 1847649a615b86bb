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

-- The dedupe key of a day's scheduled price fetch: the tick enqueues under
-- it (one job a day), eod_day and the tick find the job by it.
create or replace function crypto.eod_fetch_key(p_day date) returns text
language sql stable
set search_path = crypto, pg_temp
as $$ select 'eod.fetch:' || crypto.iso_day(p_day) $$;
