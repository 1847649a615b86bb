-- The one clock: every time decision in SQL reads crypto.now(). Outside
-- production it can be shifted, so a demo or a test can live any moment.
-- SECURITY DEFINER so that every role can read the time (the auditor in
-- psql, anon before sign-in, `oxp clock show` as oxp_service) without being
-- able to read crypto.settings or run crypto.setting(): it reveals the
-- offset of the clock and nothing else. A missing row is no shift.
-- PL/pgSQL, not SQL: a SQL function with a SET clause is never inlined, and
-- PostgreSQL 15 parses and plans its body again in every statement that
-- calls it (~100 us each, bench/ratelimit, 2026-11-27); PL/pgSQL keeps its
-- plan for the session. The same holds for the other per-request helpers
-- (auth_uid, setting_int, note_activity, the rate limiter's counts).
create or replace function crypto.now() returns timestamptz
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
begin
    return now() + make_interval(secs => coalesce((
        select (s.value #>> '{}')::double precision from crypto.settings as s
        where s.key = 'clock.offset_seconds'
    ), 0));
end
$$;

grant execute on function crypto.now() to anon, app_user, app_admin, oxp_service, auditor;

-- Once the clock moved, an entry may be dated long before one written
-- earlier (the clock moved back, or forward while a transfer that had
-- read the old time waited for a lock): crypto.ledger_page's shortcut no
-- longer holds (ledger_dates_follow_ids). Any move, not only a move back:
-- two clock_set at once could each look like a move forward.
create or replace function crypto.clock_moved() returns void
language plpgsql volatile
set search_path = crypto, pg_temp
as $$
begin
    update crypto.settings set value = 'false', updated_at = now()
    where key = 'ledger.dates_follow_ids' and value <> 'false';
end
$$;

create or replace function crypto.ledger_dates_follow_ids() returns boolean
language plpgsql stable
set search_path = crypto, pg_temp
as $$
begin
    return crypto.setting('ledger.dates_follow_ids') = 'true';
end
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
    perform crypto.clock_moved();
    update crypto.settings
    set value = to_jsonb(extract(epoch from p_at - now())), updated_at = now()
    where key = 'clock.offset_seconds';
    -- The log tables' partitions for the new time exist before anything is
    -- written at it (this audit row first): a row of a month without its
    -- partition would wait in the default one, where an audit row (never
    -- moved: append-only) would keep that month from ever being made.
    perform crypto.partition_ensure(t.parent, crypto.now())
    from unnest(crypto.partitioned_tables()) as t (parent);
    perform crypto.audit(crypto.current_actor(), 'clock.set', null, jsonb_build_object('at', p_at));
    return crypto.now();
end
$$;

grant execute on function crypto.clock_set(timestamptz) to oxp_operator;

create or replace function crypto.clock_reset() returns timestamptz
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    -- A clock that is not shifted (production's, always) does not move.
    if crypto.now() <> now() then
        perform crypto.clock_moved();
    end if;
    update crypto.settings set value = '0', updated_at = now()
    where key = 'clock.offset_seconds';
    perform crypto.audit(crypto.current_actor(), 'clock.reset', null, '{}');
    return crypto.now();
end
$$;

grant execute on function crypto.clock_reset() to oxp_operator;
