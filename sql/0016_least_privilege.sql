-- Least privilege (issue 9, item 5). Roles are cluster-wide, so each is
-- created only when missing.
--   oxp_owner            owns the schemas, their tables and every function,
--                        so SECURITY DEFINER runs as a role that is not a
--                        superuser (plpgsql/zz_owner.sql hands over what a
--                        migration created, on every migrate).
--   auth_service         the sign-in helpers; only the shim switches to it.
--   admin_authenticator  the admin routes' login: it can become app_admin
--                        and nothing else; authenticator no longer can.
--   oxp_operator         the CLI: what the worker may do and also promote
--                        admins, adjust points, shift the clock, schedule.
do $roles$
declare
    r record;
begin
    for r in
        select *
        from (values
            ('oxp_owner', 'nologin'),
            ('auth_service', 'nologin'),
            ('admin_authenticator', 'login noinherit'),
            ('oxp_operator', 'login')
        ) as v (rolname, options)
    loop
        if not exists (select from pg_roles where rolname = r.rolname) then
            execute format('create role %I %s', r.rolname, r.options);
        end if;
    end loop;
end
$roles$;

-- The owner reads pg_cron's job list for api.admin_health (its rows are
-- filtered by owner, and the jobs belong to oxp_service).
alter role oxp_owner nosuperuser nocreaterole nocreatedb bypassrls;
grant usage on schema ext to oxp_owner;
grant execute on all functions in schema ext to oxp_owner;

revoke app_admin from authenticator;
grant app_admin to admin_authenticator;
grant auth_service to authenticator;
alter role auth_service set statement_timeout = '5s';

grant usage on schema api to auth_service;
grant select on crypto.error_codes to auth_service;

-- The operator may do all the worker may, and what the worker may not.
grant oxp_service to oxp_operator;
alter role oxp_operator bypassrls;
grant usage on schema api, crypto to oxp_operator;

-- What moved: off anon and app_user onto auth_service, off oxp_service onto
-- oxp_operator. The repeatable files grant the new way; these revokes undo
-- the old grants where the functions already exist.
do $moved$
declare
    r record;
begin
    for r in
        select *
        from (values
            ('api.login_lookup(text)', 'anon'),
            ('api.login_failed(text)', 'anon'),
            ('api.mfa_verify(uuid, text, text, bytea)', 'anon'),
            ('api.oauth_begin(text, text, text, text, bytea)', 'anon'),
            ('api.oauth_consume(text, bytea)', 'anon'),
            ('api.oauth_login(text, text, text)', 'anon'),
            ('api.rate_limit(text, uuid, text[])', 'anon'),
            ('api.refresh(bytea, bytea)', 'anon'),
            ('api.logout(bytea)', 'anon'),
            ('api.verify_email(bytea)', 'anon'),
            ('api.issue_refresh(bytea)', 'app_user'),
            ('crypto.adjust_points(text, bigint, text, text)', 'oxp_service'),
            ('crypto.adjustment_key(text, bigint, text)', 'oxp_service'),
            ('crypto.audit_verify()', 'oxp_service'),
            ('crypto.sync_calendar(jsonb)', 'oxp_service'),
            ('crypto.clock_set(timestamptz)', 'oxp_service'),
            ('crypto.clock_reset()', 'oxp_service'),
            ('crypto.correct_settlement(date, jsonb, text)', 'oxp_service'),
            ('crypto.verify_email_by_operator(text)', 'oxp_service'),
            ('crypto.eod_prices_problems(jsonb, boolean)', 'oxp_service'),
            ('crypto.load_eod_prices(jsonb, text)', 'oxp_service'),
            ('crypto.integrity_violations()', 'oxp_service'),
            ('crypto.enqueue_job(text, jsonb, text, integer)', 'oxp_service'),
            ('crypto.jobs_list(text, integer)', 'oxp_service'),
            ('crypto.job_retry(bigint)', 'oxp_service'),
            ('crypto.job_cancel(bigint, text)', 'oxp_service'),
            ('crypto.sessions_list(date, date, integer)', 'oxp_service'),
            ('crypto.eod_day(date)', 'oxp_service'),
            ('crypto.redemptions_list(text, bigint, integer)', 'oxp_service'),
            ('crypto.users_list(text, integer)', 'oxp_service'),
            ('crypto.user_detail(text, integer)', 'oxp_service'),
            ('crypto.user_ledger(text, bigint, integer)', 'oxp_service'),
            ('crypto.demote_admin(text)', 'oxp_service'),
            ('crypto.reset_totp(text, text, text)', 'oxp_service'),
            ('crypto.cancel_redemption(bigint, text)', 'oxp_service'),
            ('crypto.upsert_reward(text, text, bigint, integer, boolean)', 'oxp_service'),
            ('crypto.open_session(date)', 'oxp_service'),
            ('crypto.close_session(date)', 'oxp_service'),
            ('crypto.begin_settling(date)', 'oxp_service'),
            ('crypto.finish_settling(date)', 'oxp_service'),
            ('crypto.setting_set(text, text)', 'oxp_service'),
            ('crypto.settle_session(date, boolean)', 'oxp_service'),
            ('crypto.make_admin(text, text, text)', 'oxp_service'),
            ('crypto.set_universe(date, text[], boolean)', 'oxp_service')
        ) as v (signature, rolname)
    loop
        if to_regprocedure(r.signature) is not null then
            execute format('revoke execute on function %s from %I', r.signature, r.rolname);
        end if;
    end loop;
    -- pg_cron: only the operator schedules (pg_cron/schedule.sql installs
    -- the jobs as the owner, for oxp_service to run).
    if to_regprocedure('cron.schedule(text, text, text)') is not null then
        revoke execute on function cron.schedule(text, text, text), cron.unschedule(name) from oxp_service;
    end if;
end
$moved$;
