-- Cold storage of the ledger's old months (sql/0045_cold_months.sql, issue
-- 14 item 6). Money is never dropped: a month past
-- retention.ledger_hot_months is copied into the tablespace oxp_cold
-- (cheaper disk, made by `oxp db cold-storage init`) and swapped in for the
-- original, still attached, so every query, check and page reads it as
-- before. One step per transaction (crypto.cold_step, driven by the
-- worker's partition.cold job), because no step may hold what players'
-- transfers need while it works:
--
--   freeze  a trigger that refuses any row joining the month (nothing should:
--           rows are dated by crypto.now(); a clock moved back by an operator
--           is what it guards against). A trigger, not a CHECK: making it
--           locks out the month's writers only, not its readers;
--   digest  its rows and their SHA-256, once, of what is now fixed;
--   (wait)  until a restore drill found those very rows in a restored
--           backup (crypto.cold_backed_up, from the drill): the month is
--           in a verified backup before its original leaves the main disk;
--   copy    into oxp_cold, checked against the digest (no lock a writer
--           of the current month waits on);
--   keys    the parent's foreign keys on the copy, NOT VALID (a brief lock
--           of ledger_accounts);
--   check   them validated (no lock a transfer waits on);
--   swap    the original detached and dropped, the copy attached in its
--           place under its name: catalog work only, under every lock at
--           once, waited for 100 ms at most (below half the deadlock
--           check's delay: 55P03 and a later attempt, never a deadlock).

-- A frozen month's guard: no row joins it (its rows are never updated or
-- deleted either: the append-only triggers cloned from the parent).
create or replace function crypto.tg_cold_frozen__refuse() returns trigger
language plpgsql
set search_path = crypto, pg_temp
as $$
begin
    raise exception using errcode = '23514', message = 'VALIDATION_FAILED',
        detail = format('%s is frozen for cold storage: no row may join it (crypto.cold_months)', tg_table_name);
end
$$;

-- The tables that move: append-only and dated by crypto.now(). Predictions
-- are updated by settlement and corrections, and audit_logs by the seal.
create or replace function crypto.cold_tables() returns text[]
language sql immutable
return array['crypto.ledger_transfers', 'crypto.ledger_entries'];

-- The cold tablespace, or null: without it nothing moves.
create or replace function crypto.cold_tablespace() returns oid
language sql stable
return (
    select t.oid from pg_catalog.pg_tablespace as t
    where t.spcname = 'oxp_cold'
);

-- The months past retention.ledger_hot_months (measured on the earlier of
-- the wall clock and crypto.now(), as the log retention is) not moved yet,
-- oldest first, and what comes next for each: freeze, digest, wait (for a
-- restore drill) or move.
create or replace function crypto.cold_months_due()
returns table (parent text, partition text, range_from timestamptz, range_to timestamptz, step text)
language plpgsql stable security definer
set search_path = crypto, pg_temp
set timezone = 'UTC'
as $$
declare
    v_cutoff timestamptz := date_trunc('month', least(now(), crypto.now()))
        - make_interval(months => crypto.setting_int('retention.ledger_hot_months')::int);
begin
    if crypto.cold_tablespace() is null then
        return;
    end if;
    return query
    select t.parent, c.relname::text, p.child_start_time, p.child_end_time,
        case
            when m.partition is null then 'freeze'
            when m.digest is null then 'digest'
            when m.backed_up_at is null then 'wait'
            else 'move'
        end
    from unnest(crypto.cold_tables()) as t (parent)
    join pg_catalog.pg_inherits as i on i.inhparent = t.parent::regclass
    join pg_catalog.pg_class as c on c.oid = i.inhrelid
    cross join lateral partman.show_partition_info(
        format('crypto.%I', c.relname), p_parent_table => t.parent
    ) as p
    left join crypto.cold_months as m on m.partition = c.relname
    where p.child_end_time <= v_cutoff and m.moved_at is null
    order by p.child_start_time, t.parent;
end
$$;

grant execute on function crypto.cold_months_due() to oxp_service, oxp_operator;

-- A month's rows and the SHA-256 of their text (each row's MD5, in id
-- order), in UTC: the same rows give the same digest on any cluster.
create or replace function crypto.cold_digest(p_table text)
returns table (rows bigint, digest text)
language plpgsql stable
set search_path = crypto, pg_temp
set timezone = 'UTC'
as $$
begin
    execute format(
        'select count(*), encode(sha256(coalesce(string_agg(decode(md5(r::text), ''hex''), '''' order by r.id),'
        ' '''')), ''hex'') from crypto.%I as r', p_table
    ) into rows, digest;
    return next;
end
$$;

-- Daily from pg_cron: the job, when a month has a step to take.
create or replace function crypto.enqueue_cold_storage() returns bigint
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
begin
    if not exists (select from crypto.cold_months_due() as d where d.step <> 'wait') then
        return null;
    end if;
    return crypto.enqueue_job(
        'partition.cold', '{}',
        format('partition.cold:%s', to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD'))
    );
end
$$;

grant execute on function crypto.enqueue_cold_storage() to oxp_service;

-- From the restore drill, run in the restored cluster: the digest of every
-- frozen month there that no drill vouched for yet. Its rows are what the
-- backup holds.
create or replace function crypto.cold_backup_digests() returns jsonb
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
declare
    v_month record;
    v_found jsonb := '[]'::jsonb;
    v_rows bigint;
    v_digest text;
begin
    for v_month in
        select m.partition from crypto.cold_months as m
        where m.digest is not null and m.backed_up_at is null
        order by 1
    loop
        select d.rows, d.digest into v_rows, v_digest from crypto.cold_digest(v_month.partition) as d;
        v_found := v_found || jsonb_build_object('partition', v_month.partition, 'rows', v_rows, 'digest', v_digest);
    end loop;
    return v_found;
end
$$;

-- The drill's word, on the live database: these months were found, with
-- these rows, in the backup it restored. A month whose rows and digest
-- are the ones recorded when it was frozen counts as backed up; any other
-- is left waiting. Only the worker, while it holds a backup.verify job.
create or replace function crypto.cold_backed_up(p_found jsonb, p_backup text) returns integer
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_count integer;
begin
    if p_found is null or jsonb_typeof(p_found) <> 'array' or p_backup is null
        or length(p_backup) not between 1 and 200 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'The drill reports an array of months (partition, rows, digest) and the backup it restored';
    end if;
    perform crypto.require_job_claim('backup.verify', 'reports what a restored backup holds');
    -- An operator may do the worker's work (a member of oxp_service), and so
    -- could claim a drill's job: not this one, whose word lets a month leave
    -- the main disk. The worker's own login (or a superuser's) only.
    if pg_has_role(session_user, 'oxp_operator', 'member')
        and not (select r.rolsuper from pg_catalog.pg_roles as r where r.rolname = session_user) then
        raise exception using errcode = '42501', message = 'FORBIDDEN',
            detail = 'Only the worker''s login reports what a restored backup holds, not an operator''s';
    end if;
    update crypto.cold_months as m
    set backed_up_at = clock_timestamp(), backup = p_backup
    from jsonb_to_recordset(p_found) as f (partition text, rows bigint, digest text)
    where m.partition = f.partition and m.rows = f.rows and m.digest = f.digest and m.backed_up_at is null;
    get diagnostics v_count = row_count;
    return v_count;
end
$$;

grant execute on function crypto.cold_backed_up(jsonb, text) to oxp_service;

-- The next step of one month (see the top of this file), in the caller's
-- transaction, which should end right after it: every lock taken is
-- waited for 100 ms at most (55P03: try again).
-- Returns the step taken: frozen, digested, waiting (for a restore drill),
-- copied, keyed, checked (or discarded: a copy that changed) or moved.
create or replace function crypto.cold_step(p_partition text) returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
set timezone = 'UTC'
as $$
declare
    v_due record;
    v_month crypto.cold_months;
    v_copy text;
    v_rows bigint;
    v_digest text;
    v_columns text;
    v_key record;
    v_step text;
    v_lock_timeout text := current_setting('lock_timeout');
    -- Every lock is waited for 100 ms at most, and never half the deadlock
    -- check's delay: what queues behind a step's lock request (transfers,
    -- behind the keys' and the swap's) waits no longer than that, and a
    -- step holding a lock another waits for gives way before either
    -- deadlock check runs.
    v_wait text := least(100, greatest(1,
        (extract(epoch from current_setting('deadlock_timeout')::interval) * 500)::int)) || 'ms';
begin
    perform crypto.require_job_claim('partition.cold', 'moves a month');
    -- One step at a time across workers: two partition.cold jobs never
    -- work on what the other reads (the state below is read after this).
    perform pg_advisory_xact_lock(hashtext('crypto.cold_step'));
    select d.* into v_due from crypto.cold_months_due() as d where d.partition = p_partition;
    if not found then
        raise exception using errcode = 'OX181', message = 'COLD_NOT_DUE',
            detail = format('%s is not a ledger month past retention.ledger_hot_months, or oxp_cold does not exist',
                coalesce(p_partition, 'null'));
    end if;
    select m.* into v_month from crypto.cold_months as m where m.partition = p_partition;
    v_copy := p_partition || '_cold';
    perform set_config('lock_timeout', v_wait, true);

    if v_due.step = 'freeze' then
        -- Waits for the month's writers (none: it is months old), never for
        -- its readers (CREATE TRIGGER takes a SHARE ROW EXCLUSIVE lock).
        execute format('create trigger cold_frozen before insert on crypto.%I'
            ' for each row execute function crypto.tg_cold_frozen__refuse()', p_partition);
        insert into crypto.cold_months (partition, parent, range_from, range_to, frozen_at)
        values (p_partition, v_due.parent, v_due.range_from, v_due.range_to, clock_timestamp());
        v_step := 'frozen';
    elsif v_due.step = 'digest' then
        select d.rows, d.digest into v_rows, v_digest from crypto.cold_digest(p_partition) as d;
        update crypto.cold_months set rows = v_rows, digest = v_digest where partition = p_partition;
        v_step := 'digested';
    elsif v_due.step = 'wait' then
        v_step := 'waiting';
    elsif v_month.copied_at is null or to_regclass(format('crypto.%I', v_copy)) is null then
        -- A copy left by an attempt that stopped before the swap is made again.
        execute format('drop table if exists crypto.%I', v_copy);
        perform set_config('default_tablespace', 'oxp_cold', true);
        execute format(
            'create table crypto.%I (like %s including defaults including constraints including indexes'
            ' including storage)', v_copy, v_due.parent
        );
        perform set_config('default_tablespace', '', true);
        -- By name: a month converted in place (sql/0041) may order its columns otherwise.
        select string_agg(quote_ident(a.attname), ', ' order by a.attnum) into v_columns
        from pg_catalog.pg_attribute as a
        where a.attrelid = v_due.parent::regclass and a.attnum > 0 and not a.attisdropped;
        execute format('insert into crypto.%I (%s) select %s from crypto.%I', v_copy, v_columns, v_columns, p_partition);
        select d.rows, d.digest into v_rows, v_digest from crypto.cold_digest(v_copy) as d;
        if (v_rows, v_digest) is distinct from (v_month.rows, v_month.digest) then
            raise exception using errcode = 'OX182', message = 'COLD_MISMATCH',
                detail = format('the copy of %s holds %s rows (SHA-256 %s), the month was frozen with %s (%s)',
                    p_partition, v_rows, v_digest, v_month.rows, v_month.digest);
        end if;
        -- What lets the attach skip reading the copy again (the partition
        -- key of both tables is created_at), and the freeze, kept.
        execute format(
            'alter table crypto.%I add constraint cold_bounds check (created_at is not null'
            ' and created_at >= %L and created_at < %L)', v_copy, v_due.range_from, v_due.range_to
        );
        -- The guards of a month from the start (row security, no insert, no
        -- update or delete, no truncate): nothing changes the copy while it
        -- waits between transactions. cold_append_only gives way to the
        -- parent's own clone at the swap.
        execute format('alter table crypto.%I enable row level security', v_copy);
        execute format('create trigger cold_frozen before insert on crypto.%I'
            ' for each row execute function crypto.tg_cold_frozen__refuse()', v_copy);
        execute format('create trigger cold_append_only before update or delete on crypto.%I'
            ' for each row execute function crypto.tg_append_only__refuse()', v_copy);
        execute format('create trigger no_truncate before truncate on crypto.%I'
            ' for each statement execute function crypto.tg_append_only__refuse()', v_copy);
        -- Statistics from the start: a month attached without them is planned blind.
        execute format('analyze crypto.%I', v_copy);
        update crypto.cold_months set copied_at = clock_timestamp() where partition = p_partition;
        v_step := 'copied';
    elsif exists (
        select from pg_catalog.pg_constraint as k
        where k.conrelid = v_due.parent::regclass and k.contype = 'f'
            and not exists (
                select from pg_catalog.pg_constraint as c
                where c.conrelid = format('crypto.%I', v_copy)::regclass and c.conname = k.conname
            )
    ) then
        for v_key in
            select k.conname, pg_get_constraintdef(k.oid) as def from pg_catalog.pg_constraint as k
            where k.conrelid = v_due.parent::regclass and k.contype = 'f'
                and not exists (
                    select from pg_catalog.pg_constraint as c
                    where c.conrelid = format('crypto.%I', v_copy)::regclass and c.conname = k.conname
                )
        loop
            execute format('alter table crypto.%I add constraint %I %s not valid', v_copy, v_key.conname, v_key.def);
        end loop;
        v_step := 'keyed';
    elsif exists (
        select from pg_catalog.pg_constraint as c
        where c.conrelid = format('crypto.%I', v_copy)::regclass and c.contype = 'f' and not c.convalidated
    ) then
        for v_key in
            select c.conname from pg_catalog.pg_constraint as c
            where c.conrelid = format('crypto.%I', v_copy)::regclass and c.contype = 'f' and not c.convalidated
        loop
            execute format('alter table crypto.%I validate constraint %I', v_copy, v_key.conname);
        end loop;
        -- The copy once more, in the last step before the swap (it waited
        -- between transactions): still exactly the frozen rows, or it
        -- is discarded and made again from the original (whose copy is
        -- checked against the digest in turn: OX182 if the original moved).
        select d.rows, d.digest into v_rows, v_digest from crypto.cold_digest(v_copy) as d;
        if (v_rows, v_digest) is distinct from (v_month.rows, v_month.digest) then
            execute format('drop table crypto.%I', v_copy);
            update crypto.cold_months set copied_at = null where partition = p_partition;
            v_step := 'discarded';
        else
            v_step := 'checked';
        end if;
    else
        -- Every lock in one statement, each waited for 100 ms at most: a
        -- session that holds one and waits for another makes this one give
        -- way before either deadlock check runs.
        -- ledger_accounts first, and exclusively: detaching, attaching and
        -- dropping a month add and remove the foreign keys' triggers there,
        -- and a transfer locks its accounts before it writes its month.
        execute format(
            'lock table crypto.ledger_accounts, only %s, only crypto.%I, crypto.%I in access exclusive mode',
            v_due.parent, p_partition, v_copy);
        execute format('alter table %s detach partition crypto.%I', v_due.parent, p_partition);
        execute format('drop table crypto.%I', p_partition);
        execute format('alter table crypto.%I rename to %I', v_copy, p_partition);
        execute format('alter table %s attach partition crypto.%I for values from (%L) to (%L)',
            v_due.parent, p_partition, v_due.range_from, v_due.range_to);
        execute format('alter table crypto.%I drop constraint cold_bounds', p_partition);
        execute format('drop trigger if exists cold_append_only on crypto.%I', p_partition);
        for v_key in
            select i.relname from pg_catalog.pg_index as x join pg_catalog.pg_class as i on i.oid = x.indexrelid
            where x.indrelid = format('crypto.%I', p_partition)::regclass and left(i.relname, length(v_copy)) = v_copy
        loop
            execute format('alter index crypto.%I rename to %I', v_key.relname,
                p_partition || substr(v_key.relname, length(v_copy) + 1));
        end loop;
        perform crypto.partition_guard(format('crypto.%I', p_partition)::regclass);
        update crypto.cold_months set moved_at = clock_timestamp() where partition = p_partition;
        perform crypto.audit(crypto.current_actor(), 'partition.cold', p_partition, jsonb_build_object(
            'parent', v_due.parent, 'rows', v_month.rows, 'digest', v_month.digest, 'backup', v_month.backup,
            'tablespace', 'oxp_cold'
        ));
        v_step := 'moved';
    end if;
    perform set_config('lock_timeout', v_lock_timeout, true);
    return jsonb_build_object('partition', p_partition, 'step', v_step);
end
$$;

grant execute on function crypto.cold_step(text) to oxp_service;
