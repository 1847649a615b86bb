-- The one clock: every time decision in SQL reads crypto.now(). Outside
-- production it can be shifted, so a demo or a test can live any moment.
create or replace function crypto.now() returns timestamptz
language sql stable
set search_path = crypto, pg_temp
as $$
    select now() + make_interval(secs => crypto.setting('clock.offset_seconds')::text::double precision)
$$;

create or replace function crypto.clock_set(p_at timestamptz) returns timestamptz
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    if crypto.is_production() then
        raise exception using errcode = 'OX008', message = 'REFUSED_IN_PRODUCTION',
            detail = 'The clock cannot be shifted in production';
    end if;
    update crypto.settings
    set value = to_jsonb(extract(epoch from p_at - now())), updated_at = now()
    where key = 'clock.offset_seconds';
    perform crypto.audit(crypto.current_actor(), 'clock.set', null, jsonb_build_object('at', p_at));
    return crypto.now();
end
$$;

create or replace function crypto.clock_reset() returns timestamptz
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    update crypto.settings set value = '0', updated_at = now()
    where key = 'clock.offset_seconds';
    perform crypto.audit(crypto.current_actor(), 'clock.reset', null, '{}');
    return crypto.now();
end
$$;

grant execute on function crypto.now() to anon, app_user, app_admin, oxp_service, auditor;
grant execute on function crypto.clock_set(timestamptz) to oxp_service;
grant execute on function crypto.clock_reset() to oxp_service;
