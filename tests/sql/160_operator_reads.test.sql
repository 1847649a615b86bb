begin;
select plan(13);

select tests.load_calendar();
select tests.open_session('2026-11-24');
select tests.create_user('r@example.com') as r \gset
select tests.authenticate_as(:'r');
select api.submit_prediction('AAPL', 'UP');
select api.submit_prediction('MSFT', 'UP');
select tests.clear_authentication();
select crypto.close_session('2026-11-24');
select crypto.clock_set('2026-11-25 00:00Z');
-- AAPL moves 1 %; MSFT by less than the threshold; NVDA has no close on the day.
select crypto.load_eod_price('2026-11-23', s, 100, 'test') from unnest(array['AAPL', 'MSFT', 'NVDA']) as s;
select crypto.load_eod_price('2026-11-24', 'AAPL', 101, 'test');
select crypto.load_eod_price('2026-11-24', 'MSFT', 100.005, 'test');

-- eod show: closes with source, what is missing, the attempts.
select crypto.log_eod_fetch('2026-11-24', 'yfinance', now(), 'failed', 0, 'DNS failure');
select is(crypto.eod_day('2026-11-24') #>> '{closes,0,symbol}', 'AAPL', 'closes in universe order');
select is(crypto.eod_day('2026-11-24') #>> '{closes,0,source}', 'test', '... with their source');
select ok(crypto.eod_day('2026-11-24') -> 'missing' @> '[{"trading_day": "2026-11-24", "symbol": "NVDA"}]',
    'the missing closes name the day and the symbol');
select is(crypto.eod_day('2026-11-24') #>> '{attempts,0,error}', 'DNS failure', 'every fetch attempt with its error');
select throws_ok($$ select crypto.eod_day('2026-11-26') $$, 'OX108', 'NOT_A_TRADING_DAY', 'Thanksgiving is no trading day');

-- session list: phase, counts, and each VOID with its reason.
select crypto.settle_session('2026-11-24', true);
select is(crypto.sessions_list() #>> '{0,phase}', 'SETTLED', 'the phase');
select is(crypto.sessions_list() #>> '{0,predictions}', '2', 'the number of predictions');
select is(crypto.sessions_list() #>> '{0,winners}', '1', 'the number of winners');
select is(
    (select v from jsonb_array_elements(crypto.sessions_list() #> '{0,voids}') as v where v ->> 'symbol' = 'MSFT'),
    '{"symbol": "MSFT", "reason": "threshold", "change": 0.00005}'::jsonb, 'a VOID inside the threshold'
);
select is(
    (select v from jsonb_array_elements(crypto.sessions_list() #> '{0,voids}') as v where v ->> 'symbol' = 'NVDA'),
    '{"symbol": "NVDA", "reason": "missing_price", "missing": ["2026-11-24"]}'::jsonb,
    'a VOID for a missing close, naming the day'
);
select is(crypto.sessions_list('2026-11-25', '2026-11-30'), '[]'::jsonb, 'between two days');

-- redemptions: by status, and only for the operator and the auditor.
select throws_ok($$ select crypto.redemptions_list('LOST') $$, 'OX000', 'VALIDATION_FAILED', 'an unknown status');
select is_empty(
    $$ select r, f from unnest(array['anon', 'app_user', 'app_admin', 'authenticator']) as r
       cross join unnest(array['crypto.sessions_list(date, date, integer)', 'crypto.eod_day(date)',
           'crypto.redemptions_list(text, bigint, integer)']) as f
       where has_function_privilege(r, f, 'execute') $$,
    'anon, players and admin tokens call none of them'
);

select * from finish();
rollback;
