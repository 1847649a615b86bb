-- GET /v1/users/stats: current and best win streak and accuracy by period,
-- read from the rollups crypto.leaderboard_refresh keeps (crypto.streak_rows
-- is the rule). A streak runs over the decided predictions in the order of
-- trading day, then symbol; a loss breaks it, a VOID neither extends nor
-- breaks it, an unsettled day does not count.
begin;
select plan(17);

select tests.load_calendar();
select tests.create_user('ann@example.com') as ann \gset
select tests.create_user('bob@example.com') as bob \gset
select tests.create_user('cat@example.com') as cat \gset
select tests.create_user('dan@example.com') as dan \gset

-- A day's predictions, made straight into the table (the rules of making
-- them are 030_submit_prediction's), then its closes and its settlement.
create function pg_temp.predict(p_user uuid, p_day date, p_picks text[]) returns void
language sql as $$
    insert into crypto.predictions (user_id, trading_day, symbol, choice, created_at)
    select p_user, p_day, split_part(x.pick, ':', 1), split_part(x.pick, ':', 2)::crypto.prediction_choice,
        crypto.now() + x.n * interval '1 second'
    from unnest(p_picks) with ordinality as x (pick, n)
$$;
create function pg_temp.settle(p_day date, p_closes text[]) returns void
language plpgsql as $$
begin
    perform crypto.clock_set((select c.close_at + interval '2 hours' from crypto.trading_calendar as c
        where c.trading_day = p_day));
    perform crypto.close_session(p_day);
    perform crypto.load_eod_price(split_part(x, ':', 1)::date, split_part(x, ':', 2), split_part(x, ':', 3)::numeric,
        'test')
    from unnest(p_closes) as x;
    perform crypto.settle_session(p_day, true);
end
$$;
create function pg_temp.stats(p_user uuid) returns jsonb
language plpgsql as $$
declare
    v jsonb;
begin
    perform tests.authenticate_as(p_user);
    v := api.user_stats()::jsonb;
    perform tests.clear_authentication();
    return jsonb_build_object('current', v -> 'current_streak', 'best', v -> 'best_streak', 'accuracy', v -> 'accuracy');
end
$$;

-- March: Ann loses (AAPL down).
select tests.open_session('2026-03-10');
select pg_temp.predict(:'ann', '2026-03-10', array['AAPL:UP']);
select pg_temp.settle('2026-03-10', array['2026-03-09:AAPL:100', '2026-03-10:AAPL:99']);

-- 24 Nov: AAPL up, MSFT down, NVDA up, TSLA flat (VOID).
select tests.open_session('2026-11-24');
select pg_temp.predict(:'ann', '2026-11-24', array['AAPL:UP', 'MSFT:UP', 'NVDA:UP']);
-- Bob makes his in the other order: the streak follows the symbols, not the clock.
select pg_temp.predict(:'bob', '2026-11-24', array['NVDA:UP', 'MSFT:DOWN', 'AAPL:DOWN']);
select pg_temp.predict(:'cat', '2026-11-24', array['TSLA:UP']);
select pg_temp.settle('2026-11-24', array[
    '2026-11-23:AAPL:100', '2026-11-24:AAPL:101', '2026-11-23:MSFT:100', '2026-11-24:MSFT:99',
    '2026-11-23:NVDA:100', '2026-11-24:NVDA:101', '2026-11-23:TSLA:100', '2026-11-24:TSLA:100'
]);
select crypto.rollup_metrics();  -- as pg_cron would

select is(pg_temp.stats(:'ann') - 'accuracy', '{"current": 1, "best": 1}',
    'WON, LOST, WON in symbol order: the loss broke the run; the March loss before it too');
select is(pg_temp.stats(:'bob') - 'accuracy', '{"current": 2, "best": 2}',
    'a tie on the day goes by symbol: AAPL lost, then MSFT and NVDA won (made in the other order)');
select is(pg_temp.stats(:'cat') - 'accuracy', '{"current": 0, "best": 0}', 'only a VOID: no streak');

-- 25 Nov: AAPL and NVDA up again, MSFT flat (VOID).
select tests.open_session('2026-11-25');
select pg_temp.predict(:'ann', '2026-11-25', array['AAPL:UP', 'MSFT:UP', 'NVDA:UP']);
select pg_temp.settle('2026-11-25', array['2026-11-25:AAPL:102', '2026-11-25:MSFT:99', '2026-11-25:NVDA:102']);
select crypto.rollup_metrics();
select is(pg_temp.stats(:'ann') - 'accuracy', '{"current": 3, "best": 3}',
    'a VOID between two wins neither breaks nor extends the run: NVDA, AAPL, NVDA');

-- 27 Nov: Ann predicts; the day closes but is not settled.
select tests.open_session('2026-11-27');
select pg_temp.predict(:'ann', '2026-11-27', array['AAPL:UP']);
select crypto.clock_set('2026-11-27 20:00Z');
select crypto.close_session('2026-11-27');
select crypto.rollup_metrics();
select is(pg_temp.stats(:'ann') - 'accuracy', '{"current": 3, "best": 3}', 'an unsettled day is not counted');
select tests.authenticate_as(:'ann');
select is(api.user_stats() ->> 'pending', '1', '... its prediction is pending');
select tests.clear_authentication();

-- It settles: AAPL down, Ann lost.
select pg_temp.settle('2026-11-27', array['2026-11-27:AAPL:101']);
select crypto.rollup_metrics();
select is(pg_temp.stats(:'ann') - 'accuracy', '{"current": 0, "best": 3}',
    'a loss breaks the current streak; the best stays');

-- 30 Nov (a Monday, a new week): AAPL up, Ann won.
select tests.open_session('2026-11-30');
select pg_temp.predict(:'ann', '2026-11-30', array['AAPL:UP']);
select pg_temp.settle('2026-11-30', array['2026-11-30:AAPL:102']);
select crypto.rollup_metrics();
select is(pg_temp.stats(:'ann') - 'accuracy', '{"current": 1, "best": 3}', 'a new run begins');

-- Accuracy on 30 Nov (New York): this week 1 of 1; November 5 of 7 (the
-- VOIDs left out); all time with the March loss 5 of 8.
select is(pg_temp.stats(:'ann') -> 'accuracy', '{"week": 1.0000, "month": 0.7143, "all": 0.6250}',
    'accuracy by period: wins / decided, 4 places');
select is((pg_temp.stats(:'ann') -> 'accuracy' ->> 'month')::text, '0.7143', '... rounded to 4 places');
select is(pg_temp.stats(:'bob') -> 'accuracy', '{"week": null, "month": 0.6667, "all": 0.6667}',
    'nothing decided this week: null, not 0');
select is(pg_temp.stats(:'cat') -> 'accuracy', '{"week": null, "month": null, "all": null}',
    'only VOIDs: nothing decided, null everywhere');
select is(pg_temp.stats(:'dan'), '{"current": 0, "best": 0, "accuracy": {"week": null, "month": null, "all": null}}',
    'a player who never predicted: zeros and nulls');

-- A correction: AAPL closed at 103 on 27 Nov, so Ann won that day, and lost
-- on 30 Nov (102 is down from 103). The rollup follows the corrected facts.
select crypto.correct_settlement('2026-11-27', '[{"trading_day": "2026-11-27", "symbol": "AAPL", "close": 103}]',
    'the vendor sent a wrong close');
select crypto.rollup_metrics();
select is(pg_temp.stats(:'ann') - 'accuracy', '{"current": 0, "best": 4}',
    'after a correction the streaks are recomputed: NVDA, AAPL, NVDA, AAPL won, then a loss');
select is(crypto.leaderboard_refresh('2026-11-30'), 3, 'a second refresh of a day ...');
select is(pg_temp.stats(:'ann') - 'accuracy', '{"current": 0, "best": 4}', '... changes nothing');

-- Who may not read the rollups: players see only their own stats.
set local role app_user;
select throws_ok('select * from crypto.user_streaks', '42501', null, 'players cannot read the streaks table');

select * from finish();
rollback;
