-- Refresh tokens, admins' second factor and Google sign-in: the state of
-- each lives here; the sidecar does only the cryptography SQL cannot
-- (random tokens, TOTP codes, the identity provider's signatures).

create or replace function crypto.user_json(p_user crypto.users) returns json
language sql stable
as $$ select json_build_object('id', p_user.id, 'email', p_user.email, 'role', p_user.role) $$;

-- A new family for the signed-in caller (after a password or Google
-- login), begun without a second factor: never an admin's (an admin family
-- begins in api.mfa_verify). It ends after auth.refresh_family_days however
-- often it is rotated.
create or replace function api.issue_refresh(p_hash bytea) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_uid uuid := crypto.require_user();
    v_now timestamptz := crypto.now();
    v_family_end timestamptz := v_now + crypto.setting_interval('auth.refresh_family_days');
    v_expires timestamptz := least(
        v_now + crypto.setting_interval('auth.refresh_ttl_days'), v_family_end
    );
begin
    if exists (select from crypto.users as u where u.id = v_uid and u.role = 'admin') then
        raise exception using errcode = 'OX003', message = 'FORBIDDEN',
            detail = 'An admin session begins with the second factor';
    end if;
    insert into crypto.refresh_tokens (user_id, family_id, token_hash, issued_at, expires_at, mfa, family_expires_at)
    values (v_uid, gen_random_uuid(), p_hash, v_now, v_expires, false, v_family_end);
    return json_build_object('refresh_expires_at', crypto.kst(v_expires));
end
$$;

grant execute on function api.issue_refresh(bytea) to auth_service;

-- Rotation: the presented token is spent and a new one of its family
-- issued. A token presented twice was copied: the family is revoked, and
-- that revocation is kept (returned as a problem, not raised). A family
-- ends at its absolute end, and one that began without a second factor
-- never yields an admin session (a promotion racing a refresh).
create or replace function api.refresh(p_hash bytea, p_new_hash bytea) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_family uuid;
    v_uid uuid;
    v_token crypto.refresh_tokens;
    v_user crypto.users;
    v_now timestamptz := crypto.now();
begin
    select t.family_id, t.user_id into v_family, v_uid from crypto.refresh_tokens as t where t.token_hash = p_hash;
    if v_family is null then
        raise exception using errcode = 'OX001', message = 'INVALID_TOKEN', detail = 'Unknown refresh token';
    end if;
    -- One change to a family at a time: a revocation must see the token a
    -- concurrent rotation is adding, so it waits for it to commit.
    perform crypto.lock_refresh_family(v_family);
    -- A change to the user that revokes their sessions (promotion, Google
    -- reclaiming an unverified account) updates this row first: wait for
    -- it, then read the token as it left it.
    select u.* into v_user from crypto.users as u where u.id = v_uid and u.disabled_at is null for share;
    select t.* into v_token from crypto.refresh_tokens as t where t.token_hash = p_hash;
    if v_token.used_at is not null or v_token.revoked_at is not null then
        if v_token.used_at is not null then
            update crypto.refresh_tokens as t set revoked_at = v_now
            where t.family_id = v_token.family_id and t.revoked_at is null;
            perform crypto.audit('user:' || v_token.user_id, 'auth.refresh_reused', v_token.family_id::text, '{}');
        end if;
        return crypto.problem('OX001', 'This refresh token is no longer valid; sign in again');
    end if;
    if v_token.expires_at <= v_now or v_token.family_expires_at <= v_now or v_user.id is null then
        raise exception using errcode = 'OX001', message = 'INVALID_TOKEN', detail = 'The refresh token expired';
    end if;
    if v_user.role = 'admin' and not v_token.mfa then
        update crypto.refresh_tokens as t set revoked_at = v_now
        where t.family_id = v_token.family_id and t.revoked_at is null;
        perform crypto.audit('user:' || v_user.id, 'auth.refresh_refused_no_mfa', v_token.family_id::text, '{}');
        return crypto.problem('OX001', 'An admin session begins with the second factor; sign in again');
    end if;
    update crypto.refresh_tokens as t set used_at = v_now where t.id = v_token.id;
    insert into crypto.refresh_tokens (user_id, family_id, token_hash, issued_at, expires_at, mfa, family_expires_at)
    values (v_user.id, v_token.family_id, p_new_hash, v_now,
        least(v_now + crypto.setting_interval('auth.refresh_ttl_days'),
            v_token.family_expires_at),
        v_token.mfa, v_token.family_expires_at);
    return crypto.user_json(v_user);
end
$$;

grant execute on function api.refresh(bytea, bytea) to auth_service;

-- Ends the session the token belongs to. Says the same whether or not the
-- token was known, so it tells a caller nothing.
create or replace function api.logout(p_hash bytea) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_family uuid := (select f.family_id from crypto.refresh_tokens as f where f.token_hash = p_hash);
begin
    if v_family is not null then
        perform crypto.lock_refresh_family(v_family);
        update crypto.refresh_tokens as t set revoked_at = crypto.now()
        where t.family_id = v_family and t.revoked_at is null;
    end if;
    return json_build_object('logged_out', true);
end
$$;

grant execute on function api.logout(bytea) to auth_service;

create or replace function crypto.lock_refresh_family(p_family uuid) returns void
language sql volatile
as $$ select pg_advisory_xact_lock(hashtextextended('crypto.refresh_tokens:' || p_family::text, 0)) $$;

-- Google sign-in: the redirect leaves a single-use state (with the nonce
-- and the PKCE verifier) that expires, bound to the browser that started it
-- (the hash of a cookie); the callback spends it.
create or replace function api.oauth_begin(
    p_state text, p_nonce text, p_verifier text, p_redirect_uri text, p_browser_hash bytea
)
returns json
language sql volatile security definer
set search_path = crypto, pg_temp
as $$
    insert into crypto.oauth_states (state, nonce, code_verifier, redirect_uri, created_at, expires_at, browser_hash)
    values (p_state, p_nonce, p_verifier, p_redirect_uri, crypto.now(),
        crypto.now() + crypto.setting_interval('auth.oauth_state_minutes'),
        p_browser_hash);
    select json_build_object('state', p_state);
$$;

grant execute on function api.oauth_begin(text, text, text, text, bytea) to auth_service;

-- Only the browser that began the flow spends its state: a state pasted
-- into another browser (login CSRF, a leaked callback URL) is refused and
-- stays usable by its owner.
create or replace function api.oauth_consume(p_state text, p_browser_hash bytea) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_row crypto.oauth_states;
begin
    update crypto.oauth_states as s set used_at = crypto.now()
    where s.state = p_state and s.used_at is null and s.expires_at > crypto.now()
        and s.browser_hash = p_browser_hash
    returning s.* into v_row;
    if v_row.state is null then
        raise exception using errcode = 'OX011', message = 'OAUTH_FAILED',
            detail = 'Unknown, used or expired sign-in state, or begun in another browser; start again';
    end if;
    return json_build_object('nonce', v_row.nonce, 'code_verifier', v_row.code_verifier,
        'redirect_uri', v_row.redirect_uri);
end
$$;

grant execute on function api.oauth_consume(text, bytea) to auth_service;

-- After the sidecar verified the ID token of a spent state: the user with
-- this Google subject, else the user with this (Google-verified) email,
-- linked (an account whose email was never verified loses its password and
-- sessions first), else a new user.
create or replace function api.oauth_login(p_state text, p_sub text, p_email text) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_email text := lower(btrim(p_email));
    v_user crypto.users;
begin
    update crypto.oauth_states as s set completed_at = crypto.now()
    where s.state = p_state and s.used_at is not null and s.completed_at is null
        and s.used_at > crypto.now() - crypto.setting_interval('auth.oauth_state_minutes');
    if not found then
        raise exception using errcode = 'OX011', message = 'OAUTH_FAILED',
            detail = 'This sign-in was not started here or already finished';
    end if;
    select u.* into v_user from crypto.users as u where u.google_sub = p_sub;
    if v_user.id is null then
        select u.* into v_user from crypto.users as u where u.email = v_email for update;
        if v_user.id is not null and v_user.google_sub is not null then
            raise exception using errcode = 'OX011', message = 'OAUTH_FAILED',
                detail = 'This email is linked to another Google account';
        elsif v_user.id is not null and v_user.email_verified_at is not null then
            update crypto.users as u set google_sub = p_sub where u.id = v_user.id returning u.* into v_user;
            perform crypto.audit('user:' || v_user.id, 'auth.google_linked', v_user.id::text, '{}');
        elsif v_user.id is not null then
            -- Nobody ever proved they own this email, so the password may be
            -- an attacker's who signed up first (pre-hijacking). Google has
            -- proved it: the account is the Google user's, and what the
            -- unproven sign-up left (password, sessions, links) is revoked.
            update crypto.users as u
            set google_sub = p_sub, password_hash = null, email_verified_at = crypto.now()
            where u.id = v_user.id
            returning u.* into v_user;
            perform crypto.end_sessions(v_user.id);
            update crypto.email_verifications as e set used_at = crypto.now()
            where e.user_id = v_user.id and e.used_at is null;
            perform crypto.audit('user:' || v_user.id, 'auth.google_reclaimed', v_user.id::text,
                '{"password_removed": true, "sessions_revoked": true}');
        else
            insert into crypto.users (email, google_sub, email_verified_at)
            values (v_email, p_sub, crypto.now()) returning * into v_user;
            insert into crypto.ledger_accounts (kind, user_id) values ('user', v_user.id);
            perform crypto.audit('user:' || v_user.id, 'auth.google_signup', v_user.id::text, '{}');
        end if;
    end if;
    if v_user.disabled_at is not null then
        raise exception using errcode = 'OX002', message = 'INVALID_CREDENTIALS', detail = 'This account is disabled';
    end if;
    if v_user.role = 'admin' then
        -- An admin session needs the second factor; Google's sign-in is not it.
        raise exception using errcode = 'OX010', message = 'MFA_REQUIRED',
            detail = 'Admins sign in with their password and a one-time code';
    end if;
    return crypto.user_json(v_user);
end
$$;

grant execute on function api.oauth_login(text, text, text) to auth_service;
