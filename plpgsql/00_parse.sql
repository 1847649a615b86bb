-- Parsing that refuses instead of raising, for validators that list every
-- bad row of a batch instead of stopping at the first.
create or replace function crypto.try_date(p_text text) returns date
language plpgsql immutable
set search_path = crypto, pg_temp
as $$
begin
    -- ISO dates only: 'today' or '24/11/2026' must not be read as a day.
    if p_text !~ '^\d{4}-\d{2}-\d{2}$' then
        return null;
    end if;
    return p_text::date;
exception when others then
    return null;
end
$$;

create or replace function crypto.try_numeric(p_text text) returns numeric
language plpgsql immutable
set search_path = crypto, pg_temp
as $$
begin
    if p_text !~ '^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$' then
        return null;
    end if;
    return p_text::numeric;
exception when others then
    return null;
end
$$;

grant execute on function crypto.try_date(text), crypto.try_numeric(text) to oxp_service, app_admin;
