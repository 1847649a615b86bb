begin;
select plan(21);

select tests.load_calendar();
select tests.open_session('2026-11-24');
select tests.create_user('alice@example.com') as alice \gset
select tests.create_user('bob@example.com') as bob \gset

select tests.authenticate_as(:'alice');
select api.submit_prediction('AAPL', 'UP');
select tests.clear_authentication();
select tests.authenticate_as(:'bob');
select api.submit_prediction('MSFT', 'DOWN');

-- Bob, as app_user, sees his own rows only.
select is(
    (select array_agg(symbol::text) from crypto.predictions), array['MSFT'],
    'a user reads only their own predictions'
);
select is((select array_agg(email) from crypto.users), array['bob@example.com'], 'a user reads only themselves');
select is(
    (select count(*)::int from crypto.ledger_accounts), 1, 'a user reads only their own points account'
);
select throws_ok(
    'select password_hash from crypto.users', '42501', null, 'password hashes are not readable'
);

-- ...and writes nothing directly.
select throws_ok(
    $$ insert into crypto.predictions (user_id, trading_day, symbol, choice, created_at)
       values (crypto.auth_uid(), '2026-11-24', 'NVDA', 'UP', now()) $$,
    '42501', null, 'no direct INSERT into predictions'
);
select throws_ok(
    'update crypto.ledger_accounts set balance = 1000000', '42501', null, 'no direct UPDATE of balances'
);
select throws_ok(
    $$ insert into crypto.ledger_transfers (idempotency_key, debit_account_id, credit_account_id, amount, reason, created_at)
       values ('forged', 1, 2, 100, 'forged', now()) $$,
    '42501', null, 'no direct INSERT into the ledger'
);
select throws_ok('delete from crypto.ledger_entries', '42501', null, 'no DELETE of ledger entries');
select throws_ok(
    $$ insert into crypto.settlements (trading_day, symbol, prev_trading_day, outcome, settled_at)
       values ('2026-11-24', 'AAPL', '2026-11-23', 'VOID', now()) $$,
    '42501', null, 'no direct INSERT into settlements'
);
select throws_ok('delete from crypto.predictions', '42501', null, 'no DELETE of predictions');
select throws_ok(
    $$ select crypto.ledger_transfer('forged', 1, crypto.user_account(crypto.auth_uid()), 100, 'forged') $$,
    '42501', null, 'a user cannot call the ledger function'
);
select throws_ok(
    $$ select crypto.settle_session('2026-11-24') $$, '42501', null, 'a user cannot settle'
);
select throws_ok(
    $$ select crypto.clock_set(now()) $$, '42501', null, 'a user cannot move the clock'
);
select tests.clear_authentication();

-- Functions are never executable by PUBLIC.
select is(
    (select count(*)::int from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace
     where n.nspname in ('crypto', 'api') and has_function_privilege('public', p.oid, 'execute')
       and p.prokind = 'f' and p.prorettype <> 'trigger'::regtype),
    0, 'no crypto or api function is executable by PUBLIC'
);

-- anon may only sign up, look up a login, and read public game state.
select function_privs_are('api', 'me', array[]::text[], 'anon', array[]::text[], 'anon cannot call api.me');

-- Money tables: no role but their owner, who owns the ledger function,
-- can write them; everyone else goes through the functions.
select is_empty(
    $$ select r.rolname, c.relname, p.privilege
       from pg_roles as r
       cross join (values ('ledger_accounts'), ('ledger_transfers'), ('ledger_entries'), ('audit_logs'),
           ('rewards_inventory'), ('rewards_redemptions'), ('ad_unlocks'), ('settlements'), ('idempotent_requests'),
           ('settlement_corrections'), ('eod_price_corrections'), ('settlement_revisions'), ('correction_transfers'),
           ('eod_prices')) as c (relname)
       cross join (values ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE')) as p (privilege)
       where r.rolname in ('anon', 'authenticator', 'app_user', 'app_admin', 'oxp_service', 'auditor')
         and has_table_privilege(r.rolname, 'crypto.' || c.relname, p.privilege) $$,
    'no API, service or auditor role can write a money table'
);
select is(
    (select pg_get_userbyid(proowner) from pg_proc where oid = 'crypto.ledger_transfer'::regproc),
    (select pg_get_userbyid(relowner) from pg_class where oid = 'crypto.ledger_transfers'::regclass),
    'the ledger function runs as the ledger tables'' owner'
);

-- The auditor reads every table (secret columns aside, and the keys the
-- database keeps: crypto.server_secrets) and writes nothing.
select is_empty(
    $$ select c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
       where n.nspname = 'crypto' and c.relkind in ('r', 'p') and not c.relispartition
         and c.relname not in ('users', 'oauth_states', 'refresh_tokens', 'email_verifications', 'rewards_redemptions',
             'server_secrets', 'orphan_vouchers')
         and not has_table_privilege('auditor', c.oid, 'SELECT') $$,
    'the auditor reads every table (a partition through its parent: partitions grant nothing, 200_partitions)'
);
select is_empty(
    $$ select c.relname, p.privilege from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
       cross join (values ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE')) as p (privilege)
       where n.nspname = 'crypto' and c.relkind = 'r' and has_table_privilege('auditor', c.oid, p.privilege) $$,
    'the auditor can write no table'
);
set local role auditor;
select lives_ok('select count(*) from crypto.ledger_entries', 'the auditor reads the ledger');
select throws_ok(
    $$ insert into crypto.settings (key, value, description) values ('x', '1', 'x') $$,
    '42501', null, 'the auditor writes nothing'
);
reset role;

select * from finish();
rollback;
