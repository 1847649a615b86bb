-- crypto.lock_daily_limits: a player's row of a session's limits, created
-- once and locked, the lock predictions and ad rewards serialise on.
begin;
select plan(6);

select tests.load_calendar();
select tests.create_user('limits@example.com') as uid \gset

select is(
    (crypto.lock_daily_limits(:'uid', '2026-11-24')).predictions_made, 0, 'a first call creates the row with nothing used'
);
update crypto.user_daily_limits set predictions_made = 2, slot_unlocks = 1
where user_id = :'uid' and trading_day = '2026-11-24';
select is(
    crypto.lock_daily_limits(:'uid', '2026-11-24'),
    (select l from crypto.user_daily_limits as l where l.user_id = :'uid' and l.trading_day = '2026-11-24'),
    'a later call returns the row as it is, changing nothing'
);
select is(
    (select count(*)::int from crypto.user_daily_limits where user_id = :'uid'), 1, '... still one row for the day'
);
select is(
    (crypto.lock_daily_limits(:'uid', '2026-11-25')).predictions_made, 0, 'another day has a row of its own'
);
select ctid::text as before from crypto.user_daily_limits where user_id = :'uid' and trading_day = '2026-11-24' \gset
select crypto.lock_daily_limits(:'uid', '2026-11-24');
select isnt(
    (select ctid::text from crypto.user_daily_limits where user_id = :'uid' and trading_day = '2026-11-24'), :'before',
    'an existing row is written again (ON CONFLICT DO UPDATE): its row lock is held to the end of the transaction'
);

-- Players do not call it: it is an internal step of the definer functions.
select tests.authenticate_as(:'uid');
select throws_ok(
    format('select crypto.lock_daily_limits(%L, %L)', :'uid', '2026-11-24'), '42501', null,
    'a player cannot call it'
);

select * from finish();
rollback;
