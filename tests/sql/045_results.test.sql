begin;
select plan(5);

select tests.load_calendar();
select tests.open_session('2026-11-24');
select crypto.set_universe('2026-11-24', array['AAPL', 'MSFT', 'NVDA']);
select tests.create_user('r@example.com') as uid \gset
select tests.authenticate_as(:'uid');
select api.submit_prediction('AAPL', 'UP');
select api.submit_prediction('MSFT', 'UP');
select api.submit_prediction('NVDA', 'DOWN');
select is(
    (select array_agg(i ->> 'outcome') from json_array_elements(api.my_predictions('2026-11-24') -> 'items') as i),
    array['PENDING', 'PENDING', 'PENDING'], 'before settlement every prediction is PENDING'
);
select tests.clear_authentication();

select crypto.clock_set('2026-11-24 22:00Z');
select crypto.close_session('2026-11-24');
select crypto.load_eod_price(d::date, s, c, 'test')
from (values
    ('2026-11-23', 'AAPL', 10), ('2026-11-24', 'AAPL', 11),
    ('2026-11-23', 'MSFT', 10), ('2026-11-24', 'MSFT', 9)
) as v (d, s, c);
select crypto.settle_session('2026-11-24', true);

select tests.authenticate_as(:'uid');
select results_eq(
    $$ select i ->> 'symbol', i ->> 'outcome', (i ->> 'points')::int
       from json_array_elements(api.my_predictions('2026-11-24') -> 'items') as i $$,
    $$ values ('NVDA', 'VOID', 0), ('MSFT', 'LOST', 0), ('AAPL', 'WON', 100) $$,
    'each prediction shows its outcome and the points it earned, newest first'
);
select is(
    json_array_length(api.my_predictions('2026-11-25') -> 'items'), 0, 'another day has none of them'
);
select tests.clear_authentication();

select is(
    (select array_agg((i ->> 'outcome') || ' ' || coalesce(i ->> 'change', '-') order by i ->> 'symbol')
     from json_array_elements(api.settlements('2026-11-24') -> 'symbols') as i),
    array['UP 0.10000000000000000000', 'DOWN -0.10000000000000000000', 'VOID -'],
    'settlements are public, per symbol, with the exact change'
);
select throws_ok(
    $$ select api.settlements('2026-11-25') $$, 'OX105', 'NO_SESSION', 'no session, no settlements'
);

select * from finish();
rollback;
