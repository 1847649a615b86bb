-- A day's metrics keep their history: points_outstanding (the players'
-- balances, a snapshot) follows the balances until the row is computed with
-- its day settled, then no recompute rewrites it (a correction, a cleared
-- stamp as 0027 left, an operator's). The board of a settled day is
-- refreshed through its own stamps (crypto.leaderboard_stamps), so a
-- backfill of the board recomputes no metrics, a few days a run.
begin;
select plan(22);

select tests.load_calendar();
select tests.open_session('2026-11-24');
select tests.create_user('winner@example.com') as winner \gset
select tests.create_user('loser@example.com') as loser \gset
select tests.create_user('idle@example.com') as idle \gset
select tests.authenticate_as(:'winner');
select api.submit_prediction('AAPL', 'UP');
select tests.authenticate_as(:'loser');
select api.submit_prediction('AAPL', 'DOWN');
select tests.clear_authentication();
select crypto.adjust_points('idle@example.com', 70, 'goodwill', 'h1');

create function pg_temp.outstanding() returns bigint
language sql as $$ select points_outstanding from crypto.daily_metrics where trading_day = '2026-11-24' $$;

select crypto.rollup_metrics();
select is(pg_temp.outstanding(), 70::bigint, 'the open day: the balances now');
select crypto.adjust_points('idle@example.com', 30, 'goodwill', 'h2');
select crypto.rollup_metrics();
select is(pg_temp.outstanding(), 100::bigint, '... and again at the next run, while the day is not settled');

-- AAPL up: the winner's 100. The first row computed with the day settled
-- takes the snapshot.
select crypto.clock_set('2026-11-24 22:00Z');
select crypto.close_session('2026-11-24');
select crypto.load_eod_price(d::date, s, c, 'test')
from (values ('2026-11-23', 'AAPL', 10), ('2026-11-24', 'AAPL', 11)) as v (d, s, c);
select crypto.settle_session('2026-11-24', true);
select is(crypto.rollup_metrics(), 1, 'the settled day is recomputed');
select is(pg_temp.outstanding(), 200::bigint, '... its snapshot: 100 adjusted and 100 won');
select is(
    (select l.points from crypto.leaderboard as l where l.user_id = :'winner' and l.period = 'week'), 100::bigint,
    'its board is refreshed ...'
);
select is(
    (select b.books_stamp from crypto.leaderboard_stamps as b where b.trading_day = '2026-11-24'),
    crypto.metrics_books_stamp('2026-11-24'), '... under its own stamp'
);

-- Later balances are not the day's.
select crypto.clock_set('2026-11-25 23:00Z');
select crypto.adjust_points('idle@example.com', 500, 'goodwill', 'h3');
select is(
    (select (crypto.compute_daily_metrics('2026-11-24')).points_outstanding), 200::bigint,
    'a recompute of the past day keeps its snapshot'
);

-- A correction turns AAPL down: the loser is paid, the winner's 100 taken back.
select crypto.correct_settlement('2026-11-24', '[{"trading_day": "2026-11-24", "symbol": "AAPL", "close": 9}]',
    'the vendor sent a wrong close');
select is(crypto.rollup_metrics(), 1, 'a correction recomputes the day ...');
select results_eq(
    $$ select wins, losses, points_outstanding from crypto.daily_metrics where trading_day = '2026-11-24' $$,
    $$ values (1, 1, 200::bigint) $$,
    '... its outcomes again, its snapshot kept'
);
select is(
    (select l.points from crypto.leaderboard as l where l.user_id = :'loser' and l.period = 'week'), 100::bigint,
    '... and its board from the corrected facts'
);

-- What 0027 did: every stamp cleared. The day is recomputed, its history kept.
update crypto.daily_metrics set books_stamp = null;
select is(crypto.rollup_metrics(), 1, 'a cleared stamp recomputes the day ...');
select is(pg_temp.outstanding(), 200::bigint, '... and leaves its snapshot');

-- A backfill of the board (its rows and stamps gone): the board's own
-- stamps bring it back, and no metrics are recomputed for it.
delete from crypto.leaderboard;
delete from crypto.leaderboard_days;
delete from crypto.user_streaks;
delete from crypto.leaderboard_stamps;
select is(crypto.rollup_metrics(), 0, 'a board backfill recomputes no metrics ...');
select results_eq(
    $$ select u.email, l.points from crypto.leaderboard as l join crypto.users as u on u.id = l.user_id
       where l.period = 'week' order by u.email $$,
    $$ values ('loser@example.com', 100::bigint), ('winner@example.com', 0) $$,
    '... and the board is back'
);

-- A backfill of many days: a week of them a run, the newest first.
insert into crypto.trading_calendar (trading_day, open_at, close_at, cutoff_at, early_close)
select d::date, d + interval '14 hours 30 minutes', d + interval '21 hours', d + interval '14 hours 25 minutes', false
from generate_series(timestamptz '2025-01-06 00:00Z', '2025-01-13 00:00Z', interval '1 day') as d;
insert into crypto.session_control (trading_day, phase, opened_at, closed_at, settling_at, settled_at)
select c.trading_day, 'SETTLED', c.open_at, c.close_at, c.close_at, c.close_at
from crypto.trading_calendar as c where c.trading_day between '2025-01-06' and '2025-01-13';
select crypto.rollup_metrics();
select results_eq(
    $$ select count(*)::integer, min(trading_day) from crypto.leaderboard_stamps where trading_day < '2026-01-01' $$,
    $$ values (7, '2025-01-07'::date) $$,
    'eight days to backfill: seven in the first run, the newest'
);
select crypto.rollup_metrics();
select is(
    (select count(*)::integer from crypto.leaderboard_stamps where trading_day < '2026-01-01'), 8,
    '... the last at the next'
);

-- What 0032 found on a database 0027 had cleared (crypto.metrics_restore_0027):
-- every stamp null, no snapshot kept yet. A row computed after its day's
-- settled_at is current only if it saw the settlement: settled_at is the
-- START of the settling transaction, and a rollup that ran while it was
-- being written counted the predictions unsettled (2025-01-07, made so
-- here). A row computed before the settlement (01-09) is stale; a day ever
-- corrected (2026-11-24) cannot be told from one computed mid-correction;
-- a row 0027 left stamped SETTLED (01-10) holds its snapshot.
update crypto.daily_metrics set books_stamp = null, outstanding_settled = false
where trading_day <> '2025-01-10';
update crypto.daily_metrics set outstanding_settled = false where trading_day = '2025-01-10';
update crypto.daily_metrics set predictions = 3, unsettled = 3, points_outstanding = 1
where trading_day = '2025-01-07';
update crypto.daily_metrics set computed_at = '2025-01-09 20:00Z', points_outstanding = 2
where trading_day = '2025-01-09';
select is(crypto.metrics_restore_0027(), 5, 'the restore gives back five stamps (01-06, 01-08, 01-11 to 01-13) ...');
select results_eq(
    $$ select m.trading_day, m.books_stamp is not distinct from crypto.metrics_books_stamp(m.trading_day),
           m.outstanding_settled
       from crypto.daily_metrics as m where m.trading_day in ('2025-01-07', '2025-01-08', '2025-01-09', '2025-01-10',
           '2026-11-24') order by m.trading_day $$,
    $$ values ('2025-01-07'::date, false, false), ('2025-01-08', true, true), ('2025-01-09', false, false),
           ('2025-01-10', true, true), ('2026-11-24', false, true) $$,
    '... not to the row computed mid-settlement, nor to a stale or a corrected day; '
    'a snapshot kept where the row saw its day settled, not the one computed mid-settlement'
);
select is(crypto.rollup_metrics(), 3, 'the rollup recomputes the three days without a stamp ...');
select results_eq(
    $$ select trading_day, predictions, points_outstanding from crypto.daily_metrics
       where trading_day in ('2025-01-07', '2025-01-09', '2026-11-24') order by trading_day $$,
    $$ values ('2025-01-07'::date, 0, 700::bigint), ('2025-01-09', 0, 700), ('2026-11-24', 2, 200) $$,
    '... the days never snapshot settled take the balances now; the corrected day keeps its snapshot'
);
select is(
    (select count(*)::integer from crypto.daily_metrics where outstanding_settled), 9,
    '... and every settled day holds its snapshot'
);

-- Who may NOT: the stamps are read by the auditor only; nobody writes them.
select is_empty(
    $$ select r.rolname from pg_roles as r
       where r.rolname in ('anon', 'app_user', 'app_admin', 'auth_service', 'oxp_service', 'oxp_operator', 'auditor')
           and (has_table_privilege(r.rolname, 'crypto.leaderboard_stamps', 'insert, update, delete, truncate')
               or (r.rolname <> 'auditor'
                   and has_table_privilege(r.rolname, 'crypto.leaderboard_stamps', 'select'))) $$,
    'only the auditor reads the board''s stamps, and no role writes them'
);

select * from finish();
rollback;
