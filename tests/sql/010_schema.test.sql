begin;
select plan(17);

select has_schema('crypto');
select has_schema('api');
-- Partitions aside (200_partitions): they are their parents' storage.
select set_eq($$
    select c.relname::text from pg_class as c
    where c.relnamespace = 'crypto'::regnamespace and c.relkind in ('r', 'p') and not c.relispartition
    $$, array[
    'error_codes', 'settings', 'users', 'oauth_states', 'trading_calendar', 'session_control',
    'active_universe', 'predictions', 'user_daily_limits', 'eod_prices', 'eod_fetch_logs',
    'settlements', 'ledger_accounts', 'ledger_transfers', 'ledger_entries', 'ledger_transfer_keys', 'ledger_checkpoints', 'ledger_verifications', 'rewards_inventory',
    'rewards_redemptions', 'ads', 'ad_impressions', 'ad_unlocks', 'idempotent_requests', 'rate_limits', 'audit_logs',
    'system_health', 'job_runs', 'jobs', 'refresh_tokens', 'worker_heartbeats', 'replica_heartbeat',
    'settlement_corrections', 'eod_price_corrections', 'settlement_revisions', 'correction_transfers',
    'known_symbols', 'email_verifications', 'auth_failures', 'daily_activity', 'daily_metrics', 'leaderboard',
    'leaderboard_days', 'user_streaks', 'leaderboard_stamps', 'server_secrets',
    'alerts', 'alert_deliveries', 'http_counts', 'orphan_vouchers', 'partition_archives', 'cold_months'
], 'Schema crypto should have the correct tables');
select enum_has_labels('crypto', 'session_phase', array['OPEN', 'CLOSED', 'SETTLING', 'SETTLED']);

select is(
    (select count(*)::int from pg_tables where schemaname = 'crypto' and not rowsecurity),
    0, 'row-level security is on for every crypto table'
);

select tests.load_calendar();
select lives_ok($$ select tests.open_session('2026-11-24') $$, 'a session opens');
select throws_ok(
    $$ insert into crypto.session_control (trading_day, phase, opened_at) values ('2026-11-25', 'OPEN', now()) $$,
    '23505', null, 'a second OPEN session is refused by the one-open index'
);
select throws_ok(
    $$ insert into crypto.session_control (trading_day, phase, opened_at) values ('2026-11-25', 'PAUSED', now()) $$,
    '22P02', null, 'an unknown phase is refused'
);

select tests.create_user('schema@example.com') as uid \gset
insert into crypto.predictions (user_id, trading_day, symbol, choice, created_at)
values (:'uid', '2026-11-24', 'AAPL', 'UP', now());
select throws_ok(
    format($$ insert into crypto.predictions (user_id, trading_day, symbol, choice, created_at)
              values (%L, '2026-11-24', 'AAPL', 'DOWN', now()) $$, :'uid'),
    '23505', null, 'one prediction per user, session and symbol'
);
select throws_ok(
    format($$ insert into crypto.predictions (user_id, trading_day, symbol, choice, created_at)
              values (%L, '2026-11-24', 'IBM', 'DOWN', now()) $$, :'uid'),
    '23503', null, 'a prediction needs a symbol of the session universe'
);

select throws_ok(
    format($$ update crypto.ledger_accounts set balance = -1 where user_id = %L $$, :'uid'),
    '23514', null, 'a user balance can never be negative'
);
select throws_ok(
    $$ insert into crypto.rewards_inventory (sku, name, cost_points, stock) values ('x', 'X', 10, -1) $$,
    '23514', null, 'stock can never be negative'
);
select throws_ok(
    $$ insert into crypto.rewards_inventory (sku, name, cost_points, stock, reserved, issued)
       values ('y', 'Y', 10, 2, 2, 1) $$,
    '23514', null, 'reserved and issued never exceed stock'
);
select throws_ok(
    $$ insert into crypto.users (email, password_hash) values ('Upper@Example.com', null) $$,
    '23514', null, 'emails are stored lower-case and a user needs a way to sign in'
);
select throws_ok(
    $$ insert into crypto.settlements (trading_day, symbol, prev_trading_day, outcome, settled_at)
       values ('2026-11-24', 'AAPL', '2026-11-23', 'UP', now()) $$,
    '23514', null, 'a decided settlement carries both closes and the change'
);
select throws_ok(
    $$ insert into crypto.active_universe (trading_day, symbol, position) values ('2026-11-24', 'bad symbol', 11) $$,
    '23514', null, 'symbols are upper-case tickers'
);

select is(obj_description('api'::regnamespace, 'pg_namespace'),
    'What the HTTP shim may call, and nothing else; the worker and oxp call crypto.* functions '
    '(and read api.error_codes() and api.environment(), as every process does at start-up)',
    'the api schema says who calls it');

select * from finish();
rollback;
