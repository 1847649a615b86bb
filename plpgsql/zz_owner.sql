-- Last of the repeatable files (named to sort last): everything the
-- migrations created in our schemas passes to oxp_owner, a NOLOGIN role that
-- is not a superuser. SECURITY DEFINER functions then run with the rights of
-- the tables' owner and no more: no superuser bypass if one is ever
-- tricked. Privileges granted on an object are kept when its owner changes.
do $owner$
declare
    r record;
begin
    for r in
        select n.nspname from pg_namespace as n
        where n.nspname in ('api', 'crypto', 'audit') and n.nspowner <> 'oxp_owner'::regrole
    loop
        execute format('alter schema %I owner to oxp_owner', r.nspname);
    end loop;
    -- Tables, views and sequences (a sequence a column owns follows its table).
    for r in
        select c.oid::regclass as rel from pg_class as c
        join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname in ('api', 'crypto', 'audit')
            and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
            and c.relowner <> 'oxp_owner'::regrole
            and not exists (
                select from pg_depend as d
                where d.classid = 'pg_class'::regclass and d.objid = c.oid
                    and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i')
            )
    loop
        execute format('alter table %s owner to oxp_owner', r.rel);
    end loop;
    for r in
        select p.oid::regprocedure as routine from pg_proc as p
        join pg_namespace as n on n.oid = p.pronamespace
        where n.nspname in ('api', 'crypto', 'audit') and p.proowner <> 'oxp_owner'::regrole
    loop
        execute format('alter routine %s owner to oxp_owner', r.routine);
    end loop;
    -- Enums, domains and standalone composite types.
    for r in
        select t.oid::regtype as type_name, t.typtype from pg_type as t
        join pg_namespace as n on n.oid = t.typnamespace
        left join pg_class as c on c.oid = t.typrelid
        where n.nspname in ('api', 'crypto', 'audit') and t.typowner <> 'oxp_owner'::regrole
            and (t.typtype in ('e', 'd') or (t.typtype = 'c' and c.relkind = 'c'))
    loop
        execute format(
            'alter %s %s owner to oxp_owner', case when r.typtype = 'd' then 'domain' else 'type' end, r.type_name
        );
    end loop;
end
$owner$;
