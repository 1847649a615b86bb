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
    v_day date;
    v_complete boolean;
    v_fetch crypto.job_status;
begin
    -- One tick at a time; a second caller has nothing to add.
    if not pg_try_advisory_xact_lock(hashtext('crypto.schedule_tick')) then
        return jsonb_build_object('skipped', 'another tick is running');
    end if;
    insert into crypto.job_runs (job, started_at, status)
    values (p_job, clock_timestamp(), 'running')
    returning id into v_run;
    begin
        for v_day in
            select s.trading_day from crypto.session_control as s
            join crypto.trading_calendar as c on c.trading_day = s.trading_day
            where s.phase = 'OPEN' and c.cutoff_at <= v_now
        loop
            perform crypto.close_session(v_day);
            v_done := v_done || jsonb_build_object('closed', v_day);
        end loop;

        select c.trading_day into v_day from crypto.trading_calendar as c
        where c.cutoff_at > v_now order by c.trading_day limit 1;
        if v_day is not null
            and v_now >= crypto.session_opens_at(v_day)
            and not exists (select from crypto.session_control as s where s.trading_day = v_day)
            and not exists (select from crypto.session_control as s where s.phase = 'OPEN') then
            perform crypto.open_session(v_day);
            v_done := v_done || jsonb_build_object('opened', v_day);
        end if;

        -- A finished day: once New York's close is final, ask the worker
        -- for prices; settle when every close is in, or VOID what is still
        -- missing once the fetch has used up its retries.
        for v_day, v_complete, v_fetch in
            select
                s.trading_day,
                jsonb_array_length(crypto.eod_fetch_plan(s.trading_day) -> 'missing') = 0,
                j.status
            from crypto.session_control as s
            join crypto.trading_calendar as c on c.trading_day = s.trading_day
            left join crypto.jobs as j on j.dedupe_key = 'eod.fetch:' || s.trading_day
            where s.phase in ('CLOSED', 'SETTLING')
            and c.close_at + make_interval(mins => crypto.setting_int('eod.fetch_delay_minutes')::int) <= v_now
            order by s.trading_day
        loop
            if v_complete or v_fetch = 'dead' then
                perform crypto.settle_session(v_day, not v_complete);
                v_done := v_done || jsonb_build_object('settled', v_day);
            elsif v_fetch is null then
                perform crypto.begin_settling(v_day);
                perform crypto.enqueue_job('eod.fetch', jsonb_build_object('trading_day', v_day),
                    'eod.fetch:' || v_day);
                v_done := v_done || jsonb_build_object('fetching', v_day);
            end if;
        end loop;

        update crypto.job_runs
        set finished_at = clock_timestamp(), status = 'succeeded', rows = jsonb_array_length(v_done)
        where id = v_run;
    exception when others then
        update crypto.job_runs
        set finished_at = clock_timestamp(), status = 'failed', error = sqlerrm
        where id = v_run;
        return jsonb_build_object('run', v_run, 'error', sqlerrm);
    end;
    return jsonb_build_object('run', v_run, 'now', crypto.kst(v_now), 'done', v_done);
end
$$;

grant execute on function crypto.schedule_tick(text) to oxp_service;
