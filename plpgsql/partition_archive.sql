-- The log tables' months past retention go to the archive before they go
-- (sql/0043_partition_archives.sql, issue 14 item 6). The worker
-- (python_sidecar/ox_sidecar/archive.py, job partition.archive, enqueued
-- daily by pg_cron) reads a month's rows here under a lock that holds its
-- writers off, writes them to a file and reads the file back, then, in that
-- same transaction, crypto.partition_archived records the file and drops
-- the month. Nothing else drops an archived table's partition.

-- The log tables archived this way. Rate-limit windows are counters of the
-- last minutes, not a record: partition_maintenance drops them. audit_logs
-- and the money tables never leave the database.
create or replace function crypto.archived_tables() returns text[]
language sql immutable
return array['crypto.eod_fetch_logs'];

-- A log table's partitions that end before its retention, measured on the
-- earlier of the wall clock and crypto.now() (a clock shifted ahead never
-- takes the present), oldest first.
create or replace function crypto.partitions_past_retention(p_parent text)
returns table (partition regclass, relname text, range_from timestamptz, range_to timestamptz)
language plpgsql stable
set search_path = crypto, pg_temp
set timezone = 'UTC'
as $$
declare
    v_cutoff timestamptz;
begin
    if p_parent is null or p_parent not in ('crypto.eod_fetch_logs', 'crypto.rate_limits') then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = format('%s has no retention: only the log tables leave', coalesce(p_parent, 'null'));
    end if;
    v_cutoff := least(now(), crypto.now()) - crypto.setting_interval(
        case p_parent
            when 'crypto.eod_fetch_logs' then 'retention.eod_fetch_logs_days'
            else 'retention.rate_limits_days'
        end
    );
    return query
    select i.inhrelid::regclass, c.relname::text, p.child_start_time, p.child_end_time
    from pg_inherits as i
    join pg_class as c on c.oid = i.inhrelid
    cross join lateral partman.show_partition_info(
        format('crypto.%I', c.relname), p_parent_table => p_parent
    ) as p
    where i.inhparent = p_parent::regclass
        and pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
        and p.child_end_time <= v_cutoff
    order by p.child_start_time;
end
$$;

-- The archive's work: every archived table's partitions past retention.
create or replace function crypto.partitions_to_archive()
returns table (parent text, partition text, range_from timestamptz, range_to timestamptz)
language sql stable security definer
set search_path = crypto, pg_temp
as $$
    select t.parent, p.relname, p.range_from, p.range_to
    from unnest(crypto.archived_tables()) as t (parent)
    cross join lateral crypto.partitions_past_retention(t.parent) as p
    order by p.range_from, t.parent
$$;

grant execute on function crypto.partitions_to_archive() to oxp_service, oxp_operator;

-- One partition of the archive's work, or OX178: what the read and the
-- drop both require (owner only).
create or replace function crypto.partition_due(p_partition text)
returns table (parent text, partition text, range_from timestamptz, range_to timestamptz)
language plpgsql stable
set search_path = crypto, pg_temp
as $$
begin
    return query select d.* from crypto.partitions_to_archive() as d where d.partition = p_partition;
    if not found then
        raise exception using errcode = 'OX178', message = 'PARTITION_NOT_DUE',
            detail = format('%s is not a log partition past its retention', coalesce(p_partition, 'null'));
    end if;
end
$$;

-- Daily from pg_cron: the archive job, when a month is due (once a day).
create or replace function crypto.enqueue_archive() returns bigint
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    if not exists (select from crypto.partitions_to_archive()) then
        return null;
    end if;
    return crypto.enqueue_job(
        'partition.archive', '{}',
        format('partition.archive:%s', to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD'))
    );
end
$$;

grant execute on function crypto.enqueue_archive() to oxp_service;

-- One due partition's rows as JSON, in id order (in UTC: a file does not
-- depend on the reader's time zone). Its writers are held off (SHARE)
-- until the transaction ends, so the rows the archiver writes are the rows
-- partition_archived checks and drops in that transaction. A worker that
-- stops answering meanwhile loses its session after a minute (the month's
-- writers wait no longer), and the lock is waited for 2 s at most. The rows
-- are gathered in the server (RETURN QUERY); the worker reads them in
-- batches.
create or replace function crypto.partition_archive_rows(p_partition text) returns setof jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
set timezone = 'UTC'
as $$
declare
    v_lock_timeout text := current_setting('lock_timeout');
begin
    perform crypto.partition_due(p_partition);
    perform set_config('lock_timeout', '2s', true);
    execute format('lock table crypto.%I in share mode', p_partition);
    perform set_config('lock_timeout', v_lock_timeout, true);
    if current_setting('idle_in_transaction_session_timeout')::interval
        not between interval '1 ms' and interval '60 s' then
        perform set_config('idle_in_transaction_session_timeout', '60s', true);
    end if;
    -- What partition_archived checks (with the lock): a ShareLock alone can
    -- be this transaction's for another reason (an index built on it).
    perform set_config('oxp.archive_read', p_partition, true);
    return query execute format('select to_jsonb(r) from crypto.%I as r order by r.id', p_partition);
end
$$;

grant execute on function crypto.partition_archive_rows(text) to oxp_service;

-- The archiver's word that the rows read in this transaction are in a file
-- it wrote and read back (its rows, the SHA-256 of its content, where it
-- is): the file is recorded and the partition dropped, or nothing changes.
-- Only the worker, while it holds a partition.archive job (its claim), after
-- reading the rows in this transaction (their SHARE lock held). The rows
-- and checksum are computed again here from the rows themselves (JSON lines
-- as partition_archive_rows gives them): a file of other content, or none
-- read back, is refused.
create or replace function crypto.partition_archived(
    p_partition text, p_rows bigint, p_sha256 text, p_location text
) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
set timezone = 'UTC'
as $$
declare
    v_due record;
    v_rows bigint;
    v_sha256 text;
    v_id bigint;
    v_lock_timeout text := current_setting('lock_timeout');
begin
    if p_rows is null or p_rows < 0 or p_sha256 is null or p_sha256 !~ '^[0-9a-f]{64}$'
        or p_location is null or length(p_location) not between 1 and 1000 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'An archive names its rows, the SHA-256 of its content (64 hex digits) and its location';
    end if;
    select d.* into v_due from crypto.partition_due(p_partition) as d;
    perform crypto.require_job_claim('partition.archive', 'archives a partition');
    if current_setting('oxp.archive_read', true) is distinct from p_partition or not exists (
        select from pg_locks as l
        where l.locktype = 'relation' and l.pid = pg_backend_pid() and l.granted and l.mode = 'ShareLock'
            and l.relation = format('crypto.%I', p_partition)::regclass
            and l.database = (select d.oid from pg_database as d where d.datname = current_database())
    ) then
        raise exception using errcode = 'OX179', message = 'ARCHIVE_MISMATCH',
            detail = format('%s was not read in this transaction (crypto.partition_archive_rows)', p_partition);
    end if;
    execute format(
        'select count(*), encode(sha256(convert_to('
        'coalesce(string_agg(to_jsonb(r)::text || E''\n'', '''' order by r.id), ''''), ''UTF8'')), ''hex'') '
        'from crypto.%I as r', p_partition
    ) into v_rows, v_sha256;
    if (v_rows, v_sha256) is distinct from (p_rows, p_sha256) then
        raise exception using errcode = 'OX179', message = 'ARCHIVE_MISMATCH',
            detail = format('%s holds %s rows (SHA-256 %s), the archive %s (%s)', p_partition, v_rows, v_sha256,
                p_rows, p_sha256);
    end if;
    -- A writer of this old month waits on its SHARE lock while it holds the
    -- parent, which the drop needs: the archive gives way (55P03, its job is
    -- retried) rather than deadlock with it. Checked just before the
    -- parent's lock, which is waited for half the deadlock check's delay at
    -- most: a writer that begins to wait in between makes this lock time
    -- out before either deadlock check runs.
    if exists (
        select from pg_locks as l
        where l.locktype = 'relation' and not l.granted and l.relation = format('crypto.%I', p_partition)::regclass
            and l.database = (select d.oid from pg_database as d where d.datname = current_database())
    ) then
        raise exception using errcode = '55P03', message = 'lock_not_available',
            detail = format('a writer waits on %s: archived at the next attempt', p_partition);
    end if;
    perform set_config(
        'lock_timeout',
        greatest(1, (extract(epoch from current_setting('deadlock_timeout')::interval) * 500)::int) || 'ms',
        true
    );
    execute format('lock table %s in access exclusive mode', v_due.parent);
    execute format('drop table crypto.%I', p_partition);
    perform set_config('lock_timeout', v_lock_timeout, true);
    insert into crypto.partition_archives
        (parent, partition, range_from, range_to, rows, sha256, location, archived_at)
    values (v_due.parent, p_partition, v_due.range_from, v_due.range_to, p_rows, p_sha256, p_location, crypto.now())
    returning id into v_id;
    -- The parent stays locked until the worker commits: a worker that
    -- stalls now loses its session after 2 s, and nothing of this is kept.
    perform set_config('idle_in_transaction_session_timeout', '2s', true);
    perform crypto.audit(crypto.current_actor(), 'partition.archived', p_partition, jsonb_build_object(
        'parent', v_due.parent, 'rows', p_rows, 'sha256', p_sha256, 'location', p_location
    ));
    return jsonb_build_object(
        'id', v_id, 'parent', v_due.parent, 'partition', p_partition, 'rows', p_rows,
        'range_from', v_due.range_from, 'range_to', v_due.range_to, 'sha256', p_sha256, 'location', p_location
    );
end
$$;

grant execute on function crypto.partition_archived(text, bigint, text, text) to oxp_service;
