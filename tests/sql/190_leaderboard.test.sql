-- The leaderboard (issue 13, item 3): points won in settled sessions, ties
-- broken by a fixed order, VOIDs outside accuracy, a minimum of decided
-- predictions for an accuracy; refreshed by settlement and corrections.
-- Nicknames: 2 to 20 characters, never an email, unique whatever the case.
begin;
select plan(23);

select tests.load_calendar();
select tests.open_session('2026-11-24');
select tests.create_user('ann@example.com') as ann \gset
select tests.create_user('bob@example.com') as bob \gset
select tests.create_user('cat@example.com') as cat \gset

select tests.authenticate_as(:'ann');
select api.submit_prediction('AAPL', 'UP');
select api.submit_prediction('MSFT', 'UP');
select lives_ok($$ select api.set_nickname('Ann') $$, 'a player chooses a nickname');
select throws_ok($$ select api.set_nickname('x') $$, 'OX000', null, 'one character is too short');
select throws_ok($$ select api.set_nickname('abcdefghijklmnopqrstu') $$, 'OX000', null, '21 are too many');
select throws_ok($$ select api.set_nickname('ann@example.com') $$, 'OX000', null, 'never an email');
select tests.authenticate_as(:'bob');
select api.submit_prediction('AAPL', 'UP');
select throws_ok($$ select api.set_nickname(' ANN ') $$, 'OX180', null, 'taken, whatever the case and blanks');
select is(api.set_nickname('<svg onload=alert()>') ->> 'nickname', '<svg onload=alert()>',
    'markup is only characters here (the pages show it as text)');
select tests.authenticate_as(:'cat');
select api.submit_prediction('AAPL', 'DOWN');
select tests.clear_authentication();

select is(
    (select count(*)::integer from crypto.leaderboard), 0, 'nothing on the board before a settlement'
);

-- New York closes: AAPL up (Ann and Bob win), MSFT inside the threshold (VOID).
select crypto.clock_set('2026-11-24 23:00Z');
select crypto.close_session('2026-11-24');
select crypto.load_eod_price(d::date, s, c, 'test')
from (values
    ('2026-11-23', 'AAPL', 10), ('2026-11-24', 'AAPL', 11),
    ('2026-11-23', 'MSFT', 10), ('2026-11-24', 'MSFT', 10.0005)
) as v (d, s, c);
select crypto.settle_session('2026-11-24', true);
-- The metrics rollup (pg_cron) refreshes the board of a settled day.
select crypto.rollup_metrics();

select results_eq(
    $$ select period, period_start, points, wins, losses, voids from crypto.leaderboard
       where user_id = '$$ || :'ann' || $$' order by period $$,
    $$ values ('all', '1970-01-01'::date, 100::bigint, 1, 0, 1), ('month', '2026-11-01', 100, 1, 0, 1),
              ('week', '2026-11-23', 100, 1, 0, 1) $$,
    'settlement fills the rollup: week, month and all time; the VOID is not a loss'
);

-- Who of Ann and Bob comes first on a tie: the greater id, every time.
select jsonb_agg(u.nickname order by u.id desc) as tie_order
from crypto.users as u where u.id in (:'ann', :'bob') \gset
select tests.authenticate_as(:'cat');
select is(
    (select json_agg(i ->> 'rank') from json_array_elements(api.leaderboard('week') -> 'items') as i)::text,
    '["1", "2", "3"]', 'three players ranked'
);
select is(
    (select json_agg(i -> 'nickname') from json_array_elements(api.leaderboard('week') -> 'items') as i)::jsonb
    - 2,
    :'tie_order'::jsonb,
    'Ann and Bob tie on points and wins: the fixed order of their ids decides'
);
select is(
    api.leaderboard('week') #>> '{items,2,points}', '0', 'Cat lost: last, with no points'
);
select is(
    (select count(*)::integer from json_array_elements(api.leaderboard('week') -> 'items') as i
     where i ->> 'accuracy' is not null),
    0, 'below 5 decided predictions nobody has an accuracy'
);
select tests.clear_authentication();
update crypto.settings set value = '1' where key = 'leaderboard.min_decided';
select tests.authenticate_as(:'cat');
select is(
    (select json_agg(i -> 'accuracy') from json_array_elements(api.leaderboard('week') -> 'items') as i)::text,
    '[1.0000, 1.0000, 0.0000]', 'with a minimum of 1: wins / decided, the VOID left out'
);
select isnt(
    api.leaderboard('all', 2) ->> 'next_cursor', null, 'a page of two says where the next begins'
);
select is(
    api.leaderboard('all', 2, api.leaderboard('all', 2) ->> 'next_cursor') #>> '{items,0,rank}', '3',
    '... and the next page goes on from rank 3'
);
select throws_ok($$ select api.leaderboard('year') $$, 'OX000', null, 'an unknown period is refused');
select is(
    api.leaderboard('week')::text ~ 'example\.com', false, 'no email on the public board'
);

-- A correction turns AAPL down: Cat wins, Ann and Bob lose their points.
select tests.clear_authentication();
select crypto.correct_settlement('2026-11-24', '[{"trading_day": "2026-11-24", "symbol": "AAPL", "close": 9}]',
    'the vendor sent a wrong close');
select crypto.rollup_metrics();  -- as pg_cron would
select results_eq(
    $$ select u.email, l.points, l.wins, l.losses from crypto.leaderboard as l
       join crypto.users as u on u.id = l.user_id where l.period = 'week' order by u.email $$,
    $$ values ('ann@example.com', 0::bigint, 0, 1), ('bob@example.com', 0, 0, 1), ('cat@example.com', 100, 1, 0) $$,
    'a correction refreshes the board from the corrected facts'
);
select is(
    (select count(*)::integer from crypto.day_awards('2026-11-24') as a
     where a.award is distinct from crypto.prediction_award(a.prediction_id, '2026-11-24')),
    0, 'crypto.day_awards gives what crypto.prediction_award gives, after a correction too'
);
select is(
    (select array_agg(a.award order by a.prediction_id) from crypto.day_awards('2026-11-24') as a),
    array[0, 0, 0, 100]::bigint[], '... the corrected awards: Cat''s 100, Ann''s and Bob''s taken back, a VOID'
);
select is(crypto.leaderboard_refresh('2026-11-24'), 9, 'a second refresh rewrites the same rows ...');
select is(
    (select count(*)::integer from crypto.leaderboard), 9, '... and adds none'
);

-- Who may not: nobody signed out sets a nickname; the board is public.
set local role anon;
select throws_ok($$ select api.set_nickname('Ghost') $$, '42501', null, 'anon cannot set a nickname');

select * from finish();
rollback;
