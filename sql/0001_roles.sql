-- Roles are cluster-wide, so each is created only when missing.
-- The PostgREST model: one login role with no rights of its own that
-- switches, per request, to the role named by the verified token.
do $roles$
declare
    r record;
begin
    for r in
        select *
        from (values
            ('authenticator', 'login noinherit'),
            ('anon', 'nologin'),
            ('app_user', 'nologin'),
            ('app_admin', 'nologin'),
            ('oxp_service', 'login'),
            ('auditor', 'login')
        ) as v (rolname, options)
    loop
        if not exists (select from pg_roles where rolname = r.rolname) then
            execute format('create role %I %s', r.rolname, r.options);
        end if;
    end loop;
end
$roles$;

grant anon to authenticator;
grant app_user to authenticator;
grant app_admin to authenticator;

-- A runaway API query must not hold a connection the pool needs.
alter role anon set statement_timeout = '5s';
alter role app_user set statement_timeout = '5s';
alter role app_admin set statement_timeout = '30s';
alter role auditor set default_transaction_read_only = on;
