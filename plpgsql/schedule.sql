-- Runs everything that is due at crypto.now(), in order, and records the
-- run under the calling job's name. pg_cron's named jobs and `oxp schedule
-- tick` all call it; whatever the hour, it does only what is due, so a tick
-- after downtime (or a clock jump) catches up: overdue sessions close, the
-- right one opens, finished days fetch and settle.
create or replace function crypto.schedule_tick(p_job text default 'schedule_tick') returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_run bigint;
    v_now timestamptz := crypto.now();
    v_done jsonb := '[]'::jsonb;
    v_failed jsonb := '[]'::jsonb;
    v_day date;
    v_complete boolean;
    v_fetch crypto.job_status;
    v_lock_timeout text := current_setting('lock_timeout');
    v_detail text;
begin
    -- A named job and the minute tick start together at 06:00: the second
    -- waits for the first and records its own (usually empty) run, instead
    -- of returning unrecorded. A tick stuck for longer gives up, recorded.
    perform set_config('lock_timeout', '50s', true);
    begin
        perform pg_advisory_xact_lock(hashtext('crypto.schedule_tick'));
    exception when lock_not_available then
        insert into crypto.job_runs (job, started_at, finished_at, status, error)
        values (p_job, clock_timestamp(), clock_timestamp(), 'failed', 'another tick held the lock for 50 s');
        return jsonb_build_object('skipped', 'another tick is running');
    end;
    perform set_config('lock_timeout', v_lock_timeout, true);
    insert into crypto.job_runs (job, started_at, status)
    values (p_job, clock_timestamp(), 'running')
    returning id into v_run;

    begin
    -- Each step in a subtransaction of its own: a settlement that fails
    -- must not undo the same tick's close of another session or the
    -- opening of the next one. A failed step is retried by the next tick.
    for v_day in
        select s.trading_day from crypto.session_control as s
        join crypto.trading_calendar as c on c.trading_day = s.trading_day
        where s.phase = 'OPEN' and c.cutoff_at <= v_now
    loop
        begin
            perform crypto.close_session(v_day);
            v_done := v_done || jsonb_build_object('closed', v_day);
        exception when others then
            get stacked diagnostics v_detail = pg_exception_detail;
            v_failed := v_failed || crypto.tick_failure('close', v_day, sqlstate, sqlerrm, v_detail);
        end;
    end loop;

    select c.trading_day into v_day from crypto.trading_calendar as c
    where c.cutoff_at > v_now order by c.trading_day limit 1;
    if v_day is not null
        and v_now >= crypto.session_opens_at(v_day)
        and not exists (select from crypto.session_control as s where s.trading_day = v_day)
        and not exists (select from crypto.session_control as s where s.phase = 'OPEN') then
        begin
            perform crypto.open_session(v_day);
            v_done := v_done || jsonb_build_object('opened', v_day);
        exception when others then
            get stacked diagnostics v_detail = pg_exception_detail;
            v_failed := v_failed || crypto.tick_failure('open', v_day, sqlstate, sqlerrm, v_detail);
        end;
    end if;

    -- A finished day: once New York's close is final, ask the worker
    -- for prices and settle when every close is in. A price outage never
    -- VOIDs a day by itself: the fetch retries until the day's deadline
    -- (crypto.eod_deadline), and only then is what is still missing VOID,
    -- with an alert naming the symbols.
    for v_day, v_complete, v_fetch in
        select
            s.trading_day,
            jsonb_array_length(crypto.eod_fetch_plan(s.trading_day) -> 'missing') = 0,
            j.status
        from crypto.session_control as s
        join crypto.trading_calendar as c on c.trading_day = s.trading_day
        left join crypto.jobs as j on j.dedupe_key = crypto.eod_fetch_key(s.trading_day)
        where s.phase in ('CLOSED', 'SETTLING')
        and c.close_at + crypto.setting_interval('eod.fetch_delay_minutes') <= v_now
        order by s.trading_day
    loop
        begin
            if v_complete then
                perform crypto.settle_session(v_day);
                v_done := v_done || jsonb_build_object('settled', v_day);
            elsif v_fetch is not null and v_now >= crypto.eod_deadline(v_day) then
                insert into crypto.system_health (at, check_name, status, details)
                values (v_now, 'eod_void', 'alert', jsonb_build_object(
                    'trading_day', v_day, 'deadline', crypto.kst(crypto.eod_deadline(v_day)),
                    'missing', crypto.eod_fetch_plan(v_day) -> 'missing'));
                perform crypto.settle_session(v_day, true);
                v_done := v_done || jsonb_build_object('settled_void_missing', v_day);
            elsif v_fetch is null then
                perform crypto.begin_settling(v_day);
                -- Attempts enough to outlast the deadline at the capped backoff.
                perform crypto.enqueue_job('eod.fetch', jsonb_build_object('trading_day', v_day),
                    crypto.eod_fetch_key(v_day), 1000);
                v_done := v_done || jsonb_build_object('fetching', v_day);
            end if;
        exception when others then
            get stacked diagnostics v_detail = pg_exception_detail;
            v_failed := v_failed || crypto.tick_failure('settle', v_day, sqlstate, sqlerrm, v_detail);
        end;
    end loop;

    exception when others then
        -- Outside any step: every step of this tick was rolled back with it.
        get stacked diagnostics v_detail = pg_exception_detail;
        v_done := '[]'::jsonb;
        v_failed := crypto.tick_failure('tick', null, sqlstate, sqlerrm, v_detail);
    end;

    update crypto.job_runs
    set finished_at = clock_timestamp(),
        status = (case when jsonb_array_length(v_failed) = 0 then 'succeeded' else 'failed' end)::crypto.run_status,
        rows = jsonb_array_length(v_done),
        error = case when jsonb_array_length(v_failed) > 0 then left(v_failed::text, 2000) end
    where id = v_run;
    -- One alert per failure, not one a minute while it lasts: a step that
    -- failed the same way in the last hour is already on record, while its
    -- alert is open (once a good tick cleared it, the next failure says so).
    if jsonb_array_length(v_failed) > 0 and not exists (
        select from crypto.system_health as h
        where h.check_name = 'schedule_tick' and h.status = 'alert' and h.at > v_now - interval '1 hour'
        and crypto.tick_failure_keys(h.details -> 'failed') = crypto.tick_failure_keys(v_failed)
        and exists (
            select from crypto.alerts as a
            where a.rule = 'schedule_tick' and a.resolved_at is null
                and a.subject = crypto.tick_failure_keys(v_failed)::text
        )
    ) then
        insert into crypto.system_health (at, check_name, status, details)
        values (v_now, 'schedule_tick', 'alert', jsonb_build_object('run', v_run, 'failed', v_failed));
    end if;
    return jsonb_build_object('run', v_run, 'now', crypto.kst(v_now), 'done', v_done, 'failed', v_failed);
end
$$;

grant execute on function crypto.schedule_tick(text) to oxp_service;

-- Until when a finished day's closes are waited for: the next session's
-- cutoff minus eod.void_deadline_minutes (default 2 hours), so players see
-- the result before they predict again. An admin can load closes any time
-- before it and the day settles normally.
create or replace function crypto.eod_deadline(p_day date) returns timestamptz
language sql stable
set search_path = crypto, pg_temp
as $$
    select coalesce(
        (
            select c.cutoff_at - crypto.setting_interval('eod.void_deadline_minutes')
            from crypto.trading_calendar as c
            where c.trading_day = crypto.next_trading_day(p_day)
        ),
        -- A calendar that ends with this day (its runway alert is already
        -- open): a day later than the close, never never.
        (select c.close_at + interval '1 day' from crypto.trading_calendar as c where c.trading_day = p_day)
    )
$$;

grant execute on function crypto.eod_deadline(date) to oxp_service, app_admin, auditor;

-- One failed step of a tick, as the run's error and the alert name it.
create or replace function crypto.tick_failure(
    p_step text, p_day date, p_sqlstate text, p_error text, p_detail text
) returns jsonb
language sql stable
as $$
    select jsonb_build_array(jsonb_build_object(
        'step', p_step, 'trading_day', to_char(p_day, 'YYYY-MM-DD'), 'sqlstate', p_sqlstate,
        'error', p_error, 'detail', p_detail
    ))
$$;

-- What makes two failures the same: step, day and code, not the wording.
create or replace function crypto.tick_failure_keys(p_failed jsonb) returns text[]
language sql immutable
as $$
    select coalesce(array_agg(k.key order by k.key), '{}')
    from jsonb_array_elements(p_failed) as f
    cross join lateral (select concat_ws('|', f ->> 'step', f ->> 'trading_day', f ->> 'sqlstate') as key) as k
$$;
