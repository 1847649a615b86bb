begin;
select plan(2);

-- Every PL/pgSQL function passes plpgsql_check (the bodies sqlfluff cannot read).
select is_empty(
    $$
    select p.oid::regprocedure::text, c.*
    from pg_proc as p
    join pg_namespace as n on n.oid = p.pronamespace
    join pg_language as l on l.oid = p.prolang
    cross join lateral plpgsql_check_function_tb(
        p.oid,
        -- A trigger function is checked against a table it is attached to.
        relid => case when p.prorettype = 'trigger'::regtype then coalesce(
            (select t.tgrelid from pg_trigger as t where t.tgfoid = p.oid order by t.tgrelid limit 1),
            'crypto.ledger_entries'::regclass
        ) else 0 end,
        -- A statement trigger's rows, under the name its trigger gives them.
        newtable => (select t.tgnewtable from pg_trigger as t where t.tgfoid = p.oid order by t.tgrelid limit 1)
    ) as c
    where n.nspname in ('crypto', 'api') and l.lanname = 'plpgsql'
    $$,
    'plpgsql_check reports nothing for any function'
);

-- Every PL/pgSQL function (and every definer function) pins its search_path,
-- so a caller's path never redirects a name. Only small language sql
-- helpers may go without, to be inlined (CONVENTIONS.md).
select is_empty(
    $$
    select p.oid::regprocedure::text
    from pg_proc as p
    join pg_namespace as n on n.oid = p.pronamespace
    join pg_language as l on l.oid = p.prolang
    where n.nspname in ('crypto', 'api', 'audit')
    and (l.lanname = 'plpgsql' or p.prosecdef)
    and not exists (select from unnest(p.proconfig) as c where c like 'search_path=%')
    $$,
    'every PL/pgSQL or SECURITY DEFINER function sets search_path (listed when one does not)'
);

select * from finish();
rollback;
