-- Partitions (sql/0034_partitions.sql, 0038_partition_predictions.sql, 0041_partition_ledger.sql),
-- kept by pg_cron every hour: pg_partman creates the partitions ahead (four
-- months, or four days for the rate-limit windows), then the logs' old
-- partitions go after their setting, measured on crypto.now(). audit_logs is
-- never dropped nor detached: it is the hash chain, and the proof that an
-- adjustment ran once (crypto.adjust_points, integrity_violations read it).
-- The money tables (predictions, ledger_transfers, ledger_entries) are
-- never dropped either: only their months ahead are made here. Settings:
-- retention.rate_limits_days here, retention.eod_fetch_logs_days in the
-- archive (plpgsql/partition_archive.sql).

-- The tables kept here, in the order maintenance makes their partitions.
-- Retention (partition_maintenance) names its own, shorter list: a table
-- only ever leaves it by a drop.
create or replace function crypto.partitioned_tables() returns text[]
language sql immutable
return array[
    'crypto.audit_logs', 'crypto.eod_fetch_logs', 'crypto.rate_limits', 'crypto.predictions',
    'crypto.ledger_transfers', 'crypto.ledger_entries'
];

-- The guards of plpgsql/append_only.sql on one partition: its row triggers
-- are cloned from the parent, a TRUNCATE trigger is not (PostgreSQL clones
-- only row triggers), and a partition can be truncated by its own name.
-- Only what is missing is done: altering a partition locks it, and every
-- API request writes the current rate-limit day (a migration holding the
-- ledger's locks must not queue behind one, nor it behind the migration).
create or replace function crypto.partition_guard(p_partition regclass) returns void
language plpgsql volatile
set search_path = crypto, pg_temp
as $$
declare
    v_table pg_class;
begin
    select c.* into v_table from pg_class as c where c.oid = p_partition;
    if (select i.inhparent from pg_inherits as i where i.inhrelid = p_partition) in (
        'crypto.audit_logs'::regclass, 'crypto.ledger_transfers'::regclass, 'crypto.ledger_entries'::regclass
    ) and not exists (select from pg_trigger as g where g.tgrelid = p_partition and g.tgname = 'no_truncate') then
        execute format(
            'create trigger no_truncate before truncate on %s '
            'for each statement execute function crypto.tg_append_only__refuse()', p_partition);
    end if;
    -- Row security as on every crypto table; no grants (reads go through the
    -- parent); the owner of every table (plpgsql/zz_owner.sql skips tables
    -- that depend on another, as a partition does on its parent).
    if not v_table.relrowsecurity then
        execute format('alter table %s enable row level security', p_partition);
    end if;
    if v_table.relowner <> 'oxp_owner'::regrole then
        execute format('alter table %s owner to oxp_owner', p_partition);
    end if;
end
$$;

-- The partitions of one table for the period holding p_at and the premade
-- ones after it, made here (not by pg_partman, whose calls leave their
-- search_path set for the whole session: crypto.clock_set cannot pass its
-- caller's path). Named as pg_partman names them (part_config), so its
-- maintenance and show_partition_info know them. Rows of a new period
-- waiting in the default partition move into it (eod_fetch_logs,
-- rate_limits); audit rows cannot move (append-only): a period whose rows
-- are already in the default partition is left there, never an error.
-- Bounds in UTC whatever the session's time zone (the migration's too).
create or replace function crypto.partition_ensure(p_parent text, p_at timestamptz, p_periods integer default null)
returns integer
language plpgsql volatile
set search_path = crypto, pg_temp
set timezone = 'UTC'
as $$
declare
    v_conf record;
    v_start timestamptz;
    v_end timestamptz;
    v_name text;
    v_default text;
    v_rows jsonb;
    v_created integer := 0;
begin
    -- Before sql/0034 (a database migrated part way) there is nothing to make.
    if to_regclass('partman.part_config') is null then
        return 0;
    end if;
    select
        p.control,
        p.partition_interval::interval as step,
        p.premake,
        p.datetime_string
    into v_conf
    from partman.part_config as p where p.parent_table = p_parent;
    if not found then
        return 0;
    end if;
    v_default := split_part(p_parent, '.', 2) || '_default';
    v_start := date_trunc(case when v_conf.step < interval '1 month' then 'day' else 'month' end, p_at);
    for i in 1 .. coalesce(p_periods, v_conf.premake + 1) loop
        v_end := v_start + v_conf.step;
        v_name := split_part(p_parent, '.', 2) || '_p' || to_char(v_start, v_conf.datetime_string);
        if to_regclass(format('crypto.%I', v_name)) is null then
            if p_parent = 'crypto.audit_logs' then
                if exists (select from only crypto.audit_logs_default as d where d.at >= v_start and d.at < v_end) then
                    v_start := v_end;
                    continue;
                end if;
                v_rows := '[]';
            elsif to_regclass(format('crypto.%I', v_default)) is null then
                -- The money tables have no default partition (sql/0038, 0041).
                v_rows := '[]';
            else
                execute format(
                    'with moved as (delete from only crypto.%1$I as d where d.%2$I >= $1 and d.%2$I < $2 returning d.*) '
                    'select coalesce(jsonb_agg(to_jsonb(m)), ''[]'') from moved as m', v_default, v_conf.control
                ) into v_rows using v_start, v_end;
            end if;
            execute format(
                'create %s table crypto.%I partition of %s for values from (%L) to (%L)',
                case when p_parent = 'crypto.rate_limits' then 'unlogged' else '' end, v_name, p_parent,
                case when v_conf.control = 'trading_day' then v_start::date::text else v_start::text end,
                case when v_conf.control = 'trading_day' then v_end::date::text else v_end::text end
            );
            perform crypto.partition_guard(format('crypto.%I', v_name)::regclass);
            if jsonb_array_length(v_rows) > 0 then
                execute format(
                    'insert into %1$s overriding system value select * from jsonb_populate_recordset(null::%1$s, $1)',
                    p_parent
                ) using v_rows;
            end if;
            v_created := v_created + 1;
        end if;
        v_start := v_end;
    end loop;
    return v_created;
end
$$;

-- The periods (months, days) of the rows in a log table's default
-- partition, at most 100 a run; none for a table without one (the money
-- tables).
create or replace function crypto.partition_default_periods(p_parent text) returns setof timestamptz
language plpgsql stable
set search_path = crypto, pg_temp
set timezone = 'UTC'
as $$
begin
    if to_regclass(format('crypto.%I', split_part(p_parent, '.', 2) || '_default')) is null then
        return;
    end if;
    return query execute format(
        'select distinct date_trunc(%L, d.%I::timestamptz) from only crypto.%I as d order by 1 limit 100',
        case when p_parent = 'crypto.rate_limits' then 'day' else 'month' end,
        case when p_parent = 'crypto.rate_limits' then 'window_start' else 'trading_day' end,
        split_part(p_parent, '.', 2) || '_default'
    );
end
$$;

-- pg_partman ends each call with set_config('search_path', <the path it
-- found>, false): a session-wide SET, which outlives a function's own SET
-- clause. The caller's path is passed in, and put back the same way.
create or replace function crypto.partition_maintenance(p_caller_search_path text) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
set timezone = 'UTC'
as $$
declare
    v_parent text;
    v_part record;
    v_created integer := 0;
    v_before integer;
    v_added integer;
    v_dropped text [] := '{}'::text [];
    v_errors jsonb := '[]'::jsonb;
    v_alarm boolean := false;
    v_lock_timeout text := current_setting('lock_timeout');
begin
    -- Creating a partition (with a default one) and dropping one lock the
    -- parent: never queue its readers and writers (every API request counts
    -- itself in rate_limits) behind a long transaction for more than 100 ms.
    -- A table that cannot get its lock waits for the next hour.
    perform set_config('lock_timeout', '100ms', true);
    foreach v_parent in array crypto.partitioned_tables() loop
        select count(*) into v_before from pg_inherits as i where i.inhparent = v_parent::regclass;
        begin
            -- The months (days) ahead of the wall clock and of a shifted
            -- crypto.now() (crypto.clock_set makes the latter before writing).
            perform crypto.partition_ensure(v_parent, now());
            perform crypto.partition_ensure(v_parent, crypto.now());
            -- Rows still in the default partition whose period has none yet
            -- (written with explicit times) move into their own before
            -- pg_partman extends the table: a row there in the range to make
            -- would fail it. Audit rows never move: ignore_default_data
            -- (sql/0034) keeps them from stopping pg_partman.
            if v_parent <> 'crypto.audit_logs' then
                perform crypto.partition_ensure(v_parent, d.period, 1)
                from crypto.partition_default_periods(v_parent) as d (period);
            end if;
            perform partman.run_maintenance(p_parent_table => v_parent, p_analyze => false, p_jobmon => false);
        exception when others then
            v_errors := v_errors || jsonb_build_object('table', v_parent, 'error', sqlerrm, 'code', sqlstate);
            -- A lock not had within 100 ms retries the next hour: the alert
            -- opens at once for any other failure, and for lock timeouts only
            -- once the next period (month, day) has no partition left.
            v_alarm := v_alarm or sqlstate <> '55P03' or to_regclass(format(
                'crypto.%I',
                split_part(v_parent, '.', 2) || '_p' || to_char(
                    greatest(now(), crypto.now()) + (
                        select p.partition_interval::interval from partman.part_config as p
                        where p.parent_table = v_parent
                    ),
                    (select p.datetime_string from partman.part_config as p where p.parent_table = v_parent)
                )
            )) is null;
        end;
        v_added := (select count(*) from pg_inherits as i where i.inhparent = v_parent::regclass) - v_before;
        v_created := v_created + v_added;
        -- PostgreSQL 15's autovacuum analyzes partitions, never their
        -- parent, whose statistics plan the joins through it: the money
        -- tables' parents are analyzed when a month is added (monthly).
        -- Never at the cost of the hour's work: a table autovacuum holds is
        -- skipped, and any failure is reported with the rest.
        if v_added > 0 and v_parent in ('crypto.predictions', 'crypto.ledger_transfers', 'crypto.ledger_entries') then
            begin
                execute format('analyze (skip_locked) %s', v_parent);
            exception when others then
                v_errors := v_errors || jsonb_build_object('table', v_parent, 'error', sqlerrm, 'code', sqlstate);
            end;
        end if;
    end loop;

    -- Every new partition gets its guards (the audit log's TRUNCATE trigger).
    for v_part in
        select i.inhrelid::regclass as rel from pg_inherits as i join pg_class as c on c.oid = i.inhrelid
        where i.inhparent in (select t::regclass from unnest(crypto.partitioned_tables()) as t)
            and not c.relrowsecurity
    loop
        perform crypto.partition_guard(v_part.rel);
    end loop;

    -- Retention: the rate-limit days past their setting are dropped
    -- (crypto.partitions_past_retention). The price-fetch log's months go
    -- to the archive first and are dropped there (plpgsql/partition_archive.sql).
    for v_part in select r.partition as rel, r.relname from crypto.partitions_past_retention('crypto.rate_limits') as r loop
        begin
            execute format('drop table %s', v_part.rel);
            v_dropped := v_dropped || v_part.relname::text;
        exception when lock_not_available then
            -- Old rows wait an hour more: no alert.
            v_errors := v_errors || jsonb_build_object(
                'table', v_part.relname, 'error', sqlerrm, 'code', sqlstate
            );
        end;
    end loop;

    perform set_config('lock_timeout', v_lock_timeout, true);
    -- A table left without its partitions ahead is an operator's to look
    -- at; the next run without such a failure clears the alert.
    if v_alarm then
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

-- Partitions made by the migration get their guards at once (those that
-- have them are left alone: crypto.partition_guard).
do $guards$
declare
    v_part regclass;
begin
    for v_part in
        select i.inhrelid::regclass from pg_inherits as i
        where i.inhparent in (select to_regclass(t) from unnest(crypto.partitioned_tables()) as t)
    loop
        perform crypto.partition_guard(v_part);
    end loop;
end
$guards$;
