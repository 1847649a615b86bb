-- Admins' second factor, entirely in SQL: the TOTP secret is stored
-- encrypted (pgcrypto, with a key the database never stores: the shim and
-- the CLI pass TOTP_ENCRYPTION_KEY per call) and a code is checked here, so
-- the secret never leaves the database. Wrong codes are counted; too many
-- lock the admin's sign-in for a while and open an alert.

-- RFC 4648 base32 (what authenticator apps are given) to bytes.
create or replace function crypto.base32_decode(p_text text) returns bytea
language plpgsql immutable strict
set search_path = crypto, pg_temp
as $$
declare
    v_alphabet constant text := 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
    v_clean text := rtrim(upper(replace(p_text, ' ', '')), '=');
    v_out bytea := '\x'::bytea;
    v_buffer bigint := 0;
    v_bits integer := 0;
    v_value integer;
begin
    for i in 1 .. length(v_clean) loop
        v_value := strpos(v_alphabet, substr(v_clean, i, 1)) - 1;
        if v_value < 0 then
            raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
                detail = 'A TOTP secret is base32';
        end if;
        v_buffer := ((v_buffer << 5) | v_value) & 65535;
        v_bits := v_bits + 5;
        if v_bits >= 8 then
            v_bits := v_bits - 8;
            v_out := v_out || set_byte('\x00'::bytea, 0, ((v_buffer >> v_bits) & 255)::integer);
        end if;
    end loop;
    return v_out;
end
$$;

-- The TOTP time step of an instant (RFC 6238: 30 s steps from the epoch).
create or replace function crypto.totp_step(p_at timestamptz) returns bigint
language sql immutable
as $$ select floor(extract(epoch from p_at) / 30)::bigint $$;

-- RFC 4226 HOTP over the step counter with HMAC-SHA-1 (RFC 6238's default,
-- and what authenticator apps use): dynamic truncation, then the last digits.
create or replace function crypto.totp_code(p_secret bytea, p_step bigint, p_digits integer default 6)
returns text
language plpgsql immutable strict
set search_path = crypto, pg_temp
as $$
declare
    v_mac bytea := ext.hmac(int8send(p_step), p_secret, 'sha1');
    v_offset integer := get_byte(v_mac, 19) & 15;
    v_binary bigint;
begin
    v_binary := ((get_byte(v_mac, v_offset) & 127)::bigint << 24)
        | (get_byte(v_mac, v_offset + 1)::bigint << 16)
        | (get_byte(v_mac, v_offset + 2)::bigint << 8)
        | get_byte(v_mac, v_offset + 3)::bigint;
    return lpad((v_binary % (10::bigint ^ p_digits)::bigint)::text, p_digits, '0');
end
$$;

create or replace function crypto.require_totp_key(p_key text) returns void
language plpgsql volatile
set search_path = crypto, pg_temp
as $$
declare
    v_print text;
    v_known text;
begin
    if coalesce(length(p_key), 0) < 16 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'TOTP_ENCRYPTION_KEY is missing or shorter than 16 characters';
    end if;
    -- Every process must hold the same key: one with another key would
    -- encrypt secrets nobody else can read, or fail to read them. Its
    -- fingerprint (an HMAC of a constant, which reveals nothing of the key)
    -- is kept at first use and every later key is compared with it.
    v_print := encode(ext.hmac('oxp-totp-key-check', p_key, 'sha256'), 'hex');
    insert into crypto.settings (key, value, description)
    values ('auth.totp_key_fingerprint', to_jsonb(v_print),
        'Fingerprint of TOTP_ENCRYPTION_KEY, kept at first use (an HMAC of a constant, not the key)')
    on conflict (key) do nothing;
    select x.value #>> '{}' into v_known from crypto.settings as x where x.key = 'auth.totp_key_fingerprint';
    if v_known is distinct from v_print then
        raise exception using errcode = 'OX015', message = 'TOTP_KEY_MISMATCH',
            detail = 'TOTP_ENCRYPTION_KEY is not the key the second factors were stored with; '
                'give the API and oxp the same key';
    end if;
end
$$;

-- After the shim verified an admin's password: the code, checked here. On
-- success the code's step is spent (a code works once) and the admin's
-- refresh family begins, marked as begun with a second factor. A wrong code
-- is remembered, so it is returned as a problem, not raised.
create or replace function api.mfa_verify(p_user uuid, p_code text, p_key text, p_refresh_hash bytea)
returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_user crypto.users;
    v_now timestamptz := crypto.now();
    -- Real time, not crypto.now(): the code comes from the admin's phone,
    -- whose clock no demo shift moves.
    v_step_now bigint := crypto.totp_step(statement_timestamp());
    v_secret bytea;
    v_step bigint;
    v_failures integer;
    v_family_end timestamptz;
begin
    perform crypto.require_totp_key(p_key);
    -- One check at a time per admin: parallel guesses cannot outrun the count.
    select u.* into v_user from crypto.users as u
    where u.id = p_user and u.role = 'admin' and u.disabled_at is null
    for update;
    if v_user.id is null then
        return crypto.problem('OX002', 'Wrong email, password or one-time code');
    end if;
    if v_user.mfa_locked_until > v_now then
        return crypto.problem('OX013', format('Too many wrong codes; retry after %s',
            crypto.kst(v_user.mfa_locked_until)));
    end if;
    if v_user.totp_secret_enc is not null then
        v_secret := crypto.base32_decode(ext.pgp_sym_decrypt(v_user.totp_secret_enc, p_key));
    else
        v_secret := crypto.base32_decode(v_user.totp_secret);
    end if;
    if p_code ~ '^[0-9]{6}$' then
        -- This step or one either side (clock drift), never a spent one.
        select s.step into v_step
        from unnest(array[v_step_now, v_step_now - 1, v_step_now + 1]) with ordinality as s (step, pos)
        where s.step > coalesce(v_user.totp_last_step, -1) and crypto.totp_code(v_secret, s.step) = p_code
        order by s.pos
        limit 1;
    end if;
    if v_step is null then
        insert into crypto.auth_failures (kind, subject, at) values ('mfa', p_user::text, v_now);
        select count(*) into v_failures from crypto.auth_failures as f
        where f.kind = 'mfa' and f.subject = p_user::text
            and f.at > v_now - crypto.setting_interval('auth.mfa_window_minutes');
        perform crypto.audit('user:' || p_user, 'auth.mfa_failed', p_user::text,
            jsonb_build_object('failures_in_window', v_failures));
        if v_failures >= crypto.setting_int('auth.mfa_max_failures') then
            update crypto.users as u
            set mfa_locked_until = v_now + crypto.setting_interval('auth.mfa_lockout_minutes')
            where u.id = p_user
            returning u.* into v_user;
            perform crypto.audit('user:' || p_user, 'auth.mfa_locked', p_user::text,
                jsonb_build_object('until', crypto.kst(v_user.mfa_locked_until)));
            insert into crypto.system_health (at, check_name, status, details)
            values (v_now, 'mfa_lockout', 'alert', jsonb_build_object(
                'user_id', p_user, 'failures', v_failures,
                'locked_until', crypto.kst(v_user.mfa_locked_until),
                'action', 'someone may be guessing this admin''s codes: check the audit log (auth.mfa_failed)'));
        end if;
        return crypto.problem('OX002', 'Wrong or already used one-time code');
    end if;
    -- A plaintext secret from before encryption is encrypted now.
    update crypto.users as u
    set totp_last_step = v_step,
        totp_secret_enc = coalesce(u.totp_secret_enc, ext.pgp_sym_encrypt(u.totp_secret, p_key)),
        totp_secret = null
    where u.id = p_user;
    perform crypto.audit('user:' || p_user, 'auth.admin_login', p_user::text, '{}');
    -- The lockout alert of this admin closes with their next sign-in.
    if exists (select from crypto.alerts as a
        where a.rule = 'mfa_lockout' and a.subject = p_user::text and a.resolved_at is null) then
        insert into crypto.system_health (at, check_name, status, details)
        values (v_now, 'mfa_lockout', 'ok', jsonb_build_object('user_id', p_user));
    end if;
    v_family_end := v_now + crypto.setting_interval('auth.admin_family_hours');
    insert into crypto.refresh_tokens (user_id, family_id, token_hash, issued_at, expires_at, mfa, family_expires_at)
    values (p_user, gen_random_uuid(), p_refresh_hash, v_now,
        least(v_now + crypto.setting_interval('auth.refresh_ttl_days'), v_family_end),
        true, v_family_end);
    return crypto.user_json(v_user);
end
$$;

grant execute on function api.mfa_verify(uuid, text, text, bytea) to auth_service;

-- The one way a second factor is written (promotion and reset): a base32
-- secret, stored encrypted with the key the CLI has from its environment;
-- the spent step and any lockout cleared; every session of the user ended,
-- since an admin session starts with a code (and api.refresh refuses a
-- family that did not, should one slip past this).
create or replace function crypto.check_totp_secret(p_totp_secret text, p_key text) returns void
language plpgsql volatile
set search_path = crypto, pg_temp
as $$
begin
    perform crypto.require_totp_key(p_key);
    if p_totp_secret is null or p_totp_secret !~ '^[A-Z2-7]{16,}$' then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'A TOTP secret is base32, 16 characters or more';
    end if;
end
$$;

create or replace function crypto.store_admin_factor(p_user uuid, p_totp_secret text, p_key text)
returns crypto.users
language plpgsql volatile
set search_path = crypto, pg_temp
as $$
declare
    v_user crypto.users;
begin
    perform crypto.check_totp_secret(p_totp_secret, p_key);
    update crypto.users as u
    set role = 'admin', totp_secret = null, totp_secret_enc = ext.pgp_sym_encrypt(p_totp_secret, p_key),
        totp_last_step = null, mfa_locked_until = null
    where u.id = p_user
    returning u.* into v_user;
    -- A reset for a stolen authenticator ends the access tokens too.
    perform crypto.end_sessions(p_user);
    return v_user;
end
$$;

-- `oxp users create-admin`.
create or replace function crypto.make_admin(p_email text, p_totp_secret text, p_key text) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_user crypto.users;
begin
    perform crypto.check_totp_secret(p_totp_secret, p_key);
    select u.* into v_user from crypto.users as u where u.id = crypto.user_by_email(p_email, true) for update;
    -- An admin already: a new secret here would silently replace the one
    -- in their authenticator app; that is what reset_totp is for.
    if v_user.role = 'admin' then
        raise exception using errcode = 'OX124', message = 'ALREADY_ADMIN',
            detail = format('%s is an admin already; oxp users reset-totp gives a new secret', v_user.email);
    end if;
    v_user := crypto.store_admin_factor(v_user.id, p_totp_secret, p_key);
    perform crypto.audit(crypto.current_actor(), 'user.make_admin', v_user.id::text, '{}');
    return crypto.user_json(v_user);
end
$$;

grant execute on function crypto.make_admin(text, text, text) to oxp_operator;
