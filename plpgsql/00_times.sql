-- A trading day is a New York date, and a player who follows the market
-- thinks in New York time: responses give it beside KST (crypto.kst), with
-- the offset New York has on that date (-05:00 in winter, -04:00 in summer).
create or replace function crypto.new_york(p_at timestamptz) returns text
language sql immutable
as $$
    select to_char(p_at at time zone 'America/New_York', 'YYYY-MM-DD"T"HH24:MI:SS')
        || case when p_at is null then null else to_char(
            (p_at at time zone 'America/New_York') - (p_at at time zone 'UTC'), 'HH24:MI'
        ) end
$$;

grant execute on function crypto.new_york(timestamptz) to app_user, app_admin, oxp_service, auditor;

-- A trading day as ISO text (YYYY-MM-DD) whatever the session's DateStyle:
-- every day that goes into a key, an audit subject or an alert subject,
-- where text written under one style must match text read under another.
create or replace function crypto.iso_day(p_day date) returns text
language sql stable
set search_path = crypto, pg_temp
as $$ select to_char(p_day, 'YYYY-MM-DD') $$;
