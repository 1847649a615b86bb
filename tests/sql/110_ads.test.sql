begin;
select plan(12);

select tests.load_calendar();
select tests.open_session('2026-11-24');
select tests.create_user('ad@example.com') as u \gset
insert into crypto.ads (id, title, reward_kind, reward_points) values
('slot', 'One more prediction', 'SLOT', 0), ('pts', '20 points', 'POINTS', 20), ('gone', 'Old', 'POINTS', 5);
update crypto.ads set active = false where id = 'gone';
update crypto.settings set value = '2' where key = 'ads.max_slot_unlocks';
select tests.authenticate_as(:'u');

select is((select json_array_length(api.ads() -> 'items')), 2, 'only active ads are listed');
select api.click_ad('slot', 's1')::jsonb as first \gset
select is((:'first'::jsonb ->> 'prediction_limit')::int, 4, 'a SLOT ad raises the session''s limit by one');
select is(api.click_ad('slot', 's1')::jsonb, :'first'::jsonb, 'the same key returns the first response');
select api.click_ad('slot', 's2');
select is(api.click_ad('slot', 's3')::jsonb #>> '{problem,sqlstate}', 'OX204', 'past the slot cap: AD_LIMIT_REACHED');
select is(
    (select slot_unlocks from crypto.user_daily_limits where user_id = :'u'), 2, 'the cap holds'
);

select api.click_ad('pts', 'p' || i) from generate_series(1, 5) as i;
select is((select balance from crypto.ledger_accounts where user_id = :'u'), 100::bigint,
    'POINTS ads pay through the ledger');
select is(api.click_ad('pts', 'p6')::jsonb #>> '{problem,sqlstate}', 'OX204', 'at most 5 point rewards per session');
select is(api.click_ad('pts', 'p1')::jsonb ->> 'points', '20', 'a retry of a paid click replays it');
select is((select balance from crypto.ledger_accounts where user_id = :'u'), 100::bigint, '... and pays nothing more');
select is(api.click_ad('gone', 'g1')::jsonb #>> '{problem,sqlstate}', 'OX004', 'an inactive ad: NOT_FOUND');
select throws_ok($$ select api.click_ad('pts', null) $$, 'OX000', 'VALIDATION_FAILED', 'a click needs an Idempotency-Key');

select tests.clear_authentication();
select crypto.clock_set('2026-11-24 23:25:00+09');
select tests.authenticate_as(:'u');
select is(api.click_ad('slot', 'late')::jsonb #>> '{problem,sqlstate}', 'OX101',
    'after the cutoff there is no session to unlock a slot for');

select * from finish();
rollback;
