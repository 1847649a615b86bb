-- The rules of a close (crypto.eod_price_problem) and the loads that ask
-- them: no close before New York has closed the day, none for a day the
-- NYSE did not trade, a file all or nothing with every refused row named,
-- and a close that a settlement read, VOID included, never changed by a load.
begin;
select plan(19);

create function pg_temp.error_of(p_sql text) returns text
language plpgsql
as $$
declare
    v_detail text;
begin
    execute p_sql;
    return null;
exception when others then
    get stacked diagnostics v_detail = pg_exception_detail;
    return sqlstate || ': ' || v_detail;
end
$$;

select tests.load_calendar();
select crypto.clock_set('2026-11-25 22:00Z');
select crypto.load_eod_price('2026-11-25', s, c, 'test')
from (values ('AAPL', 100), ('MSFT', 200), ('NVDA', 50)) as v (s, c);

-- The reproduction: Friday 27 November 2026 (early close, 18:00Z), the
-- clock after the cutoff but before New York opens.
select tests.open_session('2026-11-27');
select tests.create_user('early@example.com') as u \gset
select tests.authenticate_as(:'u');
select api.submit_prediction(s, 'UP') from unnest(array['AAPL', 'MSFT', 'NVDA']) as s;
select tests.clear_authentication();
select crypto.clock_set('2026-11-27 14:26Z');
select crypto.close_session('2026-11-27');

select throws_ok(
    $$ select crypto.load_eod_price('2026-11-27', 'AAPL', 110, 'csv') $$, 'OX110', 'MARKET_NOT_CLOSED',
    'a close for a day New York has not closed is refused'
);
select throws_ok(
    $$ select crypto.load_eod_price('2026-11-26', 'AAPL', 110, 'csv') $$, 'OX108', 'NOT_A_TRADING_DAY',
    'a close for Thanksgiving (no session) is refused'
);
select throws_ok(
    $$ select crypto.settle_session('2026-11-27') $$, 'OX110', 'MARKET_NOT_CLOSED',
    'settling a day before its close is refused'
);
select throws_ok(
    $$ select crypto.settle_session('2026-11-27', true) $$, 'OX110', 'MARKET_NOT_CLOSED',
    'even when asked to VOID what is missing'
);
select is(
    pg_temp.error_of($$ select crypto.load_eod_prices(
        '[{"line": 2, "trading_day": "2026-11-25", "symbol": "AMD", "close": "120"},
          {"line": 3, "trading_day": "2026-11-26", "symbol": "AAPL", "close": "110"},
          {"line": 4, "trading_day": "2026-11-27", "symbol": "AAPL", "close": "110"},
          {"line": 5, "trading_day": "2026-11-25", "symbol": "TSLA", "close": "300"},
          {"line": 6, "trading_day": "2026-11-25", "symbol": "TSLA", "close": "300"},
          {"line": 7, "trading_day": "2026-11-25", "symbol": "AVGO", "close": "-1"},
          {"line": 8, "trading_day": "11/25/2026", "symbol": "AVGO", "close": "1"},
          {"line": 9, "trading_day": "2026-11-25", "symbol": "AVGO", "close": "abc"}]', 'csv:x.csv') $$),
    'OX108: 7 of 8 rows refused, none loaded:' || E'\n'
    || 'line 3: 2026-11-26 is not a trading day: the NYSE has no session that day, so AAPL has no close' || E'\n'
    || 'line 4: 2026-11-27 has not closed yet: New York closes it at 2026-11-28T03:00:00+09:00 (KST), so AAPL has no close' || E'\n'
    || 'line 5: TSLA on 2026-11-25 is given 2 times' || E'\n'
    || 'line 6: TSLA on 2026-11-25 is given 2 times' || E'\n'
    || 'line 7: The close of AVGO on 2026-11-25 must be a positive number below 10^14 (six decimal places)' || E'\n'
    || 'line 8: 11/25/2026 is not a date (YYYY-MM-DD)' || E'\n'
    || 'line 9: abc is not a number',
    'a file names every refused row, with its line and its rule'
);
select is(
    (select count(*)::int from crypto.eod_prices where symbol in ('AMD', 'TSLA', 'AVGO')), 0,
    'and loads none of its rows, the good one included'
);
select is(
    (select count(*)::int from crypto.settlements where trading_day = '2026-11-27')
    + (select coalesce(sum(balance), 0)::int from crypto.ledger_accounts where kind = 'user'),
    0, 'nothing was settled and no point was paid'
);
select is(
    (select phase::text from crypto.session_control where trading_day = '2026-11-27'), 'CLOSED',
    'the session stays CLOSED'
);

-- After the close, the same day loads and settles.
select crypto.clock_set('2026-11-27 18:20Z');
select is(
    crypto.load_eod_prices('[{"trading_day": "2026-11-27", "symbol": "AAPL", "close": 110},
        {"trading_day": "2026-11-27", "symbol": "MSFT", "close": 190}]', 'csv:late.csv'),
    '{"read": 2, "changed": 2}', 'after the close a file loads'
);
select is(
    crypto.load_eod_prices('[{"trading_day": "2026-11-27", "symbol": "AAPL", "close": 110}]', 'csv:late.csv'),
    '{"read": 1, "changed": 0}', 'loading the same close again changes nothing'
);
select lives_ok(
    $$ select crypto.load_eod_price('2026-11-27', 'AAPL', 111, 'csv') $$,
    'before a settlement reads it, a close can still be replaced'
);
select is(
    (crypto.settle_session('2026-11-27', true) ->> 'winners')::int, 1, 'the day settles after its close (AAPL won)'
);

-- The settlement read AAPL and MSFT, and read NVDA's previous close with
-- no close of its own (VOID): none of what it read changes by a load.
select throws_ok(
    $$ select crypto.load_eod_price('2026-11-27', 'MSFT', 200, 'csv') $$, 'OX109', 'PRICE_ALREADY_SETTLED',
    'a close a settlement read cannot be loaded over'
);
select throws_ok(
    $$ select crypto.load_eod_price('2026-11-25', 'NVDA', 51, 'csv') $$, 'OX109', 'PRICE_ALREADY_SETTLED',
    'nor the previous close of a symbol the settlement made VOID'
);
select lives_ok(
    $$ select crypto.load_eod_price('2026-11-27', 'NVDA', 52, 'csv') $$,
    'a close that was missing may still arrive (the next day compares with it)'
);
select is(
    (select close_today from crypto.settlements where trading_day = '2026-11-27' and symbol = 'NVDA'), null,
    'and the settlement keeps the closes it used'
);

-- Closes are kept to six places: judged as stored.
select throws_ok(
    $$ select crypto.load_eod_price('2026-11-25', 'AMD', 0.0000001, 'csv') $$, 'OX000', 'VALIDATION_FAILED',
    'a close that rounds to zero is refused by the rule, not by the table'
);
select is(
    crypto.load_eod_price('2026-11-27', 'AAPL', 111.0000004, 'csv'), false,
    'a settled close given with more places but the same stored value is no change'
);

select function_privs_are(
    'crypto', 'load_eod_prices', array['jsonb', 'text'], 'app_user', array[]::text[],
    'a player cannot load closes'
);

select * from finish();
rollback;
