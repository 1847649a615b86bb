-- Scheduled backups and the WAL archive's health (issue 12). pgBackRest is
-- a program, which pg_cron cannot run: pg_cron enqueues a job, the worker
-- runs pgBackRest and reports back here, where the run is recorded and the
-- alert opened or cleared.

-- One job per kind and hour: a catch-up after downtime enqueues it once.
create or replace function crypto.enqueue_backup(p_kind text) returns bigint
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    if p_kind is null or p_kind not in ('full', 'diff', 'incr', 'verify') then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = format('a backup is full, diff, incr or verify, not %s', coalesce(p_kind, 'null'));
    end if;
    return crypto.enqueue_job(
        'backup.' || p_kind,
        jsonb_build_object('type', p_kind),
        format('backup.%s:%s', p_kind, to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24')),
        3
    );
end
$$;

grant execute on function crypto.enqueue_backup(text) to oxp_service;

-- The worker's report of one backup or restore drill: a job_runs row
-- ('backup.full', ...), and the 'backup_failed' alert of that kind opened
-- on failure, cleared by the next success.
create or replace function crypto.record_backup(
    p_kind text, p_started timestamptz, p_ok boolean, p_details jsonb, p_error text
) returns bigint
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_id bigint;
begin
    if p_kind is null or p_kind not in ('full', 'diff', 'incr', 'verify') or p_ok is null or p_started is null then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'record_backup needs a kind (full, diff, incr, verify), a start and an outcome';
    end if;
    insert into crypto.job_runs (job, started_at, finished_at, status, error)
    values ('backup.' || p_kind, p_started, clock_timestamp(),
        (case when p_ok then 'succeeded' else 'failed' end)::crypto.run_status, p_error)
    returning id into v_id;
    if p_ok then
        perform crypto.alert_clear('backup_failed', p_kind);
    else
        perform crypto.alert_open('backup_failed', p_kind, 'critical',
            coalesce(p_details, '{}') || jsonb_build_object('error', p_error, 'run', v_id));
    end if;
    return v_id;
end
$$;

grant execute on function crypto.record_backup(text, timestamptz, boolean, jsonb, text) to oxp_service;

-- Every minute from pg_cron: WAL that does not reach the repository is
-- the one failure that loses the recent past silently. The archiver's last
-- failure after its last success opens 'wal_archive_failing'; a success
-- since clears it. With archiving off (a test cluster) there is nothing to watch.
create or replace function crypto.check_wal_archive() returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_state jsonb;
    v_failing boolean;
begin
    select jsonb_build_object(
            'archive_mode', current_setting('archive_mode'),
            'archived_count', a.archived_count, 'last_archived_wal', a.last_archived_wal,
            'last_archived_time', a.last_archived_time, 'failed_count', a.failed_count,
            'last_failed_wal', a.last_failed_wal, 'last_failed_time', a.last_failed_time),
        current_setting('archive_mode') <> 'off' and a.last_failed_time is not null
        and (a.last_archived_time is null or a.last_failed_time > a.last_archived_time)
    into v_state, v_failing
    from pg_catalog.pg_stat_archiver as a;
    if v_failing then
        perform crypto.alert_open('wal_archive_failing', '', 'critical', v_state);
    else
        perform crypto.alert_clear('wal_archive_failing');
    end if;
    return v_state || jsonb_build_object('failing', v_failing);
end
$$;

grant execute on function crypto.check_wal_archive() to oxp_service;

-- From crypto.evaluate_alerts, every minute: a backup that did not happen
-- is found here even when nothing failed (the worker down, pg_cron off, a
-- job dead). 'backup_late' opens for 'full' with no successful full backup
-- within backups.late_full_days, and for 'any' with no successful backup of
-- any kind within backups.late_any_days; the next success clears it. Only
-- where backups are scheduled (a backup job was ever enqueued or run);
-- until the first success, lateness counts from the first one asked for.
-- `oxp db backup` by hand is not a scheduled run and does not count.
create or replace function crypto.check_backup_late() returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_now timestamptz := crypto.now();
    v_first timestamptz;
    v_full timestamptz;
    v_any timestamptz;
    v_late_full boolean;
    v_late_any boolean;
    v_state jsonb;
begin
    select least(
        (select min(j.created_at) from crypto.jobs as j
         where j.kind in ('backup.full', 'backup.diff', 'backup.incr')),
        (select min(r.started_at) from crypto.job_runs as r
         where r.job in ('backup.full', 'backup.diff', 'backup.incr'))
    ) into v_first;
    if v_first is null then
        return jsonb_build_object('scheduled', false);
    end if;
    select
        max(r.finished_at) filter (where r.job = 'backup.full'),
        max(r.finished_at)
    into v_full, v_any
    from crypto.job_runs as r
    where r.job in ('backup.full', 'backup.diff', 'backup.incr') and r.status = 'succeeded';
    v_late_full := coalesce(v_full, v_first)
        < v_now - crypto.setting_interval('backups.late_full_days');
    v_late_any := coalesce(v_any, v_first)
        < v_now - crypto.setting_interval('backups.late_any_days');
    v_state := jsonb_build_object(
        'scheduled', true, 'last_full', crypto.kst(v_full), 'last_any', crypto.kst(v_any),
        'late_full', v_late_full, 'late_any', v_late_any,
        'action', 'oxp db backups; oxp jobs list; is the worker running? oxp db backup --type full'
    );
    if v_late_full then
        perform crypto.alert_open('backup_late', 'full', 'critical', v_state);
    else
        perform crypto.alert_clear('backup_late', 'full');
    end if;
    if v_late_any then
        perform crypto.alert_open('backup_late', 'any', 'critical', v_state);
    else
        perform crypto.alert_clear('backup_late', 'any');
    end if;
    return v_state;
end
$$;

grant execute on function crypto.check_backup_late() to oxp_service;
