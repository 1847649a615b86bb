begin;
select plan(13);

select tests.load_calendar();
select tests.open_session('2026-11-24');

select is(crypto.unknown_symbols(array['AAPL', 'BRK.B', 'SPY']), '{}'::text[], 'popular tickers are known');
select is(crypto.unknown_symbols(array['AAPL', 'ZZZZ', 'APPL']), array['ZZZZ', 'APPL'],
    'unknown ones are named, in order');
select throws_ok(
    $$ select crypto.set_universe('2026-11-25', array['AAPL', 'zzzz']) $$,
    'OX130', 'UNKNOWN_SYMBOL', 'an unknown ticker is refused'
);
select is(
    (select count(*)::int from crypto.active_universe where trading_day = '2026-11-25'), 0,
    'and nothing changed'
);
-- The refusal names the symbol (the detail is what the CLI and API show).
select is(
    tests.error_detail($$ select crypto.set_universe('2026-11-25', array['AAPL', 'ZZZZ']) $$),
    'Unknown symbol: ZZZZ (not in the known list and never priced); check the spelling, or allow with --allow-unknown',
    'the refusal names the unknown symbol and the way out'
);
select is(
    tests.error_detail($$ select crypto.set_universe('2026-11-25', array['AAPL', 'BAD SYMBOL']) $$),
    '"BAD SYMBOL" is not a symbol: 1 to 10 letters, digits, "." or "-", starting with a letter',
    'a malformed symbol is named'
);
select is(
    tests.error_detail($$ select crypto.set_universe('2026-11-25', array['AAPL', 'msft', 'MSFT']) $$),
    'MSFT is listed twice', 'a duplicate is named'
);
select is(crypto.set_universe('2026-11-25', array['AAPL', 'ZZZZ'], true), 2, 'allowed on request');
select is(
    (select source || ' ' || added_by from crypto.known_symbols where symbol = 'ZZZZ'),
    'operator role:' || session_user,
    'an allowed symbol is remembered as vouched for by its operator'
);
select is(
    (select details -> 'allowed_unknown' from crypto.audit_logs where action = 'universe.set' order by id desc limit 1),
    '["ZZZZ"]'::jsonb, 'the audit row says which symbols were allowed'
);
insert into crypto.eod_prices (trading_day, symbol, close, source, fetched_at)
values ('2026-11-23', 'NEWCO', 5, 'test', now());
select is(crypto.unknown_symbols(array['NEWCO']), '{}'::text[], 'a symbol with a close counts as known');

select tests.create_user('player@example.com') as uid \gset
select tests.authenticate_as(:'uid');
select throws_ok($$ select crypto.set_universe('2026-11-25', array['AAPL']) $$, '42501', null,
    'a player cannot set a universe');
select tests.clear_authentication();
set local role anon;
select throws_ok($$ select crypto.unknown_symbols(array['AAPL']) $$, '42501', null,
    'anon cannot run the symbol check');
reset role;

select * from finish();
rollback;
