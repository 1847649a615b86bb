-- Business metrics (seed 5.1): per trading day D, one row of
-- crypto.daily_metrics. Its window for what is not tied to D itself
-- (sign-ins, ads, adjustments, redemptions) is the KST date D: the day
-- players predict for D, from the morning to the cutoff at night.

-- The shim's rate limiter calls this for every signed-in request: the
-- first of a user's KST day inserts, every later one finds the row.
create or replace function crypto.note_activity(p_user uuid) returns void
language plpgsql volatile
set search_path = crypto, pg_temp
as $$
begin
    insert into crypto.daily_activity (kst_day, user_id)
    values ((crypto.now() at time zone 'Asia/Seoul')::date, p_user)
    on conflict do nothing;
end
$$;

-- What a day's row was computed from: its phase, its settlement and the
-- last correction that re-settled it. The rollup recomputes a row whose
-- stamp moved; read in the same statement as the counts, it is what they saw.
create or replace function crypto.metrics_books_stamp(p_day date) returns text
language sql stable
set search_path = crypto, pg_temp
as $$
    select s.phase || '|' || coalesce(s.settled_at::text, '') || '|' || coalesce((
        select max(r.correction_id) from crypto.settlement_revisions as r where r.trading_day = p_day
    )::text, '')
    from crypto.session_control as s where s.trading_day = p_day
$$;

-- Recompute D's row from the books: exact, and the same whenever it runs
-- (but points_outstanding, the players' balances at computation time: a
-- snapshot, taken until the row is first computed with D settled, then
-- kept. A recompute of a past day, after a correction or an operator's,
-- must not write today's balances into its history).
-- Rates are not stored: they are ratios of these counts (metrics_json).
-- What is not tied to D itself counts from the KST date D up to the next
-- trading day, so weekends and holidays land in the day before them.
create or replace function crypto.compute_daily_metrics(p_day date) returns crypto.daily_metrics
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_from timestamptz := p_day::timestamp at time zone 'Asia/Seoul';
    v_next date := coalesce(
        (select min(c.trading_day) from crypto.trading_calendar as c where c.trading_day > p_day), p_day + 1
    );
    v_to timestamptz := v_next::timestamp at time zone 'Asia/Seoul';
    v_row crypto.daily_metrics;
begin
    perform crypto.require_trading_day(p_day);
    with outcomes as (
        select
            p.user_id,
            case
                when s.outcome is null then 'unsettled'
                when s.outcome = 'VOID' then 'void'
                when crypto.prediction_won(p.choice, s.outcome) then 'win'
                else 'loss'
            end as result
        from crypto.predictions as p
        left join crypto.current_settlements as s on s.trading_day = p.trading_day and s.symbol = p.symbol
        where p.trading_day = p_day
    ),
    tally as (
        select
            count(distinct o.user_id)::integer as participants,
            count(*)::integer as predictions,
            count(*) filter (where o.result = 'win')::integer as wins,
            count(*) filter (where o.result = 'loss')::integer as losses,
            count(*) filter (where o.result = 'void')::integer as voids,
            count(*) filter (where o.result = 'unsettled')::integer as unsettled
        from outcomes as o
    ),
    -- Awards by their keys (one index probe per prediction), then what
    -- corrections paid and took back for D's predictions (a correction of
    -- one day re-settles the days around it too).
    awards as (
        select coalesce(sum(t.amount), 0)::bigint as points
        from crypto.predictions as p
        join crypto.ledger_transfer_keys as k on k.idempotency_key = crypto.award_key(p_day, p.id)
        join crypto.ledger_transfers as t on t.id = k.transfer_id and t.created_at = k.created_at
        where p.trading_day = p_day and t.refusal is null
    ),
    corrected as (
        select coalesce(sum(x.amount), 0)::bigint as points
        from crypto.correction_transfers as x
        where x.trading_day = p_day
    ),
    moved as (
        select
            coalesce(sum(t.amount) filter (where t.reason = 'ad_reward'), 0)::bigint as ads,
            coalesce(sum(case when ua.id is null then -t.amount else t.amount end)
                filter (where t.reason = 'adjustment'), 0)::bigint as adjustments,
            coalesce(sum(t.amount) filter (where t.reason = 'redemption'), 0)::bigint as redeemed,
            coalesce(sum(t.amount) filter (where t.reason = 'refund'), 0)::bigint as refunded
        from crypto.ledger_transfers as t
        left join crypto.ledger_accounts as ua on ua.id = t.credit_account_id and ua.kind = 'user'
        where t.reason <> 'settlement_award' and t.refusal is null
            and t.created_at >= v_from and t.created_at < v_to
    ),
    active as (
        select count(*)::integer as users
        from (
            select a.user_id from crypto.daily_activity as a where a.kst_day >= p_day and a.kst_day < v_next
            union
            select p.user_id from crypto.predictions as p where p.trading_day = p_day
        ) as u
    )
    insert into crypto.daily_metrics as m (
        trading_day, computed_at, active_users, participants, predictions, wins, losses, voids, unsettled,
        points_settlement, points_ads, points_adjustments, points_redeemed, points_refunded,
        points_outstanding, redemptions, ad_clicks, ad_rewards, books_stamp, outstanding_settled
    )
    select
        p_day, crypto.now(), active.users, tally.participants, tally.predictions,
        tally.wins, tally.losses, tally.voids, tally.unsettled,
        awards.points + corrected.points, moved.ads, moved.adjustments, moved.redeemed, moved.refunded,
        (select coalesce(sum(a.balance), 0) from crypto.ledger_accounts as a where a.kind = 'user'),
        (select coalesce(jsonb_object_agg(r.status, r.n), '{}') from (
            select r.status::text as status, count(*) as n from crypto.rewards_redemptions as r
            where r.created_at >= v_from and r.created_at < v_to group by r.status
        ) as r),
        (select coalesce(jsonb_object_agg(i.kind, i.n), '{}') from (
            select a.reward_kind::text as kind, count(*) as n
            from crypto.ad_impressions as i join crypto.ads as a on a.id = i.ad_id
            where i.trading_day = p_day group by a.reward_kind
        ) as i),
        (select coalesce(jsonb_object_agg(u.kind, u.n), '{}') from (
            select u.reward_kind::text as kind, count(*) as n from crypto.ad_unlocks as u
            where u.trading_day = p_day group by u.reward_kind
        ) as u),
        crypto.metrics_books_stamp(p_day),
        -- Read in the same statement as the balances: settled in what they saw.
        coalesce((select s.phase = 'SETTLED' from crypto.session_control as s where s.trading_day = p_day), false)
    from tally, awards, corrected, moved, active
    on conflict (trading_day) do update set
        computed_at = excluded.computed_at, active_users = excluded.active_users,
        participants = excluded.participants, predictions = excluded.predictions,
        wins = excluded.wins, losses = excluded.losses, voids = excluded.voids,
        unsettled = excluded.unsettled, points_settlement = excluded.points_settlement,
        points_ads = excluded.points_ads, points_adjustments = excluded.points_adjustments,
        points_redeemed = excluded.points_redeemed, points_refunded = excluded.points_refunded,
        points_outstanding = case
            when m.outstanding_settled then m.points_outstanding else excluded.points_outstanding
        end,
        outstanding_settled = m.outstanding_settled or excluded.outstanding_settled,
        redemptions = excluded.redemptions,
        ad_clicks = excluded.ad_clicks, ad_rewards = excluded.ad_rewards, books_stamp = excluded.books_stamp
    returning m.* into v_row;
    return v_row;
end
$$;

grant execute on function crypto.compute_daily_metrics(date) to oxp_operator;

-- pg_cron's job: the session taking predictions (its running figures), and
-- every day whose books moved since its row was computed (it closed, was
-- settled or corrected: crypto.metrics_books_stamp), or that has no row yet.
-- The stamp, not a time: a row computed beside a settlement not yet
-- committed still differs from the settled stamp and is computed again.
-- Then the board (crypto.leaderboard_refresh) of each settled day whose own
-- stamp (crypto.leaderboard_stamps) is missing or moved: newest first, so a
-- day just settled never waits behind a backfill, and at most
-- board_days_per_run a run, so a backfill of the whole history (a new board
-- column, a lost table) is spread over runs, never one long transaction.
-- Returns the metrics rows computed.
create or replace function crypto.rollup_metrics() returns integer
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    -- A day of 100,000 players refreshes in seconds: a week of days a run.
    board_days_per_run constant integer := 7;
    v_day date;
    v_stamp text;
    v_count integer := 0;
begin
    for v_day in
        select s.trading_day
        from crypto.session_control as s
        left join crypto.daily_metrics as m on m.trading_day = s.trading_day
        where s.phase = 'OPEN'
            or m.trading_day is null
            or m.books_stamp is distinct from crypto.metrics_books_stamp(s.trading_day)
        order by s.trading_day
    loop
        perform crypto.compute_daily_metrics(v_day);
        -- A settled day's payout is checked whenever its books change.
        perform crypto.check_settlement_payout(v_day);
        v_count := v_count + 1;
    end loop;
    -- The stamp is read before the refresh: books that move in between
    -- leave the older stamp, and the next run refreshes the day again.
    for v_day, v_stamp in
        select s.trading_day, crypto.metrics_books_stamp(s.trading_day)
        from crypto.session_control as s
        left join crypto.leaderboard_stamps as b on b.trading_day = s.trading_day
        where s.phase = 'SETTLED' and b.books_stamp is distinct from crypto.metrics_books_stamp(s.trading_day)
        order by s.trading_day desc
        limit board_days_per_run
    loop
        perform crypto.leaderboard_refresh(v_day);
        insert into crypto.leaderboard_stamps as b (trading_day, books_stamp, refreshed_at)
        values (v_day, v_stamp, crypto.now())
        on conflict (trading_day) do update
            set books_stamp = excluded.books_stamp, refreshed_at = excluded.refreshed_at;
    end loop;
    return v_count;
end
$$;

grant execute on function crypto.rollup_metrics() to oxp_service;

-- One day's row for people: the counts and the rates they make (null when
-- there is nothing to divide by), as GET /v1/metrics and oxp metrics show it.
create or replace function crypto.metrics_json(p_row crypto.daily_metrics) returns jsonb
language sql stable
set search_path = crypto, pg_temp
as $$
    select jsonb_build_object(
        'trading_day', p_row.trading_day,
        'computed_at', crypto.kst(p_row.computed_at),
        'active_users', p_row.active_users,
        'participants', p_row.participants,
        'participation_rate', round(p_row.participants::numeric / nullif(p_row.active_users, 0), 4),
        'predictions', p_row.predictions,
        'wins', p_row.wins, 'losses', p_row.losses, 'voids', p_row.voids, 'unsettled', p_row.unsettled,
        'win_rate', round(p_row.wins::numeric / nullif(p_row.wins + p_row.losses, 0), 4),
        'loss_rate', round(p_row.losses::numeric / nullif(p_row.wins + p_row.losses, 0), 4),
        'void_rate', round(p_row.voids::numeric / nullif(p_row.predictions - p_row.unsettled, 0), 4),
        'points_issued', jsonb_build_object(
            'settlement', p_row.points_settlement, 'ads', p_row.points_ads,
            'adjustments', p_row.points_adjustments
        ),
        'points_spent', jsonb_build_object('redemptions', p_row.points_redeemed, 'refunds', p_row.points_refunded),
        'points_outstanding', p_row.points_outstanding,
        'redemptions', p_row.redemptions,
        'ad_clicks', p_row.ad_clicks,
        'ad_rewards', p_row.ad_rewards
    )
$$;

-- The rows of a range of trading days, oldest first (at most 366).
create or replace function crypto.daily_metrics_range(p_from date, p_to date) returns jsonb
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
begin
    if p_from is null or p_to is null or p_from > p_to or p_to - p_from > 366 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'from and to must be dates, from <= to, at most 366 days apart';
    end if;
    return jsonb_build_object('items', coalesce((
        select jsonb_agg(crypto.metrics_json(m) order by m.trading_day)
        from crypto.daily_metrics as m
        where m.trading_day between p_from and p_to
    ), '[]'));
end
$$;

grant execute on function crypto.daily_metrics_range(date, date) to oxp_operator, auditor;

-- What Prometheus scrapes from the database (GET /metrics): the queue,
-- the schedule, open alerts and today's game, in one small read. Every
-- figure is a gauge; the shim only renames them.
create or replace function api.prometheus_gauges() returns jsonb
language sql stable security definer
set search_path = crypto, pg_temp
as $$
    select jsonb_build_object(
        'queue', (select coalesce(jsonb_agg(jsonb_build_object(
                'kind', q.kind, 'status', q.status, 'jobs', q.n,
                'oldest_seconds', extract(epoch from crypto.now() - q.oldest))), '[]')
            from (
                select j.kind, j.status::text as status, count(*) as n,
                    min(case when j.status = 'queued' then least(j.run_after, crypto.now()) else j.created_at end) as oldest
                from crypto.jobs as j
                where j.status in ('queued', 'running', 'dead')
                group by j.kind, j.status
            ) as q),
        'last_success', (select coalesce(jsonb_object_agg(r.job,
                extract(epoch from crypto.now() - r.finished_at)), '{}')
            from (
                select r.job, max(r.finished_at) as finished_at
                from crypto.job_runs as r where r.status = 'succeeded' group by r.job
            ) as r),
        'alerts', (select coalesce(jsonb_agg(jsonb_build_object(
                'rule', a.rule, 'severity', a.severity, 'open', a.n)), '[]')
            from (
                select a.rule, a.severity::text as severity, count(*) as n
                from crypto.alerts as a where a.resolved_at is null group by a.rule, a.severity
            ) as a),
        'worker_heartbeat_seconds', (select extract(epoch from crypto.now() - max(h.seen_at))
            from crypto.worker_heartbeats as h),
        'today', (select jsonb_build_object(
                'trading_day', m.trading_day, 'active_users', m.active_users, 'participants', m.participants,
                'predictions', m.predictions, 'points_outstanding', m.points_outstanding,
                'age_seconds', extract(epoch from crypto.now() - m.computed_at))
            from crypto.daily_metrics as m order by m.trading_day desc limit 1)
    )
$$;

grant execute on function api.prometheus_gauges() to auth_service;
