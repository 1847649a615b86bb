-- What an operator (oxp users ...) and the auditor read about players, and
-- the two changes to an admin that are not a promotion: demote and a new
-- second factor. Reads are SECURITY DEFINER (they share helpers only the
-- owner runs) and never return a secret column; EXECUTE is the gate.
-- Changes are audited.

-- When a user last did anything we record: a sign-in or token refresh, a
-- prediction, an ad view, a redemption. Null when never.
create or replace function crypto.user_last_seen(p_user uuid) returns timestamptz
language sql stable
set search_path = crypto, pg_temp
as $$
    select greatest(
        (select max(greatest(t.issued_at, t.used_at)) from crypto.refresh_tokens as t where t.user_id = p_user),
        (select max(p.created_at) from crypto.predictions as p where p.user_id = p_user),
        (select max(a.created_at) from crypto.ad_unlocks as a where a.user_id = p_user),
        (select max(r.created_at) from crypto.rewards_redemptions as r where r.user_id = p_user)
    )
$$;

create or replace function crypto.user_summary(p_user uuid) returns jsonb
language sql stable
set search_path = crypto, pg_temp
as $$
    select jsonb_build_object(
        'email', u.email, 'role', u.role, 'balance', a.balance,
        'created_at', crypto.kst(u.created_at), 'last_seen_at', crypto.kst(crypto.user_last_seen(u.id)),
        'predictions', (select count(*) from crypto.predictions as p where p.user_id = u.id),
        'disabled_at', crypto.kst(u.disabled_at)
    )
    from crypto.users as u
    left join crypto.ledger_accounts as a on a.user_id = u.id
    where u.id = p_user
$$;

-- Newest first; ROLE (user or admin) narrows the list.
create or replace function crypto.users_list(p_role text default null, p_limit integer default 100) returns jsonb
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
begin
    if p_role is not null and p_role not in ('user', 'admin') then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = format('role is user or admin, not %s', left(p_role, 40));
    end if;
    if p_limit is null or p_limit not between 1 and 10000 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'limit must be between 1 and 10000';
    end if;
    return coalesce((
        select jsonb_agg(crypto.user_summary(u.id) order by u.created_at desc, u.email)
        from (
            select x.id, x.created_at, x.email from crypto.users as x
            where p_role is null or x.role::text = p_role
            order by x.created_at desc, x.email
            limit p_limit
        ) as u
    ), '[]');
end
$$;

grant execute on function crypto.users_list(text, integer) to oxp_operator, auditor;

-- One user: the summary, their predictions' outcomes in total, and the
-- latest predictions.
create or replace function crypto.user_detail(p_email text, p_predictions integer default 20) returns jsonb
language plpgsql stable security definer
set search_path = crypto, pg_temp
as $$
declare
    v_user uuid := crypto.user_by_email(p_email);
begin
    if p_predictions is null or p_predictions not between 0 and 1000 then
        raise exception using errcode = 'OX000', message = 'VALIDATION_FAILED',
            detail = 'predictions must be between 0 and 1000';
    end if;
    return crypto.user_summary(v_user) || jsonb_build_object(
        'outcomes', (
            select jsonb_build_object(
                'won', count(*) filter (where o.outcome = 'WON'),
                'lost', count(*) filter (where o.outcome = 'LOST'),
                'void', count(*) filter (where o.outcome = 'VOID'),
                'pending', count(*) filter (where o.outcome = 'PENDING')
            )
            from crypto.predictions as p
            left join crypto.current_settlements as s on s.trading_day = p.trading_day and s.symbol = p.symbol
            cross join lateral (select crypto.prediction_outcome(p.choice, s.outcome) as outcome) as o
            where p.user_id = v_user
        ),
        'recent_predictions', coalesce((
            select jsonb_agg(jsonb_build_object(
                'id', r.id, 'trading_day', r.trading_day, 'symbol', r.symbol, 'choice', r.choice,
                'outcome', crypto.prediction_outcome(r.choice, s.outcome),
                'created_at', crypto.kst(r.created_at)
            ) order by r.id desc)
            from (
                select p.* from crypto.predictions as p where p.user_id = v_user
                order by p.id desc limit p_predictions
            ) as r
            left join crypto.current_settlements as s on s.trading_day = r.trading_day and s.symbol = r.symbol
        ), '[]')
    );
end
$$;

grant execute on function crypto.user_detail(text, integer) to oxp_operator, auditor;

-- A user's ledger entries, newest first, a page at a time (the same page
-- rule as the player's own ledger).
create or replace function crypto.user_ledger(p_email text, p_cursor bigint default null, p_limit integer default 50)
returns jsonb
language sql stable security definer
set search_path = crypto, pg_temp
as $$
    select jsonb_build_object('email', lower(btrim(p_email)))
        || crypto.ledger_page(crypto.user_by_email(p_email), p_cursor, p_limit)::jsonb
$$;

grant execute on function crypto.user_ledger(text, bigint, integer) to oxp_operator, auditor;

-- An admin locked for a change of role or factor; NOT_AN_ADMIN otherwise.
create or replace function crypto.lock_admin(p_email text) returns crypto.users
language plpgsql volatile
set search_path = crypto, pg_temp
as $$
declare
    v_user crypto.users;
begin
    select u.* into v_user from crypto.users as u where u.id = crypto.user_by_email(p_email) for update;
    if v_user.role <> 'admin' then
        raise exception using errcode = 'OX123', message = 'NOT_AN_ADMIN',
            detail = format('%s is not an admin', v_user.email);
    end if;
    return v_user;
end
$$;

-- Back to a player: the second factor is forgotten and every session ends,
-- so no admin session outlives the role (admin routes also check the role
-- on each request).
create or replace function crypto.demote_admin(p_email text) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_user crypto.users := crypto.lock_admin(p_email);
begin
    update crypto.users as u
    set role = 'user', totp_secret = null, totp_secret_enc = null, totp_last_step = null, mfa_locked_until = null
    where u.id = v_user.id
    returning u.* into v_user;
    perform crypto.end_sessions(v_user.id);
    perform crypto.audit(crypto.current_actor(), 'user.demote', v_user.id::text, '{}');
    return crypto.user_json(v_user);
end
$$;

-- Role and factor changes are the operator's alone, like promotion.
grant execute on function crypto.demote_admin(text) to oxp_operator;

-- A lost authenticator: a new TOTP secret (made by the CLI, shown once),
-- the old one and every session end (crypto.store_admin_factor).
create or replace function crypto.reset_totp(p_email text, p_totp_secret text, p_key text) returns json
language plpgsql volatile security definer
set search_path = crypto, pg_temp
as $$
declare
    v_user crypto.users;
begin
    perform crypto.check_totp_secret(p_totp_secret, p_key);
    v_user := crypto.store_admin_factor((crypto.lock_admin(p_email)).id, p_totp_secret, p_key);
    perform crypto.audit(crypto.current_actor(), 'user.reset_totp', v_user.id::text, '{}');
    return crypto.user_json(v_user);
end
$$;

grant execute on function crypto.reset_totp(text, text, text) to oxp_operator;

comment on function crypto.users_list(text, integer) is
'Users newest first: email, role, balance, created, last seen, predictions (oxp users list).';
comment on function crypto.user_detail(text, integer) is
'One user by email: the summary, outcomes of all predictions, and the latest ones (oxp users show).';
comment on function crypto.user_ledger(text, bigint, integer) is
'A user''s ledger entries newest first, a page at a time (oxp points ledger).';
comment on function crypto.demote_admin(text) is
'An admin back to a player: second factor forgotten, sessions revoked; audited as user.demote.';
comment on function crypto.reset_totp(text, text, text) is
'A new TOTP secret for an admin; sessions revoked; audited as user.reset_totp.';
