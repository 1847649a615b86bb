-- The caller's dashboard. The streaks and the accuracy by period come from
-- the rollups crypto.leaderboard_refresh keeps (crypto.user_streaks and
-- crypto.leaderboard), not from a scan per request: a streak is a run of
-- consecutive wins among the decided predictions (WON or LOST) in the order
-- of trading day, then symbol; a loss ends it, a VOID neither extends nor
-- breaks it, an unsettled day does not count (crypto.streak_rows).
-- accuracy = wins / decided in the week, month and all time that hold
-- today (New York date, as the board), null when nothing is decided; no
-- minimum here: the minimum is for ranking players against each other.
create or replace function api.user_stats() returns json
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
declare
    v_uid uuid := crypto.require_user();
    v_today date := (crypto.now() at time zone 'America/New_York')::date;
begin
    return (
        with mine as (
            select p.id, p.trading_day, crypto.prediction_outcome(p.choice, s.outcome) as outcome,
                crypto.prediction_award(p.id, p.trading_day) as points
            from crypto.predictions as p
            left join crypto.current_settlements as s on s.trading_day = p.trading_day and s.symbol = p.symbol
            where p.user_id = v_uid
        ),

        decided as (
            select m.outcome
            from mine as m where m.outcome in ('WON', 'LOST')
        ),

        days as (
            select
                m.trading_day,
                count(*) as predictions,
                count(*) filter (where m.outcome = 'WON') as won,
                count(*) filter (where m.outcome = 'LOST') as lost,
                count(*) filter (where m.outcome = 'VOID') as void,
                sum(m.points) as points
            from mine as m
            join crypto.session_control as c on c.trading_day = m.trading_day and c.phase = 'SETTLED'
            group by m.trading_day
            order by m.trading_day desc
            limit 5
        )

        select json_build_object(
            'balance', (select a.balance from crypto.ledger_accounts as a where a.user_id = v_uid),
            'predictions', (select count(*) from mine),
            'won', (select count(*) from mine as m where m.outcome = 'WON'),
            'lost', (select count(*) from mine as m where m.outcome = 'LOST'),
            'void', (select count(*) from mine as m where m.outcome = 'VOID'),
            'pending', (select count(*) from mine as m where m.outcome = 'PENDING'),
            'win_rate', (
                select round(count(*) filter (where d.outcome = 'WON')::numeric / nullif(count(*), 0), 4)
                from decided as d
            ),
            'current_streak', coalesce((
                select k.current_streak from crypto.user_streaks as k where k.user_id = v_uid
            ), 0),
            'best_streak', coalesce((
                select k.best_streak from crypto.user_streaks as k where k.user_id = v_uid
            ), 0),
            'accuracy', (
                select json_object_agg(p.period, (
                    select round(l.wins::numeric / nullif(l.wins + l.losses, 0), 4)
                    from crypto.leaderboard as l
                    where
                        l.period = p.period and l.period_start = crypto.leaderboard_start(p.period, v_today)
                        and l.user_id = v_uid
                ) order by p.n)
                from unnest(array['week', 'month', 'all']) with ordinality as p (period, n)
            ),
            'recent_settlements', coalesce((
                select json_agg(json_build_object(
                    'trading_day', d.trading_day, 'predictions', d.predictions, 'won', d.won,
                    'lost', d.lost, 'void', d.void, 'points', d.points
                ) order by d.trading_day desc)
                from days as d
            ), '[]')
        )
    );
end
$$;

grant execute on function api.user_stats() to app_user, app_admin;
