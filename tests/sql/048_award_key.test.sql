-- crypto.award_key / award_key_prefix / award_key_prediction / award_key_day: the one
-- shape of a settlement award's ledger key, written and read in one place.
begin;
select plan(12);

select is(crypto.award_key('2026-11-24', 42), 'settlement:2026-11-24:42', 'the key of prediction 42 of a day');
set local datestyle = 'SQL, DMY';
select is(
    crypto.award_key('2026-11-24', 42), 'settlement:2026-11-24:42', 'the day is ISO whatever the DateStyle'
);
select is(crypto.award_key_prefix('2026-11-24'), 'settlement:2026-11-24:', '... and so is the prefix of the day');
reset datestyle;
select ok(starts_with(crypto.award_key('2026-11-24', 7), crypto.award_key_prefix('2026-11-24')),
    'a key starts with its day''s prefix');
select ok(not starts_with(crypto.award_key('2026-11-24', 7), crypto.award_key_prefix('2026-11-02')),
    '... and not with another day''s (no day is a prefix of another)');
select is(crypto.award_key_prediction(crypto.award_key('2026-11-24', 9007199254740993)), 9007199254740993::bigint,
    'parsing a key gives back its prediction');
select is(crypto.award_key_prediction('redeem:abc:k1'), null, 'another kind of key names no prediction');
-- award_key_day: with the prediction, the key of a partitioned prediction.
select is(crypto.award_key_day(crypto.award_key('2024-02-29', 7)), '2024-02-29'::date, 'an award key names its day');
select is(crypto.award_key_day('settlement:2026-02-30:7'), null, 'a key of no real day names none (never an error)');
select is(crypto.award_key_day('redeem:abc:k1'), null, 'nor does another kind of key');
select is(crypto.award_key_prediction('settlement:2026-11-24:12x'), null, 'nor does a malformed one');

-- The settlement pays under this key, and the audit view reads it back.
select tests.load_calendar();
select tests.create_user('award@example.com') as uid \gset
select tests.open_session('2026-11-24');
insert into crypto.predictions (user_id, trading_day, symbol, choice, created_at)
values (:'uid', '2026-11-24', 'AAPL', 'UP', crypto.now())
returning id as pid \gset
select crypto.ledger_transfer(crypto.award_key('2026-11-24', :pid), crypto.system_account('issuance'),
    crypto.user_account(:'uid'), 100, 'settlement_award');
select is(
    (select prediction_id from audit.user_points_history where user_id = :'uid'), :pid::bigint,
    'the auditor''s history names the prediction an award paid'
);

select * from finish();
rollback;
