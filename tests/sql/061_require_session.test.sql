-- crypto.require_session: the one NO_SESSION refusal, used by settling,
-- correcting, results, phase moves and the player's "today".
begin;
select plan(11);

select tests.load_calendar();
select crypto.clock_set('2026-11-20 12:00+09');

select throws_ok($$ select crypto.require_session(null) $$, 'OX105',
    'NO_SESSION', 'no session has opened yet: NO_SESSION');
select throws_like($$ select crypto.require_session(null) $$,
    'NO_SESSION', 'a null day is a refusal too');
-- The detail names the next session when the calendar knows one.
select matches(tests.error_detail('select crypto.require_session(null)'),
    '^No session has opened yet; the session for 2026-11-23 opens at 2026-[0-9-]+T06:00:00\+09:00$',
    '... saying when the next one opens');
select is(tests.error_detail($$ select crypto.require_session('2026-11-24') $$),
    'No session for 2026-11-24', 'a day without a session is named');

select tests.open_session('2026-11-24');
select is((crypto.require_session('2026-11-24')).phase, 'OPEN'::crypto.session_phase, 'a day''s session is returned');

-- Every rule that needs a session refuses with it, the same code and words.
select throws_ok($$ select crypto.settle_session('2026-11-25') $$, 'OX105', 'NO_SESSION', 'settle_session');
select throws_ok($$ select crypto.close_session('2026-11-25') $$, 'OX105', 'NO_SESSION', 'a phase move');
select throws_ok($$ select crypto.correct_settlement('2026-11-25',
    '[{"trading_day": "2026-11-25", "symbol": "AAPL", "close": 1}]', 'a typo') $$, 'OX105', 'NO_SESSION',
    'correct_settlement');
select is(tests.error_detail($$ select api.settlements('2026-11-25') $$), 'No session for 2026-11-25', 'api.settlements');

delete from crypto.session_control;
select throws_ok($$ select api.session_today() $$, 'OX105', 'NO_SESSION', 'api.session_today before any session');
select throws_ok($$ select api.universe_today() $$, 'OX105', 'NO_SESSION', 'api.universe_today before any session');

select * from finish();
rollback;
