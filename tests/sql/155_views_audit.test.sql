begin;
select plan(19);

-- A settled day: AAPL up (a win), MSFT inside the threshold, the rest
-- without closes; one player with predictions, one without any entries.
select tests.load_calendar();
select tests.open_session('2026-11-24');
select tests.create_user('winner@example.com') as winner \gset
select tests.create_user('idle@example.com') as idle \gset
select tests.authenticate_as(:'winner');
select api.submit_prediction('AAPL', 'UP');
select api.submit_prediction('MSFT', 'UP');
select api.submit_prediction('NVDA', 'DOWN');
select tests.clear_authentication();
select crypto.clock_set('2026-11-24 22:00Z');
select crypto.close_session('2026-11-24');
select crypto.load_eod_price(d::date, s, c, 'test')
from (values
    ('2026-11-23', 'AAPL', 10), ('2026-11-24', 'AAPL', 11),
    ('2026-11-23', 'MSFT', 10), ('2026-11-24', 'MSFT', 10.0005)
) as v (d, s, c);
select crypto.settle_session('2026-11-24', true);

set local role auditor;
select results_eq(
    $$ select name, balance_from_entries::bigint from audit.account_balances where kind = 'system' order by name $$,
    $$ values ('adjustments', 0::bigint), ('ads', 0), ('issuance', -100), ('redemptions', 0) $$,
    'account_balances names the system accounts, with what they paid out'
);
select results_eq(
    $$ select name, stored_balance, balance_from_entries::bigint, stored_matches_entries, entries::int
       from audit.account_balances where kind = 'user' order by name $$,
    $$ values ('idle@example.com', 0::bigint, 0::bigint, true, 0), ('winner@example.com', 100, 100, true, 1) $$,
    'account_balances includes users without entries, and matches stored balances to entries'
);
select is(
    (select sum(balance_from_entries)::bigint from audit.account_balances), 0::bigint,
    'all accounts together sum to zero'
);
select results_eq(
    $$ select amount, balance_after, reason, counterparty, prediction_day, prediction_symbol::text
       from audit.user_points_history where email = 'winner@example.com' $$,
    $$ values (100::bigint, 100::bigint, 'settlement_award', 'issuance', '2026-11-24'::date, 'AAPL') $$,
    'user_points_history says where the points came from: the winning prediction'
);
select is(
    (select count(*)::int from audit.user_points_history where email = 'idle@example.com'), 0,
    'a user without entries has no history'
);
select results_eq(
    $$ select symbols::int, up::int, down::int, void_threshold::int, void_missing_price::int,
              predictions::int, players::int, won::int, lost::int, void::int, awards::int, points_awarded::bigint
       from audit.daily_settlements where trading_day = '2026-11-24' $$,
    $$ values (10, 1, 0, 1, 8, 3, 1, 1, 0, 2, 1, 100::bigint) $$,
    'daily_settlements: symbols by outcome and VOID reason, predictions, and the awards paid'
);
select results_eq(
    $$ select symbol::text, change_percent, void_reason from audit.settlement_symbols
       where trading_day = '2026-11-24' and symbol in ('AAPL', 'MSFT', 'NVDA') order by symbol $$,
    $$ values ('AAPL', '10.0000', null), ('MSFT', '0.0050', 'threshold'), ('NVDA', null, 'missing_price') $$,
    'settlement_symbols: change in percent and why a symbol is VOID'
);
-- The functions an auditor needs run as the auditor.
select lives_ok($$ select crypto.audit_verify() $$, 'the auditor verifies the audit chain');
select lives_ok($$ select * from crypto.integrity_violations() $$, 'the auditor runs the integrity check');
select lives_ok(
    $$ select crypto.kst(crypto.now()), crypto.new_york(crypto.now()), crypto.current_session(),
              crypto.next_session_day(), crypto.prev_trading_day('2026-11-24') $$,
    'the auditor reads the clock, the sessions and the calendar'
);
select is_empty(
    $$ select c.relname, p.privilege from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
       cross join (values ('INSERT'), ('UPDATE'), ('DELETE')) as p (privilege)
       where n.nspname = 'audit' and has_table_privilege('auditor', c.oid, p.privilege) $$,
    'the auditor cannot write through a view'
);
reset role;

select is_empty(
    $$ select r.rolname, c.relname, p.privilege
       from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
       cross join pg_roles as r
       cross join (values ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE')) as p (privilege)
       where n.nspname = 'audit' and r.rolname in ('anon', 'app_user', 'app_admin', 'oxp_service', 'auditor')
         and has_table_privilege(r.rolname, c.oid, p.privilege) $$,
    'no API, service or auditor role can write an audit view'
);
select is_empty(
    $$ select c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
       where n.nspname = 'audit' and (obj_description(c.oid, 'pg_class') is null
         or not has_table_privilege('auditor', c.oid, 'SELECT')) $$,
    'every audit view is documented and readable by the auditor'
);
select is(
    (select count(*)::int from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
     where n.nspname = 'audit'
       and (has_table_privilege('app_user', c.oid, 'SELECT') or has_table_privilege('anon', c.oid, 'SELECT'))),
    0, 'players and anon have no SELECT on audit views'
);
select tests.authenticate_as(:'winner');
select throws_ok($$ select * from audit.account_balances $$, '42501', null, 'a player cannot read the audit views');
select tests.clear_authentication();
set local role anon;
select throws_ok($$ select * from audit.user_points_history $$, '42501', null, 'anon cannot read the audit views');
reset role;
set local role app_admin;
select throws_ok($$ select * from audit.daily_settlements $$, '42501', null,
    'an admin token''s role cannot read them either (admins work through the API)');
reset role;

select ok(tests.role_sets('auditor', 'TimeZone=Asia/Seoul'), 'the auditor''s sessions show times in KST');
select ok(tests.role_sets('auditor', 'default_transaction_read_only=on'), 'and are read-only');

select * from finish();
rollback;
