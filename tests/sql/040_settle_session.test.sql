begin;
select plan(14);

select tests.load_calendar();
select tests.open_session('2026-11-24');
select crypto.set_universe('2026-11-24', array['AAPL', 'MSFT', 'NVDA', 'TSLA', 'AMD']);
select tests.create_user('winner@example.com') as w \gset
select tests.create_user('loser@example.com') as l \gset

select tests.authenticate_as(:'w');
select api.submit_prediction('AAPL', 'UP');
select api.submit_prediction('MSFT', 'DOWN');
select api.submit_prediction('NVDA', 'UP');
select tests.clear_authentication();
select tests.authenticate_as(:'l');
select api.submit_prediction('AAPL', 'DOWN');
select api.submit_prediction('TSLA', 'UP');
select tests.clear_authentication();

select crypto.clock_set('2026-11-24 22:00Z');
select crypto.close_session('2026-11-24');

-- Exactly +0.01 % is UP, exactly -0.01 % is DOWN, anything smaller is VOID;
-- numeric arithmetic keeps the boundaries exact.
select crypto.load_eod_price(d::date, s, c, 'test')
from (values
    ('2026-11-23', 'AAPL', 100.00), ('2026-11-24', 'AAPL', 100.01),
    ('2026-11-23', 'MSFT', 100.00), ('2026-11-24', 'MSFT', 99.99),
    ('2026-11-23', 'NVDA', 100.00), ('2026-11-24', 'NVDA', 100.009999),
    ('2026-11-23', 'TSLA', 250.00), ('2026-11-24', 'TSLA', 300.00),
    ('2026-11-23', 'AMD', 120.00)
) as v (d, s, c);

select throws_ok(
    $$ select crypto.settle_session('2026-11-24') $$, 'OX107', 'PRICES_MISSING',
    'a missing close refuses settlement unless VOID is asked for'
);
select is(
    (select phase::text from crypto.session_control where trading_day = '2026-11-24'), 'CLOSED',
    'the refused settlement changed nothing'
);

select is(
    (crypto.settle_session('2026-11-24', true) ->> 'winners')::int, 3, 'three winning predictions'
);
select results_eq(
    $$ select symbol::text, outcome::text from crypto.settlements where trading_day = '2026-11-24' order by symbol $$,
    $$ values ('AAPL', 'UP'), ('AMD', 'VOID'), ('MSFT', 'DOWN'), ('NVDA', 'VOID'), ('TSLA', 'UP') $$,
    'outcomes at and around the 0.01 % threshold'
);
select is(
    (select change from crypto.settlements where trading_day = '2026-11-24' and symbol = 'AAPL'),
    0.0001::numeric, 'the change is exact'
);
select is(
    (select prev_trading_day from crypto.settlements where trading_day = '2026-11-24' and symbol = 'AAPL'),
    '2026-11-23'::date, 'the previous close is the previous trading day'
);
select is(
    (select balance from crypto.ledger_accounts where user_id = :'w'), 200::bigint,
    'the winner has 100 points per correct call (AAPL, MSFT; NVDA is VOID)'
);
select is(
    (select balance from crypto.ledger_accounts where user_id = :'l'), 100::bigint,
    'the other player won TSLA only'
);
select is(
    (select phase::text from crypto.session_control where trading_day = '2026-11-24'), 'SETTLED',
    'the session is SETTLED'
);

-- Running it again pays nothing more.
select is(
    (crypto.settle_session('2026-11-24', true) ->> 'already_settled')::boolean, true, 'settling again is a no-op'
);
select is(
    (select count(*)::int from crypto.ledger_transfers where reason = 'settlement_award'), 3,
    'each winning prediction paid exactly once'
);
select is(
    (select sum(amount)::bigint from crypto.ledger_entries), 0::bigint, 'the ledger sums to zero'
);
select throws_ok(
    $$ select crypto.load_eod_price('2026-11-24', 'AAPL', 123.45, 'late') $$, 'OX109', 'PRICE_ALREADY_SETTLED',
    'a close used by a settlement cannot change'
);
select throws_ok(
    $$ select crypto.settle_session('2026-11-25') $$, 'OX105', 'NO_SESSION', 'no session, nothing to settle'
);

select * from finish();
rollback;
