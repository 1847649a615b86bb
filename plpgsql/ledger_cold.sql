-- The ledger's old months go to cold storage (issue 14 item 6): moved,
-- whole and still attached, into the tablespace `oxp_cold` (made by the DBA
-- on cheaper disk, README "Ledger months on cold storage"), once they are
-- older than retention.ledger_hot_days and a restore drill has verified a
-- backup that holds them. Money is never dropped nor taken out of the
-- ledger: balances, the integrity run, a retry of an old key and a
-- player's whole history read a cold month as any other. Without a
-- tablespace `oxp_cold` nothing moves.
--
-- A month moves as a copy: made in oxp_cold with its indexes and foreign
-- keys while the month is only share-locked (readers go on; an old month
-- has no writers), compared with the original row for row, then swapped in
-- (the original detached and dropped, the copy attached) under the
-- parents' lock for milliseconds. ALTER TABLE ... SET TABLESPACE would hold
-- the month exclusively while it copies, and every ledger read that cannot
-- prune months (a player's page) would queue behind it.

-- The months that may move, oldest first, with the restore drill that
-- verified a backup of them: the first drill after a backup that began
-- once the month had ended (the drill restores the latest backup, so that
-- one or a later one). Months end on the earlier of the wall clock and
-- crypto.now() minus the setting (a clock shifted ahead never moves the
-- present).
create or replace function crypto.ledger_cold_due()
returns table (parent text, partition text, range_from timestamptz, range_to timestamptz, drill bigint)
language plpgsql stable security definer
set search_path = crypto, pg_temp
set timezone = 'UTC'
as $$
declare
    v_cold oid := (select t.oid from pg_tablespace as t where t.spcname = 'oxp_cold');
    v_cutoff timestamptz := least(now(), crypto.now()) - crypto.setting_interval('retention.ledger_hot_days');
begin
    if v_cold is null then
        return;
    end if;
    return query
    select t.parent, c.relname::text, p.child_start_time, p.child_end_time, d.id
    from unnest(array['crypto.ledger_transfers', 'crypto.ledger_entries']) as t (parent)
    join pg_inherits as i on i.inhparent = t.parent::regclass
    join pg_class as c on c.oid = i.inhrelid
    cross join lateral partman.show_partition_info(
        format('crypto.%I', c.relname), p_parent_table => t.parent
    ) as p
    cross join lateral (
        select v.id from crypto.job_runs as b
        join crypto.job_runs as v
            on v.job = 'backup.verify' and v.status = 'succeeded' and v.started_at >= b.finished_at
        where b.job in ('backup.full', 'backup.diff', 'backup.incr') and b.status = 'succeeded'
            and b.started_at >= p.child_end_time
        order by v.started_at
        limit 1
    ) as d
    where c.reltablespace <> v_cold and p.child_end_time <= v_cutoff
    order by p.child_start_time, t.parent;
end
$$;

-- A month's rows as one number: the count and the sum of each row's 64-bit
-- hash. The copy is written from the same rows in the same transaction; this
-- is the check that it holds them all and only them, byte for byte.
create or replace function crypto.ledger_cold_digest(p_table text, out row_count bigint, out row_hash numeric)
language plpgsql stable
set search_path = crypto, pg_temp
as $$
begin
    execute format(
        'select count(*), coalesce(sum(hashtextextended(r::text, 0)::numeric), 0) from crypto.%I as r', p_table
    ) into row_count, row_hash;
end
$$;

-- One month of one table into oxp_cold (owner only; crypto.ledger_cold_storage
-- chooses it). OX178 when it is not due.
create or replace function crypto.ledger_cold_move(p_partition text)
returns jsonb
language plpgsql volatile
set search_path = crypto, pg_temp
set timezone = 'UTC'
as $$
declare
    v_due record;
    v_copy text;
    v_index record;
    v_before record;
    v_after record;
    v_started timestamptz := clock_timestamp();
    v_swap timestamptz;
begin
    select d.* into v_due from crypto.ledger_cold_due() as d where d.partition = p_partition;
    if not found then
        raise exception using errcode = 'OX178', message = 'PARTITION_NOT_DUE',
            detail = format('%s is not a ledger month due for cold storage', coalesce(p_partition, 'null'));
    end if;
    v_copy := left(p_partition, 50) || '_cold';
    -- The month's lock is waited for 2 s at most (the job runs again
    -- tomorrow): long enough to make an autovacuum of it give way.
    perform set_config('lock_timeout', '2s', true);
    execute format('lock table crypto.%I in share mode', p_partition);
    -- Every other lock (the accounts, for a foreign key's moment; the
    -- parents) is one every ledger request would queue behind while this
    -- waits: half the deadlock check's delay at most.
    perform set_config('lock_timeout',
        greatest(1, (extract(epoch from current_setting('deadlock_timeout')::interval) * 500)::int) || 'ms', true);
    if to_regclass(format('crypto.%I', v_copy)) is not null then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = format('crypto.%s exists: a cold copy left by hand?', v_copy);
    end if;

    -- The copy, its relations in oxp_cold. Its CHECK of the month's range
    -- lets the attach below skip its scan under the parents' lock.
    perform set_config('default_tablespace', 'oxp_cold', true);
    execute format(
        'create table crypto.%I (like crypto.%I including defaults including constraints including storage)',
        v_copy, p_partition
    );
    execute format(
        'alter table crypto.%I add constraint %I check (created_at >= %L and created_at < %L)',
        v_copy, v_copy || '_range', v_due.range_from, v_due.range_to
    );
    execute format('insert into crypto.%I select * from crypto.%I order by id', v_copy, p_partition);
    -- The month's indexes again, on the copy: the attach adopts an equal
    -- one instead of building its own under the lock.
    for v_index in
        select
            x.indexrelid::regclass::text as name, n.conname, n.contype,
            pg_get_indexdef(x.indexrelid) as indexdef, pg_get_constraintdef(n.oid) as condef
        from pg_index as x
        left join pg_constraint as n on n.conindid = x.indexrelid and n.conrelid = x.indrelid
        where x.indrelid = format('crypto.%I', p_partition)::regclass
        order by x.indexrelid
    loop
        if v_index.contype::text in ('p', 'u') then
            execute format('alter table crypto.%I add constraint %I %s', v_copy,
                left(v_copy, 55) || '_' || v_index.contype::text || 'key', v_index.condef);
        else
            -- Named as the month's, with the copy's name for the month's.
            execute format('create index %I on crypto.%I %s',
                left(v_copy || substr(v_index.name, length('crypto.' || p_partition) + 1), 63),
                v_copy, substring(v_index.indexdef from ' USING .*$'));
        end if;
    end loop;
    perform set_config('default_tablespace', '', true);
    -- Its foreign keys, checked now: NOT VALID first, so the accounts are
    -- locked against writers only for the moment the key is added.
    for v_index in
        select n.conname, pg_get_constraintdef(n.oid) as condef
        from pg_constraint as n
        where n.conrelid = format('crypto.%I', p_partition)::regclass and n.contype = 'f'
        order by n.conname
    loop
        execute format('alter table crypto.%I add constraint %I %s not valid', v_copy, v_index.conname, v_index.condef);
        execute format('alter table crypto.%I validate constraint %I', v_copy, v_index.conname);
    end loop;

    select d.* into v_before from crypto.ledger_cold_digest(p_partition) as d;
    select d.* into v_after from crypto.ledger_cold_digest(v_copy) as d;
    if (v_before.row_count, v_before.row_hash) is distinct from (v_after.row_count, v_after.row_hash) then
        raise exception using errcode = 'OX179', message = 'ARCHIVE_MISMATCH',
            detail = format('the cold copy of %s holds %s rows (hash %s), the month %s (hash %s)', p_partition,
                v_after.row_count, v_after.row_hash, v_before.row_count, v_before.row_hash);
    end if;
    execute format('analyze crypto.%I', v_copy);

    -- The swap: the parents' lock, held from here to the commit.
    v_swap := clock_timestamp();
    execute format('alter table %s detach partition crypto.%I', v_due.parent, p_partition);
    execute format('drop table crypto.%I', p_partition);
    execute format('alter table crypto.%I rename to %I', v_copy, p_partition);
    execute format('alter table %s attach partition crypto.%I for values from (%L) to (%L)',
        v_due.parent, p_partition, v_due.range_from, v_due.range_to);
    perform crypto.partition_guard(format('crypto.%I', p_partition)::regclass);

    perform crypto.audit(crypto.current_actor(), 'partition.cold', p_partition, jsonb_build_object(
        'parent', v_due.parent, 'from', v_due.range_from, 'to', v_due.range_to, 'rows', v_after.row_count,
        'row_hash', v_after.row_hash::text, 'tablespace', 'oxp_cold', 'drill', v_due.drill
    ));
    return jsonb_build_object(
        'partition', p_partition, 'parent', v_due.parent, 'rows', v_after.row_count, 'drill', v_due.drill,
        'copy_seconds', round(extract(epoch from v_swap - v_started)::numeric, 3),
        'swap_seconds', round(extract(epoch from clock_timestamp() - v_swap)::numeric, 3)
    );
end
$$;

-- Daily from pg_cron (and `oxp db ledger-cold`): the oldest month due, one
-- per call, since the parents' lock is held to the commit.
create or replace function crypto.ledger_cold_storage()
returns jsonb
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_next text;
    v_moved jsonb;
begin
    if not exists (select from pg_tablespace as t where t.spcname = 'oxp_cold') then
        return jsonb_build_object('moved', null, 'due', 0, 'reason', 'no tablespace oxp_cold');
    end if;
    -- Made by the DBA, who grants the owner the right to create in it.
    if not has_tablespace_privilege('oxp_owner', 'oxp_cold', 'create') then
        raise exception using errcode = 'OX003', message = 'FORBIDDEN',
            detail = 'oxp_owner may not create in tablespace oxp_cold: grant create on tablespace oxp_cold to oxp_owner';
    end if;
    select d.partition into v_next from crypto.ledger_cold_due() as d order by d.range_from, d.parent limit 1;
    if v_next is null then
        return jsonb_build_object('moved', null, 'due', 0, 'reason', 'nothing due');
    end if;
    v_moved := crypto.ledger_cold_move(v_next);
    return jsonb_build_object('moved', v_moved, 'due', (select count(*) from crypto.ledger_cold_due()));
end
$$;

grant execute on function crypto.ledger_cold_storage() to oxp_service, oxp_operator;
grant execute on function crypto.ledger_cold_due() to oxp_service, oxp_operator;
