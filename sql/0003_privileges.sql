-- Nobody gets EXECUTE by default: every API function grants its own.
alter default privileges revoke execute on functions from public;
revoke all on schema public from public;

create schema api;
comment on schema api is 'The only functions the HTTP shim, the worker and the CLI call';

grant usage on schema api to anon, app_user, app_admin, oxp_service;
grant usage on schema crypto to app_user, app_admin, oxp_service, auditor;

-- The caller, as the shim put it in the transaction (PostgREST model).
create function crypto.auth_uid() returns uuid
language sql stable
as $$
    select nullif(nullif(current_setting('request.jwt.claims', true), '')::json ->> 'sub', '')::uuid
$$;
grant execute on function crypto.auth_uid() to anon, app_user, app_admin, oxp_service, auditor;

-- Row-level security on every table; the owner (who runs SECURITY DEFINER
-- functions) is exempt, every API role sees only what a policy allows.
do $rls$
declare
    t record;
begin
    for t in select tablename from pg_tables where schemaname = 'crypto' loop
        execute format('alter table crypto.%I enable row level security', t.tablename);
    end loop;
end
$rls$;

-- The auditor reads everything (never a secret column) and writes nothing.
alter role auditor bypassrls;
grant select on all tables in schema crypto to auditor;
revoke select on crypto.users from auditor;
grant select (id, email, google_sub, role, display_name, created_at, disabled_at)
on crypto.users to auditor;
revoke select on crypto.oauth_states from auditor;

-- Users read their own rows; they never write a table directly.
create policy "Users see themselves" on crypto.users
for select to app_user using ((select crypto.auth_uid()) = id);
grant select (id, email, role, display_name, created_at) on crypto.users to app_user;

create policy "Predictions are visible to their owner" on crypto.predictions
for select to app_user using ((select crypto.auth_uid()) = user_id);
grant select on crypto.predictions to app_user;

create policy "Daily limits are visible to their owner" on crypto.user_daily_limits
for select to app_user using ((select crypto.auth_uid()) = user_id);
grant select on crypto.user_daily_limits to app_user;

create policy "A points account is visible to its owner" on crypto.ledger_accounts
for select to app_user using ((select crypto.auth_uid()) = user_id);
grant select on crypto.ledger_accounts to app_user;

create policy "Ledger entries are visible to the account owner" on crypto.ledger_entries
for select to app_user using (
    account_id in (
        select a.id from crypto.ledger_accounts as a
        where a.user_id = (select crypto.auth_uid())
    )
);
grant select on crypto.ledger_entries to app_user;

create policy "Redemptions are visible to their owner" on crypto.rewards_redemptions
for select to app_user using ((select crypto.auth_uid()) = user_id);
grant select on crypto.rewards_redemptions to app_user;

create policy "Ad unlocks are visible to their owner" on crypto.ad_unlocks
for select to app_user using ((select crypto.auth_uid()) = user_id);
grant select on crypto.ad_unlocks to app_user;

-- The game's public facts are readable by any signed-in user.
create policy "Sessions are public" on crypto.session_control
for select to app_user using (true);
grant select on crypto.session_control to app_user;

create policy "Universes are public" on crypto.active_universe
for select to app_user using (true);
grant select on crypto.active_universe to app_user;

create policy "Settlements are public" on crypto.settlements
for select to app_user using (true);
grant select on crypto.settlements to app_user;

create policy "The trading calendar is public" on crypto.trading_calendar
for select to app_user using (true);
grant select on crypto.trading_calendar to app_user;

create policy "Error codes are public" on crypto.error_codes
for select to anon, app_user, app_admin, oxp_service using (true);
grant select on crypto.error_codes to anon, app_user, app_admin, oxp_service;

-- The service role (worker, pg_cron, CLI) reads everything and writes only
-- through functions, like every other role.
alter role oxp_service bypassrls;
grant select on all tables in schema crypto to oxp_service;
revoke select on crypto.users, crypto.oauth_states from oxp_service;
grant select (id, email, role, display_name, created_at, disabled_at) on crypto.users to oxp_service;
