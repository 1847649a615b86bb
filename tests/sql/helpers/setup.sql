-- Test helpers for pgTAP (loaded once into the test database, never in production).
create extension if not exists pgtap;
create extension if not exists plpgsql_check;
create schema if not exists tests;
grant usage on schema tests to public;

-- A user with a points account, as signup makes one.
create or replace function tests.create_user(p_email text) returns uuid
language plpgsql
as $$
declare
    v_id uuid;
begin
    insert into crypto.users (email, password_hash)
    values (p_email, '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA')
    returning id into v_id;
    insert into crypto.ledger_accounts (kind, user_id) values ('user', v_id);
    return v_id;
end
$$;

-- The detail of the error a statement raises (what the API and oxp show a
-- person), or null when it raises none: for tests of the words of a refusal.
create or replace function tests.error_detail(p_sql text) returns text
language plpgsql
as $$
declare
    v_detail text;
begin
    execute p_sql;
    return null;
exception when others then
    get stacked diagnostics v_detail = pg_exception_detail;
    return v_detail;
end
$$;

-- Whether a role's own settings (ALTER ROLE ... SET, every database)
-- include `name=value` as PostgreSQL writes it.
create or replace function tests.role_sets(p_role regrole, p_setting text) returns boolean
language sql stable
as $$
    select coalesce((
        select s.setconfig @> array[p_setting] from pg_db_role_setting as s
        where s.setrole = p_role and s.setdatabase = 0
    ), false)
$$;

-- Become a user the way the shim does: role and claims, local to the transaction.
create or replace function tests.authenticate_as(p_user uuid, p_role text default 'app_user') returns void
language sql
as $$
    select
        set_config('request.jwt.claims', json_build_object('sub', p_user, 'role', p_role)::text, true),
        set_config('role', p_role, true)
$$;

create or replace function tests.clear_authentication() returns void
language sql
as $$
    select set_config('role', 'none', true), set_config('request.jwt.claims', '', true)
$$;

-- A fixed stretch of the real NYSE calendar, so tests never depend on the
-- year they run in: Thanksgiving 2026 (closed Thu 26, early close Fri 27),
-- a weekend, and the US DST change of March 2026 (New York moved on 8 March).
create or replace function tests.load_calendar() returns void
language sql
as $$
    insert into crypto.trading_calendar (trading_day, open_at, close_at, cutoff_at, early_close)
    select v.d::date, v.o::timestamptz, v.c::timestamptz, v.o::timestamptz - interval '5 minutes', v.e
    from (values
        ('2026-03-05', '2026-03-05 14:30Z', '2026-03-05 21:00Z', false),
        ('2026-03-06', '2026-03-06 14:30Z', '2026-03-06 21:00Z', false),
        ('2026-03-09', '2026-03-09 13:30Z', '2026-03-09 20:00Z', false),
        ('2026-03-10', '2026-03-10 13:30Z', '2026-03-10 20:00Z', false),
        ('2026-11-23', '2026-11-23 14:30Z', '2026-11-23 21:00Z', false),
        ('2026-11-24', '2026-11-24 14:30Z', '2026-11-24 21:00Z', false),
        ('2026-11-25', '2026-11-25 14:30Z', '2026-11-25 21:00Z', false),
        ('2026-11-27', '2026-11-27 14:30Z', '2026-11-27 18:00Z', true),
        ('2026-11-30', '2026-11-30 14:30Z', '2026-11-30 21:00Z', false)
    ) as v (d, o, c, e)
$$;

-- An open session for a day, with the default universe.
create or replace function tests.open_session(p_day date) returns void
language plpgsql
as $$
begin
    perform crypto.clock_set((select c.cutoff_at - interval '1 hour' from crypto.trading_calendar as c where c.trading_day = p_day));
    perform crypto.open_session(p_day);
end
$$;

-- The migrations revoke EXECUTE from PUBLIC by default; pgTAP and these
-- helpers must stay callable after a test switches to an API role.
grant usage on schema public to public;
grant execute on all functions in schema public to public;
grant execute on all functions in schema tests to public;
