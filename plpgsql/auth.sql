-- Password hashing (argon2id) happens in the sidecar, which SQL cannot do;
-- the database only stores the hash and owns everything else about a user.

-- The caller as the shim set it; refuses a request without a user.
create or replace function crypto.require_user() returns uuid
language plpgsql stable
set search_path = crypto, pg_temp
as $$
declare
    v_uid uuid := crypto.auth_uid();
begin
    if v_uid is null or not exists (
        select from crypto.users as u where u.id = v_uid and u.disabled_at is null
    ) then
        raise exception using errcode = 'OX001', message = 'INVALID_TOKEN',
            detail = 'This request needs a signed-in user';
    end if;
    return v_uid;
end
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

-- What the sidecar needs to verify a password; null when no such user.
create or replace function api.login_lookup(p_email text) returns json
language sql stable security definer
set search_path = crypto, pg_temp
as $$
    select json_build_object(
        'id', u.id, 'email', u.email, 'role', u.role,
        'password_hash', u.password_hash, 'mfa', u.totp_secret is not null
    )
    from crypto.users as u
    where u.email = lower(btrim(p_email)) and u.disabled_at is null
$$;

create or replace function api.me() returns json
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
declare
    v_uid uuid := crypto.require_user();
begin
    return (
        select json_build_object(
            'id', u.id, 'email', u.email, 'role', u.role, 'display_name', u.display_name,
            'created_at', crypto.kst(u.created_at), 'balance', a.balance
        )
        from crypto.users as u
        join crypto.ledger_accounts as a on a.user_id = u.id
        where u.id = v_uid
    );
end
$$;

grant execute on function api.signup(text, text) to anon;
grant execute on function api.login_lookup(text) to anon;
grant execute on function api.me() to app_user, app_admin;
