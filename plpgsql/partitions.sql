-- Partitions of the log tables (sql/0034_partitions.sql), kept by pg_cron
-- every hour: pg_partman creates the partitions ahead (four months, or four
-- days for the rate-limit windows), then the logs' old partitions go after
-- their setting, measured on crypto.now(). audit_logs is never dropped nor
-- detached: it is the hash chain, and the proof that an adjustment ran once
-- (crypto.adjust_points, integrity_violations read it). Nothing here touches
-- a money table. Settings: retention.eod_fetch_logs_days, retention.rate_limits_days.

-- The guards of plpgsql/append_only.sql on one partition: its row triggers
-- are cloned from the parent, a TRUNCATE trigger is not (PostgreSQL clones
-- only row triggers), and a partition can be truncated by its own name.
create or replace function crypto.partition_guard(p_partition regclass) returns void
language plpgsql volatile
set search_path = crypto, pg_temp
as $$
begin
    if (select i.inhparent from pg_inherits as i where i.inhrelid = p_partition) = 'crypto.audit_logs'::regclass then
        execute format(
            'create or replace trigger no_truncate before truncate on %s '
            'for each statement execute function crypto.tg_append_only__refuse()', p_partition);
    end if;
    -- Row security as on every crypto table; no grants (reads go through the
    -- parent); the owner of every table (plpgsql/zz_owner.sql skips tables
    -- that depend on another, as a partition does on its parent).
    execute format('alter table %s enable row level security', p_partition);
    execute format('alter table %s owner to oxp_owner', p_partition);
end
$$;

-- pg_partman ends each call with set_config('search_path', <the path it
-- found>, false): a session-wide SET, which outlives a function's own SET
-- clause. The caller's path is passed in, and put back the same way.
create or replace function crypto.partition_maintenance(p_caller_search_path text) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_parent text;
    v_part record;
    v_created integer := 0;
    v_before integer;
    v_dropped text [] := '{}'::text [];
    v_errors jsonb := '[]'::jsonb;
    v_keep interval;
    v_end timestamptz;
    v_lock_timeout text := current_setting('lock_timeout');
begin
    -- Creating a partition (with a default one) and dropping one lock the
    -- parent: never queue its readers and writers behind a long transaction.
    -- A table that cannot get its lock in time waits for the next hour.
    perform set_config('lock_timeout', '2s', true);
    foreach v_parent in array array['crypto.audit_logs', 'crypto.eod_fetch_logs', 'crypto.rate_limits'] loop
        select count(*) into v_before from pg_inherits as i where i.inhparent = v_parent::regclass;
        begin
            perform partman.run_maintenance(p_parent_table => v_parent, p_jobmon => false);
        exception when others then
            -- A row already in the default partition for the range to create
            -- (a test clock ahead of the premade months) blocks only its table.
            v_errors := v_errors || jsonb_build_object('table', v_parent, 'error', sqlerrm);
        end;
        v_created := v_created
            + (select count(*) from pg_inherits as i where i.inhparent = v_parent::regclass) - v_before;
    end loop;

    -- Every new partition gets its guards (the audit log's TRUNCATE trigger).
    for v_part in
        select i.inhrelid::regclass as rel from pg_inherits as i join pg_class as c on c.oid = i.inhrelid
        where i.inhparent in ('crypto.audit_logs'::regclass, 'crypto.eod_fetch_logs'::regclass, 'crypto.rate_limits'::regclass)
            and not c.relrowsecurity
    loop
        perform crypto.partition_guard(v_part.rel);
    end loop;

    -- Retention: whole partitions that end before now - the setting.
    foreach v_parent in array array['crypto.eod_fetch_logs', 'crypto.rate_limits'] loop
        v_keep := case v_parent
            when 'crypto.eod_fetch_logs' then crypto.setting_interval('retention.eod_fetch_logs_days')
            else crypto.setting_interval('retention.rate_limits_days')
        end;
        for v_part in
            select
                i.inhrelid::regclass as rel,
                c.relname
            from pg_inherits as i join pg_class as c on c.oid = i.inhrelid
            where i.inhparent = v_parent::regclass and pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
            order by c.relname
        loop
            select p.child_end_time into v_end
            from partman.show_partition_info(format('crypto.%I', v_part.relname), p_parent_table => v_parent) as p;
            if v_end <= crypto.now() - v_keep then
                begin
                    execute format('drop table %s', v_part.rel);
                    v_dropped := v_dropped || v_part.relname::text;
                exception when lock_not_available then
                    v_errors := v_errors || jsonb_build_object('table', v_part.relname, 'error', sqlerrm);
                end;
            end if;
        end loop;
    end loop;

    perform set_config('lock_timeout', v_lock_timeout, true);
    -- A table left without its partitions ahead (or its old ones) is an
    -- operator's to look at; the next clean run clears the alert.
    if jsonb_array_length(v_errors) > 0 then
        perform crypto.alert_open('partition_maintenance_failing', '', 'warning', jsonb_build_object('errors', v_errors));
    else
        perform crypto.alert_clear('partition_maintenance_failing');
    end if;
    perform set_config('search_path', p_caller_search_path, false);
    return jsonb_build_object('created', v_created, 'dropped', to_jsonb(v_dropped), 'errors', v_errors);
end
$$;

grant execute on function crypto.partition_maintenance(text) to oxp_service;

-- What pg_cron runs. A language sql helper without a SET clause, so that it
-- reads the caller's search_path (CONVENTIONS.md: only such helpers may).
create or replace function crypto.partition_maintenance() returns jsonb
language sql volatile
as $$ select crypto.partition_maintenance(pg_catalog.current_setting('search_path')) $$;

grant execute on function crypto.partition_maintenance() to oxp_service;

-- pg_partman's few SECURITY DEFINER helpers (name checks) run as oxp_owner,
-- not as the superuser that created the extension.
do $partman_owner$
declare
    v_routine regprocedure;
begin
    for v_routine in
        select p.oid::regprocedure from pg_proc as p
        join pg_roles as r on r.oid = p.proowner
        where p.pronamespace = to_regnamespace('partman') and p.prosecdef and r.rolsuper
    loop
        execute format('alter routine %s owner to oxp_owner', v_routine);
    end loop;
end
$partman_owner$;

-- Partitions made by the migration get their guards at once.
do $guards$
declare
    v_part regclass;
begin
    for v_part in
        select i.inhrelid::regclass from pg_inherits as i
        where i.inhparent in (
            to_regclass('crypto.audit_logs'), to_regclass('crypto.eod_fetch_logs'), to_regclass('crypto.rate_limits')
        )
    loop
        perform crypto.partition_guard(v_part);
    end loop;
end
$guards$;
