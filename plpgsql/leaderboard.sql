-- The leaderboard (issue 13, item 3): points won in settled sessions per
-- player and period, with accuracy = wins / decided (VOIDs are not decided).
-- Kept in crypto.leaderboard, refreshed from the settled facts for the
-- players of a day when it settles or a correction revises it; the route
-- reads a page of that table in its rank order.

-- The first day of the period that holds p_day.
create or replace function crypto.leaderboard_start(p_period text, p_day date) returns date
language sql immutable
set search_path = crypto, pg_temp
as $$
    select case p_period
        when 'week' then date_trunc('week', p_day)::date
        when 'month' then date_trunc('month', p_day)::date
        when 'all' then date '1970-01-01'
    end
$$;

grant execute on function crypto.leaderboard_start(text, date) to oxp_service, app_admin, auditor;

-- Recomputed, not incremented: a second refresh of the same day (a retry,
-- a correction) gives the same rows. Only the day's players change.
create or replace function crypto.leaderboard_refresh(p_day date) returns integer
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_period text;
    v_start date;
    v_end date;
    v_rows integer := 0;
    v_count integer;
begin
    foreach v_period in array array['week', 'month', 'all'] loop
        v_start := crypto.leaderboard_start(v_period, p_day);
        v_end := case v_period
            when 'week' then v_start + 7
            when 'month' then (v_start + interval '1 month')::date
            else date '9999-12-31'
        end;
        insert into crypto.leaderboard as l
            (period, period_start, user_id, points, wins, losses, voids, refreshed_at)
        select
            v_period, v_start, p.user_id,
            coalesce(sum(crypto.prediction_award(p.id)), 0),
            count(*) filter (where s.outcome <> 'VOID' and crypto.prediction_won(p.choice, s.outcome)),
            count(*) filter (where s.outcome <> 'VOID' and not crypto.prediction_won(p.choice, s.outcome)),
            count(*) filter (where s.outcome = 'VOID'),
            crypto.now()
        from crypto.predictions as p
        join crypto.current_settlements as s on s.trading_day = p.trading_day and s.symbol = p.symbol
        where
            p.user_id in (select d.user_id from crypto.predictions as d where d.trading_day = p_day)
            and p.trading_day >= v_start and p.trading_day < v_end
        group by p.user_id
        on conflict (period, period_start, user_id) do update
            set points = excluded.points, wins = excluded.wins, losses = excluded.losses,
                voids = excluded.voids, refreshed_at = excluded.refreshed_at;
        get diagnostics v_count = row_count;
        v_rows := v_rows + v_count;
    end loop;
    return v_rows;
end
$$;

grant execute on function crypto.leaderboard_refresh(date) to oxp_operator;

-- Refreshed by the metrics rollup (pg_cron, every 10 minutes) for each
-- settled day whose books moved (crypto.rollup_metrics), not inside the
-- settlement: a refresh reads every award of the day's players, which would
-- make settling a million predictions many times slower. The triggers that
-- did it at commit are gone.
drop trigger if exists leaderboard_settled on crypto.session_control;
drop trigger if exists leaderboard_revised on crypto.settlement_revisions;
drop function if exists crypto.leaderboard_on_settled();

-- A player's public name, or none (null): 2 to 20 characters, no "@" (never
-- an email), no control characters; unique whatever the case.
create or replace function api.set_nickname(p_nickname text) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_uid uuid := crypto.require_user();
    v_name text := nullif(btrim(p_nickname), '');
begin
    if v_name is not null and (char_length(v_name) not between 2 and 20 or v_name ~ '[[:cntrl:]@]') then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'A nickname has 2 to 20 characters, without "@" or control characters';
    end if;
    if exists (select from crypto.users as u where lower(u.nickname) = lower(v_name) and u.id <> v_uid) then
        raise exception using errcode = 'OX180', message = 'NICKNAME_TAKEN',
            detail = format('"%s" is taken; choose another nickname', v_name);
    end if;
    begin
        update crypto.users set nickname = v_name where id = v_uid;
    exception when unique_violation then
        -- Taken by a concurrent request between the check and the update.
        raise exception using errcode = 'OX180', message = 'NICKNAME_TAKEN',
            detail = format('"%s" is taken; choose another nickname', v_name);
    end;
    perform crypto.audit(crypto.current_actor(), 'user.nickname', v_uid::text, jsonb_build_object('nickname', v_name));
    return json_build_object('nickname', v_name);
end
$$;

grant execute on function api.set_nickname(text) to app_user, app_admin;

-- One page of the board for the period that holds today (New York date),
-- in rank order: points, then wins, then the player's id (fixed, so ties
-- never swap between pages). Accuracy is null below the minimum of
-- decided predictions. Public: nicknames only, never an email or an id.
create or replace function api.leaderboard(
    p_period text default 'week', p_limit integer default 20, p_cursor bigint default null
) returns json
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
declare
    v_start date;
    v_min integer := crypto.setting_int('leaderboard.min_decided');
    v_offset bigint := coalesce(p_cursor, 0);
    v_items json;
    v_count integer;
begin
    if p_period is null or p_period not in ('week', 'month', 'all') then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'period is week, month or all';
    end if;
    perform crypto.page_limit(p_limit);
    if v_offset < 0 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'cursor is a rank (0 or more)';
    end if;
    v_start := crypto.leaderboard_start(p_period, (crypto.now() at time zone 'America/New_York')::date);
    select
        json_agg(json_build_object(
            'rank', v_offset + r.n, 'nickname', u.nickname, 'points', r.points, 'wins', r.wins,
            'losses', r.losses, 'voids', r.voids, 'decided', r.wins + r.losses,
            'accuracy', case when r.wins + r.losses >= v_min
                then round(r.wins::numeric / (r.wins + r.losses), 4) end
        ) order by r.n),
        count(*)
    into v_items, v_count
    from (
        select l.*, row_number() over (order by l.points desc, l.wins desc, l.user_id) as n
        from (
            select l.* from crypto.leaderboard as l
            where l.period = p_period and l.period_start = v_start
            order by l.points desc, l.wins desc, l.user_id
            offset v_offset limit p_limit
        ) as l
    ) as r
    join crypto.users as u on u.id = r.user_id;
    return json_build_object(
        'period', p_period, 'period_start', v_start, 'min_decided', v_min,
        'items', coalesce(v_items, '[]'),
        'next_cursor', case when v_count = p_limit then v_offset + v_count end
    );
end
$$;

grant execute on function api.leaderboard(text, integer, bigint) to anon, app_user, app_admin;
