-- Every function a role may call says what it does in `\df+` (CONVENTIONS.md):
-- every api function, and every crypto function that anon, app_user,
-- app_admin, oxp_service or the auditor may execute. The comments live in
-- plpgsql/zz_comments.sql.
begin;
select plan(4);

-- The rule as a view, so the test below can show it catches what it must.
create temporary view uncommented as
select p.oid::regprocedure::text as function
from pg_proc as p
join pg_namespace as n on n.oid = p.pronamespace
where
    obj_description(p.oid, 'pg_proc') is null
    and (
        n.nspname = 'api'
        or (n.nspname = 'crypto' and exists (
            select
            from unnest(array[
                'anon', 'auth_service', 'app_user', 'app_admin', 'ad_network', 'oxp_service', 'oxp_operator', 'auditor'
            ]) as r (role_name)
            where has_function_privilege(r.role_name, p.oid, 'execute')
        ))
    );

select is_empty(
    $$ select function from uncommented order by 1 $$,
    'every api function and every crypto function a role may execute has a comment (listed when missing)'
);

-- The guard can fail: a new api function, and a crypto one granted to the
-- auditor, are listed until they get a comment; an owner-only crypto helper
-- (EXECUTE revoked from PUBLIC by default) is not required to have one.
create function api.tests_uncommented() returns int language sql as $$ select 1 $$;
create function crypto.tests_granted() returns int language sql as $$ select 1 $$;
grant execute on function crypto.tests_granted() to auditor;
create function crypto.tests_private() returns int language sql as $$ select 1 $$;
select results_eq(
    $$ select function from uncommented order by 1 $$,
    $$ values ('api.tests_uncommented()'), ('crypto.tests_granted()') $$,
    'a new api function and a granted crypto function without a comment are listed; a private helper is not'
);
comment on function api.tests_uncommented() is 'A function of this test, commented now.';
comment on function crypto.tests_granted() is 'A function of this test, commented now.';
select is_empty($$ select function from uncommented $$, 'once commented, they are no longer listed');

-- A comment is a sentence, not a placeholder.
select is_empty(
    $$
    select p.oid::regprocedure::text
    from pg_proc as p
    join pg_namespace as n on n.oid = p.pronamespace
    where n.nspname in ('api', 'crypto') and length(btrim(obj_description(p.oid, 'pg_proc'))) < 20
    $$,
    'no function comment is empty or a stub'
);

select * from finish();
rollback;
