-- Health checks record a row in crypto.system_health; `alert` rows are
-- what an operator is paged for (GET /admin/health shows the latest).

-- The calendar must reach 60 days ahead, or sessions would stop opening.
create or replace function crypto.check_calendar_runway() returns crypto.health_status
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_last date := (select max(c.trading_day) from crypto.trading_calendar as c);
    v_days integer := coalesce(v_last - (crypto.now() at time zone 'America/New_York')::date, -1);
    v_status crypto.health_status := (case when v_days < 60 then 'alert' else 'ok' end)::crypto.health_status;
begin
    insert into crypto.system_health (at, check_name, status, details)
    values (crypto.now(), 'calendar_runway', v_status,
        jsonb_build_object('last_trading_day', v_last, 'days_left', v_days,
            'action', case when v_status = 'alert' then 'run: oxp calendar sync' end));
    return v_status;
end
$$;

grant execute on function crypto.check_calendar_runway() to oxp_service, app_admin;

-- The worker says it is alive (every loop); api.admin_health and the
-- worker-silence alert read when each worker was last seen.
create or replace function crypto.worker_heartbeat(p_worker text, p_details jsonb) returns void
language sql volatile security definer
set search_path = crypto, pg_temp
as $$
    insert into crypto.worker_heartbeats (worker, seen_at, details) values (p_worker, crypto.now(), p_details)
    on conflict (worker) do update set seen_at = excluded.seen_at, details = excluded.details
$$;

grant execute on function crypto.worker_heartbeat(text, jsonb) to oxp_service;

-- The worker's beat for the replicas (every REPLICA_HEARTBEAT_SECONDS): a
-- commit on the primary, so a replica's last replayed commit
-- (pg_last_xact_replay_timestamp, what db.REPLICA_LAG reads) is never older
-- than that while it keeps up, even when nobody plays. The wall clock, not
-- crypto.now(): a lag is real seconds, whatever day the game's clock shows.
create or replace function crypto.replica_heartbeat() returns void
language sql volatile security definer
set search_path = crypto, pg_temp
as $$
    insert into crypto.replica_heartbeat (id, beat_at) values (true, clock_timestamp())
    on conflict (id) do update set beat_at = excluded.beat_at
$$;

grant execute on function crypto.replica_heartbeat() to oxp_service;

-- What an operator looks at first: the database, pg_cron's jobs and their
-- last runs, the workers, the batch runs, the queue and open alerts.
create or replace function api.admin_health() returns json
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
declare
    v_cron json;
begin
    perform crypto.require_admin();
    if to_regclass('cron.job') is not null then
        execute $q$
            select coalesce(json_agg(json_build_object(
                'job', j.jobname, 'schedule', j.schedule, 'active', j.active,
                'last_status', r.status, 'last_start', crypto.kst(r.start_time)
            ) order by j.jobname), '[]')
            from cron.job as j
            left join lateral (
                select d.status, d.start_time from cron.job_run_details as d
                where d.jobid = j.jobid order by d.start_time desc limit 1
            ) as r on true
        $q$ into v_cron;
    end if;
    return json_build_object(
        'database', json_build_object('ok', true, 'now', crypto.kst(crypto.now()), 'version', version()),
        'pg_cron', coalesce(v_cron, '"not installed in this database"'::json),
        'workers', (select coalesce(json_agg(json_build_object(
            'worker', w.worker, 'seen_at', crypto.kst(w.seen_at),
            'seconds_ago', round(extract(epoch from crypto.now() - w.seen_at))
        ) order by w.worker), '[]') from crypto.worker_heartbeats as w),
        'batch_runs', (select coalesce(json_agg(json_build_object(
            'job', r.job, 'status', r.status, 'started_at', crypto.kst(r.started_at),
            'finished_at', crypto.kst(r.finished_at), 'rows', r.rows, 'error', r.error
        ) order by r.job), '[]') from (
            select distinct on (j.job) j.* from crypto.job_runs as j order by j.job, j.started_at desc
        ) as r),
        'queue', (select coalesce(json_object_agg(q.status, q.n), '{}') from (
            select j.status, count(*) as n from crypto.jobs as j group by j.status
        ) as q),
        'alerts', (select coalesce(json_agg(json_build_object(
            'check', h.check_name, 'at', crypto.kst(h.at), 'details', h.details
        ) order by h.at desc), '[]') from (
            select distinct on (s.check_name) s.* from crypto.system_health as s
            order by s.check_name, s.at desc
        ) as h where h.status = 'alert')
    );
end
$$;

grant execute on function api.admin_health() to app_admin;
