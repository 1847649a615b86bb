-- app_admin reaches the crypto schema's definer functions (everything
-- that changes the game or reads past row security) only through the
-- api.admin_* functions, which check the caller is an admin first: the
-- admin API's database login alone, without an admin's token, must not
-- adjust points or settings. Grants made in other files are taken back
-- here, last, on every migrate; crypto.now() stays (the clock).
do $revoke$
declare
    r record;
begin
    for r in
        select p.oid::regprocedure as fn
        from pg_proc as p
        join pg_namespace as n on n.oid = p.pronamespace
        where n.nspname = 'crypto' and p.prosecdef and p.proname <> 'now'
            and has_function_privilege('app_admin', p.oid, 'execute')
    loop
        execute format('revoke execute on function %s from app_admin', r.fn);
    end loop;
end
$revoke$;
