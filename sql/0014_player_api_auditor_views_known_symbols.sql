-- Issue 15, items 6 to 9 and the clock blocker.

-- crypto.now() is executable by every API role (plpgsql/clock.sql); anon
-- needs the schema to reach it. anon still reads no table and runs no other
-- crypto function: each has its own grant.
grant usage on schema crypto to anon;

-- GET /v1/predictions pages through every day (plpgsql/results.sql).
drop function if exists api.my_predictions(date);

-- A universe refuses unknown tickers unless asked (plpgsql/universe.sql).
drop function if exists crypto.set_universe(date, text[]);

-- Tickers a universe may use without --allow-unknown: the list shipped in
-- plpgsql/known_symbols.sql, plus each symbol an operator allowed by hand.
create table crypto.known_symbols (
    symbol crypto.symbol primary key,
    source text not null check (source in ('list', 'operator')),
    added_at timestamptz not null,
    added_by text
);
comment on table crypto.known_symbols is
'Tickers a universe may use: the shipped list of popular US stocks and ETFs, and symbols an operator allowed';
alter table crypto.known_symbols enable row level security;
grant select on crypto.known_symbols to auditor, oxp_service;

-- Views for the auditor (plpgsql/audit_views.sql), in a schema of their own:
-- only the auditor may use it; API roles never see it.
create schema audit;
comment on schema audit is 'Documented read-only views for the auditor (psql -U auditor)';
grant usage on schema audit to auditor;

-- The auditor reads times as the game states them: in Korea time.
alter role auditor set timezone = 'Asia/Seoul';
