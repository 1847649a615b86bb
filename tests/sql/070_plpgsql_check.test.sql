begin;
select plan(1);

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
        ) else 0 end
    ) as c
    where n.nspname in ('crypto', 'api') and l.lanname = 'plpgsql'
    $$,
    'plpgsql_check reports nothing for any function'
);

select * from finish();
rollback;
