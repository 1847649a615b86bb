-- Password hashing (argon2id) happens in the sidecar, which SQL cannot do;
-- the database only stores the hash and owns everything else about a user.

-- The caller, as the shim put it in the transaction (PostgREST model): the
-- `sub` of the request's claims, or null. Row-level security policies call
-- it as (select crypto.auth_uid()), evaluated once per query.
create or replace function crypto.auth_uid() returns uuid
language plpgsql stable
set search_path = crypto, pg_temp
as $$
begin
    return nullif(nullif(current_setting('request.jwt.claims', true), '')::json ->> 'sub', '')::uuid;
end
$$;

grant execute on function crypto.auth_uid() to anon, app_user, app_admin, oxp_service, auditor;

-- The caller as the shim set it; refuses a request without a user, and a
-- token issued before the user's tokens were cut off (its `iat`, whole
-- seconds of real time, against tokens_valid_after).
create or replace function crypto.require_user() returns uuid
language plpgsql stable
set search_path = crypto, pg_temp
as $$
declare
    v_uid uuid := crypto.auth_uid();
begin
    if v_uid is null or not exists (
        select from crypto.users as u
        where u.id = v_uid and u.disabled_at is null and (
            u.tokens_valid_after is null
            or to_timestamp((nullif(current_setting('request.jwt.claims', true), '')::json ->> 'iat')::double precision)
            >= u.tokens_valid_after
        )
    ) then
        raise exception using errcode = 'OX001', message = 'INVALID_TOKEN',
            detail = 'This request needs a signed-in user';
    end if;
    return v_uid;
end
$$;

-- A user by email, or NOT_FOUND naming it: the one lookup every
-- operator command and admin change by email goes through. With
-- p_enabled_only a disabled user is not found either (it cannot be
-- promoted or verified).
create or replace function crypto.user_by_email(p_email text, p_enabled_only boolean default false) returns uuid
language plpgsql stable
set search_path = crypto, pg_temp
as $$
declare
    v_id uuid;
begin
    select u.id into v_id from crypto.users as u
    where u.email = lower(btrim(p_email)) and (not p_enabled_only or u.disabled_at is null);
    if v_id is null then
        raise exception using errcode = 'OX004', message = 'NOT_FOUND',
            detail = format('No user %s', left(p_email, 254));
    end if;
    return v_id;
end
$$;

-- Ends every session of a user: each refresh family revoked, and every
-- access token issued before now refused by crypto.require_user (real
-- time, whole seconds: what a token's iat is measured in). Promotion,
-- reset of the second factor, demotion and Google's reclaim all end here.
create or replace function crypto.end_sessions(p_user uuid) returns void
language sql volatile
set search_path = crypto, pg_temp
as $$
    update crypto.users as u set tokens_valid_after = date_trunc('second', statement_timestamp())
    where u.id = p_user;
    update crypto.refresh_tokens as t set revoked_at = crypto.now()
    where t.user_id = p_user and t.revoked_at is null;
$$;

-- An admin's request: an admin user, with a token signed by the admin key
-- (the shim puts app_admin in the claims only for those).
create or replace function crypto.require_admin() returns uuid
language plpgsql stable
set search_path = crypto, pg_temp
as $$
declare
    v_uid uuid := crypto.require_user();
begin
    if not exists (select from crypto.users as u where u.id = v_uid and u.role = 'admin')
        or current_setting('request.jwt.claims', true)::json ->> 'role' is distinct from 'app_admin' then
        raise exception using errcode = 'OX003', message = 'FORBIDDEN', detail = 'Admins only';
    end if;
    return v_uid;
end
$$;

create or replace function api.signup(p_email text, p_password_hash text) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_email text := lower(btrim(p_email));
    v_user crypto.users;
begin
    if v_email is null or v_email !~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' or length(v_email) > 254 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'email is not a valid address';
    end if;
    begin
        insert into crypto.users (email, password_hash)
        values (v_email, p_password_hash)
        returning * into v_user;
    exception when unique_violation then
        raise exception using errcode = 'OX006', message = 'EMAIL_TAKEN',
            detail = 'An account with this email exists';
    end;
    insert into crypto.ledger_accounts (kind, user_id) values ('user', v_user.id);
    return json_build_object('id', v_user.id, 'email', v_user.email, 'role', v_user.role);
end
$$;

grant execute on function api.signup(text, text) to anon;

-- What the sidecar needs to verify a password; null when no such user.
-- Refused before any password is checked: an email with too many wrong
-- passwords lately (from any address; the count is kept for unknown emails
-- too, so a refusal says nothing about whether the account exists), and an
-- admin locked out by wrong codes (whatever the password: no oracle).
create or replace function api.login_lookup(p_email text) returns json
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
declare
    v_email text := lower(btrim(p_email));
    v_user crypto.users;
begin
    if (
        select count(*) from crypto.auth_failures as f
        where f.kind = 'login' and f.subject = v_email
            and f.at > crypto.now() - crypto.setting_interval('auth.login_window_minutes')
    ) >= crypto.setting_int('auth.login_max_failures') then
        raise exception using errcode = 'OX005', message = 'RATE_LIMITED',
            detail = 'Too many failed sign-ins for this email; retry later';
    end if;
    select u.* into v_user from crypto.users as u where u.email = v_email and u.disabled_at is null;
    if v_user.id is null then
        return null;
    end if;
    if v_user.role = 'admin' and v_user.mfa_locked_until > crypto.now() then
        raise exception using errcode = 'OX013', message = 'MFA_LOCKED',
            detail = format('Too many wrong codes; retry after %s', crypto.kst(v_user.mfa_locked_until));
    end if;
    return json_build_object(
        'id', v_user.id, 'email', v_user.email, 'role', v_user.role,
        'password_hash', v_user.password_hash, 'mfa', v_user.role = 'admin'
    );
end
$$;

grant execute on function api.login_lookup(text) to auth_service;

-- A wrong password (or an unknown email): counted against the email.
create or replace function api.login_failed(p_email text) returns json
language sql volatile security definer
set search_path = crypto, pg_temp
as $$
    insert into crypto.auth_failures (kind, subject, at)
    values ('login', left(lower(btrim(p_email)), 320), crypto.now());
    select json_build_object('recorded', true);
$$;

grant execute on function api.login_failed(text) to auth_service;

create or replace function api.me() returns json
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
declare
    v_uid uuid := crypto.require_user();
begin
    return (
        select json_build_object(
            'id', u.id, 'email', u.email, 'role', u.role, 'display_name', u.display_name, 'nickname', u.nickname,
            'created_at', crypto.kst(u.created_at), 'balance', a.balance
        )
        from crypto.users as u
        join crypto.ledger_accounts as a on a.user_id = u.id
        where u.id = v_uid
    );
end
$$;

grant execute on function api.me() to app_user, app_admin;
