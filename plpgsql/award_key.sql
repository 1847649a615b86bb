-- The ledger key of a prediction's award, settlement:<day>:<prediction id>:
-- the only place that writes or reads its shape. The day is ISO text
-- whatever the session's DateStyle: a key written under one style must be
-- found under another. Plain SQL without a search_path (every name
-- qualified) so each is inlined into the joins that build or read a key
-- per prediction; the two that call to_char are stable as it is (declared
-- immutable, they would not inline).

-- What every award key of a day starts with: a day's awards are the
-- transfers whose key starts with it.
create or replace function crypto.award_key_prefix(p_day date) returns text
language sql stable
as $$ select 'settlement:' || to_char(p_day, 'YYYY-MM-DD') || ':' $$;

-- Granted as crypto.award_key is: a function inlined into a caller's query
-- still needs the caller's EXECUTE (the audit views run as the auditor).
grant execute on function crypto.award_key_prefix(date) to oxp_service, app_admin, auditor;

-- The key a settlement pays a prediction under (crypto.settle_session).
create or replace function crypto.award_key(p_day date, p_prediction bigint) returns text
language sql stable
as $$ select crypto.award_key_prefix(p_day) || p_prediction $$;

grant execute on function crypto.award_key(date, bigint) to oxp_service, app_admin, auditor;

-- The prediction an award key pays, or null for any other key.
create or replace function crypto.award_key_prediction(p_key text) returns bigint
language sql immutable
as $$ select substring(p_key from '^settlement:[0-9]{4}-[0-9]{2}-[0-9]{2}:([0-9]+)$')::bigint $$;

grant execute on function crypto.award_key_prediction(text) to oxp_service, app_admin, auditor;

-- The day an award key pays for, or null for any other key: with the
-- prediction, the key of crypto.predictions (partitioned by day).
-- A key naming no real day (2026-02-30) gives null, never an error: the
-- integrity check reads every award key and must report a forged one.
create or replace function crypto.award_key_day(p_key text) returns date
language sql immutable
as $$
    select case when x.day is not null and extract(day from x.day) = substr(p_key, 20, 2)::integer then x.day end
    from (
        select case when p_key ~ '^settlement:[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01]):[0-9]+$' then
            make_date(substr(p_key, 12, 4)::integer, substr(p_key, 17, 2)::integer, 1)
            + (substr(p_key, 20, 2)::integer - 1)
        end as day
    ) as x
$$;
