-- Sign-in hardening (issue 9, items 1-4): email verification, TOTP checked
-- and stored encrypted in SQL, failed sign-ins counted per account, refresh
-- families that remember their second factor and end at a fixed time.

-- pgcrypto for hmac() (TOTP) and pgp_sym_encrypt() (secrets at rest), in a
-- schema of its own so its many functions stay out of crypto and api.
create schema if not exists ext;
create extension if not exists pgcrypto with schema ext;

-- 1. Whether the owner of an account's email proved it (a link sent there,
-- Google's verified email, or an operator). Google accounts were verified
-- by Google; password accounts made before this never were.
alter table crypto.users add column email_verified_at timestamptz;
update crypto.users set email_verified_at = created_at
where google_sub is not null;

-- Access tokens of this user issued before this instant are refused (a
-- Google sign-in reclaiming an account the pre-registrant holds tokens of).
alter table crypto.users add column tokens_valid_after timestamptz;

-- A verification link: single use, expiring, kept as a hash only. The email
-- it was sent to is kept so a link never verifies an address it was not
-- sent to.
create table crypto.email_verifications (
    token_hash bytea primary key check (length(token_hash) = 32),
    user_id uuid not null references crypto.users,
    email text not null,
    created_at timestamptz not null,
    expires_at timestamptz not null,
    used_at timestamptz,
    check (expires_at > created_at)
);

create index email_verifications_by_user on crypto.email_verifications (user_id);

-- 2. The TOTP secret encrypted with a key the database never stores (the
-- shim and the CLI pass it per call). A plaintext secret from before is
-- encrypted on the admin's next successful sign-in.
alter table crypto.users add column totp_secret_enc bytea;
alter table crypto.users add column mfa_locked_until timestamptz;
do $drop$
declare
    v_name text;
begin
    select c.conname into v_name
    from pg_constraint as c
    where c.conrelid = 'crypto.users'::regclass and c.contype = 'c'
        and pg_get_constraintdef(c.oid) like '%totp_secret IS NOT NULL%';
    if v_name is not null then
        execute format('alter table crypto.users drop constraint %I', v_name);
    end if;
end
$drop$;
alter table crypto.users add constraint users_admin_has_totp
check (role = 'user' or totp_secret is not null or totp_secret_enc is not null);

-- The secret never leaves the database any more: the code is checked in SQL.
drop function if exists api.mfa_secret(uuid);
drop function if exists api.mfa_accept(uuid, bigint);
drop function if exists crypto.make_admin(text, text);

-- 2 and 3. Failed sign-ins, per account: wrong passwords by email (whether
-- or not an account has it, so the count says nothing about existence) and
-- wrong second-factor codes by user. Old rows are deleted by the cleanup.
create table crypto.auth_failures (
    id bigint generated always as identity primary key,
    kind text not null check (kind in ('login', 'mfa')),
    subject text not null check (length(subject) <= 320),
    at timestamptz not null
);

create index auth_failures_by_subject on crypto.auth_failures (kind, subject, at);

-- 4. Each refresh token carries its family's facts: whether the family
-- began with a second factor, and when it ends whatever its rotations.
alter table crypto.refresh_tokens add column mfa boolean not null default false;
alter table crypto.refresh_tokens add column family_expires_at timestamptz;
update crypto.refresh_tokens as t set family_expires_at = f.started + interval '90 days'
from (
    select
        r.family_id,
        min(r.issued_at) as started
    from crypto.refresh_tokens as r
    group by r.family_id
) as f
where f.family_id = t.family_id;
alter table crypto.refresh_tokens alter column family_expires_at set not null;

-- Readable like every table, secrets and token hashes aside.
grant select (user_id, email, created_at, expires_at, used_at) on crypto.email_verifications to auditor, oxp_service;
grant select on crypto.auth_failures to auditor, oxp_service;
grant select (mfa, family_expires_at) on crypto.refresh_tokens to auditor, oxp_service;
grant select (email_verified_at, mfa_locked_until) on crypto.users to auditor, oxp_service;
grant select (email_verified_at) on crypto.users to app_user;
alter table crypto.email_verifications enable row level security;
alter table crypto.auth_failures enable row level security;

-- 12. The OAuth state is bound to the browser that started the flow: the
-- hash of a random value set as a cookie on the redirect, which the
-- callback must present (a callback with someone else's state is refused).
alter table crypto.oauth_states add column browser_hash bytea check (length(browser_hash) = 32);
drop function if exists api.oauth_begin(text, text, text, text);
drop function if exists api.oauth_consume(text);

-- The operator's reset of a second factor takes the encryption key too.
drop function if exists crypto.reset_totp(text, text);

-- An admin family begins only with the code (api.mfa_verify); an older
-- database granted this to app_admin too.
do $revoke$
begin
    if to_regprocedure('api.issue_refresh(bytea)') is not null then
        revoke execute on function api.issue_refresh(bytea) from app_admin;
    end if;
end
$revoke$;
