-- Sessions move OPEN -> CLOSED -> SETTLING -> SETTLED, one function per
-- move. Asking for the phase a session already has changes nothing; any
-- other jump is refused.

create or replace function crypto.prev_trading_day(p_day date) returns date
language sql stable
set search_path = crypto, pg_temp
as $$ select max(c.trading_day) from crypto.trading_calendar as c where c.trading_day < p_day $$;

grant execute on function crypto.prev_trading_day(date) to oxp_service, app_admin, auditor;

create or replace function crypto.next_trading_day(p_day date) returns date
language sql stable
set search_path = crypto, pg_temp
as $$ select min(c.trading_day) from crypto.trading_calendar as c where c.trading_day > p_day $$;

grant execute on function crypto.next_trading_day(date) to oxp_service, app_admin, auditor;

-- A session opens at 06:00 KST the day after the previous trading day, when
-- New York has closed it: Monday's session opens on Saturday morning.
create or replace function crypto.session_opens_at(p_day date) returns timestamptz
language sql stable
set search_path = crypto, pg_temp
as $$
    select (
        coalesce(crypto.prev_trading_day(p_day) + 1, p_day)::timestamp
        + crypto.setting_int('schedule.open_hour_kst') * interval '1 hour'
    ) at time zone 'Asia/Seoul'
$$;

create or replace function crypto.session_move(
    p_day date, p_from crypto.session_phase, p_to crypto.session_phase
) returns crypto.session_control
language plpgsql volatile
set search_path = crypto, pg_temp
as $$
declare
    v_session crypto.session_control;
begin
    perform crypto.require_session(p_day);
    -- Sessions are never deleted: the row found is there to lock.
    select * into v_session from crypto.session_control as s where s.trading_day = p_day for update;
    if v_session.phase = p_to then
        return v_session;
    end if;
    if v_session.phase <> p_from then
        raise exception using errcode = 'OX106', message = 'INVALID_TRANSITION',
            detail = format('Session %s is %s; it cannot move to %s', p_day, v_session.phase, p_to);
    end if;
    update crypto.session_control as s
    set
        phase = p_to,
        closed_at = case when p_to = 'CLOSED' then crypto.now() else s.closed_at end,
        settling_at = case when p_to = 'SETTLING' then crypto.now() else s.settling_at end,
        settled_at = case when p_to = 'SETTLED' then crypto.now() else s.settled_at end
    where s.trading_day = p_day
    returning * into v_session;
    -- Whether the tick or an operator moved it, the trail shows who and when.
    perform crypto.audit(crypto.current_actor(), 'session.' || lower(p_to::text), crypto.iso_day(p_day),
        jsonb_build_object('from', p_from));
    return v_session;
end
$$;

create or replace function crypto.open_session(p_day date) returns crypto.session_control
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_session crypto.session_control;
    v_lock_timeout text;
begin
    perform crypto.require_trading_day(p_day);
    -- The month its predictions go to: predictions has no default
    -- partition (sql/0038). Made four months ahead by the hourly
    -- maintenance, so this only ever makes one for a day further out (a
    -- demo clock); even for a session already open. Making one locks
    -- predictions: waiting at most 2 s, else this open fails and the next
    -- tick retries it.
    v_lock_timeout := current_setting('lock_timeout');
    perform set_config('lock_timeout', '2s', true);
    perform crypto.partition_ensure('crypto.predictions', p_day::timestamp at time zone 'UTC', 1);
    perform set_config('lock_timeout', v_lock_timeout, true);
    select * into v_session from crypto.session_control as s where s.trading_day = p_day;
    if found then
        if v_session.phase <> 'OPEN' then
            raise exception using errcode = 'OX106', message = 'INVALID_TRANSITION',
                detail = format('Session %s is %s; it cannot open again', p_day, v_session.phase);
        end if;
        return v_session;
    end if;
    if exists (select from crypto.session_control as s where s.phase = 'OPEN') then
        raise exception using errcode = 'OX106', message = 'INVALID_TRANSITION',
            detail = 'Another session is open; close it first';
    end if;
    perform crypto.ensure_universe(p_day);
    insert into crypto.session_control (trading_day, phase, opened_at)
    values (p_day, 'OPEN', crypto.now())
    returning * into v_session;
    return v_session;
end
$$;

grant execute on function crypto.open_session(date) to oxp_operator, app_admin;

create or replace function crypto.close_session(p_day date) returns crypto.session_control
language sql volatile security definer
set search_path = crypto, pg_temp
as $$ select crypto.session_move(p_day, 'OPEN', 'CLOSED') $$;

grant execute on function crypto.close_session(date) to oxp_operator, app_admin;

create or replace function crypto.begin_settling(p_day date) returns crypto.session_control
language sql volatile security definer
set search_path = crypto, pg_temp
as $$ select crypto.session_move(p_day, 'CLOSED', 'SETTLING') $$;

grant execute on function crypto.begin_settling(date) to oxp_operator, app_admin;

create or replace function crypto.finish_settling(p_day date) returns crypto.session_control
language sql volatile security definer
set search_path = crypto, pg_temp
as $$ select crypto.session_move(p_day, 'SETTLING', 'SETTLED') $$;

grant execute on function crypto.finish_settling(date) to oxp_operator, app_admin;

-- "Today" for a player: the open session, else the latest one.
create or replace function crypto.current_session() returns crypto.session_control
language sql stable
set search_path = crypto, pg_temp
as $$
    select s.* from crypto.session_control as s
    order by (s.phase = 'OPEN') desc, s.trading_day desc
    limit 1
$$;

grant execute on function crypto.current_session() to oxp_service, app_admin, auditor;

-- The next session to open: the first trading day whose cutoff is still
-- ahead and that has no session yet (as crypto.schedule_tick picks it).
create or replace function crypto.next_session_day() returns date
language sql stable
set search_path = crypto, pg_temp
as $$
    select c.trading_day from crypto.trading_calendar as c
    where c.cutoff_at > crypto.now()
    and not exists (select from crypto.session_control as s where s.trading_day = c.trading_day)
    order by c.trading_day
    limit 1
$$;

grant execute on function crypto.next_session_day() to oxp_service, app_admin, auditor;

-- GET /v1/session/today. `trading_day` is the New York date of the NYSE
-- session; times are KST with New York's beside them (`*_new_york`). A
-- signed-in player also sees what is left of their day; between sessions
-- (or once the cutoff passed) everyone sees when the next one opens.
create or replace function api.session_today() returns json
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
declare
    -- NO_SESSION before the first session opens.
    v_session crypto.session_control := crypto.require_session((crypto.current_session()).trading_day);
    v_cal crypto.trading_calendar;
    v_uid uuid := crypto.auth_uid();
    v_limits crypto.user_daily_limits;
    v_next date := crypto.next_session_day();
    v_next_json json;
    v_accepting boolean;
    v_player json;
begin
    if v_next is not null then
        v_next_json := json_build_object(
            'trading_day', v_next,
            'opens_at', crypto.kst(crypto.session_opens_at(v_next)),
            'opens_at_new_york', crypto.new_york(crypto.session_opens_at(v_next)),
            'cutoff_at', crypto.kst((select c.cutoff_at from crypto.trading_calendar as c where c.trading_day = v_next))
        );
    end if;
    select * into v_cal from crypto.trading_calendar as c where c.trading_day = v_session.trading_day;
    v_accepting := v_session.phase = 'OPEN' and crypto.now() < v_cal.cutoff_at;
    if v_uid is not null then
        select * into v_limits from crypto.user_daily_limits as l
        where l.user_id = v_uid and l.trading_day = v_session.trading_day;
        v_player := json_build_object(
            'predictions_used', coalesce(v_limits.predictions_made, 0),
            'predictions_limit', crypto.prediction_limit(coalesce(v_limits.slot_unlocks, 0)),
            'predictions_left', greatest(crypto.prediction_limit(coalesce(v_limits.slot_unlocks, 0))
                - coalesce(v_limits.predictions_made, 0), 0),
            'ad_slot_unlocks_left', greatest(crypto.setting_int('ads.max_slot_unlocks')
                - coalesce(v_limits.slot_unlocks, 0), 0),
            'ad_point_rewards_left', greatest(crypto.setting_int('ads.max_point_rewards')
                - coalesce(v_limits.point_rewards, 0), 0)
        );
    end if;
    return json_build_object(
        'trading_day', v_session.trading_day,
        'phase', v_session.phase,
        'cutoff_at', crypto.kst(v_cal.cutoff_at),
        'cutoff_at_new_york', crypto.new_york(v_cal.cutoff_at),
        'market_open_at', crypto.kst(v_cal.open_at),
        'market_open_at_new_york', crypto.new_york(v_cal.open_at),
        'market_close_at', crypto.kst(v_cal.close_at),
        'market_close_at_new_york', crypto.new_york(v_cal.close_at),
        'early_close', v_cal.early_close,
        'now', crypto.kst(crypto.now()),
        'accepting_predictions', v_accepting,
        'points_per_win', crypto.setting_int('points.per_win'),
        'next_transition', case v_session.phase
            when 'OPEN' then json_build_object('phase', 'CLOSED', 'at', crypto.kst(v_cal.cutoff_at))
            when 'CLOSED' then json_build_object('phase', 'SETTLING', 'at', crypto.kst(v_cal.close_at))
            when 'SETTLING' then json_build_object('phase', 'SETTLED', 'at', null)
        end,
        'next_session', case when not v_accepting then v_next_json end,
        'player', v_player
    );
end
$$;

grant execute on function api.session_today() to anon, app_user, app_admin;

-- The session taking predictions now: OPEN and before its cutoff, by the
-- one clock (the submission checks the time itself; it does not rely on the
-- phase having been advanced on time). Predictions and ad unlocks both
-- count towards it.
create or replace function crypto.accepting_session() returns date
language plpgsql stable
set search_path = crypto, pg_temp
as $$
declare
    v_day date;
    v_cutoff timestamptz;
    v_next date;
    v_detail text;
begin
    select s.trading_day, c.cutoff_at into v_day, v_cutoff
    from crypto.session_control as s
    join crypto.trading_calendar as c on c.trading_day = s.trading_day
    where s.phase = 'OPEN';
    if v_day is null or crypto.now() >= v_cutoff then
        -- Say which session closed and when, and when the next one opens
        -- (format() renders NULL as an empty string, so each part is built
        -- only from what exists).
        if v_day is null then
            select s.trading_day, c.cutoff_at into v_day, v_cutoff
            from crypto.session_control as s
            join crypto.trading_calendar as c on c.trading_day = s.trading_day
            order by s.trading_day desc
            limit 1;
        end if;
        v_detail := case
            when v_day is null then 'No session is open for predictions'
            else format('Predictions for %s closed at %s', v_day, crypto.kst(v_cutoff))
        end;
        v_next := crypto.next_session_day();
        if v_next is not null then
            v_detail := v_detail || format('; the session for %s opens at %s',
                v_next, crypto.kst(crypto.session_opens_at(v_next)));
        end if;
        raise exception using errcode = 'OX101', message = 'SESSION_CLOSED', detail = v_detail;
    end if;
    return v_day;
end
$$;
