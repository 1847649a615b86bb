-- Proof that whoever signed up with a password owns the email: a link
-- mailed there (single use, expiring, kept as a hash), or an operator's
-- word. Only a verified password account is ever linked to a Google
-- identity as it is (api.oauth_login).

-- The worker, before it mails a link: the link's hash is stored with the
-- address it goes to. Null when there is nothing to verify (verified meanwhile,
-- disabled, or a Google account).
create or replace function crypto.email_verification_issue(p_user uuid, p_hash bytea) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_user crypto.users;
    v_expires timestamptz := crypto.now() + crypto.setting_interval('auth.email_verify_hours');
begin
    select u.* into v_user from crypto.users as u
    where u.id = p_user and u.disabled_at is null and u.email_verified_at is null;
    if v_user.id is null then
        return null;
    end if;
    insert into crypto.email_verifications (token_hash, user_id, email, created_at, expires_at)
    values (p_hash, v_user.id, v_user.email, crypto.now(), v_expires);
    return json_build_object('email', v_user.email, 'expires_at', crypto.kst(v_expires));
end
$$;

grant execute on function crypto.email_verification_issue(uuid, bytea) to oxp_service;

-- The link was followed and confirmed: spent, and the email it was sent to
-- is verified.
create or replace function api.verify_email(p_hash bytea) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_link crypto.email_verifications;
    v_user crypto.users;
begin
    update crypto.email_verifications as e set used_at = crypto.now()
    where e.token_hash = p_hash and e.used_at is null and e.expires_at > crypto.now()
    returning e.* into v_link;
    if v_link.user_id is not null then
        update crypto.users as u set email_verified_at = coalesce(u.email_verified_at, crypto.now())
        where u.id = v_link.user_id and u.email = v_link.email and u.disabled_at is null
        returning u.* into v_user;
    end if;
    if v_user.id is null then
        raise exception using errcode = 'OX014', message = 'EMAIL_LINK_INVALID',
            detail = 'This link is unknown, already used or expired';
    end if;
    perform crypto.audit('user:' || v_user.id, 'auth.email_verified', v_user.id::text, '{"by": "link"}');
    return json_build_object('email', v_user.email, 'email_verified_at', crypto.kst(v_user.email_verified_at));
end
$$;

grant execute on function api.verify_email(bytea) to auth_service;

-- A link for the signed-in user (the shim asks right after a sign-up when
-- mail is configured, and on request): a job for the worker, so a slow or
-- failing mail server never holds up or fails the request. At most one a
-- minute.
create or replace function api.resend_verification() returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_uid uuid := crypto.require_user();
    v_verified timestamptz := (select u.email_verified_at from crypto.users as u where u.id = v_uid);
begin
    if v_verified is not null then
        return json_build_object('email_verified_at', crypto.kst(v_verified), 'queued', false);
    end if;
    perform crypto.enqueue_job('email.verify', jsonb_build_object('user_id', v_uid),
        'email.verify:' || v_uid || ':' || floor(extract(epoch from crypto.now()) / 60)::bigint);
    return json_build_object('email_verified_at', null, 'queued', true);
end
$$;

grant execute on function api.resend_verification() to app_user;

-- `oxp users verify EMAIL`: an operator vouches for the email (audited).
create or replace function crypto.verify_email_by_operator(p_email text) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_user crypto.users;
begin
    update crypto.users as u set email_verified_at = coalesce(u.email_verified_at, crypto.now())
    where u.id = crypto.user_by_email(p_email, true)
    returning u.* into v_user;
    perform crypto.audit(crypto.current_actor(), 'user.email_verified', v_user.id::text, '{"by": "operator"}');
    return json_build_object('email', v_user.email, 'email_verified_at', crypto.kst(v_user.email_verified_at));
end
$$;

grant execute on function crypto.verify_email_by_operator(text) to oxp_operator;
