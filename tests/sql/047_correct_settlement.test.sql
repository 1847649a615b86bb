-- Corrections of settled days (crypto.correct_settlement): closes kept
-- beside the ones they replace, outcomes recomputed in every settled
-- session that read a corrected close, compensating transfers keyed,
-- idempotent and audited, and a reversal never below a zero balance.
begin;
select plan(33);

select tests.load_calendar();
select tests.open_session('2026-11-24');
select crypto.set_universe('2026-11-24', array['AAPL', 'MSFT', 'NVDA']);
select tests.create_user('alice@example.com') as alice \gset
select tests.create_user('bob@example.com') as bob \gset
select tests.create_user('carol@example.com') as carol \gset
select tests.create_user('dave@example.com') as dave \gset
select tests.create_user('eve@example.com') as eve \gset
select tests.create_user('admin@example.com') as admin \gset
update crypto.users set role = 'admin', totp_secret = 'JBSWY3DPEHPK3PXP' where id = :'admin';

select tests.authenticate_as(:'alice');
select api.submit_prediction('AAPL', 'UP'), api.submit_prediction('MSFT', 'UP');
select tests.authenticate_as(:'bob');
select api.submit_prediction('AAPL', 'DOWN');
select tests.authenticate_as(:'carol');
select api.submit_prediction('NVDA', 'UP');
select tests.authenticate_as(:'eve');
select api.submit_prediction('AAPL', 'UP');
select tests.clear_authentication();

select crypto.clock_set('2026-11-24 22:00Z');
select crypto.close_session('2026-11-24');
select crypto.load_eod_prices('[
    {"trading_day": "2026-11-23", "symbol": "AAPL", "close": 100},
    {"trading_day": "2026-11-23", "symbol": "MSFT", "close": 100},
    {"trading_day": "2026-11-23", "symbol": "NVDA", "close": 100},
    {"trading_day": "2026-11-24", "symbol": "AAPL", "close": 101},
    {"trading_day": "2026-11-24", "symbol": "MSFT", "close": 99}]', 'test');
select crypto.settle_session('2026-11-24', true);

-- The next day compared AAPL with 24 November's close.
select tests.open_session('2026-11-25');
select tests.authenticate_as(:'dave');
select api.submit_prediction('AAPL', 'UP');
select tests.authenticate_as(:'eve');
select api.submit_prediction('AAPL', 'UP');
select tests.clear_authentication();
select crypto.clock_set('2026-11-25 22:00Z');
select crypto.close_session('2026-11-25');
select crypto.load_eod_price('2026-11-25', 'AAPL', 100.5, 'test');
select crypto.settle_session('2026-11-25', true);

-- Alice spends 60 of her 100 points before anyone notices the mistake, eve
-- all of hers (she picked UP on both days: one close decides both).
select crypto.adjust_points('alice@example.com', -60, 'spent in the shop', 'spend-1');
select crypto.adjust_points('eve@example.com', -100, 'spent in the shop', 'spend-2');

select throws_ok(
    $$ select crypto.correct_settlement('2026-11-24', '[{"trading_day": "2026-11-24", "symbol": "AAPL", "close": 99}]', '') $$,
    'OX000', 'VALIDATION_FAILED', 'a correction needs a reason'
);
select throws_ok(
    $$ select crypto.correct_settlement('2026-11-24', '[
        {"line": 2, "trading_day": "2026-11-25", "symbol": "AAPL", "close": 99},
        {"line": 3, "trading_day": "2026-11-24", "symbol": "TSLA", "close": 99}]', 'wrong file') $$,
    'OX000', 'VALIDATION_FAILED', 'closes the session did not read are refused, each named'
);
select crypto.open_session('2026-11-27') is not null;
select throws_ok(
    $$ select crypto.correct_settlement('2026-11-27', '[{"trading_day": "2026-11-27", "symbol": "AAPL", "close": 99}]', 'early') $$,
    'OX111', 'NOT_SETTLED', 'an unsettled day is not corrected (its closes load normally)'
);

-- The operator typed 101 for AAPL's 99, and NVDA's close was missing.
select crypto.correct_settlement('2026-11-24', '[
    {"trading_day": "2026-11-24", "symbol": "AAPL", "close": 99},
    {"trading_day": "2026-11-24", "symbol": "NVDA", "close": 105},
    {"trading_day": "2026-11-24", "symbol": "MSFT", "close": 99}]', 'AAPL close mistyped; NVDA close arrived late')
    as fix \gset
select is((:'fix'::jsonb ->> 'closes_changed')::int, 2, 'two closes changed (MSFT was already right)');
select is(
    :'fix'::jsonb -> 'symbols',
    '[{"trading_day": "2026-11-24", "symbol": "AAPL", "from": "UP", "to": "DOWN"},
      {"trading_day": "2026-11-24", "symbol": "NVDA", "from": "VOID", "to": "UP"},
      {"trading_day": "2026-11-25", "symbol": "AAPL", "from": "DOWN", "to": "UP"},
      {"trading_day": "2026-11-25", "symbol": "NVDA", "from": "VOID", "to": "VOID"}]'::jsonb,
    'every settled session that read a corrected close is recomputed, the next day included'
);
select results_eq(
    $$ select u.email::text, a.balance from crypto.ledger_accounts as a join crypto.users as u on u.id = a.user_id
       where u.email <> 'admin@example.com' order by u.email $$,
    $$ values ('alice@example.com', 0::bigint), ('bob@example.com', 100::bigint), ('carol@example.com', 100::bigint),
       ('dave@example.com', 100::bigint), ('eve@example.com', 0::bigint) $$,
    'new winners are paid; the wrong award is taken back as far as the balance allows'
);
select is(
    (select sum(written_off)::int from crypto.correction_transfers as k
     join crypto.predictions as p on p.id = k.prediction_id where p.user_id = :'eve'),
    0, 'eve''s payment for the 25th lands before the reversal of the 24th takes it: nothing written off'
);
select is((:'fix'::jsonb ->> 'written_off')::int, 60, 'what alice had spent is written off, never owed');
select is(
    (:'fix'::jsonb -> 'paid'), '{"points": 400, "predictions": 4}'::jsonb, 'four predictions paid 100 each'
);
select is(
    (:'fix'::jsonb -> 'reversed'), '{"points": 140, "predictions": 2}'::jsonb,
    'two awards reversed: all of eve''s, 40 points of alice''s'
);
select is(
    (select outcome::text from crypto.settlements where trading_day = '2026-11-24' and symbol = 'AAPL'), 'UP',
    'the original settlement row is untouched'
);
select is(
    (select outcome::text from crypto.current_settlements where trading_day = '2026-11-24' and symbol = 'AAPL'),
    'DOWN', 'players see the corrected one'
);
select results_eq(
    $$ select old_close, new_close from crypto.eod_price_corrections order by symbol $$,
    $$ values (101.000000::numeric, 99.000000::numeric), (null, 105.000000) $$,
    'the replaced closes are kept beside the new ones'
);
select is(
    (select close from crypto.eod_prices where trading_day = '2026-11-24' and symbol = 'AAPL'), 99.000000,
    'the corrected close is the close from now on'
);
select is_empty($$ select * from crypto.integrity_violations() $$, 'the books balance after the correction');
select is(
    (select count(*)::int from crypto.audit_logs where action = 'settlement.corrected' and subject = '2026-11-24'),
    1, 'the correction is audited with its reason'
);

select results_eq(
    $$ select awards::int, points_awarded::int, points_paid_by_corrections::int, points_reversed_by_corrections::int,
           points_written_off::int, won::int
       from audit.daily_settlements where trading_day = '2026-11-24' $$,
    $$ values (2, 200, 200, 140, 60, 2) $$,
    'the auditor''s daily view shows what corrections paid, took back and wrote off'
);

-- Retried: every close is already the one on record and the one settled.
select is(
    crypto.correct_settlement('2026-11-24', '[
        {"trading_day": "2026-11-24", "symbol": "AAPL", "close": 99},
        {"trading_day": "2026-11-24", "symbol": "NVDA", "close": "105.000000"}]', 'again') ->> 'correction_id',
    null, 'running the same correction again changes nothing'
);
select is(
    (select sum(balance)::int from crypto.ledger_accounts where kind = 'user'), 300,
    'and pays nothing twice (bob, carol, dave)'
);

-- What the players see.
select tests.authenticate_as(:'alice');
select is(
    (select i ->> 'outcome' from json_array_elements(api.my_predictions('2026-11-24') -> 'items') as i
     where i ->> 'symbol' = 'AAPL'),
    'LOST', 'alice sees her AAPL prediction lost'
);
select is(
    (select jsonb_build_object('points', i -> 'points', 'kept', i -> 'kept_after_correction')
     from json_array_elements(api.my_predictions('2026-11-24') -> 'items') as i
     where i ->> 'symbol' = 'AAPL'),
    '{"points": 0, "kept": 60}', 'earning nothing, and keeping the 60 points that were written off'
);
select is(
    (api.settlements('2026-11-24') -> 'corrections' -> 0 ->> 'reason'),
    'AAPL close mistyped; NVDA close arrived late', 'the settlement page shows the correction and its reason'
);
select is(
    (select s -> 'original' ->> 'outcome' from json_array_elements(api.settlements('2026-11-24') -> 'symbols') as s
     where s ->> 'symbol' = 'AAPL'),
    'UP', 'and what the symbol was settled as before'
);
select throws_ok(
    $$ select crypto.correct_settlement('2026-11-24', '[{"trading_day": "2026-11-24", "symbol": "AAPL", "close": 101}]', 'x y z') $$,
    '42501', null, 'a player cannot correct a settlement'
);
select throws_ok(
    $$ select api.admin_correct_settlement('2026-11-24', '[{"trading_day": "2026-11-24", "symbol": "AAPL", "close": 101}]', 'x y z') $$,
    '42501', null, 'nor call the admin route''s function'
);
select tests.clear_authentication();

-- The first close was right after all: an admin puts it back, after the
-- settings changed. The day is recomputed on the terms it was settled on.
update crypto.settings set value = '500' where key = 'points.per_win';
update crypto.settings set value = '0.5' where key = 'settlement.threshold';
-- As the shim does it: the admin login, then the role and claims. The
-- audit believes claims only from the API's logins (crypto.current_actor).
set local session authorization admin_authenticator;
select tests.authenticate_as(:'admin', 'app_admin');
select is(
    (api.admin_correct_settlement('2026-11-24', '[{"trading_day": "2026-11-24", "symbol": "AAPL", "close": 101}]',
        'exchange confirmed 101') -> 'symbols'),
    '[{"trading_day": "2026-11-24", "symbol": "AAPL", "from": "DOWN", "to": "UP"},
      {"trading_day": "2026-11-25", "symbol": "AAPL", "from": "UP", "to": "DOWN"}]'::jsonb,
    'an admin corrects through the API function'
);
select tests.clear_authentication();
reset session authorization;
select results_eq(
    $$ select u.email::text, a.balance from crypto.ledger_accounts as a join crypto.users as u on u.id = a.user_id
       where u.email <> 'admin@example.com' order by u.email $$,
    $$ values ('alice@example.com', 40::bigint), ('bob@example.com', 0::bigint), ('carol@example.com', 100::bigint),
       ('dave@example.com', 0::bigint), ('eve@example.com', 0::bigint) $$,
    'a win restored pays only what the prediction no longer holds (100 - 60 kept)'
);
select is(
    (select actor from crypto.settlement_corrections order by id desc limit 1), 'user:' || :'admin',
    'under the admin''s own id'
);
select is_empty($$ select * from crypto.integrity_violations() $$, 'the books balance after both corrections');

select throws_ok(
    $$ update crypto.settlement_revisions set outcome = 'UP' $$, 'OX003', 'FORBIDDEN',
    'revisions are append-only, even for the owner'
);
select throws_ok(
    $$ delete from crypto.eod_price_corrections $$, 'OX003', 'FORBIDDEN',
    'and so are the replaced closes'
);

-- What integrity finds when the correction record and the ledger disagree.
select crypto.ledger_transfer('correction:999:1', crypto.system_account('issuance'), crypto.user_account(:'bob'),
    5, 'settlement_correction');
select ok(
    exists (select from crypto.integrity_violations() where check_name = 'unexplained_transfer'),
    'a correction transfer with no correction behind it is unexplained'
);
insert into crypto.correction_transfers (
    correction_id, prediction_id, trading_day, target, amount, transfer_id, written_off
)
select max(c.id), p.id, p.trading_day, 0, 0, null, 0
from crypto.settlement_corrections as c
cross join (select q.id, q.trading_day from crypto.predictions as q where q.user_id = :'carol') as p
group by p.id, p.trading_day;
select ok(
    exists (select from crypto.integrity_violations() where check_name = 'corrected_prediction_points'),
    'a prediction holding other than its correction says is found'
);

select * from finish();
rollback;
