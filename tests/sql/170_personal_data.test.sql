-- Personal data (issue 9, item 13): who may read an email, and where emails
-- must never be written. The audit log is append-only and hash-chained, and
-- alerts leave the database (webhooks): an email written there could never
-- be erased, so they name a user by id.
begin;
select plan(6);

-- Every statement of every function: an audit row or an alert that carries
-- an email (a column, a parameter or a key named so) fails here.
select is_empty(
    $$ select p.oid::regprocedure::text
       from pg_proc as p
       join pg_namespace as n on n.oid = p.pronamespace,
           regexp_split_to_table(p.prosrc, ';') as statement
       where n.nspname in ('crypto', 'api', 'audit')
           and (statement ~* 'crypto\.audit\s*\(' or statement ~* 'insert\s+into\s+crypto\.system_health')
           and statement ~* '(\.email\M|''email''|p_email)' $$,
    'no function writes an email into the audit log or an alert'
);

-- Who reads emails: the player their own (RLS), the worker that mails the
-- links, the auditor; nobody else, and the API's login not at all.
select results_eq(
    $$ select r.rolname::text collate "default" from pg_roles as r
       where r.rolname in ('anon', 'app_user', 'app_admin', 'oxp_service', 'auditor', 'authenticator')
           and has_column_privilege(r.rolname, 'crypto.users', 'email', 'select')
       order by 1 $$,
    $$ values ('app_user'::text), ('auditor'), ('oxp_service') $$,
    'exactly these roles may select users.email'
);
select is_empty(
    $$ select r.rolname::text || '.' || c.column_name
       from pg_roles as r,
           (values ('password_hash'), ('totp_secret'), ('totp_secret_enc'), ('google_sub')) as c (column_name)
       where r.rolname in ('anon', 'app_user', 'app_admin', 'oxp_service', 'auditor', 'authenticator')
           and has_column_privilege(r.rolname, 'crypto.users', c.column_name, 'select') $$,
    'password hashes, second factors and Google ids: the owner only'
);

select tests.create_user('first@example.com') as first \gset
select tests.create_user('second@example.com') as second \gset
select tests.authenticate_as(:'first');
set local role app_user;
select results_eq($$ select email from crypto.users $$, $$ values ('first@example.com') $$,
    'a player selecting every user sees only their own row');
reset role;

-- The operator's acts on a user are audited under the user's id.
set local role oxp_operator;
select lives_ok($$ select crypto.verify_email_by_operator('second@example.com') $$, 'an operator verifies');
reset role;
select is_empty(
    $$ select id from crypto.audit_logs where subject like '%@%' or details::text like '%@%' $$,
    'no audit row names an email'
);

select * from finish();
rollback;
